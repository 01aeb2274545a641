package main

import (
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/preprocess"
)

func TestInsidePolygon(t *testing.T) {
	square := []float64{0.2, 0.2, 0.6, 0.2, 0.6, 0.6, 0.2, 0.6}
	for _, tc := range []struct {
		x, y float64
		want bool
	}{{0.4, 0.4, true}, {0.1, 0.4, false}, {0.7, 0.7, false}, {0.59, 0.21, true}} {
		if got := insidePolygon(tc.x, tc.y, square); got != tc.want {
			t.Errorf("(%v,%v): %v, want %v", tc.x, tc.y, got, tc.want)
		}
	}
}

// TestModelLocaliseCommand runs the command end to end on generated images
// whose "fracture" is a bright bar, with a model that flags everything:
// every outlined val positive is counted, and the pictures are PNGs.
func TestModelLocaliseCommand(t *testing.T) {
	dir := t.TempDir()
	images, labels := writeTrainSet(t, dir, 12)
	m, err := classifier.New("basic[1,1,1,1]", 4)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "m.safetensors")
	if err := m.Save(model, classifier.ModelInfo{ID: "loc-test", PreprocessVersion: preprocess.Version, Threshold: 0, TTA: classifier.TTAFlip}); err != nil {
		t.Fatal(err)
	}
	// Outlines for the positives (odd rows): the bar at x 40-48, y 10-60 of 90x70.
	ann := map[string]map[string][]outline{"images": {}}
	wantOutlined := 0
	for i := 1; i < 12; i += 2 {
		bar := outline{BBox: [4]float64{40.0 / 90, 10.0 / 70, 8.0 / 90, 50.0 / 70},
			Polygons: [][]float64{{40.0 / 90, 10.0 / 70, 48.0 / 90, 10.0 / 70, 48.0 / 90, 60.0 / 70, 40.0 / 90, 60.0 / 70}}}
		ann["images"][fmt.Sprintf("x%02d.png", i)] = []outline{bar}
		if i%3 == 0 {
			wantOutlined++
		}
	}
	annPath := filepath.Join(dir, "annotations.json")
	b, _ := json.Marshal(ann)
	os.WriteFile(annPath, b, 0o644)
	out := filepath.Join(dir, "loc")
	stdout, _, err := runFracd(t, "--db", filepath.Join(dir, "fracd.db"), "model", "localise", model, "--images", images, "--labels", labels,
		"--annotations", annPath, "--out", out, "--examples", "2")
	if err != nil {
		t.Fatal(err)
	}
	var rep LocaliseReport
	raw, err := os.ReadFile(filepath.Join(out, "localise.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Fractured != wantOutlined || rep.Flagged != wantOutlined || rep.Model != "loc-test" || !strings.Contains(stdout, "pointing game") {
		t.Fatalf("report %+v (want %d outlined and flagged)\n%s", rep, wantOutlined, stdout)
	}
	// The cut table: every cut, boxes no larger at a higher cut, and the
	// headline figures are the default cut's row.
	if len(rep.ByCut) != len(localiseCuts) || rep.BoxCut != classifier.DefaultBoxCut {
		t.Fatalf("cuts %+v at %v", rep.ByCut, rep.BoxCut)
	}
	for i, c := range rep.ByCut {
		if i > 0 && c.MeanBoxArea > rep.ByCut[i-1].MeanBoxArea+1e-12 {
			t.Errorf("cut %.1f: mean box area %.4f, larger than at %.1f (%.4f)", c.Cut, c.MeanBoxArea, rep.ByCut[i-1].Cut, rep.ByCut[i-1].MeanBoxArea)
		}
		if c.Cut == rep.BoxCut && (c.BoxHits != rep.BoxHits || math.Abs(c.MeanBestIoU-rep.MeanBestIoU) > 1e-12) {
			t.Errorf("cut %.1f row %+v disagrees with the headline figures %+v", c.Cut, c, rep)
		}
	}
	if _, _, err := runFracd(t, "--db", filepath.Join(dir, "fracd.db"), "model", "localise", model, "--images", images, "--labels", labels,
		"--annotations", annPath, "--box-cut", "1.5"); err == nil {
		t.Error("--box-cut 1.5 accepted")
	}
	for i := 1; i <= min(2, wantOutlined); i++ {
		f, err := os.Open(filepath.Join(out, fmt.Sprintf("case-%02d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() != 90 || img.Bounds().Dy() != 70 {
			t.Fatalf("case %d: %v, %v", i, img.Bounds(), err)
		}
	}
}
