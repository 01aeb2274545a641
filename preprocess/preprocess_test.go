package preprocess

import (
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestReflect101(t *testing.T) {
	// BORDER_REFLECT_101 of "abcde": ...dcb|abcde|dcba...
	tests := []struct{ p, n, want int }{
		{0, 5, 0}, {4, 5, 4}, {5, 5, 3}, {6, 5, 2}, {8, 5, 0}, {9, 5, 1},
		{-1, 5, 1}, {-4, 5, 4}, {-5, 5, 3},
		{2, 2, 0}, {3, 2, 1}, {4, 2, 0}, {7, 1, 0}, {-3, 1, 0},
	}
	for _, tt := range tests {
		if got := reflect101(tt.p, tt.n); got != tt.want {
			t.Errorf("reflect101(%d, %d) = %d, want %d", tt.p, tt.n, got, tt.want)
		}
	}
}

// TestThumbnailSize uses the sizes Pillow 9.4 chose for the golden cases
// (their case.json) and for testdata/golden.
func TestThumbnailSize(t *testing.T) {
	tests := []struct {
		w, h, tw, th int
		resize       bool
	}{
		{300, 300, 224, 224, true},
		{640, 480, 224, 168, true},
		{224, 224, 224, 224, false},
		{1000, 800, 224, 179, true},
		{225, 224, 224, 223, true},
		{517, 333, 224, 144, true},
		{842, 1024, 184, 224, true},
		{819, 1024, 179, 224, true},
		{454, 373, 224, 184, true},
		{1760, 2140, 184, 224, true},
		{100, 60, 100, 60, false},
		{150, 1800, 19, 224, true},
		{8, 8, 8, 8, false},
		{2000, 150, 224, 17, true},
		{1, 120000, 1, 224, true},
		{3000, 9, 224, 1, true},
		{224, 400, 125, 224, true},
	}
	for _, tt := range tests {
		tw, th, resize := ThumbnailSize(tt.w, tt.h, Size)
		if tw != tt.tw || th != tt.th || resize != tt.resize {
			t.Errorf("ThumbnailSize(%d, %d) = %d, %d, %v; want %d, %d, %v", tt.w, tt.h, tw, th, resize, tt.tw, tt.th, tt.resize)
		}
	}
}

// TestUnpack checks that two signed sums accumulated in one int64 come back
// exactly while each stays within int32, as Pillow's 8-bit sums do (|sum of
// weights| of a few 2^22).
func TestUnpack(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		var s int64 = packedHalf
		lo, hi := int64(1<<(precisionBits-1)), int64(1<<(precisionBits-1))
		for k := 0; k < 20; k++ {
			a, b := int64(r.IntN(256)), int64(r.IntN(256))
			c := int64(r.IntN(1<<19) - 1<<18) // 20 taps: |lane| < 2^31
			s += (a | b<<32) * c
			lo += a * c
			hi += b * c
		}
		gl, gh := unpack(s)
		if int64(gl) != lo || int64(gh) != hi {
			t.Fatalf("unpack = %d, %d; want %d, %d", gl, gh, lo, hi)
		}
	}
}

func TestRoundHalfEven(t *testing.T) {
	for _, f := range []float32{0, 0.49999997, 0.5, 1.5, 2.5, 127.5, 128.5, 254.5, 255, 255.49998, 3.2, 7.7} {
		want := int32(math.RoundToEven(float64(f)))
		if got := roundHalfEven(f); got != want {
			t.Errorf("roundHalfEven(%v) = %d, want %d", f, got, want)
		}
	}
}

func TestDivisionUint32(t *testing.T) {
	// Pillow's box-average reciprocal must turn a full block of 255s into 255
	// and of zeros into 0 for every block size it can meet.
	for n := 1; n <= 64*64; n++ {
		m := divisionUint32(n)
		if v := ((uint32(255*n) + uint32(n/2)) * m) >> 24; v != 255 {
			t.Fatalf("n=%d: 255 block averages to %d", n, v)
		}
		if v := (uint32(n/2) * m) >> 24; v != 0 {
			t.Fatalf("n=%d: 0 block averages to %d", n, v)
		}
	}
}

