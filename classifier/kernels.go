package classifier

import (
	"runtime"
	"sync"
)

// Low-level float32 kernels (NCHW layout) used by the custom gorgonia Ops.
// They are multithreaded with plain goroutines; GEMMs go to OpenBLAS, which
// threads itself.

// parallelFor splits [0,n) into at most GOMAXPROCS contiguous chunks.
func parallelFor(n int, fn func(lo, hi int)) {
	w := runtime.GOMAXPROCS(0)
	if w > n {
		w = n
	}
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		lo, hi := i*n/w, (i+1)*n/w
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, n/w)
	wg.Wait()
}

// convGeom is the geometry of one 2-D convolution / pooling window.
type convGeom struct {
	c, h, w    int // input channels and size
	k, s, p    int // square kernel, stride, padding
	oh, ow     int // output size
	cout       int
	kdim, ohw  int // c*k*k, oh*ow
	pointwise  bool
	inPlaneLen int
}

func newConvGeom(c, h, w, cout, k, s, p int) convGeom {
	g := convGeom{c: c, h: h, w: w, k: k, s: s, p: p, cout: cout}
	g.oh = (h+2*p-k)/s + 1
	g.ow = (w+2*p-k)/s + 1
	g.kdim = c * k * k
	g.ohw = g.oh * g.ow
	g.pointwise = k == 1 && s == 1 && p == 0
	g.inPlaneLen = h * w
	return g
}

// im2col writes the patches of one image x (C,H,W) into col, row r =
// (c,ki,kj), column offset colOff within rows of length ld.
func (g *convGeom) im2col(x, col []float32, ld, colOff int) {
	kk := g.k * g.k
	parallelFor(g.kdim, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			ci, ki, kj := r/kk, (r/g.k)%g.k, r%g.k
			src := x[ci*g.inPlaneLen : (ci+1)*g.inPlaneLen]
			dst := col[r*ld+colOff : r*ld+colOff+g.ohw]
			// valid output columns: 0 <= xo*s-p+kj < w
			x0 := 0
			if kj < g.p {
				x0 = (g.p - kj + g.s - 1) / g.s
			}
			x1 := (g.w - 1 + g.p - kj) / g.s
			if x1 >= g.ow {
				x1 = g.ow - 1
			}
			for yo := 0; yo < g.oh; yo++ {
				d := dst[yo*g.ow : (yo+1)*g.ow]
				iy := yo*g.s - g.p + ki
				if iy < 0 || iy >= g.h || x1 < x0 {
					clear(d)
					continue
				}
				row := src[iy*g.w : (iy+1)*g.w]
				clear(d[:x0])
				if g.s == 1 {
					copy(d[x0:x1+1], row[x0-g.p+kj:])
				} else {
					ix := x0*g.s - g.p + kj
					for xo := x0; xo <= x1; xo++ {
						d[xo] = row[ix]
						ix += g.s
					}
				}
				clear(d[x1+1:])
			}
		}
	})
}

// col2im accumulates col (rows of length ld, at colOff) into dx (C,H,W),
// which the caller has zeroed. Parallel over channels so writes never race.
func (g *convGeom) col2im(col []float32, ld, colOff int, dx []float32) {
	kk := g.k * g.k
	parallelFor(g.c, func(lo, hi int) {
		for ci := lo; ci < hi; ci++ {
			dst := dx[ci*g.inPlaneLen : (ci+1)*g.inPlaneLen]
			for q := 0; q < kk; q++ {
				r := ci*kk + q
				ki, kj := q/g.k, q%g.k
				src := col[r*ld+colOff : r*ld+colOff+g.ohw]
				x0 := 0
				if kj < g.p {
					x0 = (g.p - kj + g.s - 1) / g.s
				}
				x1 := (g.w - 1 + g.p - kj) / g.s
				if x1 >= g.ow {
					x1 = g.ow - 1
				}
				if x1 < x0 {
					continue
				}
				for yo := 0; yo < g.oh; yo++ {
					iy := yo*g.s - g.p + ki
					if iy < 0 || iy >= g.h {
						continue
					}
					row := dst[iy*g.w : (iy+1)*g.w]
					s := src[yo*g.ow : (yo+1)*g.ow]
					ix := x0*g.s - g.p + kj
					if g.s == 1 {
						r := row[ix : ix+x1-x0+1]
						for i, v := range s[x0 : x1+1] {
							r[i] += v
						}
						continue
					}
					for xo := x0; xo <= x1; xo++ {
						row[ix] += s[xo]
						ix += g.s
					}
				}
			}
		}
	})
}

// colChunk is how many images' patch matrices fit the im2col budget at once;
// batching images into one GEMM keeps the GEMM shapes efficient in the deep
// layers where OH*OW is small.
func (g *convGeom) colChunk(n int) int {
	const budget = 4 << 20 // floats (16 MiB)
	c := budget / (g.kdim * g.ohw)
	if c < 1 {
		c = 1
	}
	if c > n {
		c = n
	}
	return c
}

// workspace is scratch memory shared by the ops of one graph; the ops run
// one at a time on the tape, so a single growable buffer per role suffices.
type workspace struct {
	col []float32
	tmp []float32
}

func grow(b *[]float32, n int) []float32 {
	if cap(*b) < n {
		*b = make([]float32, n)
	}
	*b = (*b)[:n]
	return *b
}

