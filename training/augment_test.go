package training

import (
	"math"
	"math/rand"
	"testing"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/preprocess"
)

// planeCache is a one-image cache with a left-right asymmetric gradient.
func planeCache() *Cache {
	const s = preprocess.Size
	c := &Cache{Planes: make([]byte, PlaneBytes), Labels: []float32{1}, Rows: []int{2}}
	rng := rand.New(rand.NewSource(3))
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			c.Planes[y*s+x] = byte(x + rng.Intn(8))
		}
	}
	return c
}

func example(t *testing.T, ds classifier.Dataset) []float32 {
	t.Helper()
	out := make([]float32, preprocess.TensorLen)
	if _, err := ds.Example(0, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAugment(t *testing.T) {
	const s = preprocess.Size
	base := &Dataset{Cache: planeCache(), Mean: classifier.DefaultMean, Std: classifier.DefaultStd}
	plain := example(t, base)
	aug := func(a Augment, seed int64, epoch int) []float32 {
		return example(t, &augmentedDataset{Dataset: base, aug: a, seed: seed, epoch: epoch})
	}
	maxDiff := func(a, b []float32) float64 {
		var d float64
		for i := range a {
			d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		}
		return d
	}
	// No augmentation is exactly the plain input.
	if d := maxDiff(aug(Augment{}, 1, 1), plain); d > 1e-6 {
		t.Errorf("zero augmentation differs from the plain input by %g", d)
	}
	// Flip alone: either the plain image or its exact mirror.
	sawFlip, sawPlain := false, false
	for e := 1; e <= 12; e++ {
		got := aug(Augment{Flip: true}, 1, e)
		switch {
		case maxDiff(got, plain) < 1e-6:
			sawPlain = true
		case maxDiff(got, classifier.FlipInputs(plain, 1, s)) < 1e-6:
			sawFlip = true
		default:
			t.Fatalf("epoch %d: flip-only augmentation is neither the image nor its mirror", e)
		}
	}
	if !sawFlip || !sawPlain {
		t.Errorf("12 epochs of flip: flipped %v, unflipped %v", sawFlip, sawPlain)
	}
	// The full recipe: seeded by (seed, epoch, image), different per epoch,
	// values stay within the normalised [0,1] range.
	a1, a2, b := aug(DefaultAugment, 1, 1), aug(DefaultAugment, 1, 1), aug(DefaultAugment, 1, 2)
	if maxDiff(a1, a2) != 0 {
		t.Error("the same (seed, epoch, image) gave different augmentations")
	}
	if maxDiff(a1, b) < 0.1 || maxDiff(a1, plain) < 0.1 {
		t.Error("augmentation did not change the image between epochs")
	}
	lo, hi := (0-classifier.DefaultMean[0])/classifier.DefaultStd[0], (1-classifier.DefaultMean[0])/classifier.DefaultStd[0]
	for _, v := range a1[:s*s] {
		if v < lo-1e-5 || v > hi+1e-5 {
			t.Fatalf("augmented value %v outside the normalised range [%v,%v]", v, lo, hi)
		}
	}
	for _, bad := range []Augment{{Rotate: -1}, {Scale: 0.9}, {Brightness: math.NaN()}} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestLRSchedule(t *testing.T) {
	if lrSchedule(ScheduleConstant, 0.1, 10, 100) != nil {
		t.Error("constant schedule is not nil")
	}
	f := lrSchedule(ScheduleCosine, 0.1, 10, 110)
	for _, tc := range []struct {
		step int64
		want float64
	}{{0, 0.01}, {5, 0.055}, {10, 0.1}, {60, 0.05}, {110, 1e-4}, {500, 1e-4}} {
		if got := f(tc.step); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("step %d: lr %v, want %v", tc.step, got, tc.want)
		}
	}
	for _, tc := range []struct{ n, batch, want int }{{15, 4, 4}, {13, 4, 3}, {16, 4, 4}, {2812, 16, 176}} {
		if got := stepsPerEpoch(tc.n, tc.batch); got != int64(tc.want) {
			t.Errorf("stepsPerEpoch(%d,%d) = %d, want %d", tc.n, tc.batch, got, tc.want)
		}
	}
}

func TestEarlyStop(t *testing.T) {
	for _, tc := range []struct {
		done, best, patience int
		want                 bool
	}{{3, 1, 2, true}, {3, 2, 2, false}, {10, 4, 0, false}, {0, 0, 1, false}, {7, 1, 6, true}} {
		if got := earlyStop(tc.done, tc.best, tc.patience); got != tc.want {
			t.Errorf("earlyStop(done %d, best %d, patience %d) = %v, want %v", tc.done, tc.best, tc.patience, got, tc.want)
		}
	}
}
