package classifier

import (
	"context"
	"math"
	"testing"
)

// TestCAMLossGradients checks the CAM loss (plus the focal loss it is added
// to) and its gradients with respect to the features, the fc weights and
// the fc bias against the definition and central finite differences.
func TestCAMLossGradients(t *testing.T) {
	r := rnd(11)
	const n, c, h, w = 3, 5, 2, 3
	const weight = 0.7
	b := newBuilder()
	feat := &param{name: "feat", shape: []int{n, c, h, w}, data: randSlice(r, n*c*h*w)}
	fcW := &param{name: "fcw", shape: []int{1, c}, data: randSlice(r, c)}
	fcB := &param{name: "fcb", shape: []int{1}, data: []float32{0.1}}
	params := []*param{feat, fcW, fcB}
	// Image 0: a fracture in cells 1 and 4, the rest unsupervised; image 1:
	// no fracture (every cell negative); image 2: nothing supervised.
	U, N, P := CAMUnsupervised, CAMNegative, CAMPositive
	tg := []float32{U, P, U, U, P, U, N, N, N, N, N, N, U, U, U, U, U, U}
	targets := b.constNode("targets", tg, n, h*w)
	cam, err := b.camLoss(b.paramNode(feat), b.paramNode(fcW), b.paramNode(fcB), targets, weight)
	if err != nil {
		t.Fatal(err)
	}
	pooled, err := b.globalAvgPool(b.paramNode(feat))
	if err != nil {
		t.Fatal(err)
	}
	logits, err := b.linear(pooled, b.paramNode(fcW), b.paramNode(fcB))
	if err != nil {
		t.Fatal(err)
	}
	focal, err := b.focalLoss(logits, b.constNode("labels", []float32{1, 0, 1}, n), FocalLoss{Gamma: 2, Alpha: -1})
	if err != nil {
		t.Fatal(err)
	}
	cost, err := b.addScalars(focal, cam)
	if err != nil {
		t.Fatal(err)
	}
	grads, vm := gradMachine(t, b, cost, params)
	run := func() (total, camPart float64) {
		vm.Reset()
		if err := vm.RunAll(); err != nil {
			t.Fatal(err)
		}
		f, _ := floats(cost.Value())
		g, _ := floats(cam.Value())
		return float64(f[0]), float64(g[0])
	}
	_, got := run()

	// The definition: per image, mean BCE over supervised cells; batch mean.
	var want float64
	for i := 0; i < n; i++ {
		var s float64
		m := 0
		for q := 0; q < h*w; q++ {
			y := float64(tg[i*h*w+q])
			if y < 0 {
				continue
			}
			z := float64(fcB.data[0])
			for k := 0; k < c; k++ {
				z += float64(fcW.data[k]) * float64(feat.data[(i*c+k)*h*w+q])
			}
			p := 1 / (1 + math.Exp(-z))
			s += -(y*math.Log(p) + (1-y)*math.Log(1-p))
			m++
		}
		if m > 0 {
			want += s / float64(m)
		}
	}
	want *= weight / n
	if math.Abs(got-want) > 1e-5 {
		t.Fatalf("CAM loss %.7f, want %.7f", got, want)
	}

	checkGradients(t, params, grads, func() float64 { l, _ := run(); return l })
}

// camData is a dataset with CAM targets: image i is random, its target
// marks cell i%cells as the fracture.
type camData struct {
	size, n int
	calls   int
}

func (d *camData) Len() int { return d.n }
func (d *camData) Example(i int, dst []float32) (float32, error) {
	r := rnd(int64(100 + i))
	for j := range dst[:3*d.size*d.size] {
		dst[j] = float32(r.NormFloat64())
	}
	return float32(i % 2), nil
}
func (d *camData) CAMTarget(i, fh, fw int, dst []float32) error {
	d.calls++
	for q := range dst {
		dst[q] = CAMUnsupervised
	}
	if i%2 == 1 {
		dst[i%(fh*fw)] = CAMPositive
	} else {
		for q := range dst {
			dst[q] = CAMNegative
		}
	}
	return nil
}

