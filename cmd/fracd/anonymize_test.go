package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
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
	// Two X-rays of the reference corpus, or two generated ones when it is
	// absent: the outputs are always compared, never two empty lists.
	copied := 0
	for i, name := range []string{"xr00000.dcm", "xr00003.dcm"} {
		b, err := os.ReadFile(filepath.Join("../../../shared/xray-dicom/files", name))
		if errors.Is(err, fs.ErrNotExist) {
			b, err = testdicom.Spec{Seed: 300 + i}.Bytes()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in, "sub", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
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

// TestAnonymizeSkipsUnreadableFolder: a folder that cannot be listed (here
// one named like a patient, as some exporters do) does not stop the run:
// the rest is de-identified, the folder is counted and never named, and
// the exit status says something was skipped.
func TestAnonymizeSkipsUnreadableFolder(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	locked := filepath.Join(in, "Quillfeather00000^Horatio")
	os.MkdirAll(locked, 0o755)
	os.MkdirAll(filepath.Join(in, "ok"), 0o755)
	b, _ := testdicom.Spec{Seed: 11}.Bytes()
	os.WriteFile(filepath.Join(locked, "a.dcm"), b, 0o644)
	b, _ = testdicom.Spec{Seed: 12}.Bytes()
	os.WriteFile(filepath.Join(in, "ok", "b.dcm"), b, 0o644)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte("anonymize:\n  secret_file: "+filepath.Join(dir, "secret.key")+"\n"), 0o600)

	// chmod 000 stops no root; fail the listing as EACCES would.
	old := readDir
	readDir = func(p string) ([]os.DirEntry, error) {
		if p == locked {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
		}
		return old(p)
	}
	t.Cleanup(func() { readDir = old })

	out := filepath.Join(dir, "out")
	stdout, stderr, err := runFracd(t, "-c", cfg, "anonymize", in, filepath.Join(dir, "absent-Marchbanks00001"), "-o", out)
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v); want 1 for skipped folders", exitCode(err), err)
	}
	if names, _ := filepath.Glob(filepath.Join(out, "*.dcm")); len(names) != 1 {
		t.Fatalf("%d outputs; want the readable folder's one file", len(names))
	}
	all := stdout + stderr + err.Error()
	for _, name := range []string{"Quillfeather", "Horatio", "Marchbanks"} {
		if strings.Contains(all, name) {
			t.Errorf("output names %q:\n%s", name, all)
		}
	}
	if !strings.Contains(stderr, "1 de-identified, 0 rejected, 2 folder(s) or file(s) could not be listed") {
		t.Errorf("summary %q; want the skipped count", stderr)
	}
}
