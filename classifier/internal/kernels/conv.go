package kernels

import (
	"github.com/fracd/fracd/classifier/internal/vec"
)

// Convolution on NCHW float32 slices: im2col/col2im around single-threaded
// OpenBLAS GEMMs, split over Workers, with a fused epilogue.

// Geom is the geometry of one 2-D convolution / pooling window.
type Geom struct {
	C, H, W    int // input channels and size
	K, S, P    int // square kernel, stride, padding
	OH, OW     int // output size
	Cout       int
	KDim, OHW  int // C*K*K, OH*OW
	Pointwise  bool
	InPlaneLen int
}

// NewGeom is the geometry of a k x k, stride s, padding p convolution
// from c channels of h x w to cout channels.
func NewGeom(c, h, w, cout, k, s, p int) Geom {
	g := Geom{C: c, H: h, W: w, K: k, S: s, P: p, Cout: cout}
	g.OH = (h+2*p-k)/s + 1
	g.OW = (w+2*p-k)/s + 1
	g.KDim = c * k * k
	g.OHW = g.OH * g.OW
	g.Pointwise = k == 1 && s == 1 && p == 0
	g.InPlaneLen = h * w
	return g
}

// im2col writes the patches of output rows [y0,y1) of one image x (C,H,W)
// into col: row r = (c,ki,kj) starts at r*ld+colOff. Single-threaded: callers
// parallelise over images or row blocks.
func (g *Geom) im2col(x, col []float32, ld, colOff, y0, y1 int) {
	width := (y1 - y0) * g.OW
	// the column ranges, hoisted: the divisions used to dominate on the
	// small late-stage maps
	var x0s, x1s [16]int
	for kj := 0; kj < g.K && kj < 16; kj++ {
		x0s[kj], x1s[kj] = g.colRange(kj)
	}
	r := 0
	for ci := 0; ci < g.C; ci++ {
		src := x[ci*g.InPlaneLen : (ci+1)*g.InPlaneLen]
		for ki := 0; ki < g.K; ki++ {
			for kj := 0; kj < g.K; kj, r = kj+1, r+1 {
				dst := col[r*ld+colOff : r*ld+colOff+width]
				var x0, x1 int
				if kj < 16 {
					x0, x1 = x0s[kj], x1s[kj]
				} else {
					x0, x1 = g.colRange(kj)
				}
				g.im2colRow(src, dst, ki, kj, x0, x1, y0, y1)
			}
		}
	}
}

// colRange is the range x0 <= xo <= x1 of output columns whose input
// column xo*S-P+kj lies inside the image (empty when x1 < x0).
func (g *Geom) colRange(kj int) (x0, x1 int) {
	if kj < g.P {
		x0 = (g.P - kj + g.S - 1) / g.S
	}
	return x0, min((g.W-1+g.P-kj)/g.S, g.OW-1)
}

// im2colRow fills one patch row (kernel offset ki,kj) for output rows
// [y0,y1); output columns outside [x0,x1] read padding.
func (g *Geom) im2colRow(src, dst []float32, ki, kj, x0, x1, y0, y1 int) {
	for yo := y0; yo < y1; yo++ {
		d := dst[(yo-y0)*g.OW : (yo-y0+1)*g.OW]
		iy := yo*g.S - g.P + ki
		if iy < 0 || iy >= g.H || x1 < x0 {
			clear(d)
			continue
		}
		row := src[iy*g.W : (iy+1)*g.W]
		clear(d[:x0])
		if g.S == 1 {
			copy(d[x0:x1+1], row[x0-g.P+kj:])
		} else {
			ix := x0*g.S - g.P + kj
			dd := d[x0 : x1+1]
			for i := range dd {
				dd[i] = row[ix]
				ix += g.S
			}
		}
		clear(d[x1+1:])
	}
}

