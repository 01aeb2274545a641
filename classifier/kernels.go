package classifier

import (
	"github.com/fracd/fracd/classifier/internal/vec"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Low-level float32 kernels (NCHW layout) used by the custom gorgonia Ops.
// They are multithreaded with plain goroutines; GEMMs go to OpenBLAS, which
// threads itself.

// parallelFor runs fn over [0,n) in contiguous chunks on up to GOMAXPROCS
// goroutines, handing chunks out dynamically (see runDynamic). fn must treat
// each index independently of the chunk it comes in.
func parallelFor(n int, fn func(lo, hi int)) {
	w := min(workers(), n)
	runDynamic(n, max(1, (n+4*w-1)/(4*w)), func(_, lo, hi int) { fn(lo, hi) })
}

// runDynamic runs fn(worker, lo, hi) over [0,n) in chunks of grain indices
// that up to GOMAXPROCS workers take in turn from a shared counter. The
// machine is shared: with a static split, a section lasts as long as its
// part on the busiest core; taken dynamically, the other core picks up the
// slack. Chunk boundaries do not depend on timing (only which worker runs
// a chunk does), so results stay deterministic. fn may be called several
// times per worker; worker indexes per-worker scratch.
func runDynamic(n, grain int, fn func(worker, lo, hi int)) {
	w := min(workers(), (n+grain-1)/grain)
	if w <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var next atomic.Int64
	work := func(wk int) {
		for {
			lo := int(next.Add(int64(grain))) - grain
			if lo >= n {
				return
			}
			fn(wk, lo, min(lo+grain, n))
		}
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		go func() {
			defer wg.Done()
			work(i)
		}()
	}
	work(0)
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

// im2col writes the patches of output rows [y0,y1) of one image x (C,H,W)
// into col: row r = (c,ki,kj) starts at r*ld+colOff. Single-threaded: callers
// parallelise over images or row blocks.
func (g *convGeom) im2col(x, col []float32, ld, colOff, y0, y1 int) {
	width := (y1 - y0) * g.ow
	// valid output columns per kernel column kj: x0 <= xo <= x1 with
	// 0 <= xo*s-p+kj < w (hoisted: the divisions used to dominate on the
	// small late-stage maps)
	var x0s, x1s [16]int
	for kj := 0; kj < g.k && kj < 16; kj++ {
		x0 := 0
		if kj < g.p {
			x0 = (g.p - kj + g.s - 1) / g.s
		}
		x1 := (g.w - 1 + g.p - kj) / g.s
		if x1 >= g.ow {
			x1 = g.ow - 1
		}
		x0s[kj], x1s[kj] = x0, x1
	}
	r := 0
	for ci := 0; ci < g.c; ci++ {
		src := x[ci*g.inPlaneLen : (ci+1)*g.inPlaneLen]
		for ki := 0; ki < g.k; ki++ {
			for kj := 0; kj < g.k; kj, r = kj+1, r+1 {
				dst := col[r*ld+colOff : r*ld+colOff+width]
				var x0, x1 int
				if kj < 16 {
					x0, x1 = x0s[kj], x1s[kj]
				} else {
					x0 = 0
					if kj < g.p {
						x0 = (g.p - kj + g.s - 1) / g.s
					}
					x1 = min((g.w-1+g.p-kj)/g.s, g.ow-1)
				}
				g.im2colRow(src, dst, ki, kj, x0, x1, y0, y1)
			}
		}
	}
}

// im2colRow fills one patch row (kernel offset ki,kj) for output rows
// [y0,y1); output columns outside [x0,x1] read padding.
func (g *convGeom) im2colRow(src, dst []float32, ki, kj, x0, x1, y0, y1 int) {
	for yo := y0; yo < y1; yo++ {
		d := dst[(yo-y0)*g.ow : (yo-y0+1)*g.ow]
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
			dd := d[x0 : x1+1]
			for i := range dd {
				dd[i] = row[ix]
				ix += g.s
			}
		}
		clear(d[x1+1:])
	}
}

// col2im accumulates col (rows of length ld, at colOff) into dx (C,H,W),
// which the caller has zeroed. Single-threaded (callers split by image).
func (g *convGeom) col2im(col []float32, ld, colOff int, dx []float32) {
	kk := g.k * g.k
	for ci := 0; ci < g.c; ci++ {
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
				s := src[yo*g.ow+x0 : yo*g.ow+x1+1]
				ix := x0*g.s - g.p + kj
				if g.s == 1 {
					r := row[ix : ix+len(s)]
					for i, v := range s {
						r[i] += v
					}
					continue
				}
				for _, v := range s {
					row[ix] += v
					ix += g.s
				}
			}
		}
	}
}

