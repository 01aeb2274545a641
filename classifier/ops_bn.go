package classifier

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// bnState is shared by a train-mode BatchNorm op and its backward ops: the
// batch statistics saved by the forward pass and the parameter gradients
// produced as a side effect of the input gradient.
type bnState struct {
	spec *bnSpec
	// mean and spread are the saved batch statistics: spread is 1/std for
	// the NCHW kernels and the biased variance for the blocked ones (each
	// backward pass rounds from what its forward saved).
	mean, spread  []float32
	dgamma, dbeta *tensor.Dense
	// updateRunning is false for graphs that must not touch the model's
	// running statistics (gradient checks).
	updateRunning bool
}

// batchNorm adds train-mode BatchNorm2d (batch statistics, running-stat
// update with momentum 0.1 and the unbiased variance) with optional ReLU,
// on NCHW or (oneDNN graphs) nChw16c activations.
func (b *builder) batchNorm(x, gamma, beta *G.Node, spec *bnSpec, relu bool) (*G.Node, error) {
	shp := x.Shape()
	n, c, hw := shp[0], shp[1], shp[2]*shp[3]
	forward, backward := kernels.BatchNormForward, kernels.BatchNormBackward
	if b.dnnl {
		forward, backward = kernels.BatchNormForwardBlocked, kernels.BatchNormBackwardBlocked
	}
	st := &bnState{
		spec: spec, mean: make([]float32, c), spread: make([]float32, c),
		dgamma:        tensor.New(tensor.WithShape(c), tensor.Of(tensor.Float32)),
		dbeta:         tensor.New(tensor.WithShape(c), tensor.Of(tensor.Float32)),
		updateRunning: !b.noRunningUpdate,
	}
	name := "bn"
	if relu {
		name = "bn+relu"
	}
	op := newKernelOp(name, []int{4, 1, 1}, shp.Clone())
	op.run = func(out []float32, in [][]float32) error {
		forward(n, c, hw, in[0], in[1], in[2], out, st.mean, st.spread, st.running(), relu)
		st.counted()
		return nil
	}
	op.diffWRT = []bool{true, true, true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		x, gamma := inputs[0], inputs[1]
		dx := newKernelOp(name+".dX", []int{4, 4, 1, 4}, shp.Clone())
		dx.run = func(out []float32, in [][]float32) error {
			backward(n, c, hw, in[0], in[1], in[2], in[3], st.mean, st.spread, out,
				st.dgamma.Data().([]float32), st.dbeta.Data().([]float32), relu)
			return nil
		}
		dxN, err := apply(dx, x, output, gamma, grad)
		if err != nil {
			return nil, err
		}
		// dgamma/dbeta were computed by dx; these ops only publish them,
		// reading dx to be ordered after it.
		pub := func(nm string, t *tensor.Dense) (*G.Node, error) {
			p := newKernelOp(nm, []int{4}, tensor.Shape{c})
			p.run = func([]float32, [][]float32) error { return nil }
			p.result = func() *tensor.Dense { return t }
			return apply(p, dxN)
		}
		dg, err := pub(name+".dGamma", st.dgamma)
		if err != nil {
			return nil, err
		}
		db, err := pub(name+".dBeta", st.dbeta)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dxN, dg, db}, nil
	}
	return apply(op, x, gamma, beta)
}

// running is the model's running statistics the forward pass updates, or
// nil when the graph must leave them alone.
func (st *bnState) running() *kernels.BNRunning {
	if !st.updateRunning {
		return nil
	}
	return &kernels.BNRunning{Mean: st.spec.mean.data, Var: st.spec.variance.data}
}

// counted advances num_batches_tracked after a forward pass that updated
// the running statistics.
func (st *bnState) counted() {
	if st.updateRunning {
		st.spec.tracked.tracked++
	}
}
