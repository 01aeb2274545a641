package kernels

import (
	"math"
	"math/rand"
	"testing"
)

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

func rnd(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

// naiveConv is the textbook 7-loop convolution used as the reference.
func naiveConv(g *Geom, n int, x, w []float32) []float32 {
	y := make([]float32, n*g.Cout*g.OHW)
	for b := 0; b < n; b++ {
		for co := 0; co < g.Cout; co++ {
			for oy := 0; oy < g.OH; oy++ {
				for ox := 0; ox < g.OW; ox++ {
					var s float64
					for ci := 0; ci < g.C; ci++ {
						for ki := 0; ki < g.K; ki++ {
							for kj := 0; kj < g.K; kj++ {
								iy, ix := oy*g.S-g.P+ki, ox*g.S-g.P+kj
								if iy < 0 || iy >= g.H || ix < 0 || ix >= g.W {
									continue
								}
								s += float64(x[((b*g.C+ci)*g.H+iy)*g.W+ix]) * float64(w[((co*g.C+ci)*g.K+ki)*g.K+kj])
							}
						}
					}
					y[((b*g.Cout+co)*g.OH+oy)*g.OW+ox] = float32(s)
				}
			}
		}
	}
	return y
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// TestConvKernels checks the forward pass against the naive convolution and
// both backward passes through the adjoint identities
// <conv(x,w), dy> = <x, dX(dy,w)> = <w, dW(x,dy)>.
func TestConvKernels(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		n, c, h, w, cout, k, s int
		p                      int
	}{
		{"3x3 s1", 2, 5, 9, 7, 4, 3, 1, 1},
		{"3x3 s1 even", 3, 6, 8, 10, 5, 3, 1, 1},
		{"3x3 s2 odd", 3, 4, 11, 11, 6, 3, 2, 1},
		{"7x7 s2 p3 (stem)", 2, 3, 20, 18, 8, 7, 2, 3},
		{"1x1 s1 pointwise", 3, 8, 5, 5, 6, 1, 1, 0},
		{"1x1 s2 downsample", 2, 8, 7, 7, 5, 1, 2, 0},
		{"3x3 tiny plane", 5, 16, 2, 2, 8, 3, 1, 1},
		{"single image, row split", 1, 4, 20, 20, 6, 3, 1, 1},
		{"single image, stem row split", 1, 3, 30, 30, 5, 7, 2, 3},
		{"single image, channel split", 1, 8, 5, 5, 6, 3, 1, 1},
		{"single image, pointwise rows", 1, 8, 16, 16, 4, 1, 1, 0},
		{"single image, pointwise channels", 1, 8, 4, 4, 7, 1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			g := NewGeom(tc.c, tc.h, tc.w, tc.cout, tc.k, tc.s, tc.p)
			x := randSlice(r, tc.n*tc.c*tc.h*tc.w)
			w := randSlice(r, tc.cout*g.KDim)
			ws := &Workspace{}
			y := make([]float32, tc.n*tc.cout*g.OHW)
			ConvForward(ws, &g, tc.n, x, w, y, nil, nil, false)
			ref := naiveConv(&g, tc.n, x, w)
			for i := range ref {
				if math.Abs(float64(y[i]-ref[i])) > 1e-4*(1+math.Abs(float64(ref[i]))) {
					t.Fatalf("y[%d] = %g, want %g", i, y[i], ref[i])
				}
			}
			// fused epilogue: bias, residual, relu
			bias, res := randSlice(r, tc.cout), randSlice(r, len(y))
			yf := make([]float32, len(y))
			ConvForward(ws, &g, tc.n, x, w, yf, bias, res, true)
			for i := range ref {
				want := math.Max(0, float64(ref[i])+float64(bias[(i/g.OHW)%tc.cout])+float64(res[i]))
				if math.Abs(float64(yf[i])-want) > 1e-4*(1+want) {
					t.Fatalf("fused y[%d] = %g, want %g", i, yf[i], want)
				}
			}
			if tc.k == 3 && tc.s == 1 && tc.p == 1 {
				for _, wv := range []struct {
					name string
					u    []float32
				}{
					{"F(2x2,3x3)", WinogradWeights(w, tc.cout, tc.c)},
					{"F(4x4,3x3)", Winograd4Weights(w, tc.cout, tc.c)},
				} {
					yw := make([]float32, len(y))
					// one image per group, to cover the grouping
					saved := winogradBudget
					winogradBudget = 1
					WinogradForward(ws, &g, tc.n, x, wv.u, yw, bias, res, true)
					winogradBudget = saved
					for i := range ref {
						want := math.Max(0, float64(ref[i])+float64(bias[(i/g.OHW)%tc.cout])+float64(res[i]))
						if math.Abs(float64(yw[i])-want) > 1e-4*(1+want) {
							t.Fatalf("winograd %s y[%d] = %g, want %g", wv.name, i, yw[i], want)
						}
					}
				}
			}
			dy := randSlice(r, len(y))
			dx := make([]float32, len(x))
			dw := make([]float32, len(w))
			ConvBackwardData(ws, &g, tc.n, dy, w, dx)
			ConvBackwardFilter(ws, &g, tc.n, x, dy, dw)
			lhs := dot(ref, dy)
			if d := dot(x, dx); math.Abs(d-lhs) > 1e-4*math.Abs(lhs)+1e-3 {
				t.Errorf("<x,dX> = %g, <y,dy> = %g", d, lhs)
			}
			if d := dot(w, dw); math.Abs(d-lhs) > 1e-4*math.Abs(lhs)+1e-3 {
				t.Errorf("<w,dW> = %g, <y,dy> = %g", d, lhs)
			}
		})
	}
}

func TestMaxPoolNonNeg(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	for _, sz := range [][2]int{{112, 112}, {7, 9}, {8, 7}, {2, 2}, {3, 1}} {
		g := NewGeom(1, sz[0], sz[1], 1, 3, 2, 1)
		x := randSlice(r, sz[0]*sz[1])
		for i := range x {
			x[i] = Relu32(x[i])
		}
		want := make([]float32, g.OHW)
		MaxPoolPlane(&g, x, want, make([]int32, g.OHW))
		got := make([]float32, g.OHW)
		MaxPoolNonNeg(&g, x, got, make([]uint32, sz[0]*g.OW))
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%v: out[%d] = %g, want %g", sz, i, got[i], want[i])
			}
		}
	}
}
