package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/pipeline"
	"github.com/fracd/fracd/store"
)

// e2eOptions are `fracd bench --e2e`'s settings.
type e2eOptions struct {
	Dir     string        // the files to process
	Rounds  int           // each on a fresh inbox, spool, archive and database
	Warmup  int           // unmeasured rounds first (a long-running daemon's state)
	Settle  time.Duration // the watcher's settle time
	Workers int           // 0: the config's workers
	Model   string        // weights file; "": the shipped model, as on a first start
	Work    string        // where the rounds' state lives ("": the system temp dir)
	Timeout time.Duration // per round
}

// e2eRound is what one round measured.
type e2eRound struct {
	Files    int
	Wall     time.Duration // from the files' appearance in the inbox to the last outcome
	PeakRSS  int64         // bytes (VmHWM, reset before the drop)
	CPU      time.Duration // the process's user+system time over Wall
	Faults   int64         // minor page faults over Wall (first touches of memory)
	ByState  map[string]int
	Stages   map[string][]time.Duration
	Model    pipeline.ModelInfo
	FilesPer float64
}

// benchE2E runs the daemon in this process on the files of o.Dir, o.Rounds
// times, and prints files/s, peak RSS and per-stage percentiles. Each round
// starts a daemon on empty state, waits until it has a model, then moves
// all files into the inbox with one rename (they appear at once, as a
// study copied in does) and stops the clock at the last terminal outcome.
// Everything the daemon does per file is included: claim, decode,
// de-identification, the fsync'd archive, classification and the
// audited transaction.
func (m *Main) benchE2E(ctx context.Context, o e2eOptions) error {
	files, err := e2eFiles(o.Dir)
	if err != nil {
		return err
	}
	if o.Rounds < 1 {
		return fmt.Errorf("bench: --rounds %d: want at least 1", o.Rounds)
	}
	if o.Warmup < 0 {
		return fmt.Errorf("bench: --warmup %d: want at least 0", o.Warmup)
	}
	// Warm-up rounds leave what a daemon that has run a while has: a grown
	// heap and oneDNN's kernel cache. Each measured round still starts a
	// fresh daemon on empty state.
	for r := 1; r <= o.Warmup; r++ {
		res, err := m.e2eRound(ctx, o, files)
		if err != nil {
			return fmt.Errorf("bench: e2e warm-up round %d: %w", r, err)
		}
		fmt.Fprintf(m.Stdout, "warm-up round %d: %.2f s, %.2f files/s (not counted)\n", r, res.Wall.Seconds(), res.FilesPer)
	}
	var rounds []e2eRound
	for r := 1; r <= o.Rounds; r++ {
		res, err := m.e2eRound(ctx, o, files)
		if err != nil {
			return fmt.Errorf("bench: e2e round %d: %w", r, err)
		}
		if r == 1 {
			workers := o.Workers
			if workers == 0 {
				workers = m.Config.EffectiveWorkers()
			}
			fmt.Fprintf(m.Stdout, "e2e %s: %d files, %d workers, settle %s, model %s (%s, %d px, %s)\n",
				o.Dir, len(files), workers, o.Settle, res.Model.ID, res.Model.Arch, res.Model.InputSize, res.Model.Precision)
		}
		// CPU per file and busy cores tell work from waiting (settle,
		// fsync, a worker idle for want of files).
		fmt.Fprintf(m.Stdout, "round %d: %.2f s, %.2f files/s, cpu %.1f ms/file (%.2f cores busy), %d page faults/file, peak RSS %.0f MiB, outcomes %s\n",
			r, res.Wall.Seconds(), res.FilesPer, ms(res.CPU)/float64(max(res.Files, 1)), res.CPU.Seconds()/res.Wall.Seconds(),
			res.Faults/int64(max(res.Files, 1)), float64(res.PeakRSS)/(1<<20), formatCounts(res.ByState))
		rounds = append(rounds, res)
	}
	printE2ESummary(m.Stdout, rounds)
	return nil
}

// e2eFiles lists the regular files directly in dir.
func e2eFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bench: --e2e: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: --e2e %s: no files in the folder", dir)
	}
	return out, nil
}

