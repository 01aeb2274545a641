package dicomio

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestPydicomGolden decodes the small MIT pydicom files kept in testdata and
// compares frame 0 with the reference decode's sha256 (always on).
func TestPydicomGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/pydicom_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string]struct {
		TS      string `json:"transfer_syntax"`
		Exact   bool   `json:"exact"`
		SHA     string `json:"sha256_int32le"`
		Rows    int    `json:"rows"`
		Columns int    `json:"columns"`
		Samples int    `json:"samples"`
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	if len(golden) == 0 {
		t.Fatal("empty golden table")
	}
	for name, g := range golden {
		t.Run(name, func(t *testing.T) {
			f, err := ParseFile(filepath.Join("testdata", "pydicom", name))
			if err != nil {
				t.Fatal(err)
			}
			if f.TransferSyntaxUID != g.TS {
				t.Errorf("transfer syntax %s, want %s", f.TransferSyntaxUID, g.TS)
			}
			fr, err := f.DecodeFrame(0)
			if err != nil {
				t.Fatal(err)
			}
			if fr.Rows != g.Rows || fr.Columns != g.Columns || fr.Samples != g.Samples {
				t.Fatalf("shape %dx%dx%d, want %dx%dx%d", fr.Rows, fr.Columns, fr.Samples, g.Rows, g.Columns, g.Samples)
			}
			// dicomio's lossy decoders (IJG islow IDCT, OpenJPEG) are bit-exact
			// with the reference too, so every file must match.
			if got := frameSHA(fr); got != g.SHA {
				t.Errorf("frame 0 sha256 %s, want %s", got, g.SHA)
			}
			img, err := f.RenderFrame(fr)
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds().Dx() != g.Columns || img.Bounds().Dy() != g.Rows {
				t.Errorf("render size %v", img.Bounds())
			}
		})
	}
}
