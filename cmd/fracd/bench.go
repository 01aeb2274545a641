package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"time"

	"github.com/spf13/cobra"

	"github.com/fracd/fracd/classifier"
)

func newBenchCmd(m *Main) *cobra.Command {
	var o classifier.BenchOptions
	var cpuProfile, memProfile, traceFile, precision string
	e2e := e2eOptions{Rounds: 1, Settle: 300 * time.Millisecond, Timeout: 10 * time.Minute}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time classifier inference or a training step (ms/image, peak RSS), or the whole daemon on a folder (--e2e)",
		Long: `Without --e2e: times classifier inference or a training step (--train) on a
synthetic image and prints ms/batch, ms/image, CPU time and peak RSS.

With --e2e DIR: runs the daemon (serve) in this process on the files of DIR,
--rounds times, each round on an empty inbox, spool, archive and database in
a temporary folder (--work). Once the daemon has its model (the shipped one,
as on a first start, or --model), all files appear in the inbox at once (one
rename) and the clock runs to the last file's terminal outcome: claim,
decode, de-identification, the fsync'd archive, classification and the
audited transaction are all included. Prints files/s and peak RSS per round,
and per-stage p50/p95 over all rounds. Workers: the config's (workers), or
--e2e-workers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("bench: profile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("bench: profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			if memProfile != "" {
				// Every allocation, not a sample: what a file costs the heap.
				old := runtime.MemProfileRate
				runtime.MemProfileRate = 1
				defer func() { runtime.MemProfileRate = old }()
				defer writeAllocsProfile(memProfile, m.Stderr)
			}
			if traceFile != "" {
				f, err := os.Create(traceFile)
				if err != nil {
					return fmt.Errorf("bench: trace: %w", err)
				}
				defer f.Close()
				if err := trace.Start(f); err != nil {
					return fmt.Errorf("bench: trace: %w", err)
				}
				defer trace.Stop()
			}
			if precision != "" {
				p, err := classifier.ParsePrecision(precision)
				if err != nil {
					return fmt.Errorf("bench: --precision: %w", err)
				}
				o.Precision, m.Config.Model.Precision = p, string(p)
			}
			if e2e.Dir != "" {
				return m.benchE2E(cmd.Context(), e2e)
			}
			r, err := classifier.Bench(cmd.Context(), o)
			if err != nil {
				return err
			}
			mode := "inference-" + string(r.Precision)
			if r.Train {
				mode = "train-step"
			}
			fmt.Fprintf(m.Stdout, "gorgonia %s %s batch=%d size=%d workers=%d: median %.1f ms/batch, %.2f ms/image, cpu %.1f ms/batch, peak RSS %.0f MiB (runs:",
				r.Arch, mode, r.Batch, r.Size, r.Workers, float64(r.Median.Microseconds())/1000, r.MsPerImage, float64(r.CPUPerRun.Microseconds())/1000, float64(peakRSSBytes())/(1<<20))
			for _, t := range r.Times {
				fmt.Fprintf(m.Stdout, " %.1f", float64(t.Microseconds())/1000)
			}
			fmt.Fprintln(m.Stdout, ")")
			if o.OpTimes {
				fmt.Fprintf(m.Stdout, "inside custom ops: %.1f ms/run (the rest of the wall time is gorgonia's VM and scheduling)\n", float64(r.InOps.Microseconds())/1000)
				for i, l := range r.OpReport {
					if i == 25 {
						break
					}
					fmt.Fprintln(m.Stdout, l)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Arch, "arch", "resnet18", "resnet18/34/50/101/152 or basic[a,b,c,d]/bottleneck[a,b,c,d]")
	f.IntVar(&o.Batch, "batch", 1, "images per batch")
	f.IntVar(&o.Size, "size", 224, "image side in pixels")
	f.BoolVar(&o.Train, "train", false, "time a training step (forward, backward, SGD) instead of inference")
	f.IntVar(&o.Iters, "iters", 5, "timed repetitions after one warm-up")
	f.IntVar(&o.Workers, "workers", 0, "kernel worker threads (GOMAXPROCS; 0: all cores)")
	f.BoolVar(&o.OpTimes, "ops", false, "also print time per op kind and shape")
	f.BoolVar(&o.RandomInput, "random-input", false, "independent random channels instead of a normalised gray image (disables the gray conv1 fold)")
	f.StringVar(&precision, "precision", "", "inference precision, f32 or bf16 (default f32; --e2e: model.precision)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a pprof CPU profile to this file")
	f.StringVar(&memProfile, "memprofile", "", "write a pprof allocation profile (every allocation) to this file")
	f.StringVar(&traceFile, "trace", "", "write a Go execution trace (go tool trace) to this file: where workers wait")
	f.StringVar(&e2e.Dir, "e2e", "", "run the whole daemon on the files of this folder instead (see above)")
	f.IntVar(&e2e.Rounds, "rounds", e2e.Rounds, "--e2e: rounds, each on fresh state")
	f.IntVar(&e2e.Warmup, "warmup", 0, "--e2e: unmeasured rounds first, in the same process (a daemon that has run a while)")
	f.DurationVar(&e2e.Settle, "settle", e2e.Settle, "--e2e: the watcher's settle time")
	f.IntVar(&e2e.Workers, "e2e-workers", 0, "--e2e: files processed in parallel (0: the config's workers)")
	f.StringVar(&e2e.Model, "model", "", "--e2e: weights file to serve (default: the shipped model, registered as on a first start)")
	f.StringVar(&e2e.Work, "work", "", "--e2e: folder for the rounds' temporary state (default: the system temp dir)")
	f.DurationVar(&e2e.Timeout, "timeout", e2e.Timeout, "--e2e: limit per round")
	return cmd
}

// writeAllocsProfile writes the heap profile (its alloc_space and
// alloc_objects views are what was allocated) to path; a failure is
// reported, not returned: the benchmark's figures stand without it.
func writeAllocsProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: memprofile: %v\n", err)
	}
}
