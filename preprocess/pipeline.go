package preprocess

import (
	"fmt"
	"image"
)

// scratch is every reusable buffer of one preprocessing run.
type scratch struct {
	gray   []uint8
	eq     []uint8
	thumbB []uint8
	clahe  claheScratch
	thumb  thumbScratch
}

// Pipeline runs the chain with a bounded free list of scratch buffers, kept
// across garbage collections (unlike a sync.Pool) so that steady-state calls
// reuse them. It is safe for concurrent use; each concurrent call takes its
// own scratch.
type Pipeline struct {
	free chan *scratch
}

// maxRetainedBytes keeps a scratch of an unusually large image from being
// held forever.
const maxRetainedBytes = 64 << 20

// NewPipeline returns a Pipeline keeping up to maxIdle idle scratch sets
// (at least 1).
func NewPipeline(maxIdle int) *Pipeline {
	return &Pipeline{free: make(chan *scratch, max(maxIdle, 1))}
}

var defaultPipeline = NewPipeline(maxWorkers() + 1)

func (p *Pipeline) get() *scratch {
	select {
	case s := <-p.free:
		return s
	default:
		return new(scratch)
	}
}

func (p *Pipeline) put(s *scratch) {
	if cap(s.gray)+cap(s.eq) > maxRetainedBytes {
		return
	}
	select {
	case p.free <- s:
	default:
	}
}

func getScratch() *scratch  { return defaultPipeline.get() }
func putScratch(s *scratch) { defaultPipeline.put(s) }

// Plane runs the seed's whole chain on src (gray if it has colour, CLAHE,
// thumbnail, centred pad) and returns the Size x Size plane. It is safe for
// concurrent use.
func Plane(src image.Image) (*image.Gray, error) { return defaultPipeline.Plane(src) }

// PlaneSized is Plane for a size x size plane (see VersionFor).
func PlaneSized(src image.Image, size int) (*image.Gray, error) {
	if err := CheckPlaneSize(size); err != nil {
		return nil, err
	}
	dst := newGray(size, size)
	if err := defaultPipeline.PlaneInto(dst, src); err != nil {
		return nil, err
	}
	return dst, nil
}

// PlaneInto is Plane writing into dst, which must be square with a side
// of MinSize..MaxSize (Size for the seed's chain); the thumbnail and the
// canvas take dst's side.
func PlaneInto(dst *image.Gray, src image.Image) error {
	return defaultPipeline.PlaneInto(dst, src)
}

// Plane is the package-level Plane using p's buffers.
func (p *Pipeline) Plane(src image.Image) (*image.Gray, error) {
	dst := newGray(Size, Size)
	if err := p.PlaneInto(dst, src); err != nil {
		return nil, err
	}
	return dst, nil
}

// Tensor runs the chain and writes the model input (see ToTensor) into dst.
func (p *Pipeline) Tensor(src image.Image, mean, std [3]float32, dst []float32) ([]float32, error) {
	var pix [Size * Size]uint8
	g := &image.Gray{Pix: pix[:], Stride: Size, Rect: image.Rect(0, 0, Size, Size)}
	if err := p.PlaneInto(g, src); err != nil {
		return dst, err
	}
	return ToTensor(g, mean, std, dst), nil
}