// col2im accumulates col (rows of length ld, at colOff) into dx (C,H,W),
// which the caller has zeroed. Single-threaded (callers split by image).
func (g *Geom) col2im(col []float32, ld, colOff int, dx []float32) {
	kk := g.K * g.K
	for ci := 0; ci < g.C; ci++ {
		dst := dx[ci*g.InPlaneLen : (ci+1)*g.InPlaneLen]
		for q := 0; q < kk; q++ {
			r := ci*kk + q
			ki, kj := q/g.K, q%g.K
			src := col[r*ld+colOff : r*ld+colOff+g.OHW]
			x0, x1 := g.colRange(kj)
			if x1 < x0 {
				continue
			}
			for yo := 0; yo < g.OH; yo++ {
				iy := yo*g.S - g.P + ki
				if iy < 0 || iy >= g.H {
					continue
				}
				row := dst[iy*g.W : (iy+1)*g.W]
				s := src[yo*g.OW+x0 : yo*g.OW+x1+1]
				ix := x0*g.S - g.P + kj
				if g.S == 1 {
					r := row[ix : ix+len(s)]
					for i, v := range s {
						r[i] += v
					}
					continue
				}
				for _, v := range s {
					row[ix] += v
					ix += g.S
				}
			}
		}
	}
}

// colChunk is how many images' patch matrices one worker batches into a
// GEMM; batching keeps the GEMM shapes efficient in the deep layers where
// OH*OW is small.
func (g *Geom) colChunk(n int) int {
	const budget = 2 << 20 // floats (8 MiB) per worker
	c := budget / (g.KDim * g.OHW)
	if c < 1 {
		c = 1
	}
	if c > n {
		c = n
	}
	return c
}

// l2BlockFloats is the working set (patches + outputs) of one row block in
// single-image convolutions: half of this machine's 1 MiB L2 per core.
var l2BlockFloats = 128 << 10

// Workspace is scratch memory shared by the ops of one graph; the ops run
// one at a time on the tape, so one set of buffers per worker suffices.
// Each worker only touches its own slot, so the slots are fixed arrays.
// The zero value is ready to use.
type Workspace struct {
	col, tmp, dw [maxWorkers][]float32
	u, wt        []float32 // transformed / rotated weights (training Winograd)
}

func (ws *Workspace) buf(set *[maxWorkers][]float32, worker, n int) []float32 {
	b := &set[worker]
	if cap(*b) < n {
		*b = make([]float32, n)
	}
	*b = (*b)[:n]
	return *b
}

// epilogue applies bias, residual and ReLU to rows [c0,c1) and columns
// [j0,j1) of one image's output (Cout, OHW).
func epilogue(y, bias, res []float32, relu bool, ohw, c0, c1, j0, j1 int) {
	for co := c0; co < c1; co++ {
		row := y[co*ohw+j0 : co*ohw+j1]
		var b float32
		if bias != nil {
			b = bias[co]
		}
		switch {
		case res != nil && relu:
			rr := res[co*ohw+j0 : co*ohw+j1]
			rr = rr[:len(row)]
			i := vec.BiasResRelu(row, rr, b)
			for ; i+4 <= len(row); i += 4 {
				r4, x4 := rr[i:i+4], row[i:i+4]
				x4[0], x4[1], x4[2], x4[3] = Relu32(x4[0]+b+r4[0]), Relu32(x4[1]+b+r4[1]), Relu32(x4[2]+b+r4[2]), Relu32(x4[3]+b+r4[3])
			}
			for ; i < len(row); i++ {
				row[i] = Relu32(row[i] + b + rr[i])
			}
		case res != nil:
			rr := res[co*ohw+j0 : co*ohw+j1]
			rr = rr[:len(row)]
			for i, v := range row {
				row[i] = v + b + rr[i]
			}
		case relu:
			i := vec.BiasRelu(row, b)
			for ; i+4 <= len(row); i += 4 {
				x4 := row[i : i+4]
				x4[0], x4[1], x4[2], x4[3] = Relu32(x4[0]+b), Relu32(x4[1]+b), Relu32(x4[2]+b), Relu32(x4[3]+b)
			}
			for ; i < len(row); i++ {
				row[i] = Relu32(row[i] + b)
			}
		case bias != nil:
			for i := vec.Bias(row, b); i < len(row); i++ {
				row[i] += b
			}
		}
	}
}