// convForward computes y = conv(x, w) for a batch, then applies the
// epilogue: per-channel bias, residual add, ReLU (each optional).
func convForward(ws *workspace, g *convGeom, n int, x, w, y, bias, res []float32, relu bool) {
	inLen, outLen := g.c*g.inPlaneLen, g.cout*g.ohw
	chunk := g.colChunk(n)
	for n0 := 0; n0 < n; n0 += chunk {
		m := min(chunk, n-n0)
		if g.pointwise || m == 1 {
			for i := n0; i < n0+m; i++ {
				src := x[i*inLen : (i+1)*inLen]
				if !g.pointwise {
					col := grow(&ws.col, g.kdim*g.ohw)
					g.im2col(src, col, g.ohw, 0)
					src = col
				}
				sgemm(false, false, g.cout, g.ohw, g.kdim, 1, w, g.kdim, src, g.ohw, 0, y[i*outLen:], g.ohw)
			}
		} else {
			ld := m * g.ohw
			col := grow(&ws.col, g.kdim*ld)
			for i := 0; i < m; i++ {
				g.im2col(x[(n0+i)*inLen:], col, ld, i*g.ohw)
			}
			tmp := grow(&ws.tmp, g.cout*ld)
			sgemm(false, false, g.cout, ld, g.kdim, 1, w, g.kdim, col, ld, 0, tmp, ld)
			// scatter (Cout, m*OHW) back to NCHW
			parallelFor(g.cout, func(lo, hi int) {
				for co := lo; co < hi; co++ {
					for i := 0; i < m; i++ {
						copy(y[(n0+i)*outLen+co*g.ohw:(n0+i)*outLen+(co+1)*g.ohw], tmp[co*ld+i*g.ohw:])
					}
				}
			})
		}
	}
	if bias == nil && res == nil && !relu {
		return
	}
	parallelFor(n*g.cout, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := y[r*g.ohw : (r+1)*g.ohw]
			var b float32
			if bias != nil {
				b = bias[r%g.cout]
			}
			switch {
			case res != nil && relu:
				rr := res[r*g.ohw : (r+1)*g.ohw]
				for i, v := range row {
					v += b + rr[i]
					if v < 0 {
						v = 0
					}
					row[i] = v
				}
			case res != nil:
				rr := res[r*g.ohw : (r+1)*g.ohw]
				for i, v := range row {
					row[i] = v + b + rr[i]
				}
			case relu:
				for i, v := range row {
					v += b
					if v < 0 {
						v = 0
					}
					row[i] = v
				}
			default:
				for i := range row {
					row[i] += b
				}
			}
		}
	})
}

// gatherRows copies dy for images n0..n0+m from NCHW into (Cout, m*OHW).
func gatherRows(g *convGeom, dy []float32, n0, m int, dst []float32) {
	outLen, ld := g.cout*g.ohw, m*g.ohw
	parallelFor(g.cout, func(lo, hi int) {
		for co := lo; co < hi; co++ {
			for i := 0; i < m; i++ {
				copy(dst[co*ld+i*g.ohw:co*ld+(i+1)*g.ohw], dy[(n0+i)*outLen+co*g.ohw:])
			}
		}
	})
}

// convBackwardData computes dx = conv^T(dy, w).
func convBackwardData(ws *workspace, g *convGeom, n int, dy, w, dx []float32) {
	inLen, outLen := g.c*g.inPlaneLen, g.cout*g.ohw
	if g.pointwise {
		for i := 0; i < n; i++ {
			sgemm(true, false, g.kdim, g.ohw, g.cout, 1, w, g.kdim, dy[i*outLen:], g.ohw, 0, dx[i*inLen:], g.ohw)
		}
		return
	}
	clear(dx[:n*inLen])
	chunk := g.colChunk(n)
	for n0 := 0; n0 < n; n0 += chunk {
		m := min(chunk, n-n0)
		ld := m * g.ohw
		src := dy[n0*outLen:]
		if m > 1 {
			src = grow(&ws.tmp, g.cout*ld)
			gatherRows(g, dy, n0, m, src)
		}
		dcol := grow(&ws.col, g.kdim*ld)
		sgemm(true, false, g.kdim, ld, g.cout, 1, w, g.kdim, src, ld, 0, dcol, ld)
		for i := 0; i < m; i++ {
			g.col2im(dcol, ld, i*g.ohw, dx[(n0+i)*inLen:])
		}
	}
}

// convBackwardFilter computes dw = sum over images of dy * patches(x)^T.
func convBackwardFilter(ws *workspace, g *convGeom, n int, x, dy, dw []float32) {
	inLen, outLen := g.c*g.inPlaneLen, g.cout*g.ohw
	if g.pointwise {
		for i := 0; i < n; i++ {
			beta := float32(1)
			if i == 0 {
				beta = 0
			}
			sgemm(false, true, g.cout, g.kdim, g.ohw, 1, dy[i*outLen:], g.ohw, x[i*inLen:], g.ohw, beta, dw, g.kdim)
		}
		return
	}
	chunk := g.colChunk(n)
	for n0 := 0; n0 < n; n0 += chunk {
		m := min(chunk, n-n0)
		ld := m * g.ohw
		col := grow(&ws.col, g.kdim*ld)
		for i := 0; i < m; i++ {
			g.im2col(x[(n0+i)*inLen:], col, ld, i*g.ohw)
		}
		src := dy[n0*outLen:]
		if m > 1 {
			src = grow(&ws.tmp, g.cout*ld)
			gatherRows(g, dy, n0, m, src)
		}
		beta := float32(1)
		if n0 == 0 {
			beta = 0
		}
		sgemm(false, true, g.cout, g.kdim, ld, 1, src, ld, col, ld, beta, dw, g.kdim)
	}
}
