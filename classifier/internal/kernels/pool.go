package kernels

import "math"

// Pooling on NCHW planes and on blocked tensors: max pooling (with argmax
// for training, separable for non-negative inference inputs) and the
// global average pool, with their gradients.

// AvgPool is the global average pool of planes planes of hw values each.
func AvgPool(x, out []float32, planes, hw int) {
	ParallelFor(planes, func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			var s float32
			for _, v := range x[pl*hw : (pl+1)*hw] {
				s += v
			}
			out[pl] = s / float32(hw)
		}
	})
}

// AvgPoolBackward spreads each plane's gradient dy evenly over its hw
// positions of dx.
func AvgPoolBackward(dy, dx []float32, planes, hw int) {
	inv := 1 / float32(hw)
	ParallelFor(planes, func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			v := dy[pl] * inv
			dst := dx[pl*hw : (pl+1)*hw]
			for i := range dst {
				dst[i] = v
			}
		}
	})
}

// AvgPoolBlocked is the global average pool of a blocked tensor: (N, C)
// means, summed in the same order as avgpool's NCHW loop.
func AvgPoolBlocked(x, out []float32, n, c, hw int) {
	ParallelFor(n*c/Block, func(lo, hi int) {
		var s [Block]float32
		for blk := lo; blk < hi; blk++ {
			clear(s[:])
			src := x[blk*hw*Block : (blk+1)*hw*Block]
			for q := 0; q < hw; q++ {
				v := src[q*Block : q*Block+Block]
				for l := range s {
					s[l] += v[l]
				}
			}
			// blocks are numbered image-major, so blk*16 is i*c + channel
			o := out[blk*Block : (blk+1)*Block]
			for l := range s {
				o[l] = s[l] / float32(hw)
			}
		}
	})
}

// AvgPoolBackwardBlocked is AvgPoolBackward into a blocked dx of n images
// of c channels.
func AvgPoolBackwardBlocked(dy, dx []float32, n, c, hw int) {
	inv := 1 / float32(hw)
	ParallelFor(n*c/Block, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			g := dy[blk*Block : (blk+1)*Block]
			dst := dx[blk*hw*Block : (blk+1)*hw*Block]
			for q := 0; q < hw; q++ {
				v := dst[q*Block : q*Block+Block]
				for l := range v {
					v[l] = g[l] * inv
				}
			}
		}
	})
}

// MaxPoolBackward routes each output gradient of planes planes (g's
// output size) to its argmax in dx (g's input size).
func MaxPoolBackward(g *Geom, dy, dx []float32, arg []int32, planes int) {
	inLen := g.H * g.W
	ParallelFor(planes, func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			dst := dx[pl*inLen : (pl+1)*inLen]
			clear(dst)
			for o := pl * g.OHW; o < (pl+1)*g.OHW; o++ {
				dst[arg[o]] += dy[o]
			}
		}
	})
}

