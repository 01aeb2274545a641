//go:build !nodnnl

package dnnl

import (
	"math"
	"math/rand"
	"testing"
)

// naiveConv is the textbook NCHW convolution the primitives are checked against.
func naiveConv(n, c, h, w, oc, k, s, p int, x, wt []float32) []float32 {
	oh, ow := (h+2*p-k)/s+1, (w+2*p-k)/s+1
	y := make([]float32, n*oc*oh*ow)
	for i := 0; i < n; i++ {
		for o := 0; o < oc; o++ {
			for yo := 0; yo < oh; yo++ {
				for xo := 0; xo < ow; xo++ {
					var acc float64
					for ci := 0; ci < c; ci++ {
						for ki := 0; ki < k; ki++ {
							for kj := 0; kj < k; kj++ {
								iy, ix := yo*s-p+ki, xo*s-p+kj
								if iy < 0 || ix < 0 || iy >= h || ix >= w {
									continue
								}
								acc += float64(x[((i*c+ci)*h+iy)*w+ix]) * float64(wt[((o*c+ci)*k+ki)*k+kj])
							}
						}
					}
					y[((i*oc+o)*oh+yo)*ow+xo] = float32(acc)
				}
			}
		}
	}
	return y
}

func randSlice(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func TestConvForwardMatchesNaive(t *testing.T) {
	if !Available() {
		t.Skip("oneDNN unavailable")
	}
	r := rand.New(rand.NewSource(1))
	const n, c, h, w, oc, k, s, p = 2, 16, 9, 9, 32, 3, 2, 1
	x, wt := randSlice(r, n*c*h*w), randSlice(r, oc*c*k*k)
	want := naiveConv(n, c, h, w, oc, k, s, p, x, wt)
	for _, l := range []Layout{NCHW, Blocked} {
		pr, err := Conv(ConvInference, n, c, h, w, oc, k, s, p, NCHW, l, false, false, false, 2)
		if err != nil {
			t.Fatal(err)
		}
		wr, err := Reorder(PlainMD(oc, c, k, k, NCHW, true), pr.MD(ArgWeights), 1)
		if err != nil {
			t.Fatal(err)
		}
		wb := make([]float32, pr.ArgFloats(ArgWeights))
		if err := wr.Exec(make([]byte, wr.Scratch), wt, wb); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, pr.ArgFloats(ArgDst))
		if err := pr.Exec(make([]byte, pr.Scratch), x, wb, y); err != nil {
			t.Fatal(err)
		}
		if l == Blocked { // back to NCHW
			rr, err := Reorder(pr.MD(ArgDst), PlainMD(n, oc, 5, 5, NCHW, false), 1)
			if err != nil {
				t.Fatal(err)
			}
			plain := make([]float32, len(y))
			if err := rr.Exec(make([]byte, rr.Scratch), y, plain); err != nil {
				t.Fatal(err)
			}
			y = plain
		}
		for i := range want {
			if math.Abs(float64(y[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("layout %d: y[%d] = %g, want %g (%s)", l, i, y[i], want[i], pr.Impl)
			}
		}
		t.Logf("layout %d: %s", l, pr.Impl)
	}
}
