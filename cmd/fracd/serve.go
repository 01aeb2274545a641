package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/pipeline"
	"github.com/fracd/fracd/store"
	"github.com/fracd/fracd/watcher"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
)

func newServeCmd(m *Main) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: watch the inbox, process every file, serve /healthz, /readyz and /metrics",
		Long: `Watches paths.inbox (recursively) and takes each complete file through the
pipeline: claim into spool/work, decode, de-identify, archive, classify, record.
On start everything left in spool/work is processed again. SIGTERM/SIGINT stop
claiming and let in-flight files finish (shutdown_timeout). SIGHUP, or a change
of the registry's active model, switches models between files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return m.serve(cmd.Context())
		},
	}
}

// daemon is a running serve: the parts the HTTP handlers and the model
// reloader share.
type daemon struct {
	m       *Main
	db      *store.DB
	p       *pipeline.Pipeline
	w       *watcher.Watcher
	metrics *pipeline.Metrics

	mu          sync.Mutex
	modelErr    error
	loadedKey   string // what resolveModel named when the model in use was loaded
	diskErr     error
	watcherDone bool
}

func (m *Main) serve(ctx context.Context) error {
	dm, err := m.OpenDaemon(ctx)
	if err != nil {
		return err
	}
	<-ctx.Done() // SIGTERM or SIGINT (main.go)
	return dm.Close()
}

// Daemon is `fracd serve` as a value: OpenDaemon starts it (workers,
// watcher, HTTP listener, model reloader, delivery) and returns once it
// serves; Close stops it as SIGTERM does, letting in-flight files finish.
// End-to-end tests run it in-process on port 0 this way, besides the kill
// -9 tests that run the binary.
type Daemon struct {
	d       *daemon
	addr    string
	cancel  context.CancelFunc
	runDone chan error
	undo    []func() // in reverse: what Close stops after the workers
	once    sync.Once
	err     error
}

// Addr is the HTTP listener's address (host:port), the port resolved.
func (dm *Daemon) Addr() string { return dm.addr }

// Close stops claiming, waits for in-flight files (up to
// shutdown_timeout), then stops the listener, delivery and the database.
// It may be called more than once.
func (dm *Daemon) Close() error {
	dm.once.Do(func() {
		dm.cancel()
		dm.err = <-dm.runDone
		dm.close()
		dm.d.m.Logger.Info("fracd stopped")
	})
	return dm.err
}

func (dm *Daemon) close() {
	for i := len(dm.undo) - 1; i >= 0; i-- {
		dm.undo[i]()
	}
	dm.undo = nil
}

// OpenDaemon starts the daemon on m's config; ctx bounds its life as
// Close does.
func (m *Main) OpenDaemon(ctx context.Context) (_ *Daemon, err error) {
	c := m.Config
	log := m.Logger
	for _, d := range []string{c.Paths.Inbox, c.Paths.Spool, c.Paths.Archive, filepath.Dir(c.Paths.DB)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("serve: create %s: %w", d, err)
		}
	}
	// The claim is a rename: it is atomic only within one filesystem.
	same, err := watcher.SameFilesystem(c.Paths.Inbox, c.Paths.Spool)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if !same {
		return nil, fmt.Errorf("serve: paths.inbox and paths.spool must be on the same filesystem (the claim is an atomic rename); %s and %s are not", c.Paths.Inbox, c.Paths.Spool)
	}
	dm := &Daemon{runDone: make(chan error, 1)}
	defer func() {
		if err != nil {
			dm.close()
		}
	}()
	unlock, err := lockSpool(c.Paths.Spool) // spoollock.go
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	dm.undo = append(dm.undo, unlock)
	db, err := m.openDB(ctx)
	if err != nil {
		return nil, err
	}
	dm.undo = append(dm.undo, func() { db.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := pipeline.NewMetrics(reg)
	p, err := m.newPipeline(db, metrics, c.EffectiveWorkers())
	if err != nil {
		return nil, err
	}
	stopDelivery, err := m.startDelivery(ctx, db, p) // delivery.go
	if err != nil {
		return nil, err
	}
	dm.undo = append(dm.undo, stopDelivery)
	w, err := watcher.New(watcher.Config{Dir: c.Paths.Inbox, Settle: c.Settle, Rescan: c.Rescan}, log)
	if err != nil {
		return nil, err
	}
	d := &daemon{m: m, db: db, p: p, w: w, metrics: metrics}
	dm.d = d

	ln, err := net.Listen("tcp", c.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("serve: http.listen %s: %w", c.HTTP.Listen, err)
	}
	srv := newHTTPServer(d.routes(reg), defaultHTTPLimits) // httpserver.go
	go srv.Serve(limitListener(ln, defaultHTTPLimits.MaxConns))
	dm.addr = ln.Addr().String()
	dm.undo = append(dm.undo, func() {
		shutdownCtx, done := context.WithTimeout(context.Background(), 2*time.Second)
		defer done()
		srv.Shutdown(shutdownCtx)
		srv.Close()
	})

	d.reloadModel(ctx, "start")
	log.Info("fracd serving", "version", version, "http", dm.addr, "workers", c.EffectiveWorkers(),
		"settle", c.Settle.String(), "db", c.Paths.DB)

	ctx, dm.cancel = context.WithCancel(ctx)
	var wg sync.WaitGroup
	ready := make(chan string)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx, ready); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("watcher stopped", "error", err)
			d.mu.Lock()
			d.watcherDone = true
			d.mu.Unlock()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.watchModel(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				st := w.Stats()
				metrics.QueueDepth.Set(float64(st.Queued + st.Settling))
			}
		}
	}()
	go func() {
		err := p.Run(ctx, pipeline.RunConfig{
			Workers:         c.EffectiveWorkers(),
			ShutdownTimeout: c.Shutdown,
			RetryInterval:   c.Rescan,
			DiskOK:          d.diskOK,
			Release:         w.Done,
			SettledID:       w.SettledID,
			OnOutcome:       m.onOutcome,
		}, ready)
		dm.cancel()
		wg.Wait()
		dm.runDone <- err
	}()
	return dm, nil
}

// newPipeline builds the pipeline from the config: the site's anonymizer
// (its secret is created on first use) and the spool, archive and limits.
// workers is how many files run at once: with more than one, each file's
// JPEG 2000 decode keeps to one thread (see fromClassifier).
func (m *Main) newPipeline(db *store.DB, metrics *pipeline.Metrics, workers int) (*pipeline.Pipeline, error) {
	c := m.Config
	anon, err := anonymizerFromConfig(c.Anonymize)
	if err != nil {
		return nil, err
	}
	pc := m.pipelineConfig()
	if workers > 1 {
		pc.CodecThreads = 1
	}
	return pipeline.New(pc, db, anon, m.Logger, metrics)
}

// pipelineConfig is the pipeline's part of the config.
func (m *Main) pipelineConfig() pipeline.Config {
	c := m.Config
	return pipeline.Config{
		Spool: c.Paths.Spool, Archive: c.Paths.Archive, MaxPixelBytes: c.DICOM.MaxPixelBytes,
		MaxFileBytes: c.DICOM.MaxFileBytes, MaxInflateRatio: c.DICOM.MaxInflateRatio,
		ThresholdOverride: c.Model.Threshold,
	}
}

// dicomOptions are the daemon's DICOM limits, for the commands that read
// DICOM files outside it.
func (m *Main) dicomOptions() []dicomio.Option { return m.pipelineConfig().DICOMOptions() }

// diskOK applies the free-space watermark to the spool's and the archive's
// filesystems: a full archive would fail every file after its claim.
func (d *daemon) diskOK() error {
	err := diskCheck(d.m.Config, watcher.FreeBytes)
	d.mu.Lock()
	d.diskErr = err
	d.mu.Unlock()
	return err
}

// diskCheck is diskOK with the free-space probe given (tests fake it).
func diskCheck(c Config, freeBytes func(string) (uint64, error)) error {
	for _, f := range []struct{ name, path string }{{"spool", c.Paths.Spool}, {"archive", c.Paths.Archive}} {
		free, err := freeBytes(f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if int64(free) < c.MinFreeMB<<20 {
			return fmt.Errorf("%d MiB free on the %s's filesystem, below min_free_mb %d", free>>20, f.name, c.MinFreeMB)
		}
	}
	return nil
}

// resolveModel finds the model to use: model.path if set, else the
// registry's active model. key names that choice cheaply, so the 5 s poll
// notices a change without reading the weights: the registry's id and
// weights sha256, or model.path's size and mtime.
func (d *daemon) resolveModel(ctx context.Context) (path, id, key string, err error) {
	if p := d.m.Config.Model.Path; p != "" {
		st, err := os.Stat(p)
		if err != nil {
			return "", "", "", fmt.Errorf("model.path: %w", err)
		}
		return p, "", fmt.Sprintf("file %d %d", st.Size(), st.ModTime().UnixNano()), nil
	}
	am, err := d.db.ActiveModel(ctx)
	if errors.Is(err, store.ErrNotFound) {
		if am, err = installShippedModel(ctx, d.m, d.db); err != nil {
			return "", "", "", fmt.Errorf("no active model, and the shipped one could not be installed: %w (set model.path, or register one with `fracd model add WEIGHTS.safetensors --activate`)", err)
		}
	}
	if err != nil {
		return "", "", "", err
	}
	return am.Path, am.ID, "registry " + am.ID + " " + am.WeightsSHA256, nil
}

// reloadModel loads the configured model if it differs from the one in use.
func (d *daemon) reloadModel(ctx context.Context, why string) {
	log := d.m.Logger
	path, id, key, err := d.resolveModel(ctx)
	if err == nil && key == d.currentKey() {
		return
	}
	if err == nil {
		var cm *classifier.Model
		cm, err = loadClassifier(path, d.m.Config.Model.Precision)
		var pm pipeline.Model
		if err == nil {
			pm, err = fromClassifier(cm, id, path, d.m.Config.EffectiveWorkers())
		}
		if err == nil {
			err = warmUp(ctx, cm, d.m.Config.EffectiveWorkers())
		}
		if err == nil {
			err = d.p.SetModel(ctx, pm, why)
		}
		if err == nil {
			d.mu.Lock()
			d.loadedKey = key
			d.mu.Unlock()
		}
	}
	d.mu.Lock()
	changed := (err == nil) != (d.modelErr == nil)
	d.modelErr = err
	d.mu.Unlock()
	if err != nil && (changed || why != "poll") {
		if _, ok := d.p.ModelInfo(); ok {
			log.Error("model not switched; keeping the current one", "error", err)
		} else {
			log.Warn("not ready: files wait in the inbox until a model is available", "error", err)
		}
	}
}

// warmUp runs the model on a uniform gray image, as the pipeline will (the
// heat-map pass on a normalised gray plane, which takes the one-channel
// graph), before it is switched in: the first files after a start or a
// switch do not pay for building graphs and compiling kernels, and a model
// that cannot run is refused while the current one keeps working. workers
// calls run at once, so that each file in flight finds a graph ready.
func warmUp(ctx context.Context, cm *classifier.Model, workers int) error {
	info := cm.Info()
	plane := info.InputSize * info.InputSize
	in := make([]float32, 3*plane)
	for c := range 3 {
		v := (0.5 - info.Mean[c]) / info.Std[c]
		for i := range plane {
			in[c*plane+i] = v
		}
	}
	n := max(workers, 1)
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := cm.HeatMaps(ctx, in, 1)
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("model warm-up: %w", err)
		}
	}
	return first
}

func (d *daemon) currentKey() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loadedKey
}

// watchModel switches models on SIGHUP and when the registry changes.
func (d *daemon) watchModel(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			d.m.Logger.Info("SIGHUP: reloading model")
			d.reloadModel(ctx, "sighup")
		case <-t.C:
			d.reloadModel(ctx, "poll")
		}
	}
}

// readyState is what /readyz looks at.
type readyState struct {
	haveModel    bool
	modelErr     error
	dbErr        error
	inboxOK      bool
	diskErr      error
	running      []time.Time // when each file now in a worker started
	now          time.Time
	stallTimeout time.Duration
}

// problems are the reasons the daemon is not ready, none when it is.
func (s readyState) problems() []string {
	var out []string
	if !s.haveModel {
		out = append(out, fmt.Sprintf("model: %v", s.modelErr))
	}
	if s.dbErr != nil {
		out = append(out, "database: "+s.dbErr.Error())
	}
	if !s.inboxOK {
		out = append(out, "inbox: not readable")
	}
	if s.diskErr != nil {
		out = append(out, "disk: "+s.diskErr.Error())
	}
	// A file can take long on a slow CPU, but not this long: the worker is
	// stuck (a hung read, a model that never returns), and the files behind
	// it wait.
	stalled, longest := 0, time.Duration(0)
	for _, t := range s.running {
		if d := s.now.Sub(t); d > s.stallTimeout {
			stalled++
			longest = max(longest, d)
		}
	}
	if stalled > 0 {
		out = append(out, fmt.Sprintf("workers: %d file(s) in a worker for longer than stall_timeout %s (longest %s): a worker may be hung",
			stalled, s.stallTimeout, longest.Round(time.Second)))
	}
	return out
}

func (d *daemon) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		st := readyState{now: time.Now(), stallTimeout: d.m.Config.StallTimeout, running: d.p.Running()}
		_, st.haveModel = d.p.ModelInfo()
		st.dbErr = d.db.SQL().PingContext(r.Context())
		st.inboxOK = d.w.Stats().InboxOK
		d.mu.Lock()
		st.modelErr, st.diskErr, st.inboxOK = d.modelErr, d.diskErr, st.inboxOK && !d.watcherDone
		d.mu.Unlock()
		if problems := st.problems(); len(problems) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
			return
		}
		info, _ := d.p.ModelInfo()
		fmt.Fprintf(w, "ready: model %s (%s)\n", info.ID, info.WeightsSHA256)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}