// ConvForward computes y = conv(x, w) for a batch, then the epilogue:
// per-channel bias, residual add, ReLU (each optional). OpenBLAS runs
// single-threaded inside each worker: the work is split across images, or,
// for fewer images than Workers, across output rows (or output channels
// when the image is small), so patch extraction, GEMM and epilogue of a
// block run on one core while its data is in cache.
func ConvForward(ws *Workspace, g *Geom, n int, x, w, y, bias, res []float32, relu bool) {
	inLen, outLen := g.C*g.InPlaneLen, g.Cout*g.OHW
	var resOf func(i int) []float32
	if res != nil {
		resOf = func(i int) []float32 { return res[i*outLen : (i+1)*outLen] }
	} else {
		resOf = func(int) []float32 { return nil }
	}
	nw := Workers()
	if n >= nw || nw == 1 {
		runWorkers(n, func(wk, lo, hi int) {
			chunk := g.colChunk(hi - lo)
			for n0 := lo; n0 < hi; n0 += chunk {
				m := min(chunk, hi-n0)
				if g.Pointwise || m == 1 {
					for i := n0; i < n0+m; i++ {
						src := x[i*inLen : (i+1)*inLen]
						if !g.Pointwise {
							col := ws.buf(&ws.col, wk, g.KDim*g.OHW)
							g.im2col(src, col, g.OHW, 0, 0, g.OH)
							src = col
						}
						yi := y[i*outLen : (i+1)*outLen]
						Sgemm(false, false, g.Cout, g.OHW, g.KDim, 1, w, g.KDim, src, g.OHW, 0, yi, g.OHW)
						epilogue(yi, bias, resOf(i), relu, g.OHW, 0, g.Cout, 0, g.OHW)
					}
					continue
				}
				ld := m * g.OHW
				col := ws.buf(&ws.col, wk, g.KDim*ld)
				for i := 0; i < m; i++ {
					g.im2col(x[(n0+i)*inLen:], col, ld, i*g.OHW, 0, g.OH)
				}
				tmp := ws.buf(&ws.tmp, wk, g.Cout*ld)
				Sgemm(false, false, g.Cout, ld, g.KDim, 1, w, g.KDim, col, ld, 0, tmp, ld)
				for i := 0; i < m; i++ {
					yi := y[(n0+i)*outLen : (n0+i+1)*outLen]
					for co := 0; co < g.Cout; co++ {
						copy(yi[co*g.OHW:(co+1)*g.OHW], tmp[co*ld+i*g.OHW:])
					}
					epilogue(yi, bias, resOf(n0+i), relu, g.OHW, 0, g.Cout, 0, g.OHW)
				}
			}
		})
		return
	}
	for i := 0; i < n; i++ {
		xi, yi, ri := x[i*inLen:(i+1)*inLen], y[i*outLen:(i+1)*outLen], resOf(i)
		if g.OHW >= 2*g.Cout && g.OH >= nw {
			// wide output: split output rows, so each worker extracts,
			// multiplies and finishes its own column block (splitting the
			// channels instead would make every worker pack all of B)
			// Go in blocks of rows small enough that the block's patches
			// and outputs stay in L2 from extraction through GEMM to
			// epilogue.
			perRow := g.Cout * g.OW
			if !g.Pointwise {
				perRow += g.KDim * g.OW
			}
			// Blocks are handed out dynamically (RunDynamic), at most
			// oh/(2*Workers) rows so that both cores get several.
			step := max(1, min(l2BlockFloats/perRow, g.OH/(2*nw)))
			RunDynamic(g.OH, step, func(wk, ya, yb int) {
				j0, j1 := ya*g.OW, yb*g.OW
				src, ldb := xi[j0:], g.OHW
				if !g.Pointwise {
					col := ws.buf(&ws.col, wk, g.KDim*(j1-j0))
					g.im2col(xi, col, j1-j0, 0, ya, yb)
					src, ldb = col, j1-j0
				}
				Sgemm(false, false, g.Cout, j1-j0, g.KDim, 1, w, g.KDim, src, ldb, 0, yi[j0:], g.OHW)
				epilogue(yi, bias, ri, relu, g.OHW, 0, g.Cout, j0, j1)
			})
			continue
		}
		// small image, many channels: split output channels over one shared
		// patch matrix (each worker then packs only its part of the weights)
		src := xi
		if !g.Pointwise {
			col := ws.buf(&ws.col, 0, g.KDim*g.OHW)
			ParallelFor(g.OH, func(y0, y1 int) {
				g.im2col(xi, col, g.OHW, y0*g.OW, y0, y1)
			})
			src = col
		}
		// channel blocks (multiples of 16 rows, the GEMM kernel's unroll),
		// two per worker so a busy core's share can move to the other;
		// each block repacks the patch matrix, so not more
		grain := (g.Cout + 2*nw - 1) / (2 * nw)
		grain = (grain + 15) &^ 15
		RunDynamic(g.Cout, grain, func(_, c0, c1 int) {
			Sgemm(false, false, c1-c0, g.OHW, g.KDim, 1, w[c0*g.KDim:], g.KDim, src, g.OHW, 0, yi[c0*g.OHW:], g.OHW)
			epilogue(yi, bias, ri, relu, g.OHW, c0, c1, 0, g.OHW)
		})
	}
}

