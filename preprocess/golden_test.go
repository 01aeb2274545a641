package preprocess

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// goldenDir holds the seed's reference cases; FRACD_PREPROCESS_GOLDEN points
// the same test at another directory of cases in the same layout.
var goldenDir = "../../shared/golden/preprocess"

func init() {
	if d := os.Getenv("FRACD_PREPROCESS_GOLDEN"); d != "" {
		goldenDir = d
	}
}

func readPNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return img
}

func readGrayPNG(t testing.TB, path string) *image.Gray {
	t.Helper()
	g, ok := readPNG(t, path).(*image.Gray)
	if !ok {
		t.Fatalf("%s: not an 8-bit gray PNG", path)
	}
	return g
}

// diffGray counts differing pixels and the largest absolute difference; a
// size mismatch is reported as every pixel differing.
func diffGray(a, b *image.Gray) (n, total, maxd int) {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Dx() != bb.Dx() || ab.Dy() != bb.Dy() {
		return -1, ab.Dx() * ab.Dy(), 255
	}
	pa, pb := planeOf(a), planeOf(b)
	for y := 0; y < pa.h; y++ {
		ra, rb := pa.row(y), pb.row(y)
		for x := range ra {
			d := int(ra[x]) - int(rb[x])
			if d < 0 {
				d = -d
			}
			if d != 0 {
				n++
				maxd = max(maxd, d)
			}
		}
	}
	return n, pa.w * pa.h, maxd
}

// caseDirs lists the case directories under root.
func caseDirs(root string) []string {
	files, _ := filepath.Glob(filepath.Join(root, "*", "case.json"))
	dirs := make([]string, len(files))
	for i, f := range files {
		dirs[i] = filepath.Dir(f)
	}
	return dirs
}

// TestGoldenShared checks every step against the seed's OpenCV 4.6 / Pillow
// 9.4 goldens in ../shared.
func TestGoldenShared(t *testing.T) {
	dirs := caseDirs(goldenDir)
	if len(dirs) == 0 {
		t.Skipf("golden cases not found under %s (../shared is absent in a fresh clone)", goldenDir)
	}
	runGolden(t, dirs)
}

// TestGoldenLocal runs the same checks on the small edge cases in
// testdata/golden (made by testdata/gen_golden.py with OpenCV 4.6 and
// Pillow 9.4), so they run without ../shared.
func TestGoldenLocal(t *testing.T) {
	dirs := caseDirs("testdata/golden")
	if len(dirs) == 0 {
		t.Fatal("testdata/golden has no cases")
	}
	runGolden(t, dirs)
}

// runGolden checks each case: gray, CLAHE and pad byte-identical; thumbnail
// identical on >= 99.9% of pixels and never off by more than 1; the whole
// chain from input.png identical to final.png whenever the thumbnail step is.
func runGolden(t *testing.T, dirs []string) {
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			input := readPNG(t, filepath.Join(dir, "input.png"))
			grayPath := filepath.Join(dir, "gray.png")
			if _, err := os.Stat(grayPath); err != nil {
				grayPath = filepath.Join(dir, "input.png")
			}
			wantGray := readGrayPNG(t, grayPath)
			wantClahe := readGrayPNG(t, filepath.Join(dir, "clahe.png"))
			wantThumb := readGrayPNG(t, filepath.Join(dir, "thumb.png"))
			wantFinal := readGrayPNG(t, filepath.Join(dir, "final.png"))

			gray := Gray(input)
			gn, gtot, gm := diffGray(gray, wantGray)
			if gn != 0 {
				t.Errorf("gray: %d/%d pixels differ (max %d)", gn, gtot, gm)
			}
			clahe := CLAHE(wantGray, ClipLimit, TilesX, TilesY)
			cn, ctot, cm := diffGray(clahe, wantClahe)
			if cn != 0 {
				t.Errorf("clahe: %d/%d pixels differ (max %d)", cn, ctot, cm)
			}
			thumb := Thumbnail(wantClahe, Size)
			tn, ttot, tmax := diffGray(thumb, wantThumb)
			if tn < 0 || tmax > 1 || float64(tn) > 0.001*float64(ttot) {
				t.Errorf("thumb: %d/%d pixels differ (max %d)", tn, ttot, tmax)
			}
			final := Pad(wantThumb, Size)
			fn, ftot, fm := diffGray(final, wantFinal)
			if fn != 0 {
				t.Errorf("final (pad of golden thumb): %d/%d pixels differ (max %d)", fn, ftot, fm)
			}
			plane, err := Plane(input)
			if err != nil {
				t.Fatalf("Plane: %v", err)
			}
			pn, ptot, pmax := diffGray(plane, wantFinal)
			if tn == 0 && pn != 0 {
				t.Errorf("chain: %d/%d pixels differ from final.png (max %d)", pn, ptot, pmax)
			}
			t.Logf("%-40s differing pixels: gray %d/%d, clahe %d/%d, thumb %dx%d %d/%d (max %d), final %d/%d, chain %d/%d (max %d)",
				name, gn, gtot, cn, ctot, thumb.Rect.Dx(), thumb.Rect.Dy(), tn, ttot, tmax, fn, ftot, pn, ptot, pmax)
		})
	}
}
