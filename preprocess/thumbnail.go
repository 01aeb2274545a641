package preprocess

import (
	"image"
	"math"
)

// Pillow's defaults that the seed relies on.
const (
	reducingGap    = 2.0
	lanczosSupport = 3.0
	// precisionBits is Pillow's fixed-point precision for 8-bit resampling
	// (32 - 8 result bits - 2 bits of headroom for negative lobes/overshoot).
	precisionBits = 32 - 8 - 2
)

type thumbScratch struct {
	reduced []uint8
	colSum  []uint32
	temp    []uint8
	boundsH []int32
	boundsV []int32
	kkH     []int32
	kkV     []int32
	pre     []float64
}

// ThumbnailSize returns the size Pillow 9.4's Image.thumbnail((size, size))
// gives a w x h image, and false when it leaves the image unchanged (it never
// enlarges).
func ThumbnailSize(w, h, size int) (tw, th int, resize bool) {
	x, y := size, size
	if x >= w && y >= h {
		return w, h, false
	}
	aspect := float64(w) / float64(h)
	// round_aspect: the floor or ceil whose ratio is closest to the source
	// aspect (floor on ties), at least 1.
	if float64(x)/float64(y) >= aspect {
		v := float64(y) * aspect
		f, c := math.Floor(v), math.Ceil(v)
		kf := math.Abs(aspect - f/float64(y))
		kc := math.Abs(aspect - c/float64(y))
		x = int(f)
		if kc < kf {
			x = int(c)
		}
		x = max(x, 1)
	} else {
		v := float64(x) / aspect
		f, c := math.Floor(v), math.Ceil(v)
		key := func(n float64) float64 {
			if n == 0 {
				return 0
			}
			return math.Abs(aspect - float64(x)/n)
		}
		y = int(f)
		if key(c) < key(f) {
			y = int(c)
		}
		y = max(y, 1)
	}
	return x, y, x != w || y != h
}

// Thumbnail shrinks src to fit a size x size box as Pillow 9.4's
// Image.thumbnail((size, size), Image.LANCZOS) does (reducing_gap 2.0: an
// integer box reduction first on large downscales, then a two-pass
// Lanczos-3 in 22-bit fixed point). Images that already fit are copied.
func Thumbnail(src *image.Gray, size int) *image.Gray {
	b := src.Bounds()
	tw, th, resize := ThumbnailSize(b.Dx(), b.Dy(), size)
	dst := newGray(tw, th)
	if b.Empty() {
		return dst
	}
	if !resize {
		copyPlane(planeOf(dst), planeOf(src))
		return dst
	}
	s := getScratch()
	defer putScratch(s)
	thumbInto(planeOf(dst), planeOf(src), &s.thumb)
	return dst
}

func copyPlane(dst, src plane) {
	for y := 0; y < src.h; y++ {
		copy(dst.row(y), src.row(y))
	}
}

// thumbInto resizes src to dst's size with Image.resize(size, LANCZOS,
// reducing_gap=2.0) semantics.
func thumbInto(dst, src plane, s *thumbScratch) {
	w, h := src.w, src.h
	tw, th := dst.w, dst.h
	// Python: int(width / size / reducing_gap) or 1.
	fx := max(int(float64(w)/float64(tw)/reducingGap), 1)
	fy := max(int(float64(h)/float64(th)/reducingGap), 1)
	box := [4]float32{0, 0, float32(w), float32(h)}
	in := src
	if fx > 1 || fy > 1 {
		rw, rh := (w+fx-1)/fx, (h+fy-1)/fy
		s.reduced = grow(s.reduced, rw*rh)
		red := plane{pix: s.reduced, w: rw, h: rh, stride: rw}
		s.colSum = grow(s.colSum, w*maxWorkers())
		reduceInto(red, src, fx, fy, s.colSum)
		// The box in reduced coordinates, computed in float64 by Python and
		// handed to C as float32.
		box = [4]float32{0, 0, float32(float64(w) / float64(fx)), float32(float64(h) / float64(fy))}
		in = red
	}
	resampleInto(dst, in, box, s)
}

// divisionUint32 is Pillow's reciprocal for box averages, computed in float32
// as its C code does: 2^32 / (256 * n), truncated.
func divisionUint32(n int) uint32 {
	maxDividend := float32(uint32(256 * n))
	return uint32(float32(4294967296.0) / maxDividend)
}

// reduceInto averages fx x fy blocks as Pillow's Image.reduce (partial blocks
// at the right and bottom edges average the pixels they have).
func reduceInto(dst, src plane, fx, fy int, colSum []uint32) {
	w, h := src.w, src.h
	fullX := w / fx
	parallelRangeW(dst.h, w*h, func(worker, lo, hi int) {
		sums := colSum[worker*w : (worker+1)*w]
		for oy := lo; oy < hi; oy++ {
			y0 := oy * fy
			y1 := min(y0+fy, h)
			bh := y1 - y0
			clear(sums)
			for y := y0; y < y1; y++ {
				r := src.row(y)
				for x, v := range r {
					sums[x] += uint32(v)
				}
			}
			d := dst.row(oy)
			n := fx * bh
			mul, amend := divisionUint32(n), uint32(n/2)
			for ox := 0; ox < fullX; ox++ {
				var ss uint32
				for _, v := range sums[ox*fx : ox*fx+fx] {
					ss += v
				}
				d[ox] = uint8(((ss + amend) * mul) >> 24)
			}
			if fullX < dst.w {
				bw := w - fullX*fx
				n := bw * bh
				mul, amend := divisionUint32(n), uint32(n/2)
				var ss uint32
				for _, v := range sums[fullX*fx : w] {
					ss += v
				}
				d[fullX] = uint8(((ss + amend) * mul) >> 24)
			}
		}
	})
}