// PlaneInto is PlaneInto using p's buffers; with a reused dst it allocates
// nothing but goroutine bookkeeping in steady state.
func (p *Pipeline) PlaneInto(dst *image.Gray, src image.Image) error {
	size := dst.Bounds().Dx()
	if dst.Bounds().Dy() != size || CheckPlaneSize(size) != nil {
		return fmt.Errorf("preprocess: destination is %dx%d, want a square of %d..%d (%d for the seed's chain)",
			dst.Bounds().Dx(), dst.Bounds().Dy(), MinSize, MaxSize, Size)
	}
	b := src.Bounds()
	if err := checkSize(b); err != nil {
		return err
	}
	s := p.get()
	defer p.put(s)
	w, h := b.Dx(), b.Dy()

	var in plane
	if g, ok := src.(*image.Gray); ok {
		in = planeOf(g)
	} else {
		s.gray = grow(s.gray, w*h)
		gi := &image.Gray{Pix: s.gray, Stride: w, Rect: image.Rect(0, 0, w, h)}
		grayInto(gi, src)
		in = planeOf(gi)
	}

	claheSetup(in, ClipLimit, TilesX, TilesY, &s.clahe)
	tw, th, resize := ThumbnailSize(w, h, size)
	fx, fy := reduceFactors(w, h, tw, th)
	var thumb plane
	switch {
	case resize && (fx > 1 || fy > 1):
		// Large downscale: CLAHE rows are equalised straight into Pillow's
		// box reduction, so the full-size equalised image never exists.
		red := s.thumb.reduceBuffer(w, h, fx, fy)
		rs := &s.thumb.red
		rs.rows = grow(rs.rows, w*maxWorkers())
		reduceRows(red, w, h, fx, fy, rs, func(worker, y int) []uint8 {
			buf := rs.rows[worker*w : (worker+1)*w]
			s.clahe.row(buf, in.row(y), y)
			return buf
		})
		s.thumbB = grow(s.thumbB, tw*th)
		thumb = plane{pix: s.thumbB, w: tw, h: th, stride: tw}
		resampleInto(thumb, red, reducedBox(w, h, fx, fy), &s.thumb)
	default:
		s.eq = grow(s.eq, w*h)
		eq := plane{pix: s.eq, w: w, h: h, stride: w}
		parallelRange(h, w*h, func(lo, hi int) {
			for y := lo; y < hi; y++ {
				s.clahe.row(eq.row(y), in.row(y), y)
			}
		})
		thumb = eq
		if resize {
			s.thumbB = grow(s.thumbB, tw*th)
			thumb = plane{pix: s.thumbB, w: tw, h: th, stride: tw}
			resampleInto(thumb, eq, reducedBox(w, h, 1, 1), &s.thumb)
		}
	}
	padInto(planeOf(dst), thumb)
	return nil
}

// Pad pastes src centred on a black size x size canvas at
// ((size-w)/2, (size-h)/2) as PIL's Image.paste does; parts outside the
// canvas are cut off.
func Pad(src *image.Gray, size int) *image.Gray {
	dst := newGray(size, size)
	padInto(planeOf(dst), planeOf(src))
	return dst
}

func padInto(dst, src plane) {
	ox, oy := floorDiv(dst.w-src.w, 2), floorDiv(dst.h-src.h, 2)
	for y := 0; y < dst.h; y++ {
		d := dst.row(y)
		sy := y - oy
		if sy < 0 || sy >= src.h {
			clear(d)
			continue
		}
		sr := src.row(sy)
		for x := range d {
			sx := x - ox
			if sx >= 0 && sx < src.w {
				d[x] = sr[sx]
			} else {
				d[x] = 0
			}
		}
	}
}

// floorDiv is Python's // for the offsets of images larger than the canvas.
func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// TensorLen is the number of float32 values of one model input (3 x Size x Size).
const TensorLen = 3 * Size * Size

// TensorLenFor is the number of float32 values of a size x size model input.
func TensorLenFor(size int) int { return 3 * size * size }

// ToTensor writes the model input of a square plane of side s into dst
// (grown to TensorLenFor(s) when short) and returns it: CHW float32, the same plane in all
// three channels, x/255 then (x-mean)/std per channel, in float32 as
// torchvision's ToTensor + Normalize compute it.
func ToTensor(plane *image.Gray, mean, std [3]float32, dst []float32) []float32 {
	size := plane.Bounds().Dx()
	dst = grow(dst, TensorLenFor(size))
	p := planeOf(plane)
	var lut [3][256]float32
	for c := 0; c < 3; c++ {
		for v := 0; v < 256; v++ {
			x := float32(v) / 255
			lut[c][v] = float32(x-mean[c]) / std[c]
		}
	}
	n := size * size
	for c := 0; c < 3; c++ {
		ch := dst[c*n : (c+1)*n]
		for y := 0; y < size; y++ {
			r := ch[y*size : (y+1)*size]
			if y >= p.h {
				for x := range r {
					r[x] = lut[c][0]
				}
				continue
			}
			sr := p.row(y)
			for x := range r {
				if x < p.w {
					r[x] = lut[c][sr[x]]
				} else {
					r[x] = lut[c][0]
				}
			}
		}
	}
	return dst
}
