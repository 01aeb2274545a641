package classifier

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/dnnl"
)

// Training ops on oneDNN (nChw16c activations, see ops_dnnl.go). The
// parameters and their gradients stay OIHW / per channel as the solver and
// the checkpoints expect; weights are reordered into the kernels' layouts
// each step (they change every step), which costs a few percent.

// weightsIn returns w in the layout prim p wants for arg, reordering it
// into buf when that layout is not OIHW.
type weightsIn struct {
	reorder *dnnl.Prim // nil: OIHW as it is
	buf     []float32
}

func newWeightsIn(p *dnnl.Prim, arg int, g *convGeom) (*weightsIn, error) {
	plain := dnnl.PlainMD(g.cout, g.c, g.k, g.k, dnnl.NCHW, true)
	if p.MD(arg).Same(plain) {
		return &weightsIn{}, nil
	}
	r, err := dnnl.Reorder(plain, p.MD(arg), workers())
	if err != nil {
		return nil, err
	}
	return &weightsIn{reorder: r, buf: make([]float32, p.ArgFloats(arg))}, nil
}

func (wi *weightsIn) from(ws *workspace, w []float32) ([]float32, error) {
	if wi.reorder == nil {
		return w, nil
	}
	return wi.buf, wi.reorder.Exec(ws.scratch(wi.reorder.Scratch), w, wi.buf)
}

// dnnlTrainConv adds a convolution (no bias) whose forward, input gradient
// and weight gradient run in oneDNN.
func (b *builder) dnnlTrainConv(x, w *G.Node, g convGeom, noInputGrad bool) (*G.Node, error) {
	n := x.Shape()[0]
	src := dnnl.Blocked
	if g.c%dnnl.Block != 0 {
		src = dnnl.NCHW // the network input
	}
	fwd, err := dnnl.Conv(dnnl.ConvTraining, n, g.c, g.h, g.w, g.cout, g.k, g.s, g.p, src, dnnl.Blocked, false, false, false, workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: conv: %w", err)
	}
	wFwd, err := newWeightsIn(fwd, dnnl.ArgWeights, &g)
	if err != nil {
		return nil, fmt.Errorf("classifier: conv weights: %w", err)
	}
	ws := b.ws
	// fwdW is the forward's reordered weights of the current step, reused
	// by the input gradient when its kernel wants the same layout.
	var fwdW []float32
	op := newKernelOp("dnnl conv", []int{4, 4}, tensor.Shape{n, g.cout, g.oh, g.ow})
	op.run = func(out []float32, in [][]float32) error {
		wt, err := wFwd.from(ws, in[1])
		if err != nil {
			return err
		}
		fwdW = wt
		return fwd.Exec(ws.scratch(fwd.Scratch), in[0], wt, out)
	}
	op.diffWRT = []bool{!noInputGrad, true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		x, w := inputs[0], inputs[1]
		bw, err := dnnl.Conv(dnnl.ConvBackwardWeights, n, g.c, g.h, g.w, g.cout, g.k, g.s, g.p, src, dnnl.Blocked, false, false, false, workers())
		if err != nil {
			return nil, fmt.Errorf("classifier: conv.dW: %w", err)
		}
		// the weight gradient goes to OIHW through this reorder
		var toPlain *dnnl.Prim
		var dwBuf []float32
		plain := dnnl.PlainMD(g.cout, g.c, g.k, g.k, dnnl.NCHW, true)
		if !bw.MD(dnnl.ArgDiffWeights).Same(plain) {
			if toPlain, err = dnnl.Reorder(bw.MD(dnnl.ArgDiffWeights), plain, workers()); err != nil {
				return nil, fmt.Errorf("classifier: conv.dW: %w", err)
			}
			dwBuf = make([]float32, bw.ArgFloats(dnnl.ArgDiffWeights))
		}
		dw := newKernelOp("dnnl conv.dW", []int{4, 4}, w.Shape().Clone())
		dw.run = func(out []float32, in [][]float32) error {
			if toPlain == nil {
				return bw.Exec(ws.scratch(bw.Scratch), in[0], in[1], out)
			}
			if err := bw.Exec(ws.scratch(bw.Scratch), in[0], in[1], dwBuf); err != nil {
				return err
			}
			return toPlain.Exec(ws.scratch(toPlain.Scratch), dwBuf, out)
		}
		dwN, err := apply(dw, x, grad)
		if err != nil {
			return nil, err
		}
		if noInputGrad {
			return G.Nodes{nil, dwN}, nil
		}
		bd, err := dnnl.Conv(dnnl.ConvBackwardData, n, g.c, g.h, g.w, g.cout, g.k, g.s, g.p, src, dnnl.Blocked, false, false, false, workers())
		if err != nil {
			return nil, fmt.Errorf("classifier: conv.dX: %w", err)
		}
		sameW := bd.MD(dnnl.ArgWeights).Same(fwd.MD(dnnl.ArgWeights))
		var wBwd *weightsIn
		if !sameW {
			if wBwd, err = newWeightsIn(bd, dnnl.ArgWeights, &g); err != nil {
				return nil, fmt.Errorf("classifier: conv.dX weights: %w", err)
			}
		}
		dx := newKernelOp("dnnl conv.dX", []int{4, 4}, x.Shape().Clone())
		dx.run = func(out []float32, in [][]float32) error {
			wt := fwdW
			if !sameW {
				var err error
				if wt, err = wBwd.from(ws, in[1]); err != nil {
					return err
				}
			}
			return bd.Exec(ws.scratch(bd.Scratch), in[0], wt, out)
		}
		dxN, err := apply(dx, grad, w)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dxN, dwN}, nil
	}
	return apply(op, x, w)
}

