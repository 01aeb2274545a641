package dicomio

import (
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRender8Reference renders every file of ../shared/dicom/render8 and
// compares it with dcmtk's dcmj2pnm output: at least 99.5% of pixels within ±1.
func TestRender8Reference(t *testing.T) {
	dir := needShared(t, "dicom/render8")
	fh, err := os.Open(filepath.Join(dir, "index.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// Deliberate rejections: 46341² and 65535² 16-bit images (4.3 and 8.6
	// GB) in files of a few kB. dcmtk renders zero-filled images; fracd must
	// refuse them before allocating (architecture: "huge dimensions").
	rejects := map[string]error{
		"orth__2026-05-26-oob-monochrome-46341.dcm": ErrTooLarge,
		"orth__2026-05-26-oob-monochrome-65535.dcm": ErrTooLarge,
	}
	pass, total := 0, 0
	worst := 1.0
	var sb strings.Builder
	for _, row := range rows[1:] {
		name, rule := row[0], row[1]
		t.Run(name, func(t *testing.T) {
			total++
			f, err := ParseFile(filepath.Join(dir, "..", "files", name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Render8(0)
			if want, ok := rejects[name]; ok {
				if !errors.Is(err, want) {
					t.Fatalf("want deliberate rejection %v, got %v", want, err)
				}
				pass++
				fmt.Fprintf(&sb, "  deliberately rejected: %s (%v)\n", name, want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := readGrayPNG(t, filepath.Join(dir, name+".png"))
			if got.Bounds() != want.Bounds() {
				t.Fatalf("size %v, want %v", got.Bounds(), want.Bounds())
			}
			within, maxd := 0, 0
			for i := range got.Pix {
				d := int(got.Pix[i]) - int(want.Pix[i])
				if d < 0 {
					d = -d
				}
				maxd = max(maxd, d)
				if d <= 1 {
					within++
				}
			}
			frac := float64(within) / float64(len(got.Pix))
			worst = min(worst, frac)
			if frac < 0.995 {
				t.Errorf("rule %s: %.3f%% of pixels within ±1 (max diff %d), want >= 99.5%%", rule, 100*frac, maxd)
				fmt.Fprintf(&sb, "  FAIL %-70s %s %.3f%% max %d\n", name, rule, 100*frac, maxd)
				return
			}
			pass++
		})
	}
	fmt.Printf("render8 vs dcmtk: %d / %d files with >= 99.5%% of pixels within ±1 (worst file %.3f%%)\n%s", pass, total, 100*worst, sb.String())
}

func readGrayPNG(t *testing.T, path string) *image.Gray {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := img.(*image.Gray); ok {
		return g
	}
	b := img.Bounds()
	g := image.NewGray(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g.Set(x, y, img.At(x, y))
		}
	}
	return g
}
