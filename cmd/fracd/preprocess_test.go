package main

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/dicomio"
)

func readGrayFile(t *testing.T, path string) *image.Gray {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	g, ok := img.(*image.Gray)
	if !ok {
		t.Fatalf("%s: not 8-bit gray", path)
	}
	return g
}

func countDiff(a, b *image.Gray) int {
	if a.Rect != b.Rect {
		return len(a.Pix)
	}
	n := 0
	for i := range a.Pix {
		if a.Pix[i] != b.Pix[i] {
			n++
		}
	}
	return n
}

// TestPreprocessCommandImage runs `fracd preprocess` on the preprocess
// package's OpenCV/Pillow-made edge cases and compares with their final.png.
func TestPreprocessCommandImage(t *testing.T) {
	for _, c := range []string{"rgb_224x400", "gray_1001x121", "rgb_61x47"} {
		t.Run(c, func(t *testing.T) {
			dir := filepath.Join("..", "..", "preprocess", "testdata", "golden", c)
			out := filepath.Join(t.TempDir(), "plane.png")
			steps := filepath.Join(t.TempDir(), "steps")
			stdout, _, err := runFracd(t, "preprocess", filepath.Join(dir, "input.png"), "-o", out, "--steps", steps)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stdout, "224x224") {
				t.Errorf("stdout %q", stdout)
			}
			want := readGrayFile(t, filepath.Join(dir, "final.png"))
			for _, got := range []string{out, filepath.Join(steps, "final.png")} {
				if n := countDiff(readGrayFile(t, got), want); n != 0 {
					t.Errorf("%s: %d pixels differ from final.png", filepath.Base(got), n)
				}
			}
			if n := countDiff(readGrayFile(t, filepath.Join(steps, "thumb.png")), readGrayFile(t, filepath.Join(dir, "thumb.png"))); n != 0 {
				t.Errorf("thumb.png: %d pixels differ", n)
			}
		})
	}
}

// TestPreprocessCommandDICOM runs a real DICOM file through the command and
// compares with the seed's golden, whose input is dcmtk's 8-bit rendering.
func TestPreprocessCommandDICOM(t *testing.T) {
	const name = "dwv__gdcm-CR-MONO1-10-chest.dcm"
	src := filepath.Join("..", "..", "..", "shared", "dicom", "files", name)
	golden := filepath.Join("..", "..", "..", "shared", "golden", "preprocess", "real_"+name)
	if _, err := os.Stat(src); err != nil {
		t.Skip("../shared is absent (fresh clone): no DICOM corpus")
	}
	out := filepath.Join(t.TempDir(), "plane.png")
	if _, _, err := runFracd(t, "preprocess", src, "-o", out); err != nil {
		t.Fatal(err)
	}
	got := readGrayFile(t, out)
	if n := countDiff(got, readGrayFile(t, filepath.Join(golden, "final.png"))); n != 0 {
		f, err := dicomio.ParseFile(src)
		if err != nil {
			t.Fatal(err)
		}
		r, err := f.Render8(0)
		if err != nil {
			t.Fatal(err)
		}
		if m := countDiff(r, readGrayFile(t, filepath.Join(golden, "input.png"))); m != 0 {
			t.Skipf("dicomio's rendering differs from dcmtk's on %d pixels, so the plane differs on %d; the preprocessing steps themselves are checked by the preprocess package's golden tests", m, n)
		}
		t.Errorf("plane differs from final.png on %d pixels although the rendering matches", n)
	}
}

func TestPreprocessCommandErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(bad, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"preprocess", bad, "-o", filepath.Join(dir, "x.png")},
		{"preprocess", bad},
		{"preprocess", filepath.Join(dir, "missing.png"), "-o", filepath.Join(dir, "y.png")},
	} {
		if _, _, err := runFracd(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		} else if strings.Contains(err.Error(), "notes.txt") {
			t.Errorf("%v: error names the input file: %v", args, err)
		}
	}
}
