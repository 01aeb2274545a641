package models_test

import (
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/models"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/training"
)

var update = flag.Bool("update", false, "rewrite testdata/pinned.json from the shipped model")

func shipped(t *testing.T) (models.Shipped, *classifier.Model) {
	t.Helper()
	sh, err := models.Default()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), sh.Name)
	if err := os.WriteFile(path, sh.Data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := classifier.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return sh, m
}

func TestShippedModelMatchesItsCard(t *testing.T) {
	sh, m := shipped(t)
	info := m.Info()
	if info.ID != sh.Card.ID || info.WeightsSHA256 != sh.SHA256 || math.Abs(info.Threshold-sh.Card.Threshold) > 1e-12 {
		t.Errorf("shipped file %s: id %q sha %s threshold %v; card says id %q threshold %v", sh.Name, info.ID, info.WeightsSHA256,
			info.Threshold, sh.Card.ID, sh.Card.Threshold)
	}
	if info.PreprocessVersion != preprocess.Version || info.InputSize != preprocess.Size {
		t.Errorf("shipped model wants preprocessing %q at %d px; this build makes %q at %d", info.PreprocessVersion, info.InputSize,
			preprocess.Version, preprocess.Size)
	}
	if got := models.Names(); len(got) != 1 || got[0] != sh.Name {
		t.Errorf("weight files compiled in: %v; want only %s (one shipped version at a time)", got, sh.Name)
	}
}

// pinnedInputs are always-on inputs: the repository's sample DICOM and
// generated ones, through the daemon's own steps (render, plane, tensor).
func pinnedInputs(t *testing.T) map[string][]float32 {
	t.Helper()
	files := map[string][]byte{}
	b, err := os.ReadFile(filepath.Join("..", "testdata", "sample-hand-dx.dcm"))
	if err != nil {
		t.Fatal(err)
	}
	files["sample-hand-dx.dcm"] = b
	for _, seed := range []int{1, 2} {
		b, err := testdicom.Spec{Seed: seed, Rows: 300, Cols: 240}.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		files["testdicom-seed"+string(rune('0'+seed))] = b
	}
	out := map[string][]float32{}
	for name, b := range files {
		f, err := dicomio.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		g, err := f.Render8(0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plane, err := preprocess.Plane(g)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = preprocess.ToTensor(plane, classifier.DefaultMean, classifier.DefaultStd, nil)
	}
	return out
}

// TestShippedModelPinnedOutputs catches an accidental change to the
// weights, their loading, TTA or preprocessing: the shipped model's
// probabilities on fixed inputs are pinned to 1e-4.
func TestShippedModelPinnedOutputs(t *testing.T) {
	_, m := shipped(t)
	got := map[string]float64{}
	for name, x := range pinnedInputs(t) {
		p, err := m.Predict(context.Background(), x, 1)
		if err != nil {
			t.Fatal(err)
		}
		got[name] = float64(p[0])
	}
	pinned := filepath.Join("testdata", "pinned.json")
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(pinned, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(pinned)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]float64
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("pinned %d inputs, computed %d", len(want), len(got))
	}
	for name, w := range want {
		if math.Abs(got[name]-w) > 1e-4 {
			t.Errorf("%s: probability %.6f, pinned %.6f", name, got[name], w)
		}
	}
}

// valSet is FracAtlas's val split (the images, not DICOM), preprocessed,
// or a skip without ../shared or under -short.
func valSet(t *testing.T) *training.Cache {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "fracatlas")
	if _, err := os.Stat(filepath.Join(dir, "split.csv")); err != nil {
		t.Skipf("../shared/fracatlas not present (%v): val figures are not re-measured", err)
	}
	if testing.Short() {
		t.Skip("scores 816 validation images")
	}
	ls, err := training.LoadLabels(filepath.Join(dir, "split.csv"), filepath.Join(dir, "images"), 1)
	if err != nil {
		t.Fatal(err)
	}
	var val training.LabelSet = *ls
	val.Examples = nil
	for _, e := range ls.Examples {
		if e.Split == training.SplitVal {
			val.Examples = append(val.Examples, e)
		}
	}
	caches, _, err := training.BuildCaches(context.Background(), &val, 0)
	if err != nil {
		t.Fatal(err)
	}
	return caches[training.SplitVal]
}

