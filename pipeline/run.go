package pipeline

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"
)

// RunConfig configures the worker pool.
type RunConfig struct {
	Workers int
	// ShutdownTimeout is how long in-flight files may take to finish once the
	// context is cancelled; after it their work is interrupted and they are
	// picked up again at the next start.
	ShutdownTimeout time.Duration
	// RetryInterval is how often spool/work is scanned for files whose last
	// attempt failed for a system reason (default 30s).
	RetryInterval time.Duration
	// DiskOK, when set, must return nil before a new file is claimed (the
	// free-space watermark); while it fails claiming pauses.
	DiskOK func() error
	// Release is called with each inbox path once the pool is done with it
	// (claimed or not), so the watcher can forget it.
	Release func(path string)
	// SettledID, when set, names the file (device, inode) that settled at an
	// inbox path; a claim refuses anything else found there (a symlink or
	// other file swapped in since), leaving it for the watcher.
	SettledID func(path string) (dev, ino uint64, ok bool)
	// OnOutcome, when set, sees every terminal outcome.
	OnOutcome func(Outcome)
}

// Run processes what spool/work holds, then every path received on inbox,
// with cfg.Workers workers, until ctx is cancelled and in-flight files are
// finished (or ShutdownTimeout passes). Claiming waits for a free worker,
// for disk space and for a model, so nothing is taken that cannot be done.
func (p *Pipeline) Run(ctx context.Context, cfg RunConfig, inbox <-chan string) error {
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 30 * time.Second
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	// Work runs on its own context so that a shutdown lets files finish.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		<-ctx.Done()
		t := time.NewTimer(cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			p.log.Warn("shutdown deadline passed: interrupting in-flight files; they are retried at next start")
			cancelWork()
		case <-workCtx.Done():
		}
	}()

	jobs := make(chan Job)
	var wg sync.WaitGroup
	for i := 0; i < cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.worker(ctx, workCtx, cfg, jobs, inbox)
		}()
	}

	// What an earlier run stopped while decoding waits in quarantine.
	if err := p.Recover(ctx); err != nil {
		return err
	}
	// Recovered and retryable files go first, then periodically; a
	// quarantined file is tried once more only when spool/work has stayed
	// empty for a retry interval since start.
	started := true
	feed := func() {
		pending, err := p.Pending()
		if err != nil {
			p.log.Error("list spool/work", "error", err)
			return
		}
		if len(pending) == 0 && !started {
			if j, ok := p.retryQuarantined(); ok {
				pending = []Job{j}
			}
		}
		started = false
		p.metrics.QueueDepth.Set(float64(len(pending)))
		for _, j := range pending {
			if p.isInFlight(j.SHA256) {
				continue
			}
			if p.model.Load() == nil && !p.waitModel(ctx) {
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}
	feed()
	ticker := time.NewTicker(cfg.RetryInterval)
	defer ticker.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-ticker.C:
			feed()
		}
	}
	close(jobs)
	wg.Wait()
	return nil
}

func (p *Pipeline) isInFlight(sha string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inflight[sha]
}

// waitModel blocks until a model is set or ctx ends.
func (p *Pipeline) waitModel(ctx context.Context) bool {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for p.model.Load() == nil {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

func (p *Pipeline) worker(ctx, workCtx context.Context, cfg RunConfig, jobs <-chan Job, inbox <-chan string) {
	for {
		// Take nothing new without a model or disk space.
		if !p.waitModel(ctx) || !p.waitDisk(ctx, cfg.DiskOK) {
			// Drain recovered jobs that were already handed out.
			for range jobs {
			}
			return
		}
		select {
		case <-ctx.Done():
			for range jobs {
			}
			return
		case j, ok := <-jobs:
			if !ok {
				return
			}
			p.runJob(workCtx, cfg, j)
		case path, ok := <-inbox:
			if !ok {
				inbox = nil
				continue
			}
			var want *fileID
			if cfg.SettledID != nil {
				if dev, ino, ok := cfg.SettledID(path); ok {
					want = &fileID{dev: dev, ino: ino}
				}
			}
			job, err := p.claim(workCtx, path, want)
			if cfg.Release != nil {
				cfg.Release(path)
			}
			if errors.Is(err, ErrClaimed) {
				continue
			}
			if err != nil {
				if job.Path == "" {
					// Not claimed: the file is still in the inbox and the
					// watcher will offer it again, every settle period.
					// Say so once per file, not at every offer.
					if p.claimFailures.first(path) {
						p.log.Warn("claim failed; the file stays in the inbox (further failures are logged at debug level)", "error", err)
					} else {
						p.log.Debug("claim failed again", "error", err)
					}
					continue
				}
				p.claimFailures.forget(path)
				p.log.Error("claim", "sha256", job.SHA256, "error", err)
			}
			p.runJob(workCtx, cfg, job)
		}
	}
}

// pathSet remembers inbox paths whose claim failed, so that the warning is
// logged once per file. Bounded: past maxPaths it starts afresh.
type pathSet struct {
	mu sync.Mutex
	m  map[string]bool
}

const maxPaths = 10000

// first records path and reports whether it was new.
func (s *pathSet) first(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[path] {
		return false
	}
	if s.m == nil || len(s.m) >= maxPaths {
		s.m = map[string]bool{}
	}
	s.m[path] = true
	return true
}

func (s *pathSet) forget(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, path)
}

// runningJobs records when each job in a worker started.
type runningJobs struct {
	mu    sync.Mutex
	next  int64
	start map[int64]time.Time
}

func (r *runningJobs) add() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.start == nil {
		r.start = map[int64]time.Time{}
	}
	r.next++
	r.start[r.next] = time.Now()
	return r.next
}

func (r *runningJobs) done(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.start, id)
}

// Running returns when each file now in a worker started, so that a
// readiness check can tell a hung worker from a busy one.
func (p *Pipeline) Running() []time.Time {
	p.running.mu.Lock()
	defer p.running.mu.Unlock()
	out := make([]time.Time, 0, len(p.running.start))
	for _, t := range p.running.start {
		out = append(out, t)
	}
	return out
}

func (p *Pipeline) runJob(ctx context.Context, cfg RunConfig, j Job) {
	defer p.running.done(p.running.add())
	out, err := p.Process(ctx, j)
	if err != nil {
		// The retry scan lists spool/work before it hands files out: one
		// finished (and removed) or taken by another worker meanwhile has
		// nothing left to retry here.
		if _, serr := os.Lstat(j.Path); errors.Is(err, errInFlight) || (errors.Is(err, fs.ErrNotExist) && errors.Is(serr, fs.ErrNotExist)) {
			p.log.Debug("work file already finished or in hand", "sha256", j.SHA256)
			return
		}
		// Left in spool/work; the retry scan or the next start picks it up.
		p.log.Error("file not finished; will retry", "sha256", j.SHA256, "error", err)
		return
	}
	if cfg.OnOutcome != nil {
		cfg.OnOutcome(out)
	}
}

func (p *Pipeline) waitDisk(ctx context.Context, ok func() error) bool {
	if ok == nil {
		return true
	}
	warned := false
	for {
		err := ok()
		if err == nil {
			return true
		}
		if !warned {
			p.log.Warn("claiming paused: low disk space", "error", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}
