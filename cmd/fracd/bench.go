package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fracd/fracd/classifier"
)

func newBenchCmd(m *Main) *cobra.Command {
	var o classifier.BenchOptions
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Time classifier inference or a training step (ms/image, peak RSS)",
		Args:  cobra.NoArgs,
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
			r, err := classifier.Bench(cmd.Context(), o)
			if err != nil {
				return err
			}
			mode := "inference"
			if r.Train {
				mode = "train-step"
			}
			fmt.Fprintf(m.Stdout, "gorgonia %s %s batch=%d size=%d workers=%d: median %.1f ms/batch, %.2f ms/image, cpu %.1f ms/batch, peak RSS %.0f MiB (runs:",
				r.Arch, mode, r.Batch, r.Size, r.Workers, float64(r.Median.Microseconds())/1000, r.MsPerImage, float64(r.CPUPerRun.Microseconds())/1000, peakRSSMiB())
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
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a pprof CPU profile to this file")
	return cmd
}

// peakRSSMiB reads the process's peak resident set (Linux VmHWM); 0 where
// /proc is not there.
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
