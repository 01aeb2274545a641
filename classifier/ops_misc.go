package classifier

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/kernels"
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
		var r []float32
		if len(in) > 1 {
			r = in[1]
		}
		kernels.Relu(out, in[0], r)
		return nil
	}
	op.diffWRT = make([]bool, len(dims))
	for i := range op.diffWRT {
		op.diffWRT[i] = true
	}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp(name+".dX", []int{4, 4}, shp)
		d.run = func(out []float32, in [][]float32) error {
			kernels.ReluBackward(out, in[0], in[1])
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
	g := kernels.NewGeom(c, h, w, c, k, s, p)
	arg := make([]int32, n*c*g.OHW)
	if b.inference {
		// no gradient needed: no argmax, and the input is a ReLU output
		op := newKernelOp("maxpool", []int{4}, tensor.Shape{n, c, g.OH, g.OW})
		op.run = func(out []float32, in [][]float32) error {
			x := in[0]
			kernels.ParallelFor(n*c, func(lo, hi int) {
				rows := make([]uint32, h*g.OW)
				for pl := lo; pl < hi; pl++ {
					kernels.MaxPoolNonNeg(&g, x[pl*h*w:(pl+1)*h*w], out[pl*g.OHW:(pl+1)*g.OHW], rows)
				}
			})
			return nil
		}
		return apply(op, x)
	}
	op := newKernelOp("maxpool", []int{4}, tensor.Shape{n, c, g.OH, g.OW})
	op.run = func(out []float32, in [][]float32) error {
		x := in[0]
		kernels.ParallelFor(n*c, func(lo, hi int) {
			for pl := lo; pl < hi; pl++ {
				kernels.MaxPoolPlane(&g, x[pl*h*w:(pl+1)*h*w], out[pl*g.OHW:(pl+1)*g.OHW], arg[pl*g.OHW:(pl+1)*g.OHW])
			}
		})
		return nil
	}
	op.diffWRT = []bool{true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp("maxpool.dX", []int{4}, shp.Clone())
		d.run = func(out []float32, in [][]float32) error {
			kernels.MaxPoolBackward(&g, in[0], out, arg, n*c)
			return nil
		}
		dn, err := apply(d, grad)
		return G.Nodes{dn}, err
	}
	return apply(op, x)
}

// globalAvgPool adds (N,C,H,W) -> (N,C) spatial mean, on NCHW or (oneDNN
// graphs) blocked activations, with its gradient (gorgonia's own
// GlobalAveragePool2D has no gradient in v0.9.18).
func (b *builder) globalAvgPool(x *G.Node) (*G.Node, error) {
	shp := x.Shape()
	n, c, hw := shp[0], shp[1], shp[2]*shp[3]
	forward := func(x, out []float32) { kernels.AvgPool(x, out, n*c, hw) }
	backward := func(dy, dx []float32) { kernels.AvgPoolBackward(dy, dx, n*c, hw) }
	if b.dnnl {
		forward = func(x, out []float32) { kernels.AvgPoolBlocked(x, out, n, c, hw) }
		backward = func(dy, dx []float32) { kernels.AvgPoolBackwardBlocked(dy, dx, n, c, hw) }
	}
	op := newKernelOp("avgpool", []int{4}, tensor.Shape{n, c})
	op.run = func(out []float32, in [][]float32) error {
		forward(in[0], out)
		return nil
	}
	op.diffWRT = []bool{true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp("avgpool.dX", []int{2}, shp.Clone())
		d.run = func(out []float32, in [][]float32) error {
			backward(in[0], out)
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
		kernels.Sgemm(false, true, n, k, c, 1, in[0], c, in[1], c, 1, out, k)
		return nil
	}
	op.diffWRT = []bool{true, true, true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		dx := newKernelOp("linear.dX", []int{2, 2}, tensor.Shape{n, c})
		dx.run = func(out []float32, in [][]float32) error {
			kernels.Sgemm(false, false, n, c, k, 1, in[0], k, in[1], c, 0, out, c)
			return nil
		}
		dw := newKernelOp("linear.dW", []int{2, 2}, tensor.Shape{k, c})
		dw.run = func(out []float32, in [][]float32) error {
			kernels.Sgemm(true, false, k, c, n, 1, in[0], k, in[1], c, 0, out, c)
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
