package classifier

import (
	"fmt"
	"strings"

	"context"
	G "gorgonia.org/gorgonia"
	"math"
	"math/rand"
	"path/filepath"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// naiveConv is the textbook 7-loop convolution used as the reference.
func naiveConv(g *convGeom, n int, x, w []float32) []float32 {
	y := make([]float32, n*g.cout*g.ohw)
	for b := 0; b < n; b++ {
		for co := 0; co < g.cout; co++ {
			for oy := 0; oy < g.oh; oy++ {
				for ox := 0; ox < g.ow; ox++ {
					var s float64
					for ci := 0; ci < g.c; ci++ {
						for ki := 0; ki < g.k; ki++ {
							for kj := 0; kj < g.k; kj++ {
								iy, ix := oy*g.s-g.p+ki, ox*g.s-g.p+kj
								if iy < 0 || iy >= g.h || ix < 0 || ix >= g.w {
									continue
								}
								s += float64(x[((b*g.c+ci)*g.h+iy)*g.w+ix]) * float64(w[((co*g.c+ci)*g.k+ki)*g.k+kj])
							}
						}
					}
					y[((b*g.cout+co)*g.oh+oy)*g.ow+ox] = float32(s)
				}
			}
		}
	}
	return y
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestConvKernels checks the forward pass against the naive convolution and
// both backward passes through the adjoint identities
// <conv(x,w), dy> = <x, dX(dy,w)> = <w, dW(x,dy)>.
func TestConvKernels(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		n, c, h, w, cout, k, s int
		p                      int
	}{
		{"3x3 s1", 2, 5, 9, 7, 4, 3, 1, 1},
		{"3x3 s1 even", 3, 6, 8, 10, 5, 3, 1, 1},
		{"3x3 s2 odd", 3, 4, 11, 11, 6, 3, 2, 1},
		{"7x7 s2 p3 (stem)", 2, 3, 20, 18, 8, 7, 2, 3},
		{"1x1 s1 pointwise", 3, 8, 5, 5, 6, 1, 1, 0},
		{"1x1 s2 downsample", 2, 8, 7, 7, 5, 1, 2, 0},
		{"3x3 tiny plane", 5, 16, 2, 2, 8, 3, 1, 1},
		{"single image, row split", 1, 4, 20, 20, 6, 3, 1, 1},
		{"single image, stem row split", 1, 3, 30, 30, 5, 7, 2, 3},
		{"single image, channel split", 1, 8, 5, 5, 6, 3, 1, 1},
		{"single image, pointwise rows", 1, 8, 16, 16, 4, 1, 1, 0},
		{"single image, pointwise channels", 1, 8, 4, 4, 7, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			g := newConvGeom(tc.c, tc.h, tc.w, tc.cout, tc.k, tc.s, tc.p)
			x := randSlice(r, tc.n*tc.c*tc.h*tc.w)
			w := randSlice(r, tc.cout*g.kdim)
			ws := &workspace{}
			y := make([]float32, tc.n*tc.cout*g.ohw)
			convForward(ws, &g, tc.n, x, w, y, nil, nil, false)
			ref := naiveConv(&g, tc.n, x, w)
			for i := range ref {
				if math.Abs(float64(y[i]-ref[i])) > 1e-4*(1+math.Abs(float64(ref[i]))) {
					t.Fatalf("y[%d] = %g, want %g", i, y[i], ref[i])
				}
			}
			// fused epilogue: bias, residual, relu
			bias, res := randSlice(r, tc.cout), randSlice(r, len(y))
			yf := make([]float32, len(y))
			convForward(ws, &g, tc.n, x, w, yf, bias, res, true)
			for i := range ref {
				want := math.Max(0, float64(ref[i])+float64(bias[(i/g.ohw)%tc.cout])+float64(res[i]))
				if math.Abs(float64(yf[i])-want) > 1e-4*(1+want) {
					t.Fatalf("fused y[%d] = %g, want %g", i, yf[i], want)
				}
			}
			if tc.k == 3 && tc.s == 1 && tc.p == 1 {
				for _, wv := range []struct {
					name string
					u    []float32
				}{
					{"F(2x2,3x3)", winogradWeights(w, tc.cout, tc.c)},
					{"F(4x4,3x3)", winograd4Weights(w, tc.cout, tc.c)},
				} {
					yw := make([]float32, len(y))
					// one image per group, to cover the grouping
					saved := winogradBudget
					winogradBudget = 1
					winogradForward(ws, &g, tc.n, x, wv.u, yw, bias, res, true)
					winogradBudget = saved
					for i := range ref {
						want := math.Max(0, float64(ref[i])+float64(bias[(i/g.ohw)%tc.cout])+float64(res[i]))
						if math.Abs(float64(yw[i])-want) > 1e-4*(1+want) {
							t.Fatalf("winograd %s y[%d] = %g, want %g", wv.name, i, yw[i], want)
						}
					}
				}
			}
			dy := randSlice(r, len(y))
			dx := make([]float32, len(x))
			dw := make([]float32, len(w))
			convBackwardData(ws, &g, tc.n, dy, w, dx)
			convBackwardFilter(ws, &g, tc.n, x, dy, dw)
			lhs := dot(ref, dy)
			if d := dot(x, dx); math.Abs(d-lhs) > 1e-4*math.Abs(lhs)+1e-3 {
				t.Errorf("<x,dX> = %g, <y,dy> = %g", d, lhs)
			}
			if d := dot(w, dw); math.Abs(d-lhs) > 1e-4*math.Abs(lhs)+1e-3 {
				t.Errorf("<w,dW> = %g, <y,dy> = %g", d, lhs)
			}
		})
	}
}

func TestMaxPoolNonNeg(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	for _, sz := range [][2]int{{112, 112}, {7, 9}, {8, 7}, {2, 2}, {3, 1}} {
		g := newConvGeom(1, sz[0], sz[1], 1, 3, 2, 1)
		x := randSlice(r, sz[0]*sz[1])
		for i := range x {
			x[i] = relu32(x[i])
		}
		want := make([]float32, g.ohw)
		maxPoolPlane(&g, x, want, make([]int32, g.ohw))
		got := make([]float32, g.ohw)
		maxPoolNonNeg(&g, x, got, make([]uint32, sz[0]*g.ow))
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%v: out[%d] = %g, want %g", sz, i, got[i], want[i])
			}
		}
	}
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
			g := newConvGeom(sh[1], sh[2], sh[3], in[1].Shape()[0], k, s, p)
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
			var wrt G.Nodes
			for _, p := range params {
				wrt = append(wrt, b.paramNode(p))
			}
			grads, err := G.Grad(cost, wrt...)
			if err != nil {
				t.Fatal(err)
			}
			vm := G.NewTapeMachine(b.g)
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
