package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/internal/testdicom"
)

// TestBenchE2E: bench --e2e runs the daemon on a folder, every file reaches
// its outcome in each round, and the report has the rates, peak RSS and
// each stage's percentiles. A file that is no DICOM is counted as rejected,
// not lost.
func TestBenchE2E(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		b, err := testdicom.Spec{Seed: 500 + i}.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in, "f"+string(rune('a'+i))+".dcm"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(in, "notes.txt"), []byte("not a DICOM file"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := classifier.New("basic[1,1,1,1]", 1)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "tiny.safetensors")
	if err := m.Save(model, m.Info()); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runFracd(t, "--db", filepath.Join(dir, "unused.db"), "bench", "--e2e", in, "--rounds", "2", "--warmup", "1",
		"--model", model, "--settle", "50ms", "--e2e-workers", "2", "--work", dir)
	if err != nil {
		t.Fatalf("bench --e2e: %v\n%s\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"4 files, 2 workers, settle 50ms", "warm-up round 1:", "(not counted)", "\nround 1:", "round 2:", "outcomes done 3, rejected (not_dicom) 1",
		"median", "files/s over 2 rounds"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, stage := range []string{"read", "decode", "deidentify", "archive", "classify", "record", "total"} {
		if !regexp.MustCompile(`(?m)^` + stage + ` +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d$`).MatchString(stdout) {
			t.Errorf("no p50/p95/mean line for stage %s:\n%s", stage, stdout)
		}
	}
	if !regexp.MustCompile(`peak RSS [1-9]\d* MiB`).MatchString(stdout) {
		t.Errorf("no peak RSS:\n%s", stdout)
	}
	// The rounds clean up after themselves; the input folder is untouched.
	if left, _ := filepath.Glob(filepath.Join(dir, "fracd-bench-e2e-*")); len(left) != 0 {
		t.Errorf("round state left behind: %v", left)
	}
	if ents, _ := os.ReadDir(in); len(ents) != 4 {
		t.Errorf("input folder has %d files, want 4", len(ents))
	}
	if _, _, err := runFracd(t, "bench", "--e2e", filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing folder was accepted")
	}
}
