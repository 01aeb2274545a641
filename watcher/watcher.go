// Package watcher notices files arriving in an inbox directory tree and
// reports each one once it is complete. It knows nothing of what the files
// contain.
//
// A file is complete when, for Config.Settle, no filesystem event has been
// seen for it and its size, mtime and inode have not changed, and (on Linux,
// where a lease can tell) no process has it open for writing. Events come
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
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fracd/fracd/internal/fsutil"
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
	Rescans  uint64 // full walks since start (initial scan included)
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

	// Test hooks: noNotify runs on scans alone, as if every event were lost;
	// injectErr feeds errors as if they came from fsnotify.
	noNotify  bool
	injectErr chan error
}

type state uint8

const (
	settling state = iota
	queued
	inFlight
)

type entry struct {
	state   state
	snap    snapshot
	changed time.Time     // last event or observed change
	emitted time.Time     // when sent on ready
	elem    *list.Element // in queue while queued
}

// snapshot is what must stay the same for a file to count as settled.
type snapshot struct {
	size     int64
	mtime    int64
	dev, ino uint64
}

func snap(fi fs.FileInfo) snapshot {
	dev, ino := fileID(fi)
	return snapshot{size: fi.Size(), mtime: fi.ModTime().UnixNano(), dev: dev, ino: ino}
}

func (s snapshot) sameFile(o snapshot) bool { return s.dev == o.dev && s.ino == o.ino }

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
	return &Watcher{
		cfg:     cfg,
		root:    root,
		log:     log.With("component", "watcher"),
		poll:    poll,
		doneSig: make(chan struct{}, 1),
		ids:     make(map[string]snapshot),
		entries: make(map[string]*entry),
		queue:   list.New(),
		dirs:    make(map[string]struct{}),
		emptied: make(map[string]struct{}),
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

// Run watches until ctx is cancelled, sending the absolute path of each
// complete file on ready. It returns ctx.Err() on cancellation, or an error
// if watching cannot start. It never closes ready. Run may be called once.
//
// Contract with the consumer:
//   - A path is sent once, then held "in flight": it is not sent again while
//     the file is still there, until the consumer calls Done(path), or the
//     file has stayed unclaimed for Config.Retry.
//   - The consumer claims a file by renaming it out of the inbox. The watcher
//     sees the rename and forgets the path; calling Done afterwards is
//     allowed and harmless. If the consumer leaves the file in place, it
//     should call Done so that the file is offered again after it settles.
//   - A path may still have vanished, or hold a different file, by the time
//     the consumer acts: the claim must be an atomic rename and ENOENT on it
//     means someone else already took the file. SettledID names the file
//     (device and inode) that settled, so the consumer can refuse another
//     one swapped in since; it must open the path without following links.
//   - Backpressure: stop receiving from ready. Settled files then wait in
//     the watcher (bounded by MaxTracked) while it keeps watching.
//   - Skipped, never sent: names starting with "." (files and folders) or
//     ending in .part or .tmp (any case) until renamed, files named DICOMDIR
//     (any case), and anything that is not a regular file (symlinks too).
func (w *Watcher) Run(ctx context.Context, ready chan<- string) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("watcher: Run called twice")
	}
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if !w.noNotify {
		fsw, err := fsnotify.NewWatcher()
		if err != nil {
			return fmt.Errorf("watcher: start fsnotify: %w", err)
		}
		// Close stops fsnotify's reader goroutine and waits for it.
		defer fsw.Close()
		w.fsw = fsw
		events, errs = fsw.Events, fsw.Errors
	}

	w.log.Info("watching inbox", "dir", w.root, "settle", w.cfg.Settle, "rescan", w.cfg.Rescan)
	if err := w.rescan(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(w.poll)
	defer tick.Stop()
	rescanT := time.NewTimer(w.cfg.Rescan)
	defer rescanT.Stop()

	for {
		w.publish()
		var (
			out  chan<- string
			head string
		)
		if e := w.queue.Front(); e != nil {
			out, head = ready, e.Value.(string)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			w.handle(ctx, ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if err := w.handleErr(ctx, err, rescanT); err != nil {
				return err
			}
		case err := <-w.injectErr:
			if err := w.handleErr(ctx, err, rescanT); err != nil {
				return err
			}
		case now := <-tick.C:
			w.check(now)
			// A capped walk left files on disk; fetch them once the
			// backlog has halved rather than waiting for the next period.
			if w.capped && len(w.entries) <= w.cfg.MaxTracked/2 {
				if err := w.rescanReset(ctx, rescanT); err != nil {
					return err
				}
			}
		case <-rescanT.C:
			if err := w.rescan(ctx); err != nil {
				return err
			}
			rescanT.Reset(w.cfg.Rescan)
		case <-w.doneSig:
			w.drainDone()
		case out <- head:
			w.markEmitted(head, time.Now())
		}
	}
}

func (w *Watcher) handleErr(ctx context.Context, err error, rescanT *time.Timer) error {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.st.overflow.Add(1)
		w.log.Warn("event queue overflowed, rescanning inbox")
		return w.rescanReset(ctx, rescanT)
	}
	// Other fsnotify errors are transient read errors; the rescan covers
	// whatever they cost.
	w.log.Warn("fsnotify error", "err", w.scrub(err))
	return nil
}

