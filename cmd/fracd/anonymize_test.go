package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fracd/fracd/internal/testdicom"
)

func TestAnonymizeCommand(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(filepath.Join(in, "sub"), 0o755)
	// A file that is not DICOM, named like a patient: rejected, and the name
	// must not show up in the report.
	os.WriteFile(filepath.Join(in, "Doe^Jane.dcm"), []byte("not dicom"), 0o644)
	copied := 0
	for _, name := range []string{"xr00000.dcm", "xr00003.dcm"} {
		b, err := os.ReadFile(filepath.Join("../../../shared/xray-dicom/files", name))
		if err != nil {
			continue
		}
		os.WriteFile(filepath.Join(in, "sub", name), b, 0o644)
		copied++
	}
	secret := filepath.Join(dir, "keys", "secret.key")
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("anonymize:\n  secret_file: "+secret+"\n"), 0o600)

	run := func(out string) ([]string, string) {
		stdout, stderr, err := runFracd(t, "-c", cfg, "anonymize", in, "-o", out)
		if err == nil {
			t.Error("a rejected file did not fail the command")
		}
		if strings.Contains(stderr+stdout, "Doe") {
			t.Errorf("report names the input path: %s", stderr)
		}
		if !strings.Contains(stderr, "rejected: ") || !strings.Contains(stderr, "sha256") {
			t.Errorf("rejection not reported by content hash: %s", stderr)
		}
		names, _ := filepath.Glob(filepath.Join(out, "*.dcm"))
		for i := range names {
			names[i] = filepath.Base(names[i])
		}
		sort.Strings(names)
		return names, stderr
	}
	first, _ := run(filepath.Join(dir, "out1"))
	if st, err := os.Stat(secret); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret not created 0600: %v", err)
	}
	if len(first) != copied {
		t.Fatalf("%d outputs, want %d", len(first), copied)
	}
	for _, n := range first {
		if !strings.HasPrefix(n, "2.25.") {
			t.Errorf("output %s not named by the new SOP Instance UID", n)
		}
	}
	// Same secret, second run: the same pseudonymous names.
	second, _ := run(filepath.Join(dir, "out2"))
	if strings.Join(first, ",") != strings.Join(second, ",") {
		t.Errorf("runs differ: %v vs %v", first, second)
	}
	if copied == 0 {
		t.Log("../shared/xray-dicom absent: only the rejection path was exercised")
	}
}

// TestAnonymizeOutputNamesStayInOutdir: with retain_uids the SOP Instance
// UID comes from the file as it is; one that is not a UID (a path, say) must
// not steer the output out of OUTDIR.
func TestAnonymizeOutputNamesStayInOutdir(t *testing.T) {
	cases := []struct {
		uid      string
		wantName string // "" means sha256-<content hash>.dcm
	}{
		{"1.2.826.0.1.3680043.10.1042.77", "1.2.826.0.1.3680043.10.1042.77.dcm"},
		{"../../escaped", ""},
		{"../escaped.1", ""},
		{"sub/dir", ""},
		{"/tmp/abs", ""},
		{"..", ""},
	}
	for i, tc := range cases {
		t.Run(tc.uid, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in", "a", "b")
			os.MkdirAll(in, 0o755)
			data, err := testdicom.Spec{Seed: 80 + i, SOPInstanceUID: tc.uid}.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(in, "x.dcm"), data, 0o644)
			cfg := filepath.Join(dir, "config.yaml")
			os.WriteFile(cfg, []byte("anonymize:\n  retain_uids: true\n  secret_file: "+filepath.Join(dir, "secret.key")+"\n"), 0o600)
			out := filepath.Join(dir, "in", "a", "b", "out")
			stdout, stderr, err := runFracd(t, "-c", cfg, "anonymize", filepath.Join(dir, "in"), "-o", out)
			if err != nil {
				t.Fatalf("anonymize: %v\n%s", err, stderr)
			}
			var written []string
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".dcm") && p != filepath.Join(in, "x.dcm") {
					written = append(written, p)
				}
				return nil
			})
			sum := sha256.Sum256(data)
			want := tc.wantName
			if want == "" {
				want = "sha256-" + hex.EncodeToString(sum[:]) + ".dcm"
			}
			// A value that is no UID is mapped to a pseudonym UID under
			// retain_uids (anonymize), so the name is that UID, else the hash;
			// either way one file directly inside OUTDIR.
			mapped := len(written) == 1 && filepath.Dir(written[0]) == out && strings.HasPrefix(filepath.Base(written[0]), "2.25.") && tc.wantName == ""
			if len(written) != 1 || (written[0] != filepath.Join(out, want) && !mapped) || strings.TrimSpace(stdout) != written[0] {
				t.Fatalf("wrote %v (reported %q); want only %s (or a 2.25 pseudonym) inside %s", written, stdout, want, out)
			}
		})
	}
}
