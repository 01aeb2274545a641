package classifier

import (
	"context"
	"math"
	"math/rand"
	"runtime"
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
		r := rand.New(rand.NewSource(5))
		m := modelWithBNStats(arch, 21, r)
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
				m.infer = map[[3]int]*graphPool{}
				if want, err = m.Logits(context.Background(), x, n, size); err == nil {
					_, wantMaps, err = m.HeatMaps(context.Background(), x, n)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			m.infer = map[[3]int]*graphPool{}
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

// TestPredictRunsWhileAGraphIsBusy holds one eval graph checked out (as a
// slow call in flight would) and checks that other calls of the same shape
// still complete, with the same result, on a second graph: no model-wide
// lock is held while computing. Run with -race.
func TestPredictRunsWhileAGraphIsBusy(t *testing.T) {
	m, _ := New("basic[1,1,1,1]", 11)
	m.info.InputSize = 32
	x := randImages(2, 2, 32)
	want, err := m.Predict(context.Background(), x, 2)
	if err != nil {
		t.Fatal(err)
	}
	gr, pool, err := m.takeGraph(context.Background(), 2, 32, false) // random input: not gray
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			got, err := m.Predict(context.Background(), x, 2)
			if err == nil && (got[0] != want[0] || got[1] != want[1]) {
				err = errorf("concurrent call %v, alone %v", got, want)
			}
			done <- err
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	m.giveGraph(pool, gr)
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.infer[gr.key]; p.total > maxGraphsPerShape(m.threads) || len(p.free) != p.total {
		t.Errorf("pool: %d graphs built (max %d), %d free", p.total, maxGraphsPerShape(m.threads), len(p.free))
	}
}

// TestBF16CloseToF32 runs the same model at both precisions: bf16 keeps 8
// significant bits of each convolution's inputs, so logits move by about
// 1% of their size and heat-map cells by about 1% of the map's spread.
func TestBF16CloseToF32(t *testing.T) {
	for _, arch := range []string{"basic[1,1,1,1]", "bottleneck[1,1,1,1]"} {
		m := modelWithBNStats(arch, 21, rand.New(rand.NewSource(5)))
		m.info.InputSize = 64
		if err := m.SetPrecision(PrecisionBF16); err != nil {
			t.Skipf("bf16 unavailable here: %v", err)
		}
		if err := m.SetPrecision(PrecisionF32); err != nil {
			t.Fatal(err)
		}
		const n, size = 4, 64
		x := make([]float32, n*3*size*size)
		grayInputs(rand.New(rand.NewSource(6)), x, n, size, m.info.Mean, m.info.Std)
		run := func(p Precision) ([]float32, []HeatMap) {
			if err := m.SetPrecision(p); err != nil {
				t.Fatal(err)
			}
			l, err := m.Logits(context.Background(), x, n, size)
			if err != nil {
				t.Fatal(err)
			}
			_, maps, err := m.HeatMaps(context.Background(), x, n)
			if err != nil {
				t.Fatal(err)
			}
			return l, maps
		}
		l32, h32 := run(PrecisionF32)
		l16, h16 := run(PrecisionBF16)
		spread := func(v []float32) float64 {
			lo, hi := v[0], v[0]
			for _, x := range v {
				lo, hi = min(lo, x), max(hi, x)
			}
			return float64(hi - lo)
		}
		var mag float64
		for _, v := range l32 {
			mag = max(mag, math.Abs(float64(v)))
		}
		var worst, worstMap float64
		for i := range l32 {
			worst = max(worst, math.Abs(float64(l16[i]-l32[i]))/mag)
			hs := spread(h32[i].Values)
			for j, v := range h32[i].Values {
				worstMap = max(worstMap, math.Abs(float64(h16[i].Values[j]-v))/hs)
			}
		}
		if worst > 0.03 || worstMap > 0.05 || worst == 0 {
			t.Errorf("%s: bf16 moved logits by %.4f of their size (want (0, 0.03]) and heat-map cells by %.4f of their spread (want <= 0.05)", arch, worst, worstMap)
		}
		t.Logf("%s: logits %v vs %v; worst logit %.4f of size, heat map %.4f of spread", arch, l16, l32, worst, worstMap)
	}
}

// TestBF16PassesBF16BetweenConvolutions: at bf16 every convolution of the
// residual stages writes bfloat16 for the next to read as it is, and only
// the stem (float32, for its pooling) and the features (float32, for the
// head and heat maps) are not packed.
func TestBF16PassesBF16BetweenConvolutions(t *testing.T) {
	m := modelWithBNStats("basic[1,1,1,1]", 21, rand.New(rand.NewSource(5)))
	if err := m.SetPrecision(PrecisionBF16); err != nil {
		t.Skipf("bf16 unavailable here: %v", err)
	}
	ms := &[2][3]float32{m.info.Mean, m.info.Std}
	gr, err := m.net.inferenceGraph(1, 64, ms, PrecisionBF16, 1)
	if err != nil {
		t.Fatal(err)
	}
	convs := 0
	for i := range m.net.blocks {
		convs += len(m.net.blocks[i].convs)
		if m.net.blocks[i].down != nil {
			convs++
		}
	}
	if got := len(gr.b.packed); got != convs {
		t.Errorf("%d packed outputs, want one per residual-stage convolution (%d)", got, convs)
	}
	if gr.b.packed[gr.features] {
		t.Error("the features are packed bfloat16; the head and heat maps read float32")
	}
	f32, err := m.net.inferenceGraph(1, 64, ms, PrecisionF32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(f32.b.packed) != 0 {
		t.Errorf("f32 graph: %d packed outputs, want none", len(f32.b.packed))
	}
}

// TestSetThreadsKeepsResults runs the same model with oneDNN primitives
// partitioned for one thread and for every core, at both precisions: the
// partition changes the order of some sums, not the result beyond float32
// rounding, and a new count rebuilds the graphs (no primitive of the old
// partition is reused).
func TestSetThreadsKeepsResults(t *testing.T) {
	m := modelWithBNStats("basic[1,1,1,1]", 23, rand.New(rand.NewSource(7)))
	m.info.InputSize = 64
	if err := m.SetThreads(-1); err == nil {
		t.Error("SetThreads(-1): no error")
	}
	const n, size = 2, 64
	x := make([]float32, n*3*size*size)
	grayInputs(rand.New(rand.NewSource(8)), x, n, size, m.info.Mean, m.info.Std)
	precs := []Precision{PrecisionF32}
	if bf16Ready(m.net) == nil {
		precs = append(precs, PrecisionBF16)
	}
	for _, p := range precs {
		if err := m.SetPrecision(p); err != nil {
			t.Fatal(err)
		}
		run := func(threads int) []float32 {
			if err := m.SetThreads(threads); err != nil {
				t.Fatal(err)
			}
			l, err := m.Logits(context.Background(), x, n, size)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		all := run(0)
		v0 := m.version
		one := run(1)
		if m.version == v0 {
			t.Errorf("%s: SetThreads(1) kept the compiled graphs' version", p)
		}
		for i := range all {
			if !closeRel(float64(one[i]), float64(all[i]), 1e-5, 1e-5) {
				t.Errorf("%s image %d: logit %g on one thread, %g on all cores", p, i, one[i], all[i])
			}
		}
	}
}

// TestGraphsPerShapeFollowThreads: one-thread graphs (the daemon's workers
// side by side) get one per core, so no core waits for a graph; graphs
// that use every core stay a few.
func TestGraphsPerShapeFollowThreads(t *testing.T) {
	cases := []struct {
		cores, threads, want int
	}{
		{8, 1, 8},
		{8, 2, 4},
		{8, 0, 4},
		{2, 1, 2},
		{1, 1, 2},
		{1, 0, 2},
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range cases {
		runtime.GOMAXPROCS(c.cores)
		if got := maxGraphsPerShape(c.threads); got != c.want {
			t.Errorf("%d cores, threads %d: %d graphs per shape, want %d", c.cores, c.threads, got, c.want)
		}
	}
}