// rescanReset walks now and restarts the periodic timer.
func (w *Watcher) rescanReset(ctx context.Context, t *time.Timer) error {
	if err := w.rescan(ctx); err != nil {
		return err
	}
	t.Reset(w.cfg.Rescan)
	return nil
}

func (w *Watcher) publish() {
	w.st.settling.Store(int64(w.nSettling))
	w.st.queued.Store(int64(w.queue.Len()))
	w.st.inflight.Store(int64(w.nInFlight))
	w.st.dirs.Store(int64(len(w.dirs)))
	w.st.capped.Store(w.capped)
	w.st.inboxOK.Store(w.inboxOK)
}

// skipName reports names that are not taken as they stand: hidden entries
// and partial uploads, files and folders alike, until they are renamed.
func skipName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	l := strings.ToLower(name)
	return strings.HasSuffix(l, ".part") || strings.HasSuffix(l, ".tmp")
}

// isDICOMDIR reports a DICOM media index file: it describes other files and
// holds no image, so it is skipped rather than handed on to be rejected.
func isDICOMDIR(name string) bool { return strings.EqualFold(name, "DICOMDIR") }

// handle applies one fsnotify event.
func (w *Watcher) handle(ctx context.Context, ev fsnotify.Event) {
	p := filepath.Clean(ev.Name)
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		w.forget(p)
		return
	}
	if p == w.root {
		return
	}
	name := filepath.Base(p)
	if skipName(name) {
		return
	}
	fi, err := os.Lstat(p)
	if err != nil {
		// Gone already; its Remove or Rename event follows.
		return
	}
	if fi.IsDir() {
		if ev.Has(fsnotify.Create) {
			// A new or moved-in folder: watch it and everything below,
			// then pick up files that were already inside.
			w.walk(ctx, p)
		}
		return
	}
	if isDICOMDIR(name) {
		return
	}
	w.touch(p, fi, time.Now())
}

// touch records that the file at p was created or changed.
func (w *Watcher) touch(p string, fi fs.FileInfo, now time.Time) {
	if !fi.Mode().IsRegular() {
		return
	}
	s := snap(fi)
	e := w.entries[p]
	if e == nil {
		w.add(p, s, now)
		return
	}
	switch e.state {
	case settling:
		e.snap, e.changed = s, now
	case queued:
		if s == e.snap {
			return // attribute noise on a settled file
		}
		w.queue.Remove(e.elem)
		e.elem = nil
		w.dropID(p)
		e.state, e.snap, e.changed = settling, s, now
		w.nSettling++
	case inFlight:
		// Attribute events with nothing changed are noise; a different
		// file or new content at the path is a new arrival.
		if s == e.snap {
			return
		}
		w.dropID(p)
		e.state, e.snap, e.changed = settling, s, now
		w.nInFlight--
		w.nSettling++
	}
}

// add starts tracking a new file, unless the bound is reached.
func (w *Watcher) add(p string, s snapshot, now time.Time) {
	if len(w.entries) >= w.cfg.MaxTracked {
		w.setCapped()
		return
	}
	w.entries[p] = &entry{state: settling, snap: s, changed: now}
	w.nSettling++
}

