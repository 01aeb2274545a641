package preprocess

import (
	"image"
	"math"
)

// claheScratch holds the per-call buffers of CLAHE so they can be pooled.
type claheScratch struct {
	lut      []uint8   // tiles*256 LUT, as OpenCV stores it
	lutF     []float32 // the same LUT as float32, read by the interpolation
	hist     []int32   // per-goroutine histograms
	xa, xa1  []float32 // horizontal weights per column
	segStart []int32   // first column of each run sharing the same tile pair
	segT1    []int32   // left tile of each run
	segT2    []int32   // right tile of each run
	invTh    float32
	tilesX   int
	tilesY   int
}

// CLAHE equalises src as cv2.createCLAHE(clip, (tilesX, tilesY)).apply does
// in OpenCV 4.6 for 8-bit images (clip <= 0 disables clipping; tile counts
// below 1 are taken as 1).
func CLAHE(src *image.Gray, clip float64, tilesX, tilesY int) *image.Gray {
	b := src.Bounds()
	dst := newGray(b.Dx(), b.Dy())
	if b.Empty() {
		return dst
	}
	tilesX, tilesY = max(tilesX, 1), max(tilesY, 1)
	s := getScratch()
	defer putScratch(s)
	claheInto(planeOf(dst), planeOf(src), clip, tilesX, tilesY, &s.clahe)
	return dst
}

// reflect101 maps an index outside [0,n) as cv::borderInterpolate with
// BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba), the border OpenCV's CLAHE
// adds when the size is not a multiple of the tile grid.
func reflect101(p, n int) int {
	if n == 1 {
		return 0
	}
	for p < 0 || p >= n {
		if p < 0 {
			p = -p
		} else {
			p = 2*n - 2 - p
		}
	}
	return p
}

func claheInto(dst, src plane, clip float64, tilesX, tilesY int, s *claheScratch) {
	claheSetup(src, clip, tilesX, tilesY, s)
	parallelRange(src.h, src.w*src.h, func(lo, hi int) {
		for y := lo; y < hi; y++ {
			s.row(dst.row(y), src.row(y), y)
		}
	})
}

// claheSetup computes the tile LUTs and interpolation weights of src into s;
// s.row then equalises any row.
func claheSetup(src plane, clip float64, tilesX, tilesY int, s *claheScratch) {
	w, h := src.w, src.h
	// OpenCV pads by tiles - size%tiles on BOTH axes as soon as either axis
	// is not divisible, so a divisible axis gains a whole extra tile row.
	extW, extH := w, h
	if w%tilesX != 0 || h%tilesY != 0 {
		extW = w + tilesX - w%tilesX
		extH = h + tilesY - h%tilesY
	}
	tileW, tileH := extW/tilesX, extH/tilesY
	area := tileW * tileH
	lutScale := float32(255) / float32(area)
	clipLimit := 0
	if clip > 0 {
		clipLimit = int(clip * float64(area) / 256)
		if clipLimit < 1 {
			clipLimit = 1
		}
	}
	nt := tilesX * tilesY
	s.lut = grow(s.lut, nt*256)
	s.lutF = grow(s.lutF, nt*256)

	// Column map for the reflected right border of the last tile column.
	parallelRange(nt, extW*extH, func(lo, hi int) {
		var hist [4][256]int32
		for k := lo; k < hi; k++ {
			ty, tx := k/tilesX, k%tilesX
			x0, x1 := tx*tileW, (tx+1)*tileW
			y0, y1 := ty*tileH, (ty+1)*tileH
			tileHistogram(&hist, src, x0, x1, y0, y1)
			var th [256]int32
			for i := range th {
				th[i] = hist[0][i] + hist[1][i] + hist[2][i] + hist[3][i]
			}
			clipHistogram(&th, int32(clipLimit))
			lut := s.lut[k*256 : k*256+256]
			lutF := s.lutF[k*256 : k*256+256]
			var sum int32
			for i := 0; i < 256; i++ {
				sum += th[i]
				v := roundHalfEven(float32(sum) * lutScale)
				if v > 255 {
					v = 255
				}
				lut[i] = uint8(v)
				lutF[i] = float32(lut[i])
			}
		}
	})

	// Horizontal interpolation weights, computed in float32 exactly as
	// OpenCV's CLAHE_Interpolation_Body constructor does.
	s.xa = grow(s.xa, w)
	s.xa1 = grow(s.xa1, w)
	s.segStart = s.segStart[:0]
	s.segT1 = s.segT1[:0]
	s.segT2 = s.segT2[:0]
	invTw := float32(1) / float32(tileW)
	prev1, prev2 := int32(-1), int32(-1)
	for x := 0; x < w; x++ {
		txf := float32(float32(x)*invTw) - 0.5
		tx1 := int(math.Floor(float64(txf)))
		tx2 := tx1 + 1
		s.xa[x] = txf - float32(tx1)
		s.xa1[x] = 1 - s.xa[x]
		tx1 = max(tx1, 0)
		tx2 = min(tx2, tilesX-1)
		if int32(tx1) != prev1 || int32(tx2) != prev2 {
			s.segStart = append(s.segStart, int32(x))
			s.segT1 = append(s.segT1, int32(tx1))
			s.segT2 = append(s.segT2, int32(tx2))
			prev1, prev2 = int32(tx1), int32(tx2)
		}
	}
	s.segStart = append(s.segStart, int32(w))

	s.invTh = float32(1) / float32(tileH)
	s.tilesX, s.tilesY = tilesX, tilesY
}

