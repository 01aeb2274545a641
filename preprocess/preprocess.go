// Package preprocess reproduces the seed's image preprocessing bit for bit:
// OpenCV 4.6 RGB2GRAY and CLAHE (clip 2.0, 8x8 tiles), Pillow 9.4
// Image.thumbnail((224, 224), LANCZOS) with its default reducing_gap of 2.0,
// a centred paste on a black 224x224 canvas and the float32 CHW model input.
//
// Every step is written from the documented behaviour of those libraries
// (their integer/fixed-point and float32 arithmetic is mirrored on purpose),
// so that a model trained on the Python pipeline sees exactly the same plane.
// Gray, CLAHE, Thumbnail and Pad are the single steps; Plane/PlaneInto run
// the whole chain (fusing CLAHE into the box reduction of large images) and
// ToTensor makes the model input. Everything is safe for concurrent use;
// scratch buffers are pooled (Pipeline) and large steps are split across
// CPUs.
//
// Checks: the golden tests compare every step with OpenCV/Pillow output
// (../shared/golden/preprocess and testdata/golden); BenchmarkPlane and
// testdata/compare.sh time the chain against OpenCV+Pillow.
package preprocess

import (
	"errors"
	"fmt"
	"image"
)

// Version names the preprocessing that produced a plane. Every prediction
// records it; it must change whenever any step (or its parameters) changes.
const Version = "fracd-preprocess/1 gray=cv4.6-rgb2gray clahe=cv4.6(2.0,8x8) thumb=pil9.4-lanczos(224,gap2.0) pad=centre224"

// Seed parameters.
const (
	// ClipLimit is cv2.createCLAHE's clipLimit.
	ClipLimit = 2.0
	// TilesX and TilesY are cv2.createCLAHE's tileGridSize.
	TilesX, TilesY = 8, 8
	// Size is the side of the square model plane the seed used; other
	// sides (MinSize..MaxSize) run the same chain with that thumbnail
	// and canvas size (see VersionFor).
	Size = 224
	// MinSize and MaxSize bound the plane side a model may ask for.
	MinSize, MaxSize = 32, 1024
)

// VersionFor is Version for a size x size plane: the seed's string for
// Size, the same chain with the other size named otherwise.
func VersionFor(size int) string {
	if size == Size {
		return Version
	}
	return fmt.Sprintf("fracd-preprocess/1 gray=cv4.6-rgb2gray clahe=cv4.6(2.0,8x8) thumb=pil9.4-lanczos(%d,gap2.0) pad=centre%d", size, size)
}

// CheckPlaneSize reports whether size is a plane side the chain supports.
func CheckPlaneSize(size int) error {
	if size < MinSize || size > MaxSize {
		return fmt.Errorf("preprocess: plane size %d outside %d..%d", size, MinSize, MaxSize)
	}
	return nil
}

// MaxPixels bounds the input area; larger images are rejected rather than
// risking huge allocations in the daemon.
const MaxPixels = 1 << 28

var (
	// ErrEmpty is returned for images without pixels.
	ErrEmpty = errors.New("preprocess: empty image")
	// ErrTooLarge is returned for images with more than MaxPixels pixels.
	ErrTooLarge = errors.New("preprocess: image too large")
)

// ImageNetMean and ImageNetStd are the default normalisation of the model input.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

func checkSize(r image.Rectangle) error {
	w, h := r.Dx(), r.Dy()
	if w <= 0 || h <= 0 {
		return ErrEmpty
	}
	if int64(w)*int64(h) > MaxPixels {
		return fmt.Errorf("%w: %dx%d", ErrTooLarge, w, h)
	}
	return nil
}

// newGray allocates a w x h gray image with origin (0,0).
func newGray(w, h int) *image.Gray {
	return image.NewGray(image.Rect(0, 0, w, h))
}

// plane is a tightly addressed 8-bit image view used internally: row y starts
// at pix[y*stride].
type plane struct {
	pix    []uint8
	w, h   int
	stride int
}

func planeOf(g *image.Gray) plane {
	r := g.Rect
	if r.Empty() {
		return plane{}
	}
	off := g.PixOffset(r.Min.X, r.Min.Y)
	return plane{pix: g.Pix[off:], w: r.Dx(), h: r.Dy(), stride: g.Stride}
}

func (p plane) row(y int) []uint8 {
	return p.pix[y*p.stride : y*p.stride+p.w]
}

// grow returns b with length n, reusing its storage when large enough.
func grow[T any](b []T, n int) []T {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]T, n)
}
