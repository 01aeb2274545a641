package preprocess

import (
	"image"
	"math"
	"testing"
)

func TestPlaneGeometry(t *testing.T) {
	for _, tc := range []struct{ w, h int }{{1000, 800}, {800, 1000}, {224, 224}, {100, 60}, {2880, 2304}, {301, 1999}} {
		src := image.NewGray(image.Rect(0, 0, tc.w, tc.h))
		for i := range src.Pix {
			src.Pix[i] = 200
		}
		pl := Pad(Thumbnail(src, Size), Size)
		g := PlaneGeometry(tc.w, tc.h)
		// The constant image covers exactly the geometry's rectangle.
		for y := 0; y < Size; y++ {
			for x := 0; x < Size; x++ {
				in := x >= g.OffX && x < g.OffX+g.ThumbW && y >= g.OffY && y < g.OffY+g.ThumbH
				if v := pl.Pix[y*pl.Stride+x]; (v != 0) != in {
					t.Fatalf("%dx%d: plane pixel (%d,%d)=%d, geometry %+v says inside=%v", tc.w, tc.h, x, y, v, g, in)
				}
			}
		}
		sx, sy := g.ToSource(g.FromSource(float64(tc.w)/3, float64(tc.h)/2))
		if math.Abs(sx-float64(tc.w)/3) > 1e-9 || math.Abs(sy-float64(tc.h)/2) > 1e-9 {
			t.Errorf("%dx%d: round trip gives (%v,%v)", tc.w, tc.h, sx, sy)
		}
		if x, y := g.ToSource(0, 0); x != 0 || y != 0 {
			t.Errorf("%dx%d: the plane's corner maps to (%v,%v), want clamped to (0,0)", tc.w, tc.h, x, y)
		}
	}
}
