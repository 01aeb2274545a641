package kernels

import "math"

// ReLU and its gradient, branch-free.

// Relu32 is max(v,0) without a data-dependent branch (signs are random, so
// a branch would mispredict half the time).
func Relu32(v float32) float32 {
	b := math.Float32bits(v)
	return math.Float32frombits(b &^ uint32(int32(b)>>31))
}

// positiveMask is all ones when y > 0 and zero otherwise (y is a ReLU
// output, never negative), so gradients can be masked without branches.
func positiveMask(y float32) uint32 {
	return uint32(-int32(math.Float32bits(y)) >> 31)
}

func maskGrad(d float32, m uint32) float32 {
	return math.Float32frombits(math.Float32bits(d) & m)
}

// Relu sets out = max(x [+ res], 0) (res nil: no residual).
func Relu(out, x, res []float32) {
	ParallelFor(len(out), func(lo, hi int) {
		o, xs := out[lo:hi], x[lo:hi]
		if res != nil {
			rs := res[lo:hi]
			rs = rs[:len(o)]
			for i := range o {
				o[i] = Relu32(xs[i] + rs[i])
			}
			return
		}
		for i := range o {
			o[i] = Relu32(xs[i])
		}
	})
}

// ReluBackward sets dx = dy where the ReLU output y is positive, else 0.
func ReluBackward(dx, y, dy []float32) {
	ParallelFor(len(dx), func(lo, hi int) {
		o, ys, ds := dx[lo:hi], y[lo:hi], dy[lo:hi]
		ys, ds = ys[:len(o)], ds[:len(o)]
		for i := range o {
			o[i] = maskGrad(ds[i], positiveMask(ys[i]))
		}
	})
}