// colChunk is how many images' patch matrices one worker batches into a
// GEMM; batching keeps the GEMM shapes efficient in the deep layers where
// OH*OW is small.
func (g *convGeom) colChunk(n int) int {
	const budget = 2 << 20 // floats (8 MiB) per worker
	c := budget / (g.kdim * g.ohw)
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

// maxWorkers bounds the kernel worker count (per-worker scratch slots).
const maxWorkers = 64

// workspace is scratch memory shared by the ops of one graph; the ops run
// one at a time on the tape, so one set of buffers per worker suffices.
// Each worker only touches its own slot, so the slots are fixed arrays.
type workspace struct {
	col, tmp, dw [maxWorkers][]float32
	u, wt        []float32 // transformed / rotated weights (training Winograd)
	sp           []byte    // oneDNN scratchpad
}

func (ws *workspace) buf(set *[maxWorkers][]float32, worker, n int) []float32 {
	b := &set[worker]
	if cap(*b) < n {
		*b = make([]float32, n)
	}
	*b = (*b)[:n]
	return *b
}

func workers() int { return min(runtime.GOMAXPROCS(0), maxWorkers) }

// runWorkers runs fn(worker, lo, hi) over a static split of [0,n) into at
// most GOMAXPROCS parts.
func runWorkers(n int, fn func(worker, lo, hi int)) {
	w := min(workers(), n)
	if w <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		go func() {
			defer wg.Done()
			fn(i, i*n/w, (i+1)*n/w)
		}()
	}
	fn(0, 0, n/w)
	wg.Wait()
}

// relu32 is max(v,0) without a data-dependent branch (signs are random, so
// a branch would mispredict half the time).
func relu32(v float32) float32 {
	b := math.Float32bits(v)
	return math.Float32frombits(b &^ uint32(int32(b)>>31))
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
				x4[0], x4[1], x4[2], x4[3] = relu32(x4[0]+b+r4[0]), relu32(x4[1]+b+r4[1]), relu32(x4[2]+b+r4[2]), relu32(x4[3]+b+r4[3])
			}
			for ; i < len(row); i++ {
				row[i] = relu32(row[i] + b + rr[i])
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
				x4[0], x4[1], x4[2], x4[3] = relu32(x4[0]+b), relu32(x4[1]+b), relu32(x4[2]+b), relu32(x4[3]+b)
			}
			for ; i < len(row); i++ {
				row[i] = relu32(row[i] + b)
			}
		case bias != nil:
			for i := vec.Bias(row, b); i < len(row); i++ {
				row[i] += b
			}
		}
	}
}

