//go:build !nodnnl

package classifier

import (
	"fmt"
	"testing"

	"github.com/fracd/fracd/classifier/internal/dnnl"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// BenchmarkConvLayers compares this package's kernels with oneDNN's on the
// ResNet-18 conv shapes at 224 px: forward, backward data and backward
// weights, batch 1 and 16 (oneDNN in the nChw16c layout, reorders excluded).
//
//	go test -run '^$' -bench ConvLayers ./classifier/
func BenchmarkConvLayers(b *testing.B) {
	type shape struct{ c, h, oc, k, s, p int }
	shapes := []shape{{3, 224, 64, 7, 2, 3}, {64, 56, 64, 3, 1, 1}, {64, 56, 128, 3, 2, 1}, {128, 28, 128, 3, 1, 1},
		{128, 28, 256, 3, 2, 1}, {256, 14, 256, 3, 1, 1}, {256, 14, 512, 3, 2, 1}, {512, 7, 512, 3, 1, 1}, {256, 14, 512, 1, 2, 0}}
	for _, n := range []int{1, 16} {
		for _, sh := range shapes {
			g := kernels.NewGeom(sh.c, sh.h, sh.h, sh.oc, sh.k, sh.s, sh.p)
			x := randSlice(rnd(1), n*g.C*g.H*g.W)
			w := randSlice(rnd(2), g.Cout*g.KDim)
			y := randSlice(rnd(3), n*g.Cout*g.OHW)
			dx := make([]float32, len(x))
			dw := make([]float32, len(w))
			bias := make([]float32, g.Cout)
			ws := &kernels.Workspace{}
			name := fmt.Sprintf("n%d/c%d_%d_oc%d_k%ds%d", n, sh.c, sh.h, sh.oc, sh.k, sh.s)
			srcL := dnnl.Blocked
			if sh.c%16 != 0 {
				srcL = dnnl.NCHW
			}
			fwd := func() { kernels.ConvForward(ws, &g, n, x, w, y, bias, nil, true) }
			if kernels.Winograd4Applies(&g, n) {
				u4 := kernels.Winograd4Weights(w, g.Cout, g.C)
				fwd = func() { kernels.WinogradForward(ws, &g, n, x, u4, y, bias, nil, true) }
			} else if kernels.WinogradApplies(&g, n) {
				u2 := kernels.WinogradWeights(w, g.Cout, g.C)
				fwd = func() { kernels.WinogradForward(ws, &g, n, x, u2, y, bias, nil, true) }
			}
			type variant struct {
				label string
				kind  dnnl.ConvKind
				ours  func()
			}
			for _, v := range []variant{
				{"fwd", dnnl.ConvInference, fwd},
				{"bwdData", dnnl.ConvBackwardData, func() { kernels.ConvBackwardData(ws, &g, n, y, w, dx) }},
				{"bwdWeights", dnnl.ConvBackwardWeights, func() { kernels.ConvBackwardFilter(ws, &g, n, x, y, dw) }},
			} {
				if v.kind == dnnl.ConvBackwardData && sh.c == 3 {
					continue
				}
				b.Run(name+"/"+v.label+"/ours", func(b *testing.B) {
					c0 := cpuTime()
					for i := 0; i < b.N; i++ {
						v.ours()
					}
					b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/1e6, "cpu-ms/op")
				})
				pr, err := dnnl.Conv(v.kind, n, g.C, g.H, g.W, g.Cout, g.K, g.S, g.P, srcL, dnnl.Blocked, v.kind == dnnl.ConvInference, false, v.kind == dnnl.ConvInference, kernels.Workers())
				if err != nil {
					b.Fatal(err)
				}
				sp := make([]byte, pr.Scratch)
				wb := make([]float32, max(pr.ArgFloats(dnnl.ArgWeights), pr.ArgFloats(dnnl.ArgDiffWeights)))
				copy(wb, w)
				b.Run(name+"/"+v.label+"/dnnl", func(b *testing.B) {
					c0 := cpuTime()
					for i := 0; i < b.N; i++ {
						var err error
						switch v.kind {
						case dnnl.ConvInference:
							err = pr.Exec(sp, x, wb, bias, y)
						case dnnl.ConvBackwardData:
							err = pr.Exec(sp, y, wb, dx)
						default:
							err = pr.Exec(sp, x, y, wb)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/1e6, "cpu-ms/op")
				})
				if v.kind == dnnl.ConvInference && dnnl.NativeBF16() {
					benchBF16Conv(b, name, n, g, srcL, x, w, bias, y)
				}
			}
		}
	}
}

// benchBF16Conv times what an inference graph at PrecisionBF16 runs per
// convolution: the f32 source's reorder to bf16, then the bf16 conv.
func benchBF16Conv(b *testing.B, name string, n int, g kernels.Geom, srcL dnnl.Layout, x, w, bias, y []float32) {
	pr, err := dnnl.Conv(dnnl.ConvInferenceBF16, n, g.C, g.H, g.W, g.Cout, g.K, g.S, g.P, srcL, dnnl.Blocked, true, false, true, kernels.Workers())
	if err != nil {
		b.Fatal(err)
	}
	toBF16, err := dnnl.Reorder(dnnl.PlainMD(n, g.C, g.H, g.W, srcL, false), pr.MD(dnnl.ArgSrc), kernels.Workers())
	if err != nil {
		b.Fatal(err)
	}
	wr, err := reorderWeights(pr, dnnl.ArgWeights, w, g.Cout, g.C, g.K)
	if err != nil {
		b.Fatal(err)
	}
	sp := make([]byte, max(pr.Scratch, toBF16.Scratch))
	xb := make([]float32, pr.ArgFloats(dnnl.ArgSrc))
	b.Run(name+"/fwd/dnnl-bf16", func(b *testing.B) {
		c0 := cpuTime()
		for i := 0; i < b.N; i++ {
			if err := toBF16.Exec(sp, x, xb); err != nil {
				b.Fatal(err)
			}
			if err := pr.Exec(sp, xb, wr, bias, y); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-c0)/float64(b.N)/1e6, "cpu-ms/op")
	})
}
