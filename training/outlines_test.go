package training

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/classifier"
)

// TestAugmentMapRect: the box mapRect gives holds every pixel warp moved a
// region's pixels to, and is not much larger than they are.
func TestAugmentMapRect(t *testing.T) {
	const s = 64
	src := make([]byte, s*s)
	r := Rect{X0: 20, Y0: 12, X1: 30, Y1: 40} // pixel centres 20..30 x 12..40
	for y := 12; y <= 40; y++ {
		for x := 20; x <= 30; x++ {
			src[y*s+x] = 255
		}
	}
	aug := DefaultAugment
	aug.Brightness, aug.Contrast = 0, 0
	dst := make([]float32, s*s)
	for seed := int64(0); seed < 40; seed++ {
		d := aug.draw(rand.New(rand.NewSource(seed)), s)
		d.warp(src, dst, s)
		m := d.mapRect(r, s)
		got := Rect{X0: math.Inf(1), Y0: math.Inf(1), X1: math.Inf(-1), Y1: math.Inf(-1)}
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				if dst[y*s+x] > 0.5 {
					got.X0, got.X1 = min(got.X0, float64(x)), max(got.X1, float64(x))
					got.Y0, got.Y1 = min(got.Y0, float64(y)), max(got.Y1, float64(y))
				}
			}
		}
		if got.X0 < m.X0-1.5 || got.Y0 < m.Y0-1.5 || got.X1 > m.X1+1.5 || got.Y1 > m.Y1+1.5 {
			t.Errorf("seed %d (%+v): warped pixels span %+v, outside the mapped box %+v", seed, d, got, m)
		}
		area := func(b Rect) float64 { return (b.X1 - b.X0 + 1) * (b.Y1 - b.Y0 + 1) }
		if area(m) > 1.6*area(got) {
			t.Errorf("seed %d: mapped box %+v is much larger than the warped pixels %+v", seed, m, got)
		}
	}
}

func TestCAMTargets(t *testing.T) {
	U, N, P := classifier.CAMUnsupervised, classifier.CAMNegative, classifier.CAMPositive
	tests := []struct {
		name    string
		label   float32
		regions []Rect
		want    []float32 // 3x3 cells over a 96-pixel plane (32 px each)
	}{
		{"negative", 0, []Rect{{0, 0, 10, 10}}, []float32{N, N, N, N, N, N, N, N, N}},
		{"fracture without outline", 1, nil, []float32{U, U, U, U, U, U, U, U, U}},
		{"inside one cell", 1, []Rect{{40, 40, 50, 50}}, []float32{U, U, U, U, P, U, U, U, U}},
		{"across two cells", 1, []Rect{{40, 70, 70, 90}}, []float32{U, U, U, U, U, U, U, P, P}},
		{"edge only touches", 1, []Rect{{0, 0, 32, 32}}, []float32{P, U, U, U, U, U, U, U, U}},
		{"outside the plane", 1, []Rect{{-20, -20, 200, 10}}, []float32{P, P, P, U, U, U, U, U, U}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]float32, 9)
			camTargets(tt.label, tt.regions, 96, 3, 3, got)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("targets %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestLoadOutlinesErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"not json":     "{",
		"no images":    `{"images": {}}`,
		"short bbox":   `{"images": {"a.png": [{"bbox": [0.1, 0.2, 0.3]}]}}`,
		"outside":      `{"images": {"a.png": [{"bbox": [0.9, 0.2, 0.3, 0.1]}]}}`,
		"zero width":   `{"images": {"a.png": [{"bbox": [0.1, 0.2, 0, 0.1]}]}}`,
		"negative pos": `{"images": {"a.png": [{"bbox": [-0.1, 0.2, 0.1, 0.1]}]}}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := LoadOutlines(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// barOutlines writes an annotations.json boxing each synthetic positive's
// bar (its pixels of value 240), as fractions of the image.
func barOutlines(t *testing.T, images, labels string) string {
	t.Helper()
	raw, err := os.ReadFile(labels)
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]map[string][]map[string][]float64{"images": {}}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n")[1:] {
		f := strings.Split(line, ",")
		if f[1] != "1" {
			continue
		}
		fh, err := os.Open(filepath.Join(images, f[0]))
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		g := img.(*image.Gray)
		b := g.Bounds()
		x0, y0, x1, y1 := b.Dx(), b.Dy(), -1, -1
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				if g.GrayAt(x, y).Y == 240 {
					x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
				}
			}
		}
		w, h := float64(b.Dx()), float64(b.Dy())
		doc["images"][f[0]] = []map[string][]float64{{"bbox": {float64(x0) / w, float64(y0) / h, float64(x1-x0+1) / w, float64(y1-y0+1) / h}}}
	}
	out, _ := json.Marshal(doc)
	p := filepath.Join(filepath.Dir(labels), "annotations.json")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunCAMSupervision: a run with outlines and a CAM weight records both
// in its parameters, maps every positive's outline onto its plane, and
// trains with the extra loss term (a higher training loss than the same
// run without it); outlines without a weight are refused.
func TestRunCAMSupervision(t *testing.T) {
	if testing.Short() {
		t.Skip("trains")
	}
	dir := t.TempDir()
	images, labels := synthSet(t, dir, 6, 6, byThirds, nil)
	ann := barOutlines(t, images, labels)

	outs, err := LoadOutlines(ann)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := LoadLabels(labels, images, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n := outs.Attach(ls); n != 6 {
		t.Fatalf("%d positives got outlines, want 6", n)
	}
	caches, _, err := BuildCaches(context.Background(), ls, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range caches {
		for i := 0; i < c.Len(); i++ {
			rs := c.regions(i)
			if (len(rs) == 1) != (c.Labels[i] == 1) {
				t.Fatalf("%s image %d (label %v): %d regions", name, i, c.Labels[i], len(rs))
			}
			if len(rs) == 1 {
				// The bar is bright on the plane inside its region.
				p, r := c.Plane(i), rs[0]
				cx, cy := int((r.X0+r.X1)/2), int((r.Y0+r.Y1)/2)
				if v := p.GrayAt(cx, cy).Y; v < 200 {
					t.Errorf("%s image %d: plane value %d at the centre of its outline %+v", name, i, v, r)
				}
			}
		}
	}

	losses := map[string]float64{}
	for _, cam := range []bool{false, true} {
		cfg := tinyConfig(images, labels, filepath.Join(dir, fmt.Sprint("run-", cam)))
		cfg.Epochs, cfg.Augment = 1, DefaultAugment
		if cam {
			cfg.Annotations, cfg.CAMWeight = ann, 0.5
		}
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if cam && (res.Params.CAMWeight != 0.5 || res.Params.AnnotationsSHA256 != outs.SHA256) {
			t.Errorf("params %+v do not record the CAM supervision", res.Params)
		}
		losses[fmt.Sprint(cam)] = res.Epochs[0].TrainLoss
	}
	if !(losses["true"] > losses["false"]) {
		t.Errorf("train loss with CAM supervision %.5f, without %.5f", losses["true"], losses["false"])
	}

	cfg := tinyConfig(images, labels, filepath.Join(dir, "refused"))
	cfg.Annotations = ann
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Error("annotations without a CAM weight accepted")
	}
}