// row equalises source row y (srow) into drow, as one iteration of OpenCV's
// CLAHE_Interpolation_Body.
func (s *claheScratch) row(drow, srow []uint8, y int) {
	tilesX := s.tilesX
	tyf := float32(float32(y)*s.invTh) - 0.5
	ty1 := int(math.Floor(float64(tyf)))
	ty2 := ty1 + 1
	ya := tyf - float32(ty1)
	ya1 := 1 - ya
	ty1 = max(ty1, 0)
	ty2 = min(ty2, s.tilesY-1)
	p1 := s.lutF[ty1*tilesX*256 : (ty1+1)*tilesX*256]
	p2 := s.lutF[ty2*tilesX*256 : (ty2+1)*tilesX*256]
	for g := 0; g+1 < len(s.segStart); g++ {
		xs, xe := int(s.segStart[g]), int(s.segStart[g+1])
		i1, i2 := int(s.segT1[g])*256, int(s.segT2[g])*256
		interpRun(drow[xs:xe], srow[xs:xe], s.xa[xs:xe], s.xa1[xs:xe],
			(*[256]float32)(p1[i1:i1+256]), (*[256]float32)(p1[i2:i2+256]),
			(*[256]float32)(p2[i1:i1+256]), (*[256]float32)(p2[i2:i2+256]),
			ya, ya1)
	}
}

// interpRun blends the four tile LUTs for one run of pixels sharing the same
// tile pair. The explicit float32 conversions keep every product and sum
// rounded to float32 as in OpenCV's C++ (and forbid fused multiply-add).
func interpRun(d, s []uint8, xa, xa1 []float32, a1, a2, b1, b2 *[256]float32, ya, ya1 float32) {
	n := len(d)
	s = s[:n]
	xa = xa[:n]
	xa1 = xa1[:n]
	// res never exceeds 255.5 (LUT values <= 255, weights summing to 1 within
	// a few ulps), so rounding needs no saturation.
	x := 0
	for ; x+2 <= n; x += 2 {
		v0, v1 := s[x], s[x+1]
		l0, r0, l1, r1 := xa1[x], xa[x], xa1[x+1], xa[x+1]
		t0 := float32(float32(a1[v0]*l0) + float32(a2[v0]*r0))
		t1 := float32(float32(a1[v1]*l1) + float32(a2[v1]*r1))
		b0 := float32(float32(b1[v0]*l0) + float32(b2[v0]*r0))
		bb1 := float32(float32(b1[v1]*l1) + float32(b2[v1]*r1))
		d[x] = uint8(roundHalfEven(float32(float32(t0*ya1) + float32(b0*ya))))
		d[x+1] = uint8(roundHalfEven(float32(float32(t1*ya1) + float32(bb1*ya))))
	}
	for ; x < n; x++ {
		v := s[x]
		wl, wr := xa1[x], xa[x]
		top := float32(float32(a1[v]*wl) + float32(a2[v]*wr))
		bot := float32(float32(b1[v]*wl) + float32(b2[v]*wr))
		d[x] = uint8(roundHalfEven(float32(float32(top*ya1) + float32(bot*ya))))
	}
}

// roundHalfEven rounds a non-negative float32 below 2^22 to the nearest
// integer, ties to even, as cvRound (SSE cvtss2si) does: adding 1.5*2^23
// leaves the rounded integer in the low mantissa bits.
func roundHalfEven(f float32) int32 {
	const magic = float32(1 << 23 * 3 / 2)
	r := float32(f + magic)
	return int32(math.Float32bits(r)&0x7fffff) - 1<<22
}

// tileHistogram counts the pixels of the (possibly border-extended) tile
// [x0,x1)x[y0,y1) of src into four interleaved histograms (fewer store
// dependencies than one); pixels beyond the image are read reflected.
func tileHistogram(hist *[4][256]int32, src plane, x0, x1, y0, y1 int) {
	*hist = [4][256]int32{}
	xin := min(x1, src.w) // columns [x0,xin) lie inside the image
	for y := y0; y < y1; y++ {
		row := src.row(reflect101(y, src.h))
		if x0 < xin {
			r := row[x0:xin]
			i := 0
			for ; i+4 <= len(r); i += 4 {
				hist[0][r[i]]++
				hist[1][r[i+1]]++
				hist[2][r[i+2]]++
				hist[3][r[i+3]]++
			}
			for ; i < len(r); i++ {
				hist[0][r[i]]++
			}
		}
		for x := max(x0, xin); x < x1; x++ {
			hist[1][row[reflect101(x, src.w)]]++
		}
	}
}

// clipHistogram clips every bin at limit and spreads the excess as OpenCV
// does: evenly, then the residual one by one at a fixed stride from bin 0.
func clipHistogram(h *[256]int32, limit int32) {
	if limit <= 0 {
		return
	}
	var clipped int32
	for i := range h {
		if h[i] > limit {
			clipped += h[i] - limit
			h[i] = limit
		}
	}
	batch := clipped / 256
	residual := clipped - batch*256
	for i := range h {
		h[i] += batch
	}
	if residual != 0 {
		step := max(256/residual, 1)
		for i := int32(0); i < 256 && residual > 0; i += step {
			h[i]++
			residual--
		}
	}
}