// dnnlBatchNorm is batchNorm (train mode, optional fused ReLU) in oneDNN;
// the running statistics are updated here from oneDNN's batch mean and
// (biased) variance exactly as batchNorm does.
func (b *builder) dnnlBatchNorm(x, gamma, beta *G.Node, spec *bnSpec, relu bool) (*G.Node, error) {
	shp := x.Shape()
	n, c, h, w := shp[0], shp[1], shp[2], shp[3]
	mean, variance := make([]float32, c), make([]float32, c)
	dgamma := tensor.New(tensor.WithShape(c), tensor.Of(tensor.Float32))
	dbeta := tensor.New(tensor.WithShape(c), tensor.Of(tensor.Float32))
	updateRunning := !b.noRunningUpdate
	name := "bn"
	if relu {
		name += "+relu"
	}
	op := newKernelOp(name, []int{4, 1, 1}, shp.Clone())
	op.run = func(out []float32, in [][]float32) error {
		bnBlockedForward(n, c, h*w, in[0], in[1], in[2], out, mean, variance, relu, spec, updateRunning)
		return nil
	}
	op.diffWRT = []bool{true, true, true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		x, gamma := inputs[0], inputs[1]
		dx := newKernelOp(name+".dX", []int{4, 4, 1, 4}, shp.Clone())
		dx.run = func(out []float32, in [][]float32) error {
			bnBlockedBackward(n, c, h*w, in[0], in[1], in[2], in[3], mean, variance, out,
				dgamma.Data().([]float32), dbeta.Data().([]float32), relu)
			return nil
		}
		dxN, err := apply(dx, x, output, gamma, grad)
		if err != nil {
			return nil, err
		}
		pub := func(nm string, t *tensor.Dense) (*G.Node, error) {
			p := newKernelOp(nm, []int{4}, tensor.Shape{c})
			p.run = func([]float32, [][]float32) error { return nil }
			p.result = func() *tensor.Dense { return t }
			return apply(p, dxN)
		}
		dg, err := pub(name+".dGamma", dgamma)
		if err != nil {
			return nil, err
		}
		db, err := pub(name+".dBeta", dbeta)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dxN, dg, db}, nil
	}
	return apply(op, x, gamma, beta)
}