// MaxPoolPlane pools one plane, recording the flat index of each maximum
// (the first one on ties, as PyTorch does). Interior windows, which need no
// bounds checks, take the unrolled path.
func MaxPoolPlane(g *Geom, src, dst []float32, arg []int32) {
	k, s, p, h, w := g.K, g.S, g.P, g.H, g.W
	for yo := 0; yo < g.OH; yo++ {
		iy0 := yo*s - p
		for xo := 0; xo < g.OW; xo++ {
			ix0 := xo*s - p
			o := yo*g.OW + xo
			if k == 3 && iy0 >= 0 && ix0 >= 0 && iy0+3 <= h && ix0+3 <= w {
				// Branch-free selection on order-preserving integer keys:
				// on real data the comparisons are unpredictable, and
				// mispredicted branches made this pass cost 17 ns/output.
				b0 := iy0*w + ix0
				r0 := src[b0 : b0+3]
				r1 := src[b0+w : b0+w+3]
				r2 := src[b0+2*w : b0+2*w+3]
				bk, bi := int64(fkey(r0[0])), int64(0)
				bk, bi = maxSel(bk, bi, r0[1], 1)
				bk, bi = maxSel(bk, bi, r0[2], 2)
				bk, bi = maxSel(bk, bi, r1[0], int64(w))
				bk, bi = maxSel(bk, bi, r1[1], int64(w+1))
				bk, bi = maxSel(bk, bi, r1[2], int64(w+2))
				bk, bi = maxSel(bk, bi, r2[0], int64(2*w))
				bk, bi = maxSel(bk, bi, r2[1], int64(2*w+1))
				_, bi = maxSel(bk, bi, r2[2], int64(2*w+2))
				dst[o], arg[o] = src[b0+int(bi)], int32(b0+int(bi))
				continue
			}
			best, bi := float32(math.Inf(-1)), int32(-1)
			for ki := 0; ki < k; ki++ {
				iy := iy0 + ki
				if iy < 0 || iy >= h {
					continue
				}
				for kj := 0; kj < k; kj++ {
					ix := ix0 + kj
					if ix < 0 || ix >= w {
						continue
					}
					if v := src[iy*w+ix]; v > best || bi < 0 {
						best, bi = v, int32(iy*w+ix)
					}
				}
			}
			dst[o], arg[o] = best, bi
		}
	}
}

// fkey maps a float32 to an int32 with the same ordering (for non-NaN values).
func fkey(v float32) int32 {
	b := int32(math.Float32bits(v))
	return b ^ (b >> 31 & 0x7fffffff)
}

// maxSel returns (key, idx) of the larger of (bk, bi) and (v, i), keeping
// the first on ties, without branches.
func maxSel(bk, bi int64, v float32, i int64) (int64, int64) {
	k := int64(fkey(v))
	m := (bk - k) >> 63 // -1 when k > bk
	return bk ^ ((bk ^ k) & m), bi ^ ((bi ^ i) & m)
}

// MaxPoolNonNeg pools one plane of non-negative values (a ReLU output),
// separably: row maxima, then column maxima. Non-negative float32 values
// order like their bit patterns, and integer max compiles to conditional
// moves, so there are no data-dependent branches.
func MaxPoolNonNeg(g *Geom, src, dst []float32, rows []uint32) {
	k, s, p, h, w := g.K, g.S, g.P, g.H, g.W
	for iy := 0; iy < h; iy++ {
		in := src[iy*w : (iy+1)*w]
		out := rows[iy*g.OW : (iy+1)*g.OW]
		if k == 3 && s == 2 && p == 1 && len(out) > 1 && w > 1 {
			// ResNet's pool: window columns 2xo-1 .. 2xo+1
			out[0] = max(math.Float32bits(in[0]), math.Float32bits(in[1]))
			xo := 1
			for ; xo < len(out) && 2*xo+1 < w; xo++ {
				q := in[2*xo-1 : 2*xo+2]
				out[xo] = max(math.Float32bits(q[0]), math.Float32bits(q[1]), math.Float32bits(q[2]))
			}
			for ; xo < len(out); xo++ { // window cut by the right border
				out[xo] = max(math.Float32bits(in[2*xo-1]), math.Float32bits(in[2*xo]))
			}
			continue
		}
		for xo := range out {
			x0, x1 := xo*s-p, xo*s-p+k
			x0, x1 = max(x0, 0), min(x1, w)
			var m uint32
			for _, v := range in[x0:x1] {
				m = max(m, math.Float32bits(v))
			}
			out[xo] = m
		}
	}
	for yo := 0; yo < g.OH; yo++ {
		y0, y1 := max(yo*s-p, 0), min(yo*s-p+k, h)
		out := dst[yo*g.OW : (yo+1)*g.OW]
		acc := rows[y0*g.OW : (y0+1)*g.OW]
		acc = acc[:len(out)]
		for i, v := range acc {
			m := v
			for y := y0 + 1; y < y1; y++ {
				m = max(m, rows[y*g.OW+i])
			}
			out[i] = math.Float32frombits(m)
		}
	}
}