func valProbs(t *testing.T, m *classifier.Model, c *training.Cache) []float32 {
	t.Helper()
	info := m.Info()
	probs, err := training.PredictAll(context.Background(), m, &training.Dataset{Cache: c, Mean: info.Mean, Std: info.Std}, 8)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

// TestShippedModelValAUC re-measures the card's validation ROC-AUC on
// FracAtlas's val split (the images, not DICOM), with the model's TTA.
func TestShippedModelValAUC(t *testing.T) {
	c := valSet(t)
	sh, m := shipped(t)
	met, err := classifier.Evaluate(valProbs(t, m, c), c.Labels, m.Info().Threshold)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != sh.Card.ValN || math.Abs(met.AUC-sh.Card.ValAUC) > 1e-3 {
		t.Errorf("val: %d images, ROC-AUC %.4f; the card says %d images, %.4f", c.Len(), met.AUC, sh.Card.ValN, sh.Card.ValAUC)
	}
	t.Logf("val ROC-AUC %.4f on %d images (card %.4f)", met.AUC, c.Len(), sh.Card.ValAUC)
}

// TestShippedModelBF16Val is the bf16 option's evidence the throughput
// issue asks for: on val, ROC-AUC within 0.002 of float32's and the same
// flagged decision on at least 99.5% of images.
func TestShippedModelBF16Val(t *testing.T) {
	c := valSet(t)
	_, m32 := shipped(t)
	m16 := bf16Model(t)
	thr := m32.Info().Threshold
	p32, p16 := valProbs(t, m32, c), valProbs(t, m16, c)
	a32, err := classifier.Evaluate(p32, c.Labels, thr)
	if err != nil {
		t.Fatal(err)
	}
	a16, err := classifier.Evaluate(p16, c.Labels, thr)
	if err != nil {
		t.Fatal(err)
	}
	same, maxDiff := 0, 0.0
	for i := range p32 {
		if (p32[i] >= float32(thr)) == (p16[i] >= float32(thr)) {
			same++
		}
		maxDiff = max(maxDiff, math.Abs(float64(p32[i]-p16[i])))
	}
	frac := float64(same) / float64(len(p32))
	if math.Abs(a16.AUC-a32.AUC) > 0.002 || frac < 0.995 {
		t.Errorf("bf16 on val: ROC-AUC %.4f vs f32 %.4f, same decision on %d of %d (%.4f)", a16.AUC, a32.AUC, same, len(p32), frac)
	}
	t.Logf("val, %d images: ROC-AUC f32 %.4f bf16 %.4f; same decision %d of %d (%.2f%%); largest probability difference %.4f",
		len(p32), a32.AUC, a16.AUC, same, len(p32), 100*frac, maxDiff)
}

// bf16Model is the shipped model at PrecisionBF16, or a skip where this
// build or CPU cannot run it.
func bf16Model(t *testing.T) *classifier.Model {
	t.Helper()
	_, m := shipped(t)
	if err := m.SetPrecision(classifier.PrecisionBF16); err != nil {
		t.Skipf("bf16 inference unavailable here: %v", err)
	}
	return m
}

// TestShippedModelBF16NearF32 checks the bf16 option on the pinned inputs:
// probabilities within 0.01 of float32's and the same decision at the
// model's threshold.
func TestShippedModelBF16NearF32(t *testing.T) {
	_, m32 := shipped(t)
	m16 := bf16Model(t)
	thr := m32.Info().Threshold
	for name, x := range pinnedInputs(t) {
		p32, err := m32.Predict(context.Background(), x, 1)
		if err != nil {
			t.Fatal(err)
		}
		p16, err := m16.Predict(context.Background(), x, 1)
		if err != nil {
			t.Fatal(err)
		}
		d := math.Abs(float64(p16[0] - p32[0]))
		if d > 0.01 || (p16[0] >= float32(thr)) != (p32[0] >= float32(thr)) {
			t.Errorf("%s: bf16 %.5f, f32 %.5f (threshold %.4f)", name, p16[0], p32[0], thr)
		}
		if d == 0 {
			t.Errorf("%s: bf16 and f32 agree exactly (%.6f): is bf16 in effect?", name, p16[0])
		}
		t.Logf("%s: bf16 %.5f f32 %.5f", name, p16[0], p32[0])
	}
}
