package kernels

import (
	"fmt"
	"testing"
)

// Kernel benchmarks: go test -run '^$' -bench 'Gemm|Conv3x3|MaxPool' ./classifier/internal/kernels/

// BenchmarkGemm measures OpenBLAS SGEMM on ResNet-18 conv shapes (M, N, K),
// at 1 and 2 BLAS threads; GFLOP/s is reported as a metric.
func BenchmarkGemm(b *testing.B) {
	defer SetBLASThreads(BLASThreads())
	for _, s := range [][3]int{{64, 3136, 576}, {128, 784, 1152}, {256, 196, 2304}, {512, 49, 4608}, {64, 12544, 147}} {
		m, n, k := s[0], s[1], s[2]
		a, bm, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		for _, th := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%dx%d/threads=%d", m, n, k, th), func(b *testing.B) {
				SetBLASThreads(th)
				for i := 0; i < b.N; i++ {
					Sgemm(false, false, m, n, k, 1, a, k, bm, n, 0, c, n)
				}
				b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkConv3x3 compares im2col+GEMM with Winograd F(2x2,3x3) and
// F(4x4,3x3) on the
// ResNet-18 3x3 stride-1 layer shapes at batch 1.
func BenchmarkConv3x3(b *testing.B) {
	for _, s := range [][3]int{{64, 56, 64}, {128, 28, 128}, {256, 14, 256}, {512, 7, 512}} {
		g := NewGeom(s[0], s[1], s[1], s[2], 3, 1, 1)
		x := randSlice(rnd(1), g.C*g.H*g.W)
		w := randSlice(rnd(2), g.Cout*g.KDim)
		u := WinogradWeights(w, g.Cout, g.C)
		y := make([]float32, g.Cout*g.OHW)
		bias := make([]float32, g.Cout)
		ws := &Workspace{}
		b.Run(fmt.Sprintf("c%d_%dx%d/im2col", s[0], s[1], s[1]), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ConvForward(ws, &g, 1, x, w, y, bias, nil, true)
			}
		})
		b.Run(fmt.Sprintf("c%d_%dx%d/winograd", s[0], s[1], s[1]), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				WinogradForward(ws, &g, 1, x, u, y, bias, nil, true)
			}
		})
		u4 := Winograd4Weights(w, g.Cout, g.C)
		b.Run(fmt.Sprintf("c%d_%dx%d/winograd4", s[0], s[1], s[1]), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				WinogradForward(ws, &g, 1, x, u4, y, bias, nil, true)
			}
		})
	}
}

// BenchmarkMaxPool measures the stem's 3x3/2 max-pool on 64x112x112, single
// thread: the general kernel (with argmax, for training) and the separable
// one for non-negative (post-ReLU) inference inputs.
func BenchmarkMaxPool(b *testing.B) {
	g := NewGeom(64, 112, 112, 64, 3, 2, 1)
	x := randSlice(rnd(1), 64*112*112)
	y := make([]float32, 64*g.OHW)
	b.Run("argmax", func(b *testing.B) {
		arg := make([]int32, 64*g.OHW)
		for i := 0; i < b.N; i++ {
			for pl := 0; pl < 64; pl++ {
				MaxPoolPlane(&g, x[pl*112*112:(pl+1)*112*112], y[pl*g.OHW:(pl+1)*g.OHW], arg[pl*g.OHW:(pl+1)*g.OHW])
			}
		}
	})
	b.Run("nonneg-separable", func(b *testing.B) {
		xn := make([]float32, len(x))
		for i := range x {
			xn[i] = Relu32(x[i])
		}
		rows := make([]uint32, 112*g.OW)
		for i := 0; i < b.N; i++ {
			for pl := 0; pl < 64; pl++ {
				MaxPoolNonNeg(&g, xn[pl*112*112:(pl+1)*112*112], y[pl*g.OHW:(pl+1)*g.OHW], rows)
			}
		}
	})
}