// convForward computes y = conv(x, w) for a batch, then the epilogue:
// per-channel bias, residual add, ReLU (each optional). OpenBLAS runs
// single-threaded inside each worker: the work is split across images, or,
// for fewer images than workers, across output rows (or output channels
// when the image is small), so patch extraction, GEMM and epilogue of a
// block run on one core while its data is in cache.
func convForward(ws *workspace, g *convGeom, n int, x, w, y, bias, res []float32, relu bool) {
	inLen, outLen := g.c*g.inPlaneLen, g.cout*g.ohw
	var resOf func(i int) []float32
	if res != nil {
		resOf = func(i int) []float32 { return res[i*outLen : (i+1)*outLen] }
	} else {
		resOf = func(int) []float32 { return nil }
	}
	nw := workers()
	if n >= nw || nw == 1 {
		runWorkers(n, func(wk, lo, hi int) {
			chunk := g.colChunk(hi - lo)
			for n0 := lo; n0 < hi; n0 += chunk {
				m := min(chunk, hi-n0)
				if g.pointwise || m == 1 {
					for i := n0; i < n0+m; i++ {
						src := x[i*inLen : (i+1)*inLen]
						if !g.pointwise {
							col := ws.buf(&ws.col, wk, g.kdim*g.ohw)
							g.im2col(src, col, g.ohw, 0, 0, g.oh)
							src = col
						}
						yi := y[i*outLen : (i+1)*outLen]
						sgemm(false, false, g.cout, g.ohw, g.kdim, 1, w, g.kdim, src, g.ohw, 0, yi, g.ohw)
						epilogue(yi, bias, resOf(i), relu, g.ohw, 0, g.cout, 0, g.ohw)
					}
					continue
				}
				ld := m * g.ohw
				col := ws.buf(&ws.col, wk, g.kdim*ld)
				for i := 0; i < m; i++ {
					g.im2col(x[(n0+i)*inLen:], col, ld, i*g.ohw, 0, g.oh)
				}
				tmp := ws.buf(&ws.tmp, wk, g.cout*ld)
				sgemm(false, false, g.cout, ld, g.kdim, 1, w, g.kdim, col, ld, 0, tmp, ld)
				for i := 0; i < m; i++ {
					yi := y[(n0+i)*outLen : (n0+i+1)*outLen]
					for co := 0; co < g.cout; co++ {
						copy(yi[co*g.ohw:(co+1)*g.ohw], tmp[co*ld+i*g.ohw:])
					}
					epilogue(yi, bias, resOf(n0+i), relu, g.ohw, 0, g.cout, 0, g.ohw)
				}
			}
		})
		return
	}
	for i := 0; i < n; i++ {
		xi, yi, ri := x[i*inLen:(i+1)*inLen], y[i*outLen:(i+1)*outLen], resOf(i)
		if g.ohw >= 2*g.cout && g.oh >= nw {
			// wide output: split output rows, so each worker extracts,
			// multiplies and finishes its own column block (splitting the
			// channels instead would make every worker pack all of B)
			// Go in blocks of rows small enough that the block's patches
			// and outputs stay in L2 from extraction through GEMM to
			// epilogue.
			perRow := g.cout * g.ow
			if !g.pointwise {
				perRow += g.kdim * g.ow
			}
			// Blocks are handed out dynamically (runDynamic), at most
			// oh/(2*workers) rows so that both cores get several.
			step := max(1, min(l2BlockFloats/perRow, g.oh/(2*nw)))
			runDynamic(g.oh, step, func(wk, ya, yb int) {
				j0, j1 := ya*g.ow, yb*g.ow
				src, ldb := xi[j0:], g.ohw
				if !g.pointwise {
					col := ws.buf(&ws.col, wk, g.kdim*(j1-j0))
					g.im2col(xi, col, j1-j0, 0, ya, yb)
					src, ldb = col, j1-j0
				}
				sgemm(false, false, g.cout, j1-j0, g.kdim, 1, w, g.kdim, src, ldb, 0, yi[j0:], g.ohw)
				epilogue(yi, bias, ri, relu, g.ohw, 0, g.cout, j0, j1)
			})
			continue
		}
		// small image, many channels: split output channels over one shared
		// patch matrix (each worker then packs only its part of the weights)
		src := xi
		if !g.pointwise {
			col := ws.buf(&ws.col, 0, g.kdim*g.ohw)
			parallelFor(g.oh, func(y0, y1 int) {
				g.im2col(xi, col, g.ohw, y0*g.ow, y0, y1)
			})
			src = col
		}
		// channel blocks (multiples of 16 rows, the GEMM kernel's unroll),
		// two per worker so a busy core's share can move to the other;
		// each block repacks the patch matrix, so not more
		grain := (g.cout + 2*nw - 1) / (2 * nw)
		grain = (grain + 15) &^ 15
		runDynamic(g.cout, grain, func(_, c0, c1 int) {
			sgemm(false, false, c1-c0, g.ohw, g.kdim, 1, w[c0*g.kdim:], g.kdim, src, g.ohw, 0, yi[c0*g.ohw:], g.ohw)
			epilogue(yi, bias, ri, relu, g.ohw, c0, c1, 0, g.ohw)
		})
	}
}

