package classifier

import (
	"fmt"
	"strings"

	"context"
	G "gorgonia.org/gorgonia"
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// TestOpGradients checks, op by op, the gradients gorgonia derives through
// the custom ops against central differences of the loss. Each case is a
// small graph ending in average pool, linear and focal loss (so those three
// are checked in every case); every entry of every input is perturbed.
func TestOpGradients(t *testing.T) {
	type mk func(b *builder, in []*G.Node) (*G.Node, error)
	conv := func(k, s, p int, first bool) mk {
		return func(b *builder, in []*G.Node) (*G.Node, error) {
			sh := in[0].Shape()
			g := kernels.NewGeom(sh[1], sh[2], sh[3], in[1].Shape()[0], k, s, p)
			return b.conv(in[0], in[1], g, convOpts{noInputGrad: first})
		}
	}
	for _, tc := range []struct {
		name   string
		shapes [][]int
		build  mk
	}{
		{"conv 3x3 s1", [][]int{{2, 3, 5, 5}, {4, 3, 3, 3}}, conv(3, 1, 1, false)},
		{"conv 3x3 s1 winograd", [][]int{{2, 3, 12, 11}, {4, 3, 3, 3}}, conv(3, 1, 1, false)},
		{"conv 3x3 s2", [][]int{{2, 2, 7, 6}, {3, 2, 3, 3}}, conv(3, 2, 1, false)},
		{"conv 1x1 s2", [][]int{{2, 4, 5, 5}, {3, 4, 1, 1}}, conv(1, 2, 0, false)},
		{"conv 1x1 s1", [][]int{{3, 4, 3, 3}, {5, 4, 1, 1}}, conv(1, 1, 0, false)},
		{"bn", [][]int{{3, 4, 3, 2}, {4}, {4}}, func(b *builder, in []*G.Node) (*G.Node, error) {
			return b.batchNorm(in[0], in[1], in[2], &bnSpec{c: 4}, false)
		}},
		{"bn+relu", [][]int{{3, 4, 3, 2}, {4}, {4}}, func(b *builder, in []*G.Node) (*G.Node, error) {
			return b.batchNorm(in[0], in[1], in[2], &bnSpec{c: 4}, true)
		}},
		{"relu", [][]int{{2, 3, 4, 4}}, func(b *builder, in []*G.Node) (*G.Node, error) {
			return b.relu(in[0], nil)
		}},
		{"add+relu", [][]int{{2, 3, 4, 4}, {2, 3, 4, 4}}, func(b *builder, in []*G.Node) (*G.Node, error) {
			return b.relu(in[0], in[1])
		}},
		{"maxpool 3x3 s2", [][]int{{2, 3, 7, 7}}, func(b *builder, in []*G.Node) (*G.Node, error) {
			return b.maxPool(in[0], 3, 2, 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(3))
			b := newBuilder()
			b.noRunningUpdate = true
			var params []*param
			var nodes []*G.Node
			for i, s := range tc.shapes {
				p := &param{name: fmt.Sprintf("in%d", i), shape: s, data: randSlice(r, numel(s))}
				if strings.HasSuffix(tc.name, "relu") && !strings.HasPrefix(tc.name, "bn") || strings.HasPrefix(tc.name, "maxpool") {
					// Central differences are invalid across ReLU's kink
					// and max-pool ties: use distinct values on a 0.1 grid
					// (0 -> 0.03; the second summand shifted by 0.05), so
					// no input, sum or tie is within 2*eps of a kink.
					for j, k := range r.Perm(len(p.data)) {
						v := float32(k-len(p.data)/2) * 0.1
						if v == 0 {
							v = 0.03
						}
						if i == 1 {
							v += 0.05
						}
						p.data[j] = v
					}
				}
				params = append(params, p)
				nodes = append(nodes, b.paramNode(p))
			}
			h, err := tc.build(b, nodes)
			if err != nil {
				t.Fatal(err)
			}
			n := h.Shape()[0]
			pooled, err := b.globalAvgPool(h)
			if err != nil {
				t.Fatal(err)
			}
			fcW := &param{name: "fcw", shape: []int{1, h.Shape()[1]}, data: randSlice(r, h.Shape()[1])}
			fcB := &param{name: "fcb", shape: []int{1}, data: []float32{0.1}}
			params = append(params, fcW, fcB)
			logits, err := b.linear(pooled, b.paramNode(fcW), b.paramNode(fcB))
			if err != nil {
				t.Fatal(err)
			}
			lab := make([]float32, n)
			for i := range lab {
				lab[i] = float32(i % 2)
			}
			labels := b.constNode("labels", lab, n)
			cost, err := b.focalLoss(logits, labels, FocalLoss{Gamma: 2, Alpha: 0.25})
			if err != nil {
				t.Fatal(err)
			}
			grads, vm := gradMachine(t, b, cost, params)
			run := func() float64 {
				vm.Reset()
				if err := vm.RunAll(); err != nil {
					t.Fatal(err)
				}
				f, _ := floats(cost.Value())
				return float64(f[0])
			}
			run()
			checkGradients(t, params, grads, run)
		})
	}
}

func trainSteps(t *testing.T, tr *Trainer, steps int, seed int64) {
	t.Helper()
	for s := 0; s < steps; s++ {
		x := randImages(seed+int64(s), 4, 32)
		if _, err := tr.Step(context.Background(), x, []float32{0, 1, 1, 0}); err != nil {
			t.Fatal(err)
		}
	}
}

func cfgTiny() TrainConfig {
	return TrainConfig{LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4, Loss: FocalLoss{Gamma: 2, Alpha: -1}, InputSize: 32, Seed: 1}
}

func sameParams(a, b *Model) bool {
	for i, p := range a.net.params {
		q := b.net.params[i]
		if p.tracked != q.tracked {
			return false
		}
		for j := range p.data {
			if p.data[j] != q.data[j] {
				return false
			}
		}
	}
	return true
}

func TestTrainingDeterministicAndResumable(t *testing.T) {
	a, _ := New("basic[1,1,1,1]", 21)
	b, _ := New("basic[1,1,1,1]", 21)
	ta, _ := NewTrainer(a, cfgTiny())
	tb, _ := NewTrainer(b, cfgTiny())
	trainSteps(t, ta, 2, 100)
	trainSteps(t, tb, 2, 100)
	if !sameParams(a, b) {
		t.Fatal("same seed and data gave different weights")
	}
	ck := filepath.Join(t.TempDir(), "ck.safetensors")
	if err := ta.SaveCheckpoint(ck, ModelInfo{InputSize: 32, TrainingRun: "r1"}); err != nil {
		t.Fatal(err)
	}
	trainSteps(t, ta, 2, 200)

	c, _ := New("basic[1,1,1,1]", 99) // different init: everything must come from the checkpoint
	tc, err := ResumeTrainer(ck, c, cfgTiny())
	if err != nil {
		t.Fatal(err)
	}
	if tc.Steps() != 2 {
		t.Errorf("resumed at step %d, want 2", tc.Steps())
	}
	trainSteps(t, tc, 2, 200)
	if !sameParams(a, c) {
		t.Fatal("resumed training diverged from uninterrupted training")
	}
	// the loss goes down on a fixed batch
	x := randImages(7, 4, 32)
	first, _ := ta.Step(context.Background(), x, []float32{0, 1, 1, 0})
	var last StepResult
	for i := 0; i < 5; i++ {
		last, _ = ta.Step(context.Background(), x, []float32{0, 1, 1, 0})
	}
	if !(last.Loss < first.Loss) {
		t.Errorf("loss did not decrease: %g -> %g", first.Loss, last.Loss)
	}
}

type sliceDataset struct {
	x      []float32
	labels []float32
	per    int
}

func (d sliceDataset) Len() int { return len(d.labels) }
func (d sliceDataset) Example(i int, dst []float32) (float32, error) {
	copy(dst, d.x[i*d.per:(i+1)*d.per])
	return d.labels[i], nil
}

func TestEpoch(t *testing.T) {
	m, _ := New("basic[1,1,1,1]", 4)
	tr, _ := NewTrainer(m, cfgTiny())
	ds := sliceDataset{x: randImages(3, 6, 32), labels: []float32{0, 1, 0, 1, 1, 0}, per: 3 * 32 * 32}
	l1, err := tr.Epoch(context.Background(), ds, 4)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Steps() != 2 || !(l1 > 0) {
		t.Errorf("steps %d loss %g", tr.Steps(), l1)
	}
}
