package classifier

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fracd/fracd/classifier/internal/safetensors"
)

const goldenDir = "../../shared/golden/resnet"

type goldenCase struct {
	name    string
	model   *Model
	io      *safetensors.File
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
		if c.io, err = safetensors.Parse(ioRaw); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	return cases
}

func (c *goldenCase) tensor(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := c.io.Floats(name)
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

func summary(v []float32) (l2, sum float64) {
	for _, x := range v {
		l2 += float64(x) * float64(x)
		sum += float64(x)
	}
	return math.Sqrt(l2), sum
}

func TestGoldenTraining(t *testing.T) {
	for _, c := range loadGolden(t) {
		t.Run(c.name, func(t *testing.T) {
			fl := FocalLoss{Gamma: c.Loss.Gamma, Alpha: -1}
			if c.Loss.Alpha != nil {
				fl.Alpha = *c.Loss.Alpha
			}
			tr, err := NewTrainer(c.model, TrainConfig{LR: c.Optimizer.LR, Momentum: c.Optimizer.Momentum,
				WeightDecay: c.Optimizer.WeightDecay, Loss: fl, InputSize: c.InputHW})
			if err != nil {
				t.Fatal(err)
			}
			x, labels := c.tensor(t, "input"), c.tensor(t, "label")
			for step := 0; step < c.Optimizer.Steps; step++ {
				// Run forward/backward first so gradients can be checked
				// before the update mutates the parameters' values.
				gr, err := tr.graphFor(len(labels))
				if err != nil {
					t.Fatal(err)
				}
				r, err := tr.Step(context.Background(), x, labels)
				if err != nil {
					t.Fatal(err)
				}
				if want := c.LossesPerStep[step]; !closeRel(r.Loss, want, 1e-4, 0) {
					t.Errorf("step %d loss %.8g, want %.8g", step, r.Loss, want)
				} else {
					t.Logf("step %d loss %.8g, want %.8g (rel %.2g)", step, r.Loss, want, math.Abs(r.Loss-want)/want)
				}
				if step != 0 {
					continue
				}
				want := c.tensor(t, "train_logits_step0")
				for i := range want {
					if !closeRel(float64(r.Logits[i]), float64(want[i]), 1e-4, 1e-5) {
						t.Errorf("train logit %d = %.7g, want %.7g", i, r.Logits[i], want[i])
					}
				}
				checked := 0
				worstL2 := 0.0
				for i, p := range gr.params {
					g, err := gr.gradValues(i)
					if err != nil {
						t.Fatal(err)
					}
					ref, ok := c.GradStep0[p.name]
					if !ok {
						t.Errorf("golden has no gradient for %s", p.name)
						continue
					}
					checked++
					l2, sum := summary(g)
					worstL2 = math.Max(worstL2, math.Abs(l2-ref.L2)/ref.L2)
					if !closeRel(l2, ref.L2, 1e-3, 1e-7) || !closeRel(sum, ref.Sum, 1e-3, 1e-3*ref.L2) {
						t.Errorf("grad %s: l2 %.6g sum %.6g, want %.6g %.6g", p.name, l2, sum, ref.L2, ref.Sum)
					}
					for j, w := range ref.First8 {
						if !closeRel(float64(g[j]), w, 1e-3, 1e-3*ref.L2/math.Sqrt(float64(len(g)))) {
							t.Errorf("grad %s[%d] = %.6g, want %.6g", p.name, j, g[j], w)
						}
					}
					if full, err := c.io.Floats("grad_" + p.name); err == nil {
						for j := range full {
							if !closeRel(float64(g[j]), float64(full[j]), 1e-3, 1e-4*ref.L2) {
								t.Errorf("grad %s[%d] = %.6g, want %.6g", p.name, j, g[j], full[j])
								break
							}
						}
					}
				}
				t.Logf("step 0: %d gradients checked, worst l2 rel error %.2g", checked, worstL2)
				if checked != len(c.GradStep0) {
					t.Errorf("checked %d gradients, golden has %d", checked, len(c.GradStep0))
				}
			}
			t.Logf("state_after: %d tensors", len(c.StateAfter))
			for name, ref := range c.StateAfter {
				p := c.model.net.byName[name]
				if p == nil {
					t.Errorf("state_after names unknown tensor %s", name)
					continue
				}
				l2, sum := summary(p.data)
				if !closeRel(l2, ref.L2, 1e-4, 1e-7) || !closeRel(sum, ref.Sum, 1e-3, 1e-4*ref.L2) {
					t.Errorf("after: %s l2 %.7g sum %.7g, want %.7g %.7g", name, l2, sum, ref.L2, ref.Sum)
				}
			}
			want := c.tensor(t, "eval_logits_after")
			got, err := c.model.Logits(context.Background(), x, len(want), c.InputHW)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !closeRel(float64(got[i]), float64(want[i]), 1e-3, 1e-5) {
					t.Errorf("eval_logits_after[%d] = %.7g, want %.7g", i, got[i], want[i])
				}
			}
			t.Logf("eval_logits_after got %v want %v", got, want)
		})
	}
}
