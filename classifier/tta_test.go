package classifier

import (
	"context"
	"math"
	"math/rand"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlipTTA: a model whose metadata says hflip predicts the mean of the
// image's and its mirror's probabilities, keeps the setting through save
// and load, and rejects unknown values. Five images and their mirrors make
// two batches (maxInferBatch 8), the second of mirrors only.
func TestFlipTTA(t *testing.T) {
	ctx := context.Background()
	const s, n = 32, 5
	m, err := New("basic[1,1,1,1]", 5)
	if err != nil {
		t.Fatal(err)
	}
	m.info.InputSize = s
	x := randImages(4, n, s)
	plain, mirror := plainAndMirror(t, m, x, n, s)
	differ := false
	for i := range plain {
		differ = differ || math.Abs(float64(plain[i]-mirror[i])) > 1e-6
	}
	if !differ {
		t.Fatal("mirrored images give the same probabilities: the test cannot tell TTA from none")
	}
	if twice := FlipInputs(FlipInputs(x, n, s), n, s); !equalFloats(twice, x) {
		t.Fatal("flipping twice is not the identity")
	}

	path := filepath.Join(t.TempDir(), "tta.safetensors")
	if err := m.Save(path, ModelInfo{InputSize: s, TTA: TTAFlip}); err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Info().TTA != TTAFlip {
		t.Fatalf("TTA after load %q", loaded.Info().TTA)
	}
	got, err := loaded.Predict(ctx, x, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if want := (plain[i] + mirror[i]) / 2; math.Abs(float64(got[i]-want)) > 1e-6 {
			t.Errorf("image %d: TTA probability %v, want mean %v", i, got[i], want)
		}
	}

	md := map[string]string{metaTTA: "rot90"}
	if _, err := infoFromMetadata(md, "resnet18", strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "tta") {
		t.Errorf("unknown tta accepted: %v", err)
	}
}

// TestFlipTTAGray: the pipeline's input, a normalised gray image, takes
// the one-channel graph, into which TTA writes the mirrors itself; the
// result must be the mean over the image and its mirror computed apart.
// Also five images: two batches, the second of mirrors only, with heat maps.
func TestFlipTTAGray(t *testing.T) {
	ctx := context.Background()
	const s, n = 32, 5
	m := modelWithBNStats("basic[1,1,1,1]", 9, rand.New(rand.NewSource(3)))
	m.info.InputSize = s
	x := make([]float32, n*3*s*s)
	grayInputs(rand.New(rand.NewSource(4)), x, n, s, m.info.Mean, m.info.Std)
	if m.grayPlanes(x, n, s) == nil {
		t.Fatal("test input is not gray: it would not take the one-channel graph")
	}
	plain, mirror := plainAndMirror(t, m, x, n, s)
	m.info.TTA = TTAFlip
	got, err := m.Predict(ctx, x, n)
	if err != nil {
		t.Fatal(err)
	}
	probs, maps, err := m.HeatMaps(ctx, x, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		want := (plain[i] + mirror[i]) / 2
		if math.Abs(float64(got[i]-want)) > 1e-6 || math.Abs(float64(probs[i]-want)) > 1e-6 {
			t.Errorf("image %d: TTA probability %v (heat maps: %v), want mean %v", i, got[i], probs[i], want)
		}
		if len(maps[i].Values) == 0 {
			t.Errorf("image %d: no heat map", i)
		}
	}
}

// plainAndMirror returns the probabilities, without TTA, of n images of
// side s and of their mirror images.
func plainAndMirror(t *testing.T, m *Model, x []float32, n, s int) (plain, mirror []float32) {
	t.Helper()
	ctx := context.Background()
	plain, err := m.PredictPlain(ctx, x, n, s)
	if err != nil {
		t.Fatal(err)
	}
	mirror, err = m.PredictPlain(ctx, FlipInputs(x, n, s), n, s)
	if err != nil {
		t.Fatal(err)
	}
	return plain, mirror
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTwoThresholdsMetadata(t *testing.T) {
	m, err := New("basic[1,1,1,1]", 2)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "two.safetensors")
	if err := m.Save(path, ModelInfo{Threshold: 0.3, Suspected: 0.1, Definite: 0.7}); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := got.Info(); i.Suspected != 0.1 || i.Definite != 0.7 || i.Threshold != 0.3 {
		t.Errorf("after load: suspected %v threshold %v definite %v", i.Suspected, i.Threshold, i.Definite)
	}
	sha := strings.Repeat("0", 64)
	for _, md := range []map[string]string{
		{metaThreshold: "0.5", metaSuspected: "0.6", metaDefinite: "0.9"}, // suspected above the threshold
		{metaThreshold: "0.5", metaSuspected: "0.1", metaDefinite: "x"},
	} {
		if _, err := infoFromMetadata(md, "resnet18", sha); err == nil {
			t.Errorf("%v accepted", md)
		}
	}
	if i, err := infoFromMetadata(map[string]string{metaThreshold: "0.4"}, "resnet18", sha); err != nil || i.Suspected != 0 || i.Definite != 0 {
		t.Errorf("a one-threshold model: %+v, %v", i, err)
	}
}
