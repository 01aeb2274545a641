package classifier

import (
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// relu adds y = max(a [+ b], 0); with b it is the residual join of a block.
func (b *builder) relu(a, res *G.Node) (*G.Node, error) {
	shp := a.Shape().Clone()
	dims, in, name := []int{4}, []*G.Node{a}, "relu"
	if res != nil {
		dims, in, name = []int{4, 4}, []*G.Node{a, res}, "add+relu"
	}
	op := newKernelOp(name, dims, shp)
	op.run = func(out []float32, in [][]float32) error {
		x := in[0]
		var r []float32
		if len(in) > 1 {
			r = in[1]
		}
		parallelFor(len(out), func(lo, hi int) {
			o, xs := out[lo:hi], x[lo:hi]
			if r != nil {
				rs := r[lo:hi]
				rs = rs[:len(o)]
				for i := range o {
					o[i] = relu32(xs[i] + rs[i])
				}
				return
			}
			for i := range o {
				o[i] = relu32(xs[i])
			}
		})
		return nil
	}
	op.diffWRT = make([]bool, len(dims))
	for i := range op.diffWRT {
		op.diffWRT[i] = true
	}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp(name+".dX", []int{4, 4}, shp)
		d.run = func(out []float32, in [][]float32) error {
			y, dy := in[0], in[1]
			parallelFor(len(out), func(lo, hi int) {
				o, ys, ds := out[lo:hi], y[lo:hi], dy[lo:hi]
				ys, ds = ys[:len(o)], ds[:len(o)]
				for i := range o {
					o[i] = maskGrad(ds[i], positiveMask(ys[i]))
				}
			})
			return nil
		}
		dn, err := apply(d, output, grad)
		if err != nil {
			return nil, err
		}
		if res != nil {
			// the same gradient flows to both summands
			return G.Nodes{dn, dn}, nil
		}
		return G.Nodes{dn}, nil
	}
	return apply(op, in...)
}

// maxPool adds a k x k max pooling with stride s and padding p (padding
// never wins, as in PyTorch).
func (b *builder) maxPool(x *G.Node, k, s, p int) (*G.Node, error) {
	shp := x.Shape()
	n, c, h, w := shp[0], shp[1], shp[2], shp[3]
	g := newConvGeom(c, h, w, c, k, s, p)
	arg := make([]int32, n*c*g.ohw)
	if b.inference {
		// no gradient needed: no argmax, and the input is a ReLU output
		op := newKernelOp("maxpool", []int{4}, tensor.Shape{n, c, g.oh, g.ow})
		op.run = func(out []float32, in [][]float32) error {
			x := in[0]
			parallelFor(n*c, func(lo, hi int) {
				rows := make([]uint32, h*g.ow)
				for pl := lo; pl < hi; pl++ {
					maxPoolNonNeg(&g, x[pl*h*w:(pl+1)*h*w], out[pl*g.ohw:(pl+1)*g.ohw], rows)
				}
			})
			return nil
		}
		return apply(op, x)
	}
	op := newKernelOp("maxpool", []int{4}, tensor.Shape{n, c, g.oh, g.ow})
	op.run = func(out []float32, in [][]float32) error {
		x := in[0]
		parallelFor(n*c, func(lo, hi int) {
			for pl := lo; pl < hi; pl++ {
				maxPoolPlane(&g, x[pl*h*w:(pl+1)*h*w], out[pl*g.ohw:(pl+1)*g.ohw], arg[pl*g.ohw:(pl+1)*g.ohw])
			}
		})
		return nil
	}
	op.diffWRT = []bool{true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp("maxpool.dX", []int{4}, shp.Clone())
		d.run = func(out []float32, in [][]float32) error {
			dy := in[0]
			parallelFor(n*c, func(lo, hi int) {
				for pl := lo; pl < hi; pl++ {
					dst := out[pl*h*w : (pl+1)*h*w]
					clear(dst)
					for o := pl * g.ohw; o < (pl+1)*g.ohw; o++ {
						dst[arg[o]] += dy[o]
					}
				}
			})
			return nil
		}
		dn, err := apply(d, grad)
		return G.Nodes{dn}, err
	}
	return apply(op, x)
}