func TestPad(t *testing.T) {
	tests := []struct{ w, h, ox, oy int }{
		{224, 224, 0, 0}, {100, 60, 62, 82}, {19, 224, 102, 0}, {224, 17, 0, 103}, {1, 1, 111, 111},
		{230, 10, -3, 107}, // larger than the canvas: centred and cut, as PIL's paste
	}
	for _, tt := range tests {
		src := newGray(tt.w, tt.h)
		for i := range src.Pix {
			src.Pix[i] = uint8(1 + i%250)
		}
		got := Pad(src, Size)
		for y := 0; y < Size; y++ {
			for x := 0; x < Size; x++ {
				want := uint8(0)
				if sx, sy := x-tt.ox, y-tt.oy; sx >= 0 && sy >= 0 && sx < tt.w && sy < tt.h {
					want = src.GrayAt(sx, sy).Y
				}
				if v := got.GrayAt(x, y).Y; v != want {
					t.Fatalf("%dx%d: pixel (%d,%d) = %d, want %d", tt.w, tt.h, x, y, v, want)
				}
			}
		}
	}
}

func TestToTensor(t *testing.T) {
	p := newGray(Size, Size)
	for i := range p.Pix {
		p.Pix[i] = uint8(i * 7)
	}
	mean, std := ImageNetMean, ImageNetStd
	dst := ToTensor(p, mean, std, nil)
	if len(dst) != TensorLen {
		t.Fatalf("len %d", len(dst))
	}
	for c := 0; c < 3; c++ {
		for i, v := range p.Pix {
			want := (float64(v)/255 - float64(mean[c])) / float64(std[c])
			if got := dst[c*Size*Size+i]; math.Abs(float64(got)-want) > 1e-6 {
				t.Fatalf("channel %d index %d: %v, want %v", c, i, got, want)
			}
		}
	}
	// The destination is reused when large enough.
	if again := ToTensor(p, mean, std, dst); &again[0] != &dst[0] {
		t.Error("ToTensor did not reuse dst")
	}
}

// TestToTensorTorchvision compares every 8-bit value's model input with
// torchvision 0.14's ToTensor + Normalize(ImageNet) (testdata/gen_tensor.py),
// bit for bit.
func TestToTensorTorchvision(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "tensor_imagenet.f32"))
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 3*256*4 {
		t.Fatalf("tensor_imagenet.f32: %d bytes", len(raw))
	}
	p := newGray(Size, Size)
	for i := range p.Pix {
		p.Pix[i] = uint8(i)
	}
	got := ToTensor(p, ImageNetMean, ImageNetStd, nil)
	for c := 0; c < 3; c++ {
		for i := 0; i < Size*Size; i++ {
			v := i % 256
			want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(c*256+v):]))
			if g := got[c*Size*Size+i]; g != want {
				t.Fatalf("channel %d value %d: %v, torchvision %v", c, v, g, want)
			}
		}
	}
}

func TestGrayTypes(t *testing.T) {
	// Every RGB image type gives the same gray as the 15-bit fixed-point
	// formula on its 8-bit channels; a gray image is copied unchanged.
	rgba := image.NewRGBA(image.Rect(3, 5, 40, 29)) // non-zero origin
	nrgba := image.NewNRGBA(rgba.Rect)
	r := rand.New(rand.NewPCG(3, 4))
	for y := rgba.Rect.Min.Y; y < rgba.Rect.Max.Y; y++ {
		for x := rgba.Rect.Min.X; x < rgba.Rect.Max.X; x++ {
			c := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
			rgba.SetRGBA(x, y, c)
			nrgba.SetNRGBA(x, y, color.NRGBA(c))
		}
	}
	want := newGray(rgba.Rect.Dx(), rgba.Rect.Dy())
	for y := 0; y < want.Rect.Dy(); y++ {
		for x := 0; x < want.Rect.Dx(); x++ {
			c := rgba.RGBAAt(x+3, y+5)
			want.Pix[y*want.Stride+x] = uint8((int(c.R)*9798 + int(c.G)*19235 + int(c.B)*3735 + 1<<14) >> 15)
		}
	}
	paletted := image.NewPaletted(rgba.Rect, color.Palette{color.RGBA{10, 200, 30, 255}, color.RGBA{250, 5, 90, 255}})
	for i := range paletted.Pix {
		paletted.Pix[i] = uint8(i % 2)
	}
	for name, img := range map[string]image.Image{"RGBA": rgba, "NRGBA": nrgba} {
		if n, _, _ := diffGray(Gray(img), want); n != 0 {
			t.Errorf("%s: %d pixels differ", name, n)
		}
	}
	pg := Gray(paletted)
	for i, v := range pg.Pix {
		c := paletted.Palette[paletted.Pix[i]].(color.RGBA)
		if w := uint8((int(c.R)*9798 + int(c.G)*19235 + int(c.B)*3735 + 1<<14) >> 15); v != w {
			t.Fatalf("paletted pixel %d = %d, want %d", i, v, w)
		}
	}
	if n, _, _ := diffGray(Gray(want), want); n != 0 {
		t.Error("gray input not copied unchanged")
	}
}

