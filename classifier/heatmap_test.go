package classifier

import (
	"context"
	"math"
	"testing"
)

// TestHeatMapMeanIsLogit: the class activation map is read from the same
// forward pass, so its mean must be the logit; a wrong feature buffer or a
// wrong channel order would break that.
func TestHeatMapMeanIsLogit(t *testing.T) {
	ctx := context.Background()
	for _, arch := range []string{"basic[1,1,1,1]", "bottleneck[1,1,1,1]"} {
		m, err := New(arch, 9)
		if err != nil {
			t.Fatal(err)
		}
		const s, n = 64, maxInferBatch + 2
		m.info.InputSize = s
		x := randImages(6, n, s)
		logits, err := m.Logits(ctx, x, n, s)
		if err != nil {
			t.Fatal(err)
		}
		probs, maps, err := m.HeatMaps(ctx, x, n)
		if err != nil {
			t.Fatal(err)
		}
		for i, hm := range maps {
			if hm.W != 2 || hm.H != 2 || hm.Size != s {
				t.Fatalf("%s: map %dx%d for %d px, want 2x2", arch, hm.W, hm.H, s)
			}
			if d := math.Abs(hm.Mean() - float64(logits[i])); d > 1e-4*math.Max(1, math.Abs(float64(logits[i]))) {
				t.Errorf("%s image %d: map mean %v, logit %v", arch, i, hm.Mean(), logits[i])
			}
			if math.Abs(float64(probs[i]-sigmoid(logits[i]))) > 1e-6 {
				t.Errorf("%s image %d: probability %v, want sigmoid(logit) %v", arch, i, probs[i], sigmoid(logits[i]))
			}
		}
	}
}

func TestHeatMapBoxes(t *testing.T) {
	// Two hot spots on a 7x7 map: a strong one at (5,1) and a weaker one at (1,5).
	hm := HeatMap{W: 7, H: 7, Size: 224, Values: make([]float32, 49)}
	for i := range hm.Values {
		hm.Values[i] = -1
	}
	hm.Values[1*7+5] = 4
	hm.Values[5*7+1] = 3
	// At the default cut (0.9 of the peak) the weaker spot (0.75 of it)
	// gives no box; cut at half the peak it does.
	if got := hm.Boxes(3, 0.8); len(got) != 1 || got[0].X0 < 5*32-16 || got[0].X1 > 6*32+16 {
		t.Errorf("default cut: boxes %+v, want one around cell (5,1)", got)
	}
	boxes := hm.BoxesAt(3, 0.8, 0.5)
	if len(boxes) != 2 {
		t.Fatalf("%d boxes %+v, want 2", len(boxes), boxes)
	}
	b := boxes[0]
	if !(b.X0 >= 5*32-16 && b.X1 <= 6*32+16 && b.Y0 >= 1*32-16 && b.Y1 <= 2*32+16) || math.Abs(b.Score-0.8) > 1e-9 {
		t.Errorf("best box %+v: want around cell (5,1) with score 0.8", b)
	}
	if boxes[1].Score >= b.Score || boxes[1].X1 > 3*32 || boxes[1].Y0 < 4*32 {
		t.Errorf("second box %+v: want the weaker spot at cell (1,5)", boxes[1])
	}
	if px, py := hm.Peak(); px < 5*32 || px > 6*32 || py < 32 || py > 64 {
		t.Errorf("peak (%v,%v): want inside cell (5,1)", px, py)
	}
	if got := hm.Boxes(1, 1); len(got) != 1 {
		t.Errorf("maxBoxes 1 gave %d", len(got))
	}
	cold := HeatMap{W: 2, H: 2, Size: 64, Values: []float32{-1, -2, -3, -4}}
	if got := cold.Boxes(3, 0.9); got != nil {
		t.Errorf("a map without positive cells gave boxes %+v", got)
	}
	if iou := (Box{0, 0, 2, 2, 0}).IoU(Box{1, 1, 3, 3, 0}); math.Abs(iou-1.0/7) > 1e-12 {
		t.Errorf("IoU %v, want 1/7", iou)
	}
}
