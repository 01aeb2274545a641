package classifier

import (
	"context"
	"math/rand"
	"testing"

	"github.com/fracd/fracd/classifier/internal/dnnl"
)

// withDNNL runs f with the oneDNN path switched on or off.
func withDNNL(on bool, f func()) {
	old := useDNNL
	useDNNL = on
	defer func() { useDNNL = old }()
	f()
}

// TestDNNLInferenceMatchesOwnKernels compares the oneDNN inference graph
// (blocked layout, fused post-ops) with this package's kernels on both
// block types, gray and three-channel inputs, logits and heat maps.
func TestDNNLInferenceMatchesOwnKernels(t *testing.T) {
	if !dnnl.Available() {
		t.Skip("built without oneDNN")
	}
	for _, arch := range []string{"basic[1,1,1,1]", "bottleneck[1,1,1,1]"} {
		m, _ := New(arch, 21)
		r := rand.New(rand.NewSource(5))
		for _, p := range m.net.params {
			if p.kind == kindBNMean || p.kind == kindBNBias {
				for i := range p.data {
					p.data[i] = float32(r.NormFloat64() * 0.2)
				}
			}
		}
		m.info.InputSize = 64
		const n, size = 3, 64
		rgb := randImages(3, n, size)
		gray := make([]float32, len(rgb))
		grayInputs(rand.New(rand.NewSource(6)), gray, n, size, m.info.Mean, m.info.Std)
		for name, x := range map[string][]float32{"rgb": rgb, "gray": gray} {
			var want, got []float32
			var wantMaps, gotMaps []HeatMap
			var err error
			withDNNL(false, func() {
				m.infer = map[[3]int]*graph{}
				if want, err = m.Logits(context.Background(), x, n, size); err == nil {
					_, wantMaps, err = m.HeatMaps(context.Background(), x, n)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			m.infer = map[[3]int]*graph{}
			if got, err = m.Logits(context.Background(), x, n, size); err != nil {
				t.Fatal(err)
			}
			if _, gotMaps, err = m.HeatMaps(context.Background(), x, n); err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !closeRel(float64(got[i]), float64(want[i]), 1e-4, 1e-5) {
					t.Errorf("%s %s image %d: oneDNN %g, own kernels %g", arch, name, i, got[i], want[i])
				}
				for j, v := range wantMaps[i].Values {
					if !closeRel(float64(gotMaps[i].Values[j]), float64(v), 1e-4, 1e-4) {
						t.Errorf("%s %s image %d: heat map cell %d oneDNN %g, own kernels %g", arch, name, i, j, gotMaps[i].Values[j], v)
						break
					}
				}
			}
		}
	}
}