// TestTrainerCAM: with CAMWeight the trainer asks the dataset for targets
// and its loss includes the CAM term; without it, the same data gives the
// plain focal loss and no target is asked for.
func TestTrainerCAM(t *testing.T) {
	ctx := context.Background()
	const size = 64
	losses := map[float64]float64{}
	for _, weight := range []float64{0, 1} {
		m, err := New("basic[1,1,1,1]", 5)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTrainer(m, TrainConfig{LR: 1e-3, Momentum: 0.9, Loss: FocalLoss{Gamma: 2, Alpha: -1}, InputSize: size, Seed: 1, CAMWeight: weight})
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.CAMCells(); got != 2 {
			t.Fatalf("CAMCells at %d px = %d, want 2", size, got)
		}
		ds := &camData{size: size, n: 8}
		loss, err := tr.Epoch(ctx, ds, 4)
		if err != nil {
			t.Fatal(err)
		}
		if (ds.calls > 0) != (weight > 0) {
			t.Errorf("CAM weight %v: %d target calls", weight, ds.calls)
		}
		losses[weight] = loss
	}
	if !(losses[1] > losses[0]) {
		t.Errorf("epoch loss with the CAM term %.5f, without %.5f: the term added nothing", losses[1], losses[0])
	}
}

// TestAverage: the average of a model with itself predicts as it does,
// and the average of two models has the mean of their weights.
func TestAverage(t *testing.T) {
	a, _ := New("basic[1,1,1,1]", 1)
	b, _ := New("basic[1,1,1,1]", 2)
	same, err := Average(a, a)
	if err != nil {
		t.Fatal(err)
	}
	const s = 64
	x := randImages(3, 2, s)
	pa, _ := a.Logits(context.Background(), x, 2, s)
	ps, _ := same.Logits(context.Background(), x, 2, s)
	for i := range pa {
		if math.Abs(float64(pa[i]-ps[i])) > 1e-5 {
			t.Fatalf("average of a model with itself: logit %v, want %v", ps[i], pa[i])
		}
	}
	ab, err := Average(a, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ab.net.params {
		if p.kind == kindBNTracked {
			continue
		}
		for j := range p.data {
			if want := (a.net.params[i].data[j] + b.net.params[i].data[j]) / 2; math.Abs(float64(p.data[j]-want)) > 1e-6 {
				t.Fatalf("%s[%d] = %v, want %v", p.name, j, p.data[j], want)
			}
		}
	}
	c, _ := New("bottleneck[1,1,1,1]", 1)
	if _, err := Average(a, c); err == nil {
		t.Error("models of different architectures averaged")
	}
}

func TestFocalLossGradient(t *testing.T) {
	for _, f := range []FocalLoss{{Gamma: 2, Alpha: -1}, {Gamma: 2, Alpha: 0.25}, {Gamma: 0, Alpha: -1}, {Gamma: 1.5, Alpha: 0.7}} {
		for _, z := range []float64{-8, -1.3, -0.01, 0, 0.4, 3, 12} {
			for _, y := range []float64{0, 1, 0.3} {
				_, an := f.terms(z, y)
				const h = 1e-6
				lp, _ := f.terms(z+h, y)
				lm, _ := f.terms(z-h, y)
				if fd := (lp - lm) / (2 * h); math.Abs(fd-an) > 1e-6+1e-5*math.Abs(an) {
					t.Errorf("%+v z=%g y=%g: grad %g, fd %g", f, z, y, an, fd)
				}
			}
		}
	}
	// gamma 0, no alpha: plain BCE-with-logits
	l, _ := FocalLoss{Gamma: 0, Alpha: -1}.terms(0.5, 1)
	if want := math.Log1p(math.Exp(-0.5)); math.Abs(l-want) > 1e-12 {
		t.Errorf("bce %g, want %g", l, want)
	}
}
