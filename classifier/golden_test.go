package classifier

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

const goldenDir = "../../shared/golden/resnet"

type goldenCase struct {
	name    string
	model   *Model
	io      *stFile
	Arch    string `json:"arch"`
	Batch   int    `json:"batch"`
	InputHW int    `json:"input_hw"`
	Params  int    `json:"params"`
	Loss    struct {
		Gamma float64  `json:"gamma"`
		Alpha *float64 `json:"alpha"`
	} `json:"loss"`
	Optimizer struct {
		LR          float64 `json:"lr"`
		Momentum    float64 `json:"momentum"`
		WeightDecay float64 `json:"weight_decay"`
		Steps       int     `json:"steps"`
	} `json:"optimizer"`
	LossesPerStep []float64 `json:"losses_per_step"`
	GradStep0     map[string]struct {
		L2     float64   `json:"l2"`
		Sum    float64   `json:"sum"`
		First8 []float64 `json:"first8"`
	} `json:"grad_step0"`
	StateAfter map[string]struct {
		L2     float64   `json:"l2"`
		Sum    float64   `json:"sum"`
		First8 []float64 `json:"first8"`
	} `json:"state_after"`
}

func loadGolden(t *testing.T) []*goldenCase {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(goldenDir, "*", "case.json"))
	if len(dirs) == 0 {
		t.Skipf("golden data %s absent (needs ../shared from the fracd workspace)", goldenDir)
	}
	var cases []*goldenCase
	for _, cj := range dirs {
		dir := filepath.Dir(cj)
		raw, err := os.ReadFile(cj)
		if err != nil {
			t.Fatal(err)
		}
		c := &goldenCase{name: filepath.Base(dir)}
		if err := json.Unmarshal(raw, c); err != nil {
			t.Fatalf("%s: %v", cj, err)
		}
		if c.model, err = Load(filepath.Join(dir, "weights.safetensors")); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		ioRaw, err := os.ReadFile(filepath.Join(dir, "io.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		if c.io, err = readSafetensors(ioRaw); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	return cases
}

func (c *goldenCase) tensor(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := c.io.floats(name)
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
	return v
}

// closeRel reports |got-want| <= rel*|want| or <= abs.
func closeRel(got, want, rel, abs float64) bool {
	d := math.Abs(got - want)
	return d <= abs || d <= rel*math.Abs(want)
}

func TestGoldenEvalLogits(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			if got := c.model.ParamCount(); got != c.Params {
				t.Errorf("params %d, want %d", got, c.Params)
			}
			for _, tc := range []struct {
				in, out string
				size    int
			}{{"input", "eval_logits", c.InputHW}, {"input224", "eval_logits224", 224}} {
				x := c.tensor(t, tc.in)
				want := c.tensor(t, tc.out)
				got, err := c.model.Logits(context.Background(), x, len(want), tc.size)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if !closeRel(float64(got[i]), float64(want[i]), 1e-4, 1e-5) {
						t.Errorf("%s[%d] = %.7g, want %.7g", tc.out, i, got[i], want[i])
					}
				}
				t.Logf("%s: got %v want %v", tc.out, got, want)
			}
		})
	}
}
