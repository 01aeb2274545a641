package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/classifier"
)

// TestModelExport: the metadata flags land in the written file and a bad
// value is refused before anything is written.
func TestModelExport(t *testing.T) {
	dir := t.TempDir()
	m, err := classifier.New("basic[1,1,1,1]", 1)
	if err != nil {
		t.Fatal(err)
	}
	info := m.Info()
	info.TTA, info.Threshold = classifier.TTAFlip, 0.4
	src := filepath.Join(dir, "src.safetensors")
	if err := m.Save(src, info); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "none.db")
	cases := []struct {
		name      string
		flags     []string
		tta       string
		threshold float64
		size      int
	}{
		{"metadata kept", nil, classifier.TTAFlip, 0.4, info.InputSize},
		{"tta none", []string{"--tta", "none", "--threshold", "0.3"}, "", 0.3, info.InputSize},
		{"tta hflip, f16, 320 px", []string{"--tta", "hflip", "--f16", "--input-size", "320"}, classifier.TTAFlip, 0.4, 320},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
			args := append([]string{"--db", db, "model", "export", src, "-o", out}, c.flags...)
			if stdout, _, err := runFracd(t, args...); err != nil || !strings.Contains(stdout, "wrote") {
				t.Fatalf("case %d: %v\n%s", i, err, stdout)
			}
			got, err := classifier.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			gi := got.Info()
			if gi.TTA != c.tta || gi.Threshold != c.threshold || gi.InputSize != c.size {
				t.Errorf("wrote TTA %q threshold %v size %d, want %q %v %d", gi.TTA, gi.Threshold, gi.InputSize, c.tta, c.threshold, c.size)
			}
		})
	}
	bad := filepath.Join(dir, "bad.safetensors")
	if _, _, err := runFracd(t, "--db", db, "model", "export", src, "-o", bad, "--tta", "vflip"); err == nil || !strings.Contains(err.Error(), "--tta") {
		t.Errorf("--tta vflip: %v, want an error naming the flag", err)
	}
	if _, err := classifier.Load(bad); err == nil {
		t.Error("a refused export wrote its file")
	}
}
