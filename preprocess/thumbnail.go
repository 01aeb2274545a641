package preprocess

import (
	"encoding/binary"
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
	red     reduceScratch
	temp    []uint8
	packed  []int64 // horizontal-pass rows packed two columns per int64
	acc     []int64 // per-worker vertical accumulators
	rowPack []int64 // per-worker input rows packed two rows per int64
	h, v    coeffs
}

// reduceScratch holds per-worker buffers of reduceRows.
type reduceScratch struct {
	lanes []uint64 // 16-bit column-sum lanes: even bytes then odd bytes
	sums  []uint32
	rows  []uint8 // a row buffer per worker for computed (fused) rows
}

// coeffs caches one axis' fixed-point Lanczos weights; images of the same
// size (the common case for a scanner) reuse them.
type coeffs struct {
	inSize, outSize int
	in0, in1        float32
	ksize           int
	bounds          []int32
	kk              []int32
	pre             []float64
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
// Lanczos-3 in 22-bit fixed point). Images that already fit are copied; a
// size below 1 is taken as 1.
func Thumbnail(src *image.Gray, size int) *image.Gray {
	size = max(size, 1)
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
	fx, fy := reduceFactors(w, h, dst.w, dst.h)
	if fx > 1 || fy > 1 {
		red := s.reduceBuffer(w, h, fx, fy)
		reduceRows(red, w, h, fx, fy, &s.red, func(_, y int) []uint8 { return src.row(y) })
		src = red
	}
	resampleInto(dst, src, reducedBox(w, h, fx, fy), s)
}

// reduceFactors is Pillow's choice of the integer pre-reduction:
// int(in / out / reducing_gap) or 1 on each axis.
func reduceFactors(w, h, tw, th int) (fx, fy int) {
	fx = max(int(float64(w)/float64(tw)/reducingGap), 1)
	fy = max(int(float64(h)/float64(th)/reducingGap), 1)
	return fx, fy
}

// reduceBuffer returns the plane the w x h image reduced by fx x fy goes to.
func (s *thumbScratch) reduceBuffer(w, h, fx, fy int) plane {
	rw, rh := (w+fx-1)/fx, (h+fy-1)/fy
	s.reduced = grow(s.reduced, rw*rh)
	return plane{pix: s.reduced, w: rw, h: rh, stride: rw}
}

// reducedBox is the resampling box after the reduction: Python computes
// (0, 0, w/fx, h/fy) in float64 and C receives it as float32. Without a
// reduction it is the whole image.
func reducedBox(w, h, fx, fy int) [4]float32 {
	return [4]float32{0, 0, float32(float64(w) / float64(fx)), float32(float64(h) / float64(fy))}
}

// divisionUint32 is Pillow's reciprocal for box averages, computed in float32
// as its C code does: 2^32 / (256 * n), truncated.
func divisionUint32(n int) uint32 {
	maxDividend := float32(uint32(256 * n))
	return uint32(float32(4294967296.0) / maxDividend)
}

// laneRows is how many 8-bit rows fit in a 16-bit lane without overflow.
const laneRows = 65535 / 255

// reduceRows averages fx x fy blocks of a w x h image into dst as Pillow's
// Image.reduce (partial blocks at the right and bottom edges average the
// pixels they have: ((sum + n/2) * (2^32 / (256 n))) >> 24). Input rows come
// from row(worker, y), so they may be computed on the fly.
func reduceRows(dst plane, w, h, fx, fy int, s *reduceScratch, row func(worker, y int) []uint8) {
	nw := maxWorkers()
	n8 := w / 8
	s.lanes = grow(s.lanes, 2*n8*nw)
	s.sums = grow(s.sums, w*nw)
	fullX := w / fx
	parallelRangeW(dst.h, w*h, func(worker, lo, hi int) {
		even := s.lanes[2*n8*worker : 2*n8*worker+n8]
		odd := s.lanes[2*n8*worker+n8 : 2*n8*(worker+1)]
		sums := s.sums[worker*w : (worker+1)*w]
		for oy := lo; oy < hi; oy++ {
			y0 := oy * fy
			y1 := min(y0+fy, h)
			clear(sums)
			clear(even)
			clear(odd)
			inLanes := 0
			for y := y0; y < y1; y++ {
				if inLanes == laneRows {
					flushLanes(sums, even, odd)
					inLanes = 0
				}
				addRow(even, odd, sums, row(worker, y))
				inLanes++
			}
			flushLanes(sums, even, odd)
			d := dst.row(oy)
			bh := y1 - y0
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
				n := (w - fullX*fx) * bh
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

const laneMask = 0x00ff00ff00ff00ff

// addRow adds a row to the column sums: eight pixels at a time into four
// 16-bit lanes for even and four for odd columns; the tail goes to sums.
func addRow(even, odd []uint64, sums []uint32, r []uint8) {
	n8 := len(even)
	odd = odd[:n8]
	for i := range even {
		u := binary.LittleEndian.Uint64(r[8*i:])
		even[i] += u & laneMask
		odd[i] += (u >> 8) & laneMask
	}
	for x := 8 * n8; x < len(r); x++ {
		sums[x] += uint32(r[x])
	}
}

// flushLanes moves the lane sums into the per-column sums and clears them.
func flushLanes(sums []uint32, even, odd []uint64) {
	odd = odd[:len(even)]
	for i, e := range even {
		o := odd[i]
		c := sums[8*i : 8*i+8 : 8*i+8]
		c[0] += uint32(e & 0xffff)
		c[1] += uint32(o & 0xffff)
		c[2] += uint32(e >> 16 & 0xffff)
		c[3] += uint32(o >> 16 & 0xffff)
		c[4] += uint32(e >> 32 & 0xffff)
		c[5] += uint32(o >> 32 & 0xffff)
		c[6] += uint32(e >> 48)
		c[7] += uint32(o >> 48)
		even[i], odd[i] = 0, 0
	}
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

// compute fills c with Pillow's precompute_coeffs + normalize_coeffs_8bpc for
// one axis: per output position the first input index, the tap count and
// ksize fixed-point weights (kk[xx*ksize:]). It is a no-op when c already
// holds the same axis.
func (c *coeffs) compute(inSize int, in0, in1 float32, outSize int) {
	if c.kk != nil && c.inSize == inSize && c.outSize == outSize && c.in0 == in0 && c.in1 == in1 {
		return
	}
	c.inSize, c.outSize, c.in0, c.in1 = inSize, outSize, in0, in1
	scale := float64(in1-in0) / float64(outSize)
	filterscale := scale
	if filterscale < 1 {
		filterscale = 1
	}
	support := lanczosSupport * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	c.ksize = ksize
	c.pre = grow(c.pre, ksize)
	c.bounds = grow(c.bounds, outSize*2)
	c.kk = grow(c.kk, outSize*ksize)
	pre := c.pre
	ss := 1.0 / filterscale
	for xx := 0; xx < outSize; xx++ {
		// The explicit conversion keeps Go from fusing the multiply-add.
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
		k := c.kk[xx*ksize : (xx+1)*ksize]
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
		c.bounds[2*xx] = int32(xmin)
		c.bounds[2*xx+1] = int32(xmax)
	}
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

// Two 32-bit sums share one int64 ("packed"): p0 + p1<<32 times a signed
// weight accumulates both lanes at once; as each true lane sum fits in an
// int32, unpack recovers them exactly from the wrapped 64-bit total.
const packedHalf = int64(1<<(precisionBits-1)) + int64(1<<(precisionBits-1))<<32

func unpack(s int64) (lo, hi int32) {
	lo = int32(s)
	hi = int32((s - int64(lo)) >> 32)
	return lo, hi
}

// resampleInto is Pillow's ImagingResampleInner for 8-bit images with the
// Lanczos filter: horizontal pass (only over the rows the vertical pass
// needs) into an 8-bit temporary, then the vertical pass.
func resampleInto(dst, src plane, box [4]float32, s *thumbScratch) {
	xsize, ysize := dst.w, dst.h
	needH := xsize != src.w || box[0] != 0 || box[2] != float32(xsize)
	needV := ysize != src.h || box[1] != 0 || box[3] != float32(ysize)
	s.h.compute(src.w, box[0], box[2], xsize)
	s.v.compute(src.h, box[1], box[3], ysize)
	ksH, ksV := s.h.ksize, s.v.ksize
	yFirst := int(s.v.bounds[0])
	yLast := int(s.v.bounds[ysize*2-2] + s.v.bounds[ysize*2-1])
	// Vertical bounds relative to the first row the horizontal pass makes.
	vOff := 0

	in := src
	if needH {
		vOff = yFirst
		rows := yLast - yFirst
		out := dst
		if needV {
			s.temp = grow(s.temp, xsize*rows)
			out = plane{pix: s.temp, w: xsize, h: rows, stride: xsize}
		}
		nw := maxWorkers()
		s.rowPack = grow(s.rowPack, 2*src.w*nw)
		bounds, kk := s.h.bounds, s.h.kk
		parallelRangeW((rows+3)/4, rows*xsize*ksH, func(worker int, lo, hi int) {
			pk := s.rowPack[2*src.w*worker : 2*src.w*(worker+1)]
			for g := lo; g < hi; g++ {
				y := 4 * g
				if y+4 <= rows {
					horizontalRows4(out, src, y, yFirst, bounds, kk, ksH, pk)
					continue
				}
				for ; y < rows; y++ {
					horizontalRow(out.row(y), src.row(y+yFirst), bounds, kk, ksH)
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

	// Pack the vertical pass' input two columns per int64.
	half := (xsize + 1) / 2
	s.packed = grow(s.packed, half*in.h)
	parallelRange(in.h, in.h*xsize, func(lo, hi int) {
		for y := lo; y < hi; y++ {
			packColumns(s.packed[y*half:(y+1)*half], in.row(y))
		}
	})
	s.acc = grow(s.acc, half*maxWorkers())
	bounds, kk := s.v.bounds, s.v.kk
	parallelRangeW(ysize, ysize*xsize*ksV, func(worker, lo, hi int) {
		acc := s.acc[worker*half : (worker+1)*half]
		for yy := lo; yy < hi; yy++ {
			ymin, ymax := int(bounds[2*yy])-vOff, int(bounds[2*yy+1])
			k := kk[yy*ksV : yy*ksV+ymax]
			for j := range acc {
				acc[j] = packedHalf
			}
			for i, c := range k {
				r := s.packed[(ymin+i)*half : (ymin+i+1)*half]
				r = r[:len(acc)]
				c64 := int64(c)
				for j, v := range r {
					acc[j] += v * c64
				}
			}
			or := dst.row(yy)
			for j, a := range acc {
				lo, hi := unpack(a)
				or[2*j] = clip8(lo)
				if 2*j+1 < len(or) {
					or[2*j+1] = clip8(hi)
				}
			}
		}
	})
}

// packColumns packs columns 2j and 2j+1 of r into p[j].
func packColumns(p []int64, r []uint8) {
	n := len(r) / 2
	p = p[:(len(r)+1)/2]
	for j := 0; j < n; j++ {
		p[j] = int64(r[2*j]) | int64(r[2*j+1])<<32
	}
	if len(r)%2 == 1 {
		p[n] = int64(r[len(r)-1])
	}
}

// horizontalRow is one row of ImagingResampleHorizontal_8bpc.
func horizontalRow(out, in []uint8, bounds, kk []int32, ksize int) {
	for xx := range out {
		xmin, xmax := int(bounds[2*xx]), int(bounds[2*xx+1])
		k := kk[xx*ksize : xx*ksize+xmax]
		px := in[xmin : xmin+xmax]
		px = px[:len(k)]
		ss := int32(1 << (precisionBits - 1))
		for i, c := range k {
			ss += int32(px[i]) * c
		}
		out[xx] = clip8(ss)
	}
}

// horizontalRows4 is horizontalRow for output rows y..y+3 at once: the input
// rows are packed in pairs so one multiply serves two rows.
func horizontalRows4(out, src plane, y, yFirst int, bounds, kk []int32, ksize int, pk []int64) {
	w := src.w
	p01, p23 := pk[:w], pk[w:2*w]
	i0, i1, i2, i3 := src.row(y+yFirst), src.row(y+yFirst+1), src.row(y+yFirst+2), src.row(y+yFirst+3)
	i1, i2, i3 = i1[:len(i0)], i2[:len(i0)], i3[:len(i0)]
	p01, p23 = p01[:len(i0)], p23[:len(i0)]
	for x, v := range i0 {
		p01[x] = int64(v) | int64(i1[x])<<32
		p23[x] = int64(i2[x]) | int64(i3[x])<<32
	}
	o0, o1, o2, o3 := out.row(y), out.row(y+1), out.row(y+2), out.row(y+3)
	o1, o2, o3 = o1[:len(o0)], o2[:len(o0)], o3[:len(o0)]
	for xx := range o0 {
		xmin, xmax := int(bounds[2*xx]), int(bounds[2*xx+1])
		k := kk[xx*ksize : xx*ksize+xmax]
		q01 := p01[xmin : xmin+xmax]
		q01 = q01[:len(k)]
		q23 := p23[xmin : xmin+len(k)]
		s01, s23 := packedHalf, packedHalf
		for i, c := range k {
			c64 := int64(c)
			s01 += q01[i] * c64
			s23 += q23[i] * c64
		}
		a, b := unpack(s01)
		c, d := unpack(s23)
		o0[xx], o1[xx], o2[xx], o3[xx] = clip8(a), clip8(b), clip8(c), clip8(d)
	}
}