func (w *Watcher) setCapped() {
	if !w.capped {
		w.log.Warn("tracking limit reached, leaving further files for a later scan", "max_tracked", w.cfg.MaxTracked)
	}
	w.capped = true
}

// remove drops one entry.
func (w *Watcher) remove(p string, e *entry) {
	switch e.state {
	case settling:
		w.nSettling--
	case queued:
		w.queue.Remove(e.elem)
	case inFlight:
		w.nInFlight--
	}
	delete(w.entries, p)
	w.dropID(p)
}

// forget handles a path that left: a file, or a folder with all below it.
func (w *Watcher) forget(p string) {
	if e := w.entries[p]; e != nil {
		if e.state == inFlight {
			w.markEmptied(filepath.Dir(p))
		}
		w.remove(p, e)
	}
	if _, ok := w.dirs[p]; !ok {
		return
	}
	// inotify drops the watches of a removed folder itself, and fsnotify
	// those of a moved one; only our bookkeeping is left to clear.
	prefix := p + string(filepath.Separator)
	for d := range w.dirs {
		if d == p || strings.HasPrefix(d, prefix) {
			delete(w.dirs, d)
		}
	}
	for q, e := range w.entries {
		if strings.HasPrefix(q, prefix) {
			w.remove(q, e)
		}
	}
	if p == w.root {
		w.inboxOK = false
		w.log.Error("inbox directory removed or moved; waiting for it to return", "dir", w.root)
	}
}

// check promotes settled files to the queue and re-offers in-flight files
// that stayed unclaimed for Retry.
func (w *Watcher) check(now time.Time) {
	for p, e := range w.entries {
		switch e.state {
		case settling:
			if now.Sub(e.changed) < w.cfg.Settle {
				continue
			}
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() {
				w.remove(p, e)
				continue
			}
			if s := snap(fi); s != e.snap {
				// Changed without an event reaching us: settle anew.
				e.snap, e.changed = s, now
				continue
			}
			if open, _ := openForWriting(p); open {
				// Quiet but still open for writing: the sender has paused.
				e.changed = now
				continue
			}
			// Published before the path can be received.
			w.setID(p, e.snap)
			e.state = queued
			e.elem = w.queue.PushBack(p)
			w.nSettling--
		case inFlight:
			if w.cfg.Retry < 0 || now.Sub(e.emitted) < w.cfg.Retry {
				continue
			}
			w.recheckInFlight(p, e, now, true)
		}
	}
}

// recheckInFlight drops an in-flight entry whose file has gone, turns it
// back to settling if a different file now sits at the path, and, when
// retry is set and the same file is still there, queues it again.
func (w *Watcher) recheckInFlight(p string, e *entry, now time.Time, retry bool) {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		w.markEmptied(filepath.Dir(p))
		w.remove(p, e)
		return
	}
	s := snap(fi)
	if s != e.snap {
		w.dropID(p)
		e.state, e.snap, e.changed = settling, s, now
		w.nInFlight--
		w.nSettling++
		return
	}
	if retry {
		w.log.Warn("emitted file still unclaimed, offering it again", "after", now.Sub(e.emitted).Round(time.Second))
		e.state = queued
		e.elem = w.queue.PushBack(p)
		w.nInFlight--
	}
}

func (w *Watcher) markEmitted(p string, now time.Time) {
	e := w.entries[p]
	w.queue.Remove(e.elem)
	e.elem = nil
	e.state, e.emitted = inFlight, now
	w.nInFlight++
	w.st.emitted.Add(1)
}

func (w *Watcher) drainDone() {
	w.doneMu.Lock()
	q := w.doneQ
	w.doneQ = nil
	w.doneMu.Unlock()
	now := time.Now()
	for _, p := range q {
		p = filepath.Clean(p)
		e := w.entries[p]
		if e == nil || e.state != inFlight {
			continue
		}
		w.remove(p, e)
		// Still there: the consumer left it, so offer it again once it has
		// settled (again).
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			w.add(p, snap(fi), now)
		} else {
			w.markEmptied(filepath.Dir(p))
		}
	}
}