func TestPlaneErrors(t *testing.T) {
	if _, err := Plane(image.NewGray(image.Rect(0, 0, 0, 10))); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty image: %v", err)
	}
	if _, err := Plane(&image.Gray{Rect: image.Rect(0, 0, 1<<15, 1<<14)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge image: %v", err)
	}
	if err := PlaneInto(newGray(10, 10), newGray(5, 5)); err == nil {
		t.Error("wrong destination size accepted")
	}
	if err := PlaneInto(newGray(224, 320), newGray(5, 5)); err == nil {
		t.Error("non-square destination accepted")
	}
}

// TestPlaneSubImage checks that a sub-image (non-zero origin, larger stride)
// gives the same plane as a copy of it.
func TestPlaneSubImage(t *testing.T) {
	big := readGrayPNG(t, filepath.Join("testdata", "golden", "gray_1001x121", "input.png"))
	sub := big.SubImage(image.Rect(13, 7, 900, 120)).(*image.Gray)
	cp := newGray(sub.Rect.Dx(), sub.Rect.Dy())
	for y := 0; y < cp.Rect.Dy(); y++ {
		for x := 0; x < cp.Rect.Dx(); x++ {
			cp.SetGray(x, y, sub.GrayAt(x+13, y+7))
		}
	}
	a, err := Plane(sub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Plane(cp)
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _ := diffGray(a, b); n != 0 {
		t.Errorf("%d pixels differ", n)
	}
}

// TestPlaneConcurrent runs the chain on several inputs from many goroutines
// (run with -race) and checks every result against a sequential run.
func TestPlaneConcurrent(t *testing.T) {
	var inputs []image.Image
	for _, d := range caseDirs("testdata/golden") {
		inputs = append(inputs, readPNG(t, filepath.Join(d, "input.png")))
	}
	want := make([]*image.Gray, len(inputs))
	for i, in := range inputs {
		p, err := Plane(in)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = p
	}
	p := NewPipeline(2)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := newGray(Size, Size)
			for k := 0; k < 3; k++ {
				for i := range inputs {
					j := (i + g) % len(inputs)
					if err := p.PlaneInto(dst, inputs[j]); err != nil {
						errs <- err.Error()
						return
					}
					if n, _, _ := diffGray(dst, want[j]); n != 0 {
						errs <- "concurrent result differs"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestPipelineTensor(t *testing.T) {
	in := readPNG(t, filepath.Join("testdata", "golden", "rgb_224x400", "input.png"))
	final := readGrayPNG(t, filepath.Join("testdata", "golden", "rgb_224x400", "final.png"))
	got, err := NewPipeline(1).Tensor(in, ImageNetMean, ImageNetStd, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := ToTensor(final, ImageNetMean, ImageNetStd, nil)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("index %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// TestPlaneMatchesSteps checks on random sizes and content (degenerate ones
// included) that the fused chain equals composing the single steps, and that
// nothing panics.
func TestPlaneMatchesSteps(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	sizes := [][2]int{{1, 1}, {1, 2}, {2, 1}, {1, 5000}, {5000, 1}, {7, 9}, {449, 3}, {3, 449}, {2000, 2000}}
	for i := 0; i < 40; i++ {
		switch i % 4 {
		case 0:
			sizes = append(sizes, [2]int{1 + r.IntN(64), 1 + r.IntN(64)})
		case 1:
			sizes = append(sizes, [2]int{1 + r.IntN(1200), 1 + r.IntN(1200)})
		case 2:
			sizes = append(sizes, [2]int{1 + r.IntN(4000), 1 + r.IntN(40)})
		default:
			sizes = append(sizes, [2]int{1 + r.IntN(40), 1 + r.IntN(4000)})
		}
	}
	for _, sz := range sizes {
		var img image.Image
		if r.IntN(3) == 0 {
			c := image.NewRGBA(image.Rect(0, 0, sz[0], sz[1]))
			for i := range c.Pix {
				c.Pix[i] = uint8(r.IntN(256))
			}
			img = c
		} else {
			g := newGray(sz[0], sz[1])
			for i := range g.Pix {
				g.Pix[i] = uint8(128 + 100*math.Sin(float64(i%sz[0])/9)*math.Cos(float64(i/sz[0])/13) + float64(r.IntN(20)))
			}
			img = g
		}
		want := Pad(Thumbnail(CLAHE(Gray(img), ClipLimit, TilesX, TilesY), Size), Size)
		got, err := Plane(img)
		if err != nil {
			t.Fatalf("%dx%d: %v", sz[0], sz[1], err)
		}
		if n, _, m := diffGray(got, want); n != 0 {
			t.Errorf("%dx%d: fused chain differs from the steps on %d pixels (max %d)", sz[0], sz[1], n, m)
		}
		// Larger planes run the same fused chain with another target.
		for _, side := range []int{320, 448} {
			want := Pad(Thumbnail(CLAHE(Gray(img), ClipLimit, TilesX, TilesY), side), side)
			got, err := PlaneSized(img, side)
			if err != nil {
				t.Fatalf("%dx%d at %d: %v", sz[0], sz[1], side, err)
			}
			if got.Bounds().Dx() != side || got.Bounds().Dy() != side {
				t.Fatalf("%dx%d at %d: plane is %v", sz[0], sz[1], side, got.Bounds())
			}
			if n, _, m := diffGray(got, want); n != 0 {
				t.Errorf("%dx%d at %d: fused chain differs from the steps on %d pixels (max %d)", sz[0], sz[1], side, n, m)
			}
		}
	}
}

func TestVersionFor(t *testing.T) {
	if VersionFor(Size) != Version {
		t.Errorf("VersionFor(%d) = %q, want the seed's %q", Size, VersionFor(Size), Version)
	}
	v := VersionFor(320)
	if v == Version || !strings.Contains(v, "lanczos(320,") || !strings.HasSuffix(v, "pad=centre320") {
		t.Errorf("VersionFor(320) = %q", v)
	}
	for _, bad := range []int{0, MinSize - 1, MaxSize + 1} {
		if CheckPlaneSize(bad) == nil {
			t.Errorf("plane size %d accepted", bad)
		}
		if _, err := PlaneSized(newGray(50, 50), bad); err == nil {
			t.Errorf("PlaneSized(%d) accepted", bad)
		}
	}
}

// TestPlaneAnyGOMAXPROCS checks that splitting the work differently never
// changes the result.
func TestPlaneAnyGOMAXPROCS(t *testing.T) {
	in := []image.Image{
		readPNG(t, filepath.Join("testdata", "golden", "gray_1001x121", "input.png")),
		readPNG(t, filepath.Join("testdata", "golden", "rgb_224x400", "input.png")),
		upscale(readGrayPNG(t, filepath.Join("testdata", "golden", "gray_3000x9", "input.png")), 1500, 1300),
	}
	var want []*image.Gray
	for _, img := range in {
		p, err := Plane(img)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 3, 5} {
		runtime.GOMAXPROCS(procs)
		for i, img := range in {
			p, err := Plane(img)
			if err != nil {
				t.Fatal(err)
			}
			if n, _, _ := diffGray(p, want[i]); n != 0 {
				t.Errorf("GOMAXPROCS=%d input %d: %d pixels differ", procs, i, n)
			}
		}
	}
}
