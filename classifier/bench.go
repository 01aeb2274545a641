package classifier

import (
	"context"
	"fmt"
	"math/rand"
	"runtime"
	"sort"
	"syscall"
	"time"
)

// BenchOptions configures Bench.
type BenchOptions struct {
	Arch    string
	Batch   int
	Size    int  // image side (224 if 0)
	Train   bool // time a training step instead of inference
	Iters   int  // timed repetitions (after one warm-up)
	Workers int  // GOMAXPROCS for the kernels, 0 = leave as is
	OpTimes bool // also report time per op (top entries in OpReport)
	// RandomInput feeds independent random channels instead of the
	// pipeline's input (one gray image replicated and normalised per
	// channel), which disables the gray-input conv1 fold.
	RandomInput bool
	// Precision of inference ("": f32).
	Precision Precision
}

// BenchResult reports the timing of Bench.
type BenchResult struct {
	Arch        string
	Batch, Size int
	Train       bool
	Precision   Precision
	Times       []time.Duration // per repetition (whole batch)
	Median      time.Duration
	MsPerImage  float64
	Workers     int
	CPUPerRun   time.Duration // user+system CPU per repetition (median run count)
	OpReport    []string      // with OpTimes: per-op totals, largest first
	InOps       time.Duration // with OpTimes: time inside custom ops per run
}

// Bench times inference (or a training step) of a freshly initialised
// model on random inputs; used by `fracd bench`, which also reports the
// process's peak memory (reading /proc is no business of the classifier).
func Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	if o.Size == 0 {
		o.Size = 224
	}
	if o.Batch <= 0 || o.Iters <= 0 {
		return BenchResult{}, fmt.Errorf("classifier: bench: batch and iters must be positive")
	}
	if o.Workers > 0 {
		runtime.GOMAXPROCS(o.Workers)
	}
	m, err := New(o.Arch, 1)
	if err != nil {
		return BenchResult{}, err
	}
	if err := m.SetPrecision(o.Precision); err != nil {
		return BenchResult{}, err
	}
	x := randInputs(rand.New(rand.NewSource(2)), o.Batch*3*o.Size*o.Size)
	if !o.RandomInput {
		grayInputs(rand.New(rand.NewSource(2)), x, o.Batch, o.Size, m.Info().Mean, m.Info().Std)
	}
	labels := make([]float32, o.Batch)
	for i := range labels {
		labels[i] = float32(i % 2)
	}
	var step func() error
	if o.Train {
		tr, err := NewTrainer(m, TrainConfig{LR: 1e-3, Momentum: 0.9, WeightDecay: 1e-4, Loss: FocalLoss{Gamma: 2, Alpha: 0.25}, InputSize: o.Size})
		if err != nil {
			return BenchResult{}, err
		}
		step = func() error { _, err := tr.Step(ctx, x, labels); return err }
	} else {
		step = func() error { _, err := m.Logits(ctx, x, o.Batch, o.Size); return err }
	}
	if err := step(); err != nil { // warm-up: builds the graph, sizes buffers
		return BenchResult{}, err
	}
	r := BenchResult{Arch: m.net.arch.Name, Batch: o.Batch, Size: o.Size, Train: o.Train, Precision: m.Precision(), Workers: runtime.GOMAXPROCS(0)}
	if o.OpTimes {
		opTimes.Store(&opTimer{total: map[string]time.Duration{}, count: map[string]int{}})
		defer opTimes.Store(nil)
	}
	cpu0 := cpuTime()
	for i := 0; i < o.Iters; i++ {
		t0 := time.Now()
		if err := step(); err != nil {
			return r, err
		}
		r.Times = append(r.Times, time.Since(t0))
	}
	r.CPUPerRun = (cpuTime() - cpu0) / time.Duration(o.Iters)
	if ot := opTimes.Load(); ot != nil {
		keys := make([]string, 0, len(ot.total))
		var in time.Duration
		for k, d := range ot.total {
			keys = append(keys, k)
			in += d
		}
		sort.Slice(keys, func(i, j int) bool { return ot.total[keys[i]] > ot.total[keys[j]] })
		for _, k := range keys {
			r.OpReport = append(r.OpReport, fmt.Sprintf("%9.2f ms/run  %4d calls  %s", float64(ot.total[k].Microseconds())/1000/float64(o.Iters), ot.count[k]/o.Iters, k))
		}
		r.InOps = in / time.Duration(o.Iters)
	}
	s := append([]time.Duration(nil), r.Times...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r.Median = s[len(s)/2]
	r.MsPerImage = float64(r.Median.Microseconds()) / 1000 / float64(o.Batch)
	return r, nil
}

func randInputs(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// grayInputs fills x with random gray images replicated to three channels
// and normalised per channel, as the preprocessing pipeline produces them.
func grayInputs(r *rand.Rand, x []float32, n, size int, mean, std [3]float32) {
	plane := size * size
	for i := 0; i < n; i++ {
		for p := 0; p < plane; p++ {
			g := float32(r.Intn(256)) / 255
			for c := 0; c < 3; c++ {
				x[(i*3+c)*plane+p] = (g - mean[c]) / std[c]
			}
		}
	}
}

// cpuTime is the process's user+system CPU time: unlike wall time it is
// barely affected by other processes competing for the cores.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