// dnnlMaxPoolTrain adds max pooling with its gradient (oneDNN keeps the
// argmax in a workspace).
func (b *builder) dnnlMaxPoolTrain(x *G.Node, k, s, pad int) (*G.Node, error) {
	shp := x.Shape()
	n, c, h, w := shp[0], shp[1], shp[2], shp[3]
	g := newConvGeom(c, h, w, c, k, s, pad)
	fwd, err := dnnl.Pool(dnnl.ConvTraining, false, n, c, h, w, k, s, pad, workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: maxpool: %w", err)
	}
	bwd, err := dnnl.Pool(dnnl.ConvBackwardData, false, n, c, h, w, k, s, pad, workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: maxpool backward: %w", err)
	}
	wsp := make([]float32, fwd.ArgFloats(dnnl.ArgWorkspace))
	ws := b.ws
	op := newKernelOp("dnnl maxpool", []int{4}, tensor.Shape{n, c, g.oh, g.ow})
	op.run = func(out []float32, in [][]float32) error {
		return fwd.Exec(ws.scratch(fwd.Scratch), in[0], out, wsp)
	}
	op.diffWRT = []bool{true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp("dnnl maxpool.dX", []int{4}, shp.Clone())
		d.run = func(out []float32, in [][]float32) error {
			return bwd.Exec(ws.scratch(bwd.Scratch), in[0], out, wsp)
		}
		dn, err := apply(d, grad)
		return G.Nodes{dn}, err
	}
	return apply(op, x)
}

// bnBlockedBackward is the train-mode BatchNorm input, scale and shift
// gradient on nChw16c tensors, accumulated in float64 as PyTorch's CPU
// kernel does (oneDNN's float32 sums move the early-layer gradients of the
// golden checks by more than 1e-3). y is the forward output (the ReLU
// mask when relu).
func bnBlockedBackward(n, c, hw int, x, y, gamma, dy, mean, variance, dx, dgamma, dbeta []float32, relu bool) {
	const B = dnnl.Block
	cb := c / B
	m := float64(n * hw)
	parallelFor(cb, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			var mu, inv [B]float64
			for l := 0; l < B; l++ {
				mu[l] = float64(mean[blk*B+l])
				inv[l] = 1 / math.Sqrt(float64(variance[blk*B+l])+bnEps)
			}
			var sdy, sdyx [B]float64
			for i := 0; i < n; i++ {
				off := (i*cb + blk) * hw * B
				xs, ys, ds := x[off:off+hw*B], y[off:off+hw*B], dy[off:off+hw*B]
				for q := 0; q < hw; q++ {
					xv, yv, dv := xs[q*B:q*B+B], ys[q*B:q*B+B], ds[q*B:q*B+B]
					for l := 0; l < B; l++ {
						d := dv[l]
						if relu {
							d = maskGrad(d, positiveMask(yv[l]))
						}
						sdy[l] += float64(d)
						sdyx[l] += float64(d) * (float64(xv[l]) - mu[l])
					}
				}
			}
			var k, a, bc, mf [B]float32
			for l := 0; l < B; l++ {
				ch := blk*B + l
				dbeta[ch] = float32(sdy[l])
				dg := sdyx[l] * inv[l]
				dgamma[ch] = float32(dg)
				k[l] = float32(float64(gamma[ch]) * inv[l])
				a[l] = float32(sdy[l] / m)
				bc[l] = float32(dg / m * inv[l])
				mf[l] = float32(mu[l])
			}
			for i := 0; i < n; i++ {
				off := (i*cb + blk) * hw * B
				xs, ys, ds, out := x[off:off+hw*B], y[off:off+hw*B], dy[off:off+hw*B], dx[off:off+hw*B]
				for q := 0; q < hw; q++ {
					xv, yv, dv, ov := xs[q*B:q*B+B], ys[q*B:q*B+B], ds[q*B:q*B+B], out[q*B:q*B+B]
					for l := 0; l < B; l++ {
						d := dv[l]
						if relu {
							d = maskGrad(d, positiveMask(yv[l]))
						}
						ov[l] = k[l] * (d - a[l] - (xv[l]-mf[l])*bc[l])
					}
				}
			}
		}
	})
}