func lanczos(x float64) float64 {
	if -lanczosSupport <= x && x < lanczosSupport {
		return sinc(x) * sinc(x/3)
	}
	return 0
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	x = x * math.Pi
	return math.Sin(x) / x
}

// precomputeCoeffs mirrors Pillow's precompute_coeffs + normalize_coeffs_8bpc:
// for each output position, the first input index, the tap count and ksize
// fixed-point weights (kk[xx*ksize:]).
func precomputeCoeffs(inSize int, in0, in1 float32, outSize int, pre []float64, bounds []int32, kk []int32) (int, []float64, []int32, []int32) {
	scale := float64(in1-in0) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := lanczosSupport * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	pre = grow(pre, ksize)
	bounds = grow(bounds, outSize*2)
	kk = grow(kk, outSize*ksize)
	ss := 1.0 / filterscale
	for xx := 0; xx < outSize; xx++ {
		center := float64(in0) + float64((float64(xx)+0.5)*scale)
		xmin := int(center - support + 0.5)
		if xmin < 0 {
			xmin = 0
		}
		xmax := int(center + support + 0.5)
		if xmax > inSize {
			xmax = inSize
		}
		xmax -= xmin
		ww := 0.0
		for x := 0; x < xmax; x++ {
			wt := lanczos((float64(x+xmin) - center + 0.5) * ss)
			pre[x] = wt
			ww += wt
		}
		k := kk[xx*ksize : (xx+1)*ksize]
		for x := 0; x < ksize; x++ {
			v := 0.0
			if x < xmax {
				v = pre[x]
				if ww != 0 {
					v /= ww
				}
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<precisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<precisionBits))
			}
		}
		bounds[2*xx] = int32(xmin)
		bounds[2*xx+1] = int32(xmax)
	}
	return ksize, pre, bounds, kk
}

func clip8(v int32) uint8 {
	v >>= precisionBits
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// resampleInto is Pillow's ImagingResampleInner for 8-bit images with the
// Lanczos filter: horizontal pass (only over the rows the vertical pass
// needs) into an 8-bit temporary, then the vertical pass.
func resampleInto(dst, src plane, box [4]float32, s *thumbScratch) {
	xsize, ysize := dst.w, dst.h
	needH := xsize != src.w || box[0] != 0 || box[2] != float32(xsize)
	needV := ysize != src.h || box[1] != 0 || box[3] != float32(ysize)
	var ksH, ksV int
	ksH, s.pre, s.boundsH, s.kkH = precomputeCoeffs(src.w, box[0], box[2], xsize, s.pre, s.boundsH, s.kkH)
	ksV, s.pre, s.boundsV, s.kkV = precomputeCoeffs(src.h, box[1], box[3], ysize, s.pre, s.boundsV, s.kkV)
	yFirst := int(s.boundsV[0])
	yLast := int(s.boundsV[ysize*2-2] + s.boundsV[ysize*2-1])

	in := src
	if needH {
		for i := 0; i < ysize; i++ {
			s.boundsV[2*i] -= int32(yFirst)
		}
		rows := yLast - yFirst
		out := dst
		if needV {
			s.temp = grow(s.temp, xsize*rows)
			out = plane{pix: s.temp, w: xsize, h: rows, stride: xsize}
		}
		bounds, kk := s.boundsH, s.kkH
		parallelRange(rows, rows*xsize*ksH, func(lo, hi int) {
			for yy := lo; yy < hi; yy++ {
				sr := src.row(yy + yFirst)
				or := out.row(yy)
				for xx := 0; xx < xsize; xx++ {
					xmin, xmax := int(bounds[2*xx]), int(bounds[2*xx+1])
					k := kk[xx*ksH : xx*ksH+xmax]
					px := sr[xmin : xmin+xmax]
					ss := int32(1 << (precisionBits - 1))
					for i, c := range k {
						ss += int32(px[i]) * c
					}
					or[xx] = clip8(ss)
				}
			}
		})
		if !needV {
			return
		}
		in = out
	} else if !needV {
		copyPlane(dst, src)
		return
	}
	bounds, kk := s.boundsV, s.kkV
	parallelRange(ysize, ysize*xsize*ksV, func(lo, hi int) {
		for yy := lo; yy < hi; yy++ {
			ymin, ymax := int(bounds[2*yy]), int(bounds[2*yy+1])
			k := kk[yy*ksV : yy*ksV+ymax]
			or := dst.row(yy)
			for xx := 0; xx < xsize; xx++ {
				ss := int32(1 << (precisionBits - 1))
				for i, c := range k {
					ss += int32(in.pix[(ymin+i)*in.stride+xx]) * c
				}
				or[xx] = clip8(ss)
			}
		}
	})
}
