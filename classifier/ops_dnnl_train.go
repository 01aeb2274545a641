package classifier

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/dnnl"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// Training ops on oneDNN (nChw16c activations, see ops_dnnl.go). The
// parameters and their gradients stay OIHW / per channel as the solver and
// the checkpoints expect; weights are reordered into the kernels' layouts
// each step (they change every step), which costs a few percent.

// weightsIn returns w in the layout prim p wants for arg, reordering it
// into buf when that layout is not OIHW.
type weightsIn struct {
	reorder *dnnl.Prim // nil: OIHW as it is
	buf     []float32  // nil: the workspace's temporary buffer (used within one op)
	floats  int
}

// newWeightsIn prepares the reorder of OIHW weights into the layout p
// wants for arg. Weights read only within the op that reorders them are
// transient: they go to the workspace's temporary buffer, shared by every
// op of the graph, instead of a buffer of their own.
func newWeightsIn(p *dnnl.Prim, arg int, g *kernels.Geom, transient bool) (*weightsIn, error) {
	plain := dnnl.PlainMD(g.Cout, g.C, g.K, g.K, dnnl.NCHW, true)
	if p.MD(arg).Same(plain) {
		return &weightsIn{}, nil
	}
	r, err := dnnl.Reorder(plain, p.MD(arg), kernels.Workers())
	if err != nil {
		return nil, err
	}
	wi := &weightsIn{reorder: r, floats: p.ArgFloats(arg)}
	if !transient {
		wi.buf = make([]float32, wi.floats)
	}
	return wi, nil
}

func (wi *weightsIn) from(ws *workspace, w []float32) ([]float32, error) {
	if wi.reorder == nil {
		return w, nil
	}
	buf := wi.buf
	if buf == nil {
		buf = ws.temp(wi.floats)
	}
	return buf, wi.reorder.Exec(ws.scratch(wi.reorder.Scratch), w, buf)
}

// dnnlTrainConv adds a convolution (no bias) whose forward, input gradient
// and weight gradient run in oneDNN.
func (b *builder) dnnlTrainConv(x, w *G.Node, g kernels.Geom, noInputGrad bool) (*G.Node, error) {
	n := x.Shape()[0]
	src := dnnl.Blocked
	if g.C%dnnl.Block != 0 {
		src = dnnl.NCHW // the network input
	}
	fwd, err := dnnl.Conv(dnnl.ConvTraining, n, g.C, g.H, g.W, g.Cout, g.K, g.S, g.P, src, dnnl.Blocked, false, false, false, kernels.Workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: conv: %w", err)
	}
	// kept: the input gradient reads them later in the step
	wFwd, err := newWeightsIn(fwd, dnnl.ArgWeights, &g, false)
	if err != nil {
		return nil, fmt.Errorf("classifier: conv weights: %w", err)
	}
	ws := b.ws
	// fwdW is the forward's reordered weights of the current step, reused
	// by the input gradient when its kernel wants the same layout.
	var fwdW []float32
	op := newKernelOp("dnnl conv", []int{4, 4}, tensor.Shape{n, g.Cout, g.OH, g.OW})
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
		bw, err := dnnl.Conv(dnnl.ConvBackwardWeights, n, g.C, g.H, g.W, g.Cout, g.K, g.S, g.P, src, dnnl.Blocked, false, false, false, kernels.Workers())
		if err != nil {
			return nil, fmt.Errorf("classifier: conv.dW: %w", err)
		}
		// the weight gradient goes to OIHW through this reorder
		// (in the workspace's temporary buffer: it lives within this op)
		var toPlain *dnnl.Prim
		plain := dnnl.PlainMD(g.Cout, g.C, g.K, g.K, dnnl.NCHW, true)
		if !bw.MD(dnnl.ArgDiffWeights).Same(plain) {
			if toPlain, err = dnnl.Reorder(bw.MD(dnnl.ArgDiffWeights), plain, kernels.Workers()); err != nil {
				return nil, fmt.Errorf("classifier: conv.dW: %w", err)
			}
		}
		dwFloats := bw.ArgFloats(dnnl.ArgDiffWeights)
		dw := newKernelOp("dnnl conv.dW", []int{4, 4}, w.Shape().Clone())
		dw.run = func(out []float32, in [][]float32) error {
			if toPlain == nil {
				return bw.Exec(ws.scratch(bw.Scratch), in[0], in[1], out)
			}
			dwBuf := ws.temp(dwFloats)
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
		bd, err := dnnl.Conv(dnnl.ConvBackwardData, n, g.C, g.H, g.W, g.Cout, g.K, g.S, g.P, src, dnnl.Blocked, false, false, false, kernels.Workers())
		if err != nil {
			return nil, fmt.Errorf("classifier: conv.dX: %w", err)
		}
		sameW := bd.MD(dnnl.ArgWeights).Same(fwd.MD(dnnl.ArgWeights))
		var wBwd *weightsIn
		if !sameW {
			if wBwd, err = newWeightsIn(bd, dnnl.ArgWeights, &g, true); err != nil {
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

// dnnlMaxPoolTrain adds max pooling with its gradient (oneDNN keeps the
// argmax in a workspace).
func (b *builder) dnnlMaxPoolTrain(x *G.Node, k, s, pad int) (*G.Node, error) {
	shp := x.Shape()
	n, c, h, w := shp[0], shp[1], shp[2], shp[3]
	g := kernels.NewGeom(c, h, w, c, k, s, pad)
	fwd, err := dnnl.Pool(dnnl.ConvTraining, false, n, c, h, w, k, s, pad, kernels.Workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: maxpool: %w", err)
	}
	bwd, err := dnnl.Pool(dnnl.ConvBackwardData, false, n, c, h, w, k, s, pad, kernels.Workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: maxpool backward: %w", err)
	}
	wsp := make([]float32, fwd.ArgFloats(dnnl.ArgWorkspace))
	ws := b.ws
	op := newKernelOp("dnnl maxpool", []int{4}, tensor.Shape{n, c, g.OH, g.OW})
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
