package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
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
