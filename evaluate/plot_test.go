package evaluate

import (
	"bytes"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteDirPlotsArePNG(t *testing.T) {
	r, err := Evaluate(loadPredictions(t), Options{Threshold: 0.5, Seed: 1, Model: "m-1"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "report")
	if err := WriteDir(dir, r); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("EVALUATE_KEEP_PLOTS"); keep != "" {
		// For looking at the plots by eye: EVALUATE_KEEP_PLOTS=/tmp/x go test -run PNG ./evaluate/
		if err := WriteDir(keep, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{ROCFile, PRFile, ReliabilityFile} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
			if err != nil || format != "png" {
				t.Fatalf("format %q, err %v", format, err)
			}
			if cfg.Width != 576 || cfg.Height != 576 {
				t.Errorf("size %dx%d, want 576x576", cfg.Width, cfg.Height)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			// A drawn plot has axes, text and curves: many colours, and
			// ink in every quarter of the frame.
			colours := map[[4]uint32]bool{}
			var ink [2][2]int
			b := img.Bounds()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					r, g, bl, a := img.At(x, y).RGBA()
					colours[[4]uint32{r, g, bl, a}] = true
					if r < 0xe000 || g < 0xe000 || bl < 0xe000 {
						ink[2*(y-b.Min.Y)/b.Dy()][2*(x-b.Min.X)/b.Dx()]++
					}
				}
			}
			if len(colours) < 20 {
				t.Errorf("only %d colours: not a drawn plot", len(colours))
			}
			for _, row := range ink {
				for _, n := range row {
					if n < 200 {
						t.Errorf("a quarter of the plot is nearly blank (%d dark pixels): %v", n, ink)
					}
				}
			}
			if len(raw) > 200<<10 {
				t.Errorf("%s is %d KiB", name, len(raw)>>10)
			}
		})
	}
	for _, name := range []string{MarkdownFile, JSONFile} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, JSONFile))
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil || back.Curves == nil || len(back.Curves.ROCBand) != BandPoints {
		t.Errorf("report.json: %v", err)
	}
	if err := WriteROC(&bytes.Buffer{}, r.Summary()); err == nil {
		t.Error("plotting a summary without curves succeeded")
	}
}

func TestPlotsWithoutBand(t *testing.T) {
	r, err := Evaluate([]Prediction{{"a", 0, 0.2, ""}, {"b", 1, 0.7, ""}}, Options{Threshold: 0.5, Bootstrap: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(r); err != nil {
		t.Fatal(err)
	}
}