// bnBlockedForward is bnTrainForward on nChw16c tensors, with the same
// arithmetic per channel (float64 sums with four accumulators per image
// plane, y = x*scale + shift in float32), so its outputs round like the
// NCHW kernel's and PyTorch's. mean and variance receive the batch mean
// and biased variance.
func bnBlockedForward(n, c, hw int, x, gamma, beta, y, mean, variance []float32, relu bool, spec *bnSpec, updateRunning bool) {
	const B = dnnl.Block
	cb := c / B
	m := n * hw
	parallelFor(cb, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			var s [B]float64
			for i := 0; i < n; i++ {
				xs := x[(i*cb+blk)*hw*B : (i*cb+blk+1)*hw*B]
				var acc [4][B]float64
				q := 0
				for ; q+4 <= hw; q += 4 {
					for r := 0; r < 4; r++ {
						v := xs[(q+r)*B : (q+r)*B+B]
						for l := 0; l < B; l++ {
							acc[r][l] += float64(v[l])
						}
					}
				}
				for ; q < hw; q++ {
					v := xs[q*B : q*B+B]
					for l := 0; l < B; l++ {
						acc[0][l] += float64(v[l])
					}
				}
				for l := 0; l < B; l++ {
					s[l] += (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])
				}
			}
			var mu, ss [B]float64
			for l := 0; l < B; l++ {
				mu[l] = s[l] / float64(m)
			}
			for i := 0; i < n; i++ {
				xs := x[(i*cb+blk)*hw*B : (i*cb+blk+1)*hw*B]
				var acc [4][B]float64
				q := 0
				for ; q+4 <= hw; q += 4 {
					for r := 0; r < 4; r++ {
						v := xs[(q+r)*B : (q+r)*B+B]
						for l := 0; l < B; l++ {
							e := float64(v[l]) - mu[l]
							acc[r][l] += e * e
						}
					}
				}
				for ; q < hw; q++ {
					v := xs[q*B : q*B+B]
					for l := 0; l < B; l++ {
						e := float64(v[l]) - mu[l]
						acc[0][l] += e * e
					}
				}
				for l := 0; l < B; l++ {
					ss[l] += (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])
				}
			}
			var scale, shift [B]float32
			for l := 0; l < B; l++ {
				ch := blk*B + l
				v := ss[l] / float64(m)
				invstd := 1 / math.Sqrt(v+bnEps)
				mean[ch], variance[ch] = float32(mu[l]), float32(v)
				scale[l] = float32(float64(gamma[ch]) * invstd)
				shift[l] = float32(float64(beta[ch]) - mu[l]*float64(gamma[ch])*invstd)
				if updateRunning {
					unbiased := v
					if m > 1 {
						unbiased = ss[l] / float64(m-1)
					}
					rm, rv := spec.mean.data, spec.variance.data
					rm[ch] = float32((1-bnMomentum)*float64(rm[ch]) + bnMomentum*mu[l])
					rv[ch] = float32((1-bnMomentum)*float64(rv[ch]) + bnMomentum*unbiased)
				}
			}
			for i := 0; i < n; i++ {
				off := (i*cb + blk) * hw * B
				xs, ys := x[off:off+hw*B], y[off:off+hw*B]
				for q := 0; q < hw; q++ {
					v, o := xs[q*B:q*B+B], ys[q*B:q*B+B]
					if relu {
						for l := 0; l < B; l++ {
							o[l] = relu32(v[l]*scale[l] + shift[l])
						}
					} else {
						for l := 0; l < B; l++ {
							o[l] = v[l]*scale[l] + shift[l]
						}
					}
				}
			}
		}
	})
	if updateRunning {
		spec.tracked.tracked++
	}
}
