package classifier

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// BenchOptions configures Bench.
type BenchOptions struct {
	Arch    string
	Batch   int
	Size    int  // image side (224 if 0)
	Train   bool // time a training step instead of inference
	Iters   int  // timed repetitions (after one warm-up)
	Threads int  // OpenBLAS threads, 0 = leave as is
}

// BenchResult reports the timing of Bench.
type BenchResult struct {
	Arch        string
	Batch, Size int
	Train       bool
	Times       []time.Duration // per repetition (whole batch)
	Median      time.Duration
	MsPerImage  float64
	PeakRSSMiB  float64 // VmHWM of this process
	BLASThreads int
}

// Bench times inference (or a training step) of a freshly initialised
// model on random inputs; used by `fracd bench`.
func Bench(ctx context.Context, o BenchOptions) (BenchResult, error) {
	if o.Size == 0 {
		o.Size = 224
	}
	if o.Batch <= 0 || o.Iters <= 0 {
		return BenchResult{}, fmt.Errorf("classifier: bench: batch and iters must be positive")
	}
	if o.Threads > 0 {
		SetBLASThreads(o.Threads)
	}
	m, err := New(o.Arch, 1)
	if err != nil {
		return BenchResult{}, err
	}
	x := randInputs(rand.New(rand.NewSource(2)), o.Batch*3*o.Size*o.Size)
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
	r := BenchResult{Arch: m.net.arch.Name, Batch: o.Batch, Size: o.Size, Train: o.Train, BLASThreads: BLASThreads()}
	for i := 0; i < o.Iters; i++ {
		t0 := time.Now()
		if err := step(); err != nil {
			return r, err
		}
		r.Times = append(r.Times, time.Since(t0))
	}
	s := append([]time.Duration(nil), r.Times...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	r.Median = s[len(s)/2]
	r.MsPerImage = float64(r.Median.Microseconds()) / 1000 / float64(o.Batch)
	r.PeakRSSMiB = peakRSSMiB()
	return r, nil
}

func randInputs(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// peakRSSMiB reads the process's peak resident set (Linux VmHWM).
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}
