package preprocess

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// benchSource is a real X-ray (FracAtlas IMG0000041, 819x1024) from the
// shared goldens; the large benchmark image is it upscaled to 2880x2304.
const benchSource = "real_IMG0000041/input.png"

// benchInputs returns the benchmark images: a 2880x2304 X-ray (upscaled with
// integer bilinear interpolation, deterministic) and the 454x373 RGB X-ray
// golden input.
func benchInputs(tb testing.TB) map[string]image.Image {
	tb.Helper()
	src := filepath.Join(goldenDir, benchSource)
	if _, err := os.Stat(src); err != nil {
		tb.Skipf("benchmark X-rays not found under %s (../shared is absent in a fresh clone)", goldenDir)
	}
	return map[string]image.Image{
		"2880x2304": upscale(readGrayPNG(tb, src), 2880, 2304),
		"454x373":   readPNG(tb, filepath.Join(goldenDir, "real_IMG0000284/input.png")),
	}
}

// upscale resizes src to w x h with 8-bit fixed-point bilinear interpolation;
// it only makes large realistic test input.
func upscale(src *image.Gray, w, h int) *image.Gray {
	sp := planeOf(src)
	dst := newGray(w, h)
	for y := 0; y < h; y++ {
		fy := (y * (sp.h - 1) << 8) / max(h-1, 1)
		y0, wy := fy>>8, fy&255
		y1 := min(y0+1, sp.h-1)
		r0, r1 := sp.row(y0), sp.row(y1)
		d := dst.Pix[y*dst.Stride : y*dst.Stride+w]
		for x := range d {
			fx := (x * (sp.w - 1) << 8) / max(w-1, 1)
			x0, wx := fx>>8, fx&255
			x1 := min(x0+1, sp.w-1)
			top := int(r0[x0])*(256-wx) + int(r0[x1])*wx
			bot := int(r1[x0])*(256-wx) + int(r1[x1])*wx
			d[x] = uint8((top*(256-wy) + bot*wy + 1<<15) >> 16)
		}
	}
	return dst
}

// TestWriteBenchImages writes the benchmark inputs as PNG into
// $FRACD_PREPROCESS_BENCH_DIR so that the OpenCV+Pillow timing script
// (testdata/bench_opencv_pillow.py) runs on the very same pixels.
func TestWriteBenchImages(t *testing.T) {
	dir := os.Getenv("FRACD_PREPROCESS_BENCH_DIR")
	if dir == "" {
		t.Skip("set FRACD_PREPROCESS_BENCH_DIR to write the benchmark images")
	}
	for name, img := range benchInputs(t) {
		f, err := os.Create(filepath.Join(dir, "bench_"+name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkPlane times the whole chain (gray if colour, CLAHE, thumbnail,
// pad) from a decoded image to the 224x224 plane, reusing the destination.
func BenchmarkPlane(b *testing.B) {
	for _, name := range []string{"2880x2304", "454x373"} {
		img := benchInputs(b)[name]
		b.Run(name, func(b *testing.B) {
			dst := newGray(Size, Size)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := PlaneInto(dst, img); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time over all threads: steadier than wall time when other
			// processes share the cores.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// BenchmarkSteps times each step alone on both benchmark images.
func BenchmarkSteps(b *testing.B) {
	for _, name := range []string{"2880x2304", "454x373"} {
		img := benchInputs(b)[name]
		gray := Gray(img)
		eq := CLAHE(gray, ClipLimit, TilesX, TilesY)
		b.Run(name+"/gray", func(b *testing.B) {
			for b.Loop() {
				Gray(img)
			}
		})
		b.Run(name+"/clahe", func(b *testing.B) {
			for b.Loop() {
				CLAHE(gray, ClipLimit, TilesX, TilesY)
			}
		})
		b.Run(name+"/thumbnail", func(b *testing.B) {
			for b.Loop() {
				Thumbnail(eq, Size)
			}
		})
	}
}

// cpuTime is the process' user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
