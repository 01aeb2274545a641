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

// TestShippedModelValAUC re-measures the card's validation ROC-AUC on
// FracAtlas's val split (the images, not DICOM), with the model's TTA.
func TestShippedModelValAUC(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "fracatlas")
	if _, err := os.Stat(filepath.Join(dir, "split.csv")); err != nil {
		t.Skipf("../shared/fracatlas not present (%v): the card's val ROC-AUC is not re-measured", err)
	}
	if testing.Short() {
		t.Skip("scores 816 validation images")
	}
	sh, m := shipped(t)
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
	c := caches[training.SplitVal]
	info := m.Info()
	probs, err := training.PredictAll(context.Background(), m, &training.Dataset{Cache: c, Mean: info.Mean, Std: info.Std}, 8)
	if err != nil {
		t.Fatal(err)
	}
	met, err := classifier.Evaluate(probs, c.Labels, info.Threshold)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != sh.Card.ValN || math.Abs(met.AUC-sh.Card.ValAUC) > 1e-3 {
		t.Errorf("val: %d images, ROC-AUC %.4f; the card says %d images, %.4f", c.Len(), met.AUC, sh.Card.ValN, sh.Card.ValAUC)
	}
	t.Logf("val ROC-AUC %.4f on %d images (card %.4f)", met.AUC, c.Len(), sh.Card.ValAUC)
}