// gatherRows copies dy for images n0..n0+m from NCHW into (Cout, m*OHW).
func gatherRows(g *convGeom, dy []float32, n0, m int, dst []float32) {
	outLen, ld := g.cout*g.ohw, m*g.ohw
	for co := 0; co < g.cout; co++ {
		for i := 0; i < m; i++ {
			copy(dst[co*ld+i*g.ohw:co*ld+(i+1)*g.ohw], dy[(n0+i)*outLen+co*g.ohw:])
		}
	}
}

// convBackwardData computes dx = conv^T(dy, w), images split over workers.
func convBackwardData(ws *workspace, g *convGeom, n int, dy, w, dx []float32) {
	inLen, outLen := g.c*g.inPlaneLen, g.cout*g.ohw
	runWorkers(n, func(wk, lo, hi int) {
		if g.pointwise {
			for i := lo; i < hi; i++ {
				sgemm(true, false, g.kdim, g.ohw, g.cout, 1, w, g.kdim, dy[i*outLen:], g.ohw, 0, dx[i*inLen:], g.ohw)
			}
			return
		}
		clear(dx[lo*inLen : hi*inLen])
		chunk := g.colChunk(hi - lo)
		for n0 := lo; n0 < hi; n0 += chunk {
			m := min(chunk, hi-n0)
			ld := m * g.ohw
			src := dy[n0*outLen:]
			if m > 1 {
				src = ws.buf(&ws.tmp, wk, g.cout*ld)
				gatherRows(g, dy, n0, m, src)
			}
			dcol := ws.buf(&ws.col, wk, g.kdim*ld)
			sgemm(true, false, g.kdim, ld, g.cout, 1, w, g.kdim, src, ld, 0, dcol, ld)
			for i := 0; i < m; i++ {
				g.col2im(dcol, ld, i*g.ohw, dx[(n0+i)*inLen:])
			}
		}
	})
}

// convBackwardFilter computes dw = sum over images of dy * patches(x)^T;
// each worker accumulates its images into a private buffer, summed at the end.
func convBackwardFilter(ws *workspace, g *convGeom, n int, x, dy, dw []float32) {
	inLen, outLen := g.c*g.inPlaneLen, g.cout*g.ohw
	nw := min(workers(), n)
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
		if g.pointwise {
			for i := lo; i < hi; i++ {
				sgemm(false, true, g.cout, g.kdim, g.ohw, 1, dy[i*outLen:], g.ohw, x[i*inLen:], g.ohw, beta(), acc, g.kdim)
			}
			return
		}
		chunk := g.colChunk(hi - lo)
		for n0 := lo; n0 < hi; n0 += chunk {
			m := min(chunk, hi-n0)
			ld := m * g.ohw
			col := ws.buf(&ws.col, wk, g.kdim*ld)
			for i := 0; i < m; i++ {
				g.im2col(x[(n0+i)*inLen:], col, ld, i*g.ohw, 0, g.oh)
			}
			src := dy[n0*outLen:]
			if m > 1 {
				src = ws.buf(&ws.tmp, wk, g.cout*ld)
				gatherRows(g, dy, n0, m, src)
			}
			sgemm(false, true, g.cout, g.kdim, ld, 1, src, ld, col, ld, beta(), acc, g.kdim)
		}
	})
	if nw > 1 {
		parallelFor(len(dw), func(lo, hi int) {
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
