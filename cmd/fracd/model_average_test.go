package main

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/classifier"
)

func TestModelAverage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, arch string, seed int64) string {
		m, err := classifier.New(arch, seed)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := m.Save(p, m.Info()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a.safetensors", "basic[1,1,1,1]", 1), write("b.safetensors", "basic[1,1,1,1]", 2)
	out := filepath.Join(dir, "soup.safetensors")
	stdout, _, err := runFracd(t, "--db", filepath.Join(dir, "none.db"), "model", "average", a, a, "-o", out, "--id", "soup")
	if err != nil || !strings.Contains(stdout, "average of 2") {
		t.Fatalf("model average: %v\n%s", err, stdout)
	}
	ma, _ := classifier.Load(a)
	ms, err := classifier.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if ms.Info().ID != "soup" {
		t.Errorf("id %q", ms.Info().ID)
	}
	x := make([]float32, 3*64*64)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	la, _ := ma.Logits(context.Background(), x, 1, 64)
	ls, _ := ms.Logits(context.Background(), x, 1, 64)
	if math.Abs(float64(la[0]-ls[0])) > 1e-5 {
		t.Errorf("the average of a model with itself gives logit %v, the model %v", ls[0], la[0])
	}
	for _, bad := range [][]string{
		{"model", "average", a, "-o", out}, // one model
		{"model", "average", a, b},         // no -o
		{"model", "average", a, write("c.safetensors", "bottleneck[1,1,1,1]", 1), "-o", out}, // two architectures
	} {
		if _, _, err := runFracd(t, append([]string{"--db", filepath.Join(dir, "none.db")}, bad...)...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
