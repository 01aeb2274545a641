package watcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// The event loop: fsnotify events and errors, the poll tick, the rescan
// timer, Done calls and the consumer, in one goroutine that owns the state.

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
	tick := w.clock.NewTicker(w.poll)
	defer tick.Stop()
	rescanT := w.clock.NewTimer(w.cfg.Rescan)
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
		case now := <-tick.C():
			w.check(now)
			// A capped walk left files on disk; fetch them once the
			// backlog has halved rather than waiting for the next period.
			if w.capped && len(w.entries) <= w.cfg.MaxTracked/2 {
				if err := w.rescanReset(ctx, rescanT); err != nil {
					return err
				}
			}
		case <-rescanT.C():
			if err := w.rescan(ctx); err != nil {
				return err
			}
			rescanT.Reset(w.cfg.Rescan)
		case <-w.doneSig:
			w.drainDone()
		case out <- head:
			w.markEmitted(head, w.clock.Now())
		}
	}
}
func (w *Watcher) handleErr(ctx context.Context, err error, rescanT timer) error {
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
func (w *Watcher) rescanReset(ctx context.Context, t timer) error {
	if err := w.rescan(ctx); err != nil {
		return err
	}
	t.Reset(w.cfg.Rescan)
	return nil
}

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
			w.settleFound(w.clock.Now())
		}
		return
	}
	if isDICOMDIR(name) {
		return
	}
	w.touch(p, fi, w.clock.Now())
}
