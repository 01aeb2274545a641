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
				s += sum64(x[(i*c+ch)*hw : (i*c+ch+1)*hw])
			}
			mean := s / float64(m)
			var ss float64
			for i := 0; i < n; i++ {
				ss += sqdev64(x[(i*c+ch)*hw:(i*c+ch+1)*hw], mean)
			}
			variance := ss / float64(m)
			invstd := 1 / math.Sqrt(variance+bnEps)
			st.mean[ch], st.invstd[ch] = float32(mean), float32(invstd)
			scale := float32(float64(gamma[ch]) * invstd)
			shift := float32(float64(beta[ch]) - mean*float64(gamma[ch])*invstd)
			for i := 0; i < n; i++ {
				src := x[(i*c+ch)*hw : (i*c+ch+1)*hw]
				dst := y[(i*c+ch)*hw : (i*c+ch+1)*hw]
				dst = dst[:len(src)]
				if relu {
					for j, v := range src {
						dst[j] = relu32(v*scale + shift)
					}
				} else {
					for j, v := range src {
						dst[j] = v*scale + shift
					}
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

// sum64 sums in float64 with four independent accumulators (the add
// latency, not bandwidth, bounds a single running sum).
func sum64(v []float32) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		q := v[i : i+4]
		a += float64(q[0])
		b += float64(q[1])
		c += float64(q[2])
		d += float64(q[3])
	}
	for ; i < len(v); i++ {
		a += float64(v[i])
	}
	return (a + b) + (c + d)
}

// sqdev64 is the float64 sum of squared deviations from mean.
func sqdev64(v []float32, mean float64) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		q := v[i : i+4]
		e0, e1, e2, e3 := float64(q[0])-mean, float64(q[1])-mean, float64(q[2])-mean, float64(q[3])-mean
		a += e0 * e0
		b += e1 * e1
		c += e2 * e2
		d += e3 * e3
	}
	for ; i < len(v); i++ {
		e := float64(v[i]) - mean
		a += e * e
	}
	return (a + b) + (c + d)
}

// positiveMask is all ones when y > 0 and zero otherwise (y is a ReLU
// output, never negative), so gradients can be masked without branches.
func positiveMask(y float32) uint32 {
	return uint32(-int32(math.Float32bits(y)) >> 31)
}

func maskGrad(d float32, m uint32) float32 {
	return math.Float32frombits(math.Float32bits(d) & m)
}

func bnTrainBackward(st *bnState, n, c, hw int, x, y, gamma, dy, dx []float32, relu bool) {
	m := float64(n * hw)
	dg, db := st.dgamma.Data().([]float32), st.dbeta.Data().([]float32)
	parallelFor(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			mean, invstd := st.mean[ch], st.invstd[ch]
			var sdy, sdyx [4]float64
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs, ys, ds := x[off:off+hw], y[off:off+hw], dy[off:off+hw]
				ys, xs = ys[:len(ds)], xs[:len(ds)]
				for j, d := range ds {
					if relu {
						d = maskGrad(d, positiveMask(ys[j]))
					}
					sdy[j&3] += float64(d)
					sdyx[j&3] += float64(d) * float64(xs[j]-mean)
				}
			}
			dbeta := (sdy[0] + sdy[1]) + (sdy[2] + sdy[3])
			dgamma := ((sdyx[0] + sdyx[1]) + (sdyx[2] + sdyx[3])) * float64(invstd)
			dg[ch], db[ch] = float32(dgamma), float32(dbeta)
			k := float32(float64(gamma[ch]) * float64(invstd))
			a := float32(dbeta / m)
			bcoef := float32(dgamma / m * float64(invstd))
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs, ys, ds, out := x[off:off+hw], y[off:off+hw], dy[off:off+hw], dx[off:off+hw]
				ys, xs, out = ys[:len(ds)], xs[:len(ds)], out[:len(ds)]
				for j, d := range ds {
					if relu {
						d = maskGrad(d, positiveMask(ys[j]))
					}
					out[j] = k * (d - a - (xs[j]-mean)*bcoef)
				}
			}
		}
	})
}
