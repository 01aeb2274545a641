// Package watcher notices files arriving in an inbox directory tree and
// reports each one once it is complete. It knows nothing of what the files
// contain.
//
// A file is complete when, for Config.Settle, no filesystem event has been
// seen for it and its size, mtime and inode have not changed, and (on Linux,
// where a lease can tell) no process has it open for writing. A file found
// by a walk rather than an event (a folder moved in, files left while the
// daemon was down) has been quiet since its inode last changed (ctime), where
// the inbox is on a local filesystem, so a study moved in whole that was
// written more than Settle ago goes on at once. Events come
// from fsnotify (inotify on Linux), watching every subfolder; because the
// kernel drops events when its queue overflows, and because a watch can fail
// (e.g. the inotify watch limit), the tree is also walked at start, every
// Config.Rescan, and right after an overflow. Memory is bounded by
// Config.MaxTracked whatever the size of the inbox.
//
// Inbox file and folder names may carry patient identifiers, so nothing in
// this package logs a path below Config.Dir or returns one in an error.
package watcher

import (
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for the zero values of Config.
const (
	DefaultSettle     = 2 * time.Second
	DefaultRescan     = 30 * time.Second
	DefaultRetry      = 5 * time.Minute
	DefaultMaxTracked = 10000
)

// Config configures a Watcher. Zero values take the defaults above.
type Config struct {
	// Dir is the inbox root. It must exist and be a directory.
	Dir string
	// Settle is how long a file must stay quiet (no event, same size, mtime
	// and inode) before it is emitted.
	Settle time.Duration
	// Rescan is the period of the full walk that catches what fsnotify
	// missed.
	Rescan time.Duration
	// Retry is how long an emitted file may stay in place, without Done
	// being called, before it is emitted again. It only guards against a
	// consumer that lost a path; negative disables it.
	Retry time.Duration
	// MaxTracked bounds the files the watcher remembers at once (settling,
	// queued for the consumer, or emitted and not yet gone). Further files
	// are left on disk and picked up by a rescan once the backlog halves.
	MaxTracked int
}

func (c Config) withDefaults() Config {
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.Rescan == 0 {
		c.Rescan = DefaultRescan
	}
	if c.Retry == 0 {
		c.Retry = DefaultRetry
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = DefaultMaxTracked
	}
	return c
}

// Stats is a snapshot of the watcher's state, for metrics and readiness.
type Stats struct {
	Settling int    // files seen, waiting to settle
	Queued   int    // settled files waiting for the consumer to receive them
	InFlight int    // emitted, neither gone from the inbox nor Done yet
	Dirs     int    // folders watched
	Emitted  uint64 // paths sent on ready since start
	Rescans  uint64 // full walks completed since start (initial scan included)
	Overflow uint64 // fsnotify overflows seen
	Capped   bool   // MaxTracked reached; the rest waits on disk
	InboxOK  bool   // the last walk could read the inbox root
}

// Watcher watches one inbox tree. Create it with New, start it with Run.
type Watcher struct {
	cfg  Config
	root string
	log  *slog.Logger
	poll time.Duration

	running atomic.Bool

	doneMu  sync.Mutex
	doneQ   []string
	doneSig chan struct{}

	// ids holds, for each path queued or in flight, the file that settled
	// there; the consumer reads it (SettledID) from its own goroutine.
	idMu sync.Mutex
	ids  map[string]snapshot

	// Owned by the Run goroutine.
	fsw       *fsnotify.Watcher
	entries   map[string]*entry
	queue     *list.List // of string: settled paths in arrival order
	dirs      map[string]struct{}
	emptied   map[string]struct{} // folders below the root that a claim may have left empty
	nSettling int
	nInFlight int
	capped    bool
	inboxOK   bool

	st struct {
		settling, queued, inflight, dirs atomic.Int64
		emitted, rescans, overflow       atomic.Uint64
		capped, inboxOK                  atomic.Bool
	}

	// clock is real time; tests drive a manual one (set before Run).
	clock clock

	// inodeTimes: the inbox is on a local filesystem (device rootDev), so
	// a file found by a walk counts as quiet since its ctime, not since it
	// was found (inodeChanged).
	inodeTimes bool
	rootDev    uint64
	found      []string // added by the current walk, quiet for Settle already

	// Test hooks: noNotify runs on scans alone, as if every event were lost;
	// injectErr feeds errors as if they came from fsnotify.
	noNotify  bool
	injectErr chan error
}

// clock is the watcher's time: its now, the poll ticker and the rescan
// timer. Settling is judged on it, so a test can step it instead of
// sleeping through Settle, Rescan and Retry.
type clock interface {
	Now() time.Time
	NewTicker(d time.Duration) ticker
	NewTimer(d time.Duration) timer
}

type ticker interface {
	C() <-chan time.Time
	Stop()
}

type timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

type realClock struct{}

func (realClock) Now() time.Time                   { return time.Now() }
func (realClock) NewTicker(d time.Duration) ticker { return realTicker{time.NewTicker(d)} }
func (realClock) NewTimer(d time.Duration) timer   { return realTimer{time.NewTimer(d)} }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time { return t.t.C }
func (t realTicker) Stop()               { t.t.Stop() }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time   { return t.t.C }
func (t realTimer) Reset(d time.Duration) { t.t.Reset(d) }
func (t realTimer) Stop()                 { t.t.Stop() }

// New checks cfg and returns a Watcher. It opens nothing; Run does.
func New(cfg Config, log *slog.Logger) (*Watcher, error) {
	cfg = cfg.withDefaults()
	if cfg.Dir == "" {
		return nil, errors.New("watcher: no inbox directory configured")
	}
	if cfg.Settle < 0 || cfg.Rescan < 0 || cfg.MaxTracked < 0 {
		return nil, fmt.Errorf("watcher: negative settle %v, rescan %v or max tracked %d", cfg.Settle, cfg.Rescan, cfg.MaxTracked)
	}
	root, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("watcher: inbox %s: %w", cfg.Dir, err)
	}
	// A symlinked inbox must be resolved: the walk does not follow a
	// symlink at its root, and event paths must match walk paths.
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, fmt.Errorf("watcher: inbox: %w", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("watcher: inbox: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("watcher: inbox %s is not a directory", root)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Check often enough that a settled file waits at most a quarter of
	// Settle beyond it, but not so often that an idle daemon spins.
	poll := min(max(cfg.Settle/4, 10*time.Millisecond), 500*time.Millisecond)
	rootDev, _ := fileID(fi)
	return &Watcher{
		inodeTimes: localInodeTimes(root),
		rootDev:    rootDev,
		cfg:        cfg,
		root:       root,
		log:        log.With("component", "watcher"),
		poll:       poll,
		clock:      realClock{},
		doneSig:    make(chan struct{}, 1),
		ids:        make(map[string]snapshot),
		entries:    make(map[string]*entry),
		queue:      list.New(),
		dirs:       make(map[string]struct{}),
		emptied:    make(map[string]struct{}),
	}, nil
}

// Dir returns the inbox root, absolute with symlinks resolved; emitted
// paths are below it.
func (w *Watcher) Dir() string { return w.root }

// Done tells the watcher the consumer has finished with an emitted path,
// whatever it did with the file. If the file is still in the inbox after
// that, it is treated as newly arrived: it must settle again and is then
// emitted again. Safe for concurrent use, never blocks, and may be called
// after Run has returned. Calling it for a path that was not emitted, or
// twice, is harmless.
func (w *Watcher) Done(path string) {
	w.doneMu.Lock()
	// Bounded: a consumer calls Done at most once per emitted path, and at
	// most MaxTracked paths are emitted and pending; past that the Retry
	// path still recovers.
	if len(w.doneQ) < 2*w.cfg.MaxTracked+1 {
		w.doneQ = append(w.doneQ, path)
	}
	w.doneMu.Unlock()
	select {
	case w.doneSig <- struct{}{}:
	default:
	}
}

// SettledID returns the device and inode of the file that settled at path,
// while path is queued or emitted and not yet Done or gone; ok is false
// otherwise, and where the platform has no inodes. The consumer compares it
// with the file it opens, so that something swapped in at the path after it
// settled (a symlink, a FIFO, another file) is not taken in its place. Safe
// for concurrent use; valid as soon as the path has been received.
func (w *Watcher) SettledID(path string) (dev, ino uint64, ok bool) {
	w.idMu.Lock()
	s, ok := w.ids[filepath.Clean(path)]
	w.idMu.Unlock()
	if !ok || (s.dev == 0 && s.ino == 0) {
		return 0, 0, false
	}
	return s.dev, s.ino, true
}

func (w *Watcher) setID(p string, s snapshot) {
	w.idMu.Lock()
	w.ids[p] = s
	w.idMu.Unlock()
}

func (w *Watcher) dropID(p string) {
	w.idMu.Lock()
	delete(w.ids, p)
	w.idMu.Unlock()
}

// Stats returns a snapshot of the watcher's state. Safe for concurrent use.
func (w *Watcher) Stats() Stats {
	return Stats{
		Settling: int(w.st.settling.Load()),
		Queued:   int(w.st.queued.Load()),
		InFlight: int(w.st.inflight.Load()),
		Dirs:     int(w.st.dirs.Load()),
		Emitted:  w.st.emitted.Load(),
		Rescans:  w.st.rescans.Load(),
		Overflow: w.st.overflow.Load(),
		Capped:   w.st.capped.Load(),
		InboxOK:  w.st.inboxOK.Load(),
	}
}
