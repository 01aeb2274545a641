package classifier

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// convOpts selects the optional fused epilogue of a convolution. Training
// graphs use the plain form (differentiable); inference graphs fold
// BatchNorm into bias and fuse the residual add and ReLU.
type convOpts struct {
	bias, res   *G.Node // per-channel bias (C) and residual (N,C,OH,OW)
	relu        bool
	noInputGrad bool // the network input needs no gradient: skip dx
	// winograd: w holds Winograd-transformed weights (16, Cout, Cin, 1)
	// and the forward pass uses kernels.WinogradForward (inference only).
	winograd bool
}

// conv adds y = conv(x, w) [+bias][+res][ReLU] to the graph.
func (b *builder) conv(x, w *G.Node, g kernels.Geom, o convOpts) (*G.Node, error) {
	n := x.Shape()[0]
	dims := []int{4, 4}
	in := []*G.Node{x, w}
	if o.bias != nil {
		dims = append(dims, 1)
		in = append(in, o.bias)
	}
	if o.res != nil {
		dims = append(dims, 4)
		in = append(in, o.res)
	}
	name := "conv"
	if o.bias != nil {
		name = "conv+bn"
	}
	if o.res != nil {
		name += "+add"
	}
	if o.relu {
		name += "+relu"
	}
	if o.winograd {
		name = "winograd " + name
	}
	op := newKernelOp(name, dims, tensor.Shape{n, g.Cout, g.OH, g.OW})
	ws := b.ws
	hasBias, hasRes, relu, winograd := o.bias != nil, o.res != nil, o.relu, o.winograd
	// Training graphs use Winograd too for 3x3 stride-1 convs, forward and
	// input gradient (the transposed convolution of a 3x3/s1/p1 conv is
	// again one, with the kernel rotated and channels swapped).
	plain := o.bias == nil && o.res == nil && !o.relu && !o.winograd
	trainWino := plain && winogradTraining && kernels.WinogradApplies(&g, n)
	op.run = func(out []float32, in [][]float32) error {
		var bias, res []float32
		k := 2
		if hasBias {
			bias = in[k]
			k++
		}
		if hasRes {
			res = in[k]
		}
		if winograd {
			kernels.WinogradForward(&ws.Workspace, &g, n, in[0], in[1], out, bias, res, relu)
			return nil
		}
		if trainWino {
			kernels.WinogradTrainForward(&ws.Workspace, &g, n, in[0], in[1], out)
			return nil
		}
		kernels.ConvForward(&ws.Workspace, &g, n, in[0], in[1], out, bias, res, relu)
		return nil
	}
	if plain {
		op.diffWRT = []bool{!o.noInputGrad, true}
		noDX := o.noInputGrad
		op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			x, w := inputs[0], inputs[1]
			dw := newKernelOp("conv.dW", []int{4, 4}, w.Shape().Clone())
			dw.run = func(out []float32, in [][]float32) error {
				kernels.ConvBackwardFilter(&ws.Workspace, &g, n, in[0], in[1], out)
				return nil
			}
			dwN, err := apply(dw, x, grad)
			if err != nil {
				return nil, err
			}
			if noDX {
				return G.Nodes{nil, dwN}, nil
			}
			dx := newKernelOp("conv.dX", []int{4, 4}, x.Shape().Clone())
			dx.run = func(out []float32, in [][]float32) error {
				if trainWino {
					kernels.WinogradTrainBackwardData(&ws.Workspace, &g, n, in[0], in[1], out)
					return nil
				}
				kernels.ConvBackwardData(&ws.Workspace, &g, n, in[0], in[1], out)
				return nil
			}
			dxN, err := apply(dx, grad, w)
			if err != nil {
				return nil, err
			}
			return G.Nodes{dxN, dwN}, nil
		}
	}
	return apply(op, in...)
}

// winogradTraining enables Winograd in training graphs (see conv).
var winogradTraining = true