// gatherRows copies dy for images n0..n0+m from NCHW into (Cout, m*OHW).
func gatherRows(g *Geom, dy []float32, n0, m int, dst []float32) {
	outLen, ld := g.Cout*g.OHW, m*g.OHW
	for co := 0; co < g.Cout; co++ {
		for i := 0; i < m; i++ {
			copy(dst[co*ld+i*g.OHW:co*ld+(i+1)*g.OHW], dy[(n0+i)*outLen+co*g.OHW:])
		}
	}
}

// ConvBackwardData computes dx = conv^T(dy, w), images split over Workers.
func ConvBackwardData(ws *Workspace, g *Geom, n int, dy, w, dx []float32) {
	inLen, outLen := g.C*g.InPlaneLen, g.Cout*g.OHW
	runWorkers(n, func(wk, lo, hi int) {
		if g.Pointwise {
			for i := lo; i < hi; i++ {
				Sgemm(true, false, g.KDim, g.OHW, g.Cout, 1, w, g.KDim, dy[i*outLen:], g.OHW, 0, dx[i*inLen:], g.OHW)
			}
			return
		}
		clear(dx[lo*inLen : hi*inLen])
		chunk := g.colChunk(hi - lo)
		for n0 := lo; n0 < hi; n0 += chunk {
			m := min(chunk, hi-n0)
			ld := m * g.OHW
			src := dy[n0*outLen:]
			if m > 1 {
				src = ws.buf(&ws.tmp, wk, g.Cout*ld)
				gatherRows(g, dy, n0, m, src)
			}
			dcol := ws.buf(&ws.col, wk, g.KDim*ld)
			Sgemm(true, false, g.KDim, ld, g.Cout, 1, w, g.KDim, src, ld, 0, dcol, ld)
			for i := 0; i < m; i++ {
				g.col2im(dcol, ld, i*g.OHW, dx[(n0+i)*inLen:])
			}
		}
	})
}

// ConvBackwardFilter computes dw = sum over images of dy * patches(x)^T;
// each worker accumulates its images into a private buffer, summed at the end.
func ConvBackwardFilter(ws *Workspace, g *Geom, n int, x, dy, dw []float32) {
	inLen, outLen := g.C*g.InPlaneLen, g.Cout*g.OHW
	nw := min(Workers(), n)
	runWorkers(n, func(wk, lo, hi int) {
		acc := dw
		if wk > 0 {
			acc = ws.buf(&ws.dw, wk, len(dw))
		}
		first := true
		beta := func() float32 {
			if first {
				first = false
				return 0
			}
			return 1
		}
		if g.Pointwise {
			for i := lo; i < hi; i++ {
				Sgemm(false, true, g.Cout, g.KDim, g.OHW, 1, dy[i*outLen:], g.OHW, x[i*inLen:], g.OHW, beta(), acc, g.KDim)
			}
			return
		}
		chunk := g.colChunk(hi - lo)
		for n0 := lo; n0 < hi; n0 += chunk {
			m := min(chunk, hi-n0)
			ld := m * g.OHW
			col := ws.buf(&ws.col, wk, g.KDim*ld)
			for i := 0; i < m; i++ {
				g.im2col(x[(n0+i)*inLen:], col, ld, i*g.OHW, 0, g.OH)
			}
			src := dy[n0*outLen:]
			if m > 1 {
				src = ws.buf(&ws.tmp, wk, g.Cout*ld)
				gatherRows(g, dy, n0, m, src)
			}
			Sgemm(false, true, g.Cout, g.KDim, ld, 1, src, ld, col, ld, beta(), acc, g.KDim)
		}
	})
	if nw > 1 {
		ParallelFor(len(dw), func(lo, hi int) {
			for wk := 1; wk < nw; wk++ {
				p := ws.dw[wk][lo:hi]
				d := dw[lo:hi]
				for i, v := range p {
					d[i] += v
				}
			}
		})
	}
}
