package classifier

import (
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

const (
	bnEps      = 1e-5
	bnMomentum = 0.1
)

// bnState is shared by a train-mode BatchNorm op and its backward ops: the
// batch statistics saved by the forward pass and the parameter gradients
// produced as a side effect of the input gradient.
type bnState struct {
	spec          *bnSpec
	mean, invstd  []float32
	dgamma, dbeta *tensor.Dense
	// updateRunning is false for graphs that must not touch the model's
	// running statistics (gradient checks).
	updateRunning bool
}

// batchNorm adds train-mode BatchNorm2d (batch statistics, running-stat
// update with momentum 0.1 and the unbiased variance) with optional ReLU.
func (b *builder) batchNorm(x, gamma, beta *G.Node, spec *bnSpec, relu bool) (*G.Node, error) {
	shp := x.Shape()
	n, c, hw := shp[0], shp[1], shp[2]*shp[3]
	st := &bnState{
		spec: spec, mean: make([]float32, c), invstd: make([]float32, c),
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
		bnTrainForward(st, n, c, hw, in[0], in[1], in[2], out, relu)
		return nil
	}
	op.diffWRT = []bool{true, true, true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		x, gamma := inputs[0], inputs[1]
		dx := newKernelOp(name+".dX", []int{4, 4, 1, 4}, shp.Clone())
		dx.run = func(out []float32, in [][]float32) error {
			bnTrainBackward(st, n, c, hw, in[0], in[1], in[2], in[3], out, relu)
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

func bnTrainForward(st *bnState, n, c, hw int, x, gamma, beta, y []float32, relu bool) {
	m := n * hw
	parallelFor(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var s float64
			for i := 0; i < n; i++ {
				for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					s += float64(v)
				}
			}
			mean := s / float64(m)
			var ss float64
			for i := 0; i < n; i++ {
				for _, v := range x[(i*c+ch)*hw : (i*c+ch+1)*hw] {
					d := float64(v) - mean
					ss += d * d
				}
			}
			variance := ss / float64(m)
			invstd := 1 / math.Sqrt(variance+bnEps)
			st.mean[ch], st.invstd[ch] = float32(mean), float32(invstd)
			scale := float32(float64(gamma[ch]) * invstd)
			shift := float32(float64(beta[ch]) - mean*float64(gamma[ch])*invstd)
			for i := 0; i < n; i++ {
				src := x[(i*c+ch)*hw : (i*c+ch+1)*hw]
				dst := y[(i*c+ch)*hw : (i*c+ch+1)*hw]
				for j, v := range src {
					o := v*scale + shift
					if relu && o < 0 {
						o = 0
					}
					dst[j] = o
				}
			}
			if st.updateRunning {
				unbiased := variance
				if m > 1 {
					unbiased = ss / float64(m-1)
				}
				rm, rv := st.spec.mean.data, st.spec.variance.data
				rm[ch] = float32((1-bnMomentum)*float64(rm[ch]) + bnMomentum*mean)
				rv[ch] = float32((1-bnMomentum)*float64(rv[ch]) + bnMomentum*unbiased)
			}
		}
	})
	if st.updateRunning {
		st.spec.tracked.tracked++
	}
}

func bnTrainBackward(st *bnState, n, c, hw int, x, y, gamma, dy, dx []float32, relu bool) {
	m := float64(n * hw)
	dg, db := st.dgamma.Data().([]float32), st.dbeta.Data().([]float32)
	parallelFor(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			mean, invstd := st.mean[ch], st.invstd[ch]
			var sdy, sdyx float64
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs, ys, ds := x[off:off+hw], y[off:off+hw], dy[off:off+hw]
				for j, d := range ds {
					if relu && ys[j] <= 0 {
						continue
					}
					sdy += float64(d)
					sdyx += float64(d) * float64(xs[j]-mean)
				}
			}
			dbeta := sdy
			dgamma := sdyx * float64(invstd)
			dg[ch], db[ch] = float32(dgamma), float32(dbeta)
			k := float32(float64(gamma[ch]) * float64(invstd))
			a := float32(dbeta / m)
			bcoef := float32(dgamma / m * float64(invstd))
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs, ys, ds, out := x[off:off+hw], y[off:off+hw], dy[off:off+hw], dx[off:off+hw]
				for j, d := range ds {
					if relu && ys[j] <= 0 {
						d = 0
					}
					out[j] = k * (d - a - (xs[j]-mean)*bcoef)
				}
			}
		}
	})
}