// globalAvgPool adds (N,C,H,W) -> (N,C) spatial mean (gorgonia's own
// GlobalAveragePool2D has no gradient in v0.9.18).
func (b *builder) globalAvgPool(x *G.Node) (*G.Node, error) {
	shp := x.Shape()
	n, c, hw := shp[0], shp[1], shp[2]*shp[3]
	op := newKernelOp("avgpool", []int{4}, tensor.Shape{n, c})
	op.run = func(out []float32, in [][]float32) error {
		x := in[0]
		parallelFor(n*c, func(lo, hi int) {
			for pl := lo; pl < hi; pl++ {
				var s float32
				for _, v := range x[pl*hw : (pl+1)*hw] {
					s += v
				}
				out[pl] = s / float32(hw)
			}
		})
		return nil
	}
	op.diffWRT = []bool{true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp("avgpool.dX", []int{2}, shp.Clone())
		d.run = func(out []float32, in [][]float32) error {
			dy := in[0]
			inv := 1 / float32(hw)
			parallelFor(n*c, func(lo, hi int) {
				for pl := lo; pl < hi; pl++ {
					v := dy[pl] * inv
					dst := out[pl*hw : (pl+1)*hw]
					for i := range dst {
						dst[i] = v
					}
				}
			})
			return nil
		}
		dn, err := apply(d, grad)
		return G.Nodes{dn}, err
	}
	return apply(op, x)
}

// linear adds y = x w^T + b for x (N,C), w (K,C), b (K).
func (b *builder) linear(x, w, bias *G.Node) (*G.Node, error) {
	n, c := x.Shape()[0], x.Shape()[1]
	k := w.Shape()[0]
	op := newKernelOp("linear", []int{2, 2, 1}, tensor.Shape{n, k})
	op.run = func(out []float32, in [][]float32) error {
		for i := 0; i < n; i++ {
			copy(out[i*k:(i+1)*k], in[2])
		}
		sgemm(false, true, n, k, c, 1, in[0], c, in[1], c, 1, out, k)
		return nil
	}
	op.diffWRT = []bool{true, true, true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		dx := newKernelOp("linear.dX", []int{2, 2}, tensor.Shape{n, c})
		dx.run = func(out []float32, in [][]float32) error {
			sgemm(false, false, n, c, k, 1, in[0], k, in[1], c, 0, out, c)
			return nil
		}
		dw := newKernelOp("linear.dW", []int{2, 2}, tensor.Shape{k, c})
		dw.run = func(out []float32, in [][]float32) error {
			sgemm(true, false, k, c, n, 1, in[0], k, in[1], c, 0, out, c)
			return nil
		}
		db := newKernelOp("linear.dB", []int{2}, tensor.Shape{k})
		db.run = func(out []float32, in [][]float32) error {
			clear(out)
			for i := 0; i < n; i++ {
				for j := 0; j < k; j++ {
					out[j] += in[0][i*k+j]
				}
			}
			return nil
		}
		dxN, err := apply(dx, grad, inputs[1])
		if err != nil {
			return nil, err
		}
		dwN, err := apply(dw, grad, inputs[0])
		if err != nil {
			return nil, err
		}
		dbN, err := apply(db, grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dxN, dwN, dbN}, nil
	}
	return apply(op, x, w, bias)
}

// maxPoolPlane pools one plane, recording the flat index of each maximum
// (the first one on ties, as PyTorch does). Interior windows, which need no
// bounds checks, take the unrolled path.
func maxPoolPlane(g *convGeom, src, dst []float32, arg []int32) {
	k, s, p, h, w := g.k, g.s, g.p, g.h, g.w
	for yo := 0; yo < g.oh; yo++ {
		iy0 := yo*s - p
		for xo := 0; xo < g.ow; xo++ {
			ix0 := xo*s - p
			o := yo*g.ow + xo
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

// maxPoolNonNeg pools one plane of non-negative values (a ReLU output),
// separably: row maxima, then column maxima. Non-negative float32 values
// order like their bit patterns, and integer max compiles to conditional
// moves, so there are no data-dependent branches.
func maxPoolNonNeg(g *convGeom, src, dst []float32, rows []uint32) {
	k, s, p, h, w := g.k, g.s, g.p, g.h, g.w
	for iy := 0; iy < h; iy++ {
		in := src[iy*w : (iy+1)*w]
		out := rows[iy*g.ow : (iy+1)*g.ow]
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
	for yo := 0; yo < g.oh; yo++ {
		y0, y1 := max(yo*s-p, 0), min(yo*s-p+k, h)
		out := dst[yo*g.ow : (yo+1)*g.ow]
		acc := rows[y0*g.ow : (y0+1)*g.ow]
		acc = acc[:len(out)]
		for i, v := range acc {
			m := v
			for y := y0 + 1; y < y1; y++ {
				m = max(m, rows[y*g.ow+i])
			}
			out[i] = math.Float32frombits(m)
		}
	}
}