func (m *Main) e2eRound(ctx context.Context, o e2eOptions, files []string) (res e2eRound, err error) {
	root, err := os.MkdirTemp(o.Work, "fracd-bench-e2e-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(root)
	// The stage folder is on the inbox's filesystem, so the drop is one
	// rename; copying happens before the clock starts.
	stage := filepath.Join(root, "drop")
	if err := os.Mkdir(stage, 0o750); err != nil {
		return res, err
	}
	for _, f := range files {
		if err := fsutil.CopyFileAtomic(filepath.Join(stage, filepath.Base(f)), f, 0o640); err != nil {
			return res, err
		}
	}

	var (
		mu      sync.Mutex
		outs    []pipeline.Outcome
		allDone = make(chan struct{})
	)
	sub := &Main{Config: m.Config, ConfigFile: m.ConfigFile, Stdin: m.Stdin, Stdout: io.Discard, Stderr: m.Stderr, viper: m.viper}
	c := &sub.Config
	c.Paths.Inbox = filepath.Join(root, "inbox")
	c.Paths.Spool = filepath.Join(root, "spool")
	c.Paths.Archive = filepath.Join(root, "archive")
	c.Paths.DB = filepath.Join(root, "fracd.db")
	c.Paths.Models = filepath.Join(root, "models")
	c.Anonymize.SecretFile = filepath.Join(root, "secret.key")
	c.Audit.KeyFile = ""
	c.HTTP.Listen = "127.0.0.1:0"
	c.Delivery.Host = ""
	c.Settle = o.Settle
	c.Rescan = 30 * time.Second
	c.MinFreeMB = 0
	c.Model.Path = o.Model
	if o.Workers > 0 {
		c.Workers = o.Workers
	}
	// The daemon logs as it would in production (a line per file), to a
	// sink: formatting is part of its cost, the terminal is not.
	sub.Logger = newLogger(io.Discard, c.Log)
	sub.onOutcome = func(out pipeline.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		outs = append(outs, out)
		if len(outs) == len(files) {
			close(allDone)
		}
	}
	dm, err := sub.OpenDaemon(ctx)
	if err != nil {
		return res, err
	}
	defer func() {
		if cerr := dm.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
			err = cerr
		}
	}()
	info, err := waitForModel(ctx, dm, time.Minute)
	if err != nil {
		return res, err
	}
	resetPeakRSS()
	cpu0, flt0 := processCPU(), minorFaults()
	t0 := time.Now()
	if err := os.Rename(stage, filepath.Join(c.Paths.Inbox, "drop")); err != nil {
		return res, err
	}
	select {
	case <-allDone:
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.Timeout):
		mu.Lock()
		n := len(outs)
		mu.Unlock()
		return res, fmt.Errorf("%d of %d files finished within %s", n, len(files), o.Timeout)
	}
	res.Wall = time.Since(t0)
	res.CPU = processCPU() - cpu0
	res.Faults = minorFaults() - flt0
	res.PeakRSS = peakRSSBytes()
	res.Files = len(files)
	res.FilesPer = float64(len(files)) / res.Wall.Seconds()
	res.Model = info
	res.ByState = map[string]int{}
	res.Stages = map[string][]time.Duration{}
	mu.Lock()
	defer mu.Unlock()
	for _, out := range outs {
		k := out.State
		if code, _, _ := strings.Cut(out.Reason, ":"); code != "" {
			k += " (" + code + ")"
		}
		res.ByState[k]++
		if out.State != store.StateDone {
			continue // the stages are those of files that went all the way
		}
		var total time.Duration
		for name, d := range out.Stages {
			res.Stages[name] = append(res.Stages[name], d)
			total += d
		}
		res.Stages["total"] = append(res.Stages["total"], total)
	}
	return res, nil
}

// waitForModel waits until the daemon has loaded a model.
func waitForModel(ctx context.Context, dm *Daemon, limit time.Duration) (pipeline.ModelInfo, error) {
	deadline := time.Now().Add(limit)
	for {
		if info, ok := dm.d.p.ModelInfo(); ok {
			return info, nil
		}
		dm.d.mu.Lock()
		merr := dm.d.modelErr
		dm.d.mu.Unlock()
		if merr != nil {
			return pipeline.ModelInfo{}, fmt.Errorf("no model: %w", merr)
		}
		if time.Now().After(deadline) {
			return pipeline.ModelInfo{}, fmt.Errorf("no model loaded within %s", limit)
		}
		select {
		case <-ctx.Done():
			return pipeline.ModelInfo{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stageOrder is the order of process's stages, for the table.
var stageOrder = []string{"read", "parse", "decode", "preprocess", "deidentify", "archive", "classify", "record", "total"}

func printE2ESummary(w io.Writer, rounds []e2eRound) {
	rates := make([]float64, len(rounds))
	var peak int64
	stages := map[string][]time.Duration{}
	for i, r := range rounds {
		rates[i] = r.FilesPer
		peak = max(peak, r.PeakRSS)
		for k, v := range r.Stages {
			stages[k] = append(stages[k], v...)
		}
	}
	fmt.Fprintf(w, "median %.2f files/s over %d rounds, peak RSS %.0f MiB\n", medianFloat(rates), len(rounds), float64(peak)/(1<<20))
	names := slices.Clone(stageOrder)
	for k := range stages {
		if !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	fmt.Fprintf(w, "%-11s %8s %8s %8s  (ms per file done, all rounds; total = the stages' sum)\n", "stage", "p50", "p95", "mean")
	for _, name := range names {
		ds := stages[name]
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		fmt.Fprintf(w, "%-11s %8.2f %8.2f %8.2f\n", name, ms(percentile(ds, 0.50)), ms(percentile(ds, 0.95)),
			ms(sum/time.Duration(len(ds))))
	}
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func medianFloat(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// resetPeakRSS restarts the kernel's peak-resident-set count of this
// process (Linux; elsewhere the peak is the process's since start).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSBytes is this process's VmHWM, 0 where /proc is not readable.
func peakRSSBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}

// minorFaults is this process's minor page faults so far.
func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