// rescan walks the whole inbox and re-verifies in-flight files. It only
// fails when ctx is cancelled.
func (w *Watcher) rescan(ctx context.Context) error {
	w.st.rescans.Add(1)
	w.capped = false
	if _, err := os.Stat(w.root); err != nil {
		if w.inboxOK || w.st.rescans.Load() == 1 {
			w.log.Error("inbox directory unreadable", "dir", w.root, "err", err)
		}
		w.inboxOK = false
		return ctx.Err()
	}
	w.inboxOK = true
	w.walk(ctx, w.root)
	now := time.Now()
	for p, e := range w.entries {
		if e.state == inFlight {
			w.recheckInFlight(p, e, now, false)
		}
	}
	w.pruneEmptied(now)
	return ctx.Err()
}

// markEmptied notes a folder that a claimed file has left.
func (w *Watcher) markEmptied(dir string) {
	if dir != w.root && strings.HasPrefix(dir, w.root+string(filepath.Separator)) {
		w.emptied[dir] = struct{}{}
	}
}

// pruneEmptied removes the noted folders that are empty and have not
// changed for max(Settle, Rescan), so that a sender writing a study into
// its own folder is not raced; their parents are noted in turn. Only
// folders that claims emptied go: an empty folder an admin made for a
// sender stays, and so does the inbox itself.
func (w *Watcher) pruneEmptied(now time.Time) {
	quiet := max(w.cfg.Settle, w.cfg.Rescan)
	for d := range w.emptied {
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() {
			delete(w.emptied, d)
			continue
		}
		if now.Sub(fi.ModTime()) < quiet {
			continue
		}
		delete(w.emptied, d)
		rel, err := filepath.Rel(w.root, d)
		if err != nil {
			continue
		}
		// Not empty (ENOTEMPTY) is the common answer: files still arriving.
		if err := removeEmptyDir(w.root, rel); err != nil {
			continue
		}
		w.log.Debug("removed an emptied inbox folder")
		w.forget(d)
		w.markEmptied(filepath.Dir(d))
	}
}

// walk watches every folder under dir (dir included) and tracks every
// eligible file not yet known. A folder is watched before it is listed, so a
// file created meanwhile is seen either by the listing or by an event.
func (w *Watcher) walk(ctx context.Context, dir string) {
	var watchErrs, statErrs int
	var firstWatchErr error
	now := time.Now()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			// Unreadable entry (permissions, vanished): skip it, the next
			// scan tries again.
			statErrs++
			if d != nil && d.IsDir() && p != dir {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != w.root && skipName(d.Name()) {
				return fs.SkipDir
			}
			if w.fsw != nil {
				// Re-adding a watched folder is cheap and repairs a watch
				// lost to a rename race.
				if err := w.fsw.Add(p); err != nil {
					watchErrs++
					if firstWatchErr == nil {
						firstWatchErr = err
					}
				}
			}
			w.dirs[p] = struct{}{}
			return nil
		}
		if skipName(d.Name()) || isDICOMDIR(d.Name()) || !d.Type().IsRegular() {
			return nil
		}
		if _, known := w.entries[p]; known {
			return nil
		}
		if len(w.entries) >= w.cfg.MaxTracked {
			// Keep walking for the watches, but track no more files.
			w.setCapped()
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		w.add(p, snap(fi), now)
		return nil
	})
	if watchErrs > 0 {
		// Files in unwatched folders are still found by the periodic scan.
		w.log.Warn("could not watch some folders; relying on rescans for them", "folders", watchErrs, "err", w.scrub(firstWatchErr))
	}
	if statErrs > 0 {
		w.log.Debug("skipped unreadable inbox entries", "count", statErrs)
	}
}

// scrub strips inbox paths from an error, since inbox names may carry
// patient identifiers; the cause (an errno or a sentinel) is kept.
func (w *Watcher) scrub(err error) error {
	if err == nil {
		return nil
	}
	err = fsutil.ScrubPath(err)
	for err != nil && strings.Contains(err.Error(), w.root) {
		err = errors.Unwrap(err)
	}
	if err == nil {
		return errors.New("error text withheld: it names an inbox path")
	}
	return err
}
