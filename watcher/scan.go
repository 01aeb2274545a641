package watcher

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fracd/fracd/internal/fsutil"
)

// Scanning: the walk that watches every folder and finds what events missed,
// and the removal of folders that claims left empty.

// rescan walks the whole inbox and re-verifies in-flight files. It only
// fails when ctx is cancelled.
func (w *Watcher) rescan(ctx context.Context) error {
	// Counted once the walk is over: Stats' Rescans are completed walks,
	// so a caller seeing 1 knows the initial scan has seen the tree.
	defer w.st.rescans.Add(1)
	w.capped = false
	if _, err := os.Stat(w.root); err != nil {
		if w.inboxOK || w.st.rescans.Load() == 0 {
			w.log.Error("inbox directory unreadable", "dir", w.root, "err", err)
		}
		w.inboxOK = false
		return ctx.Err()
	}
	w.inboxOK = true
	w.walk(ctx, w.root)
	now := w.clock.Now()
	w.settleFound(now)
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
	now := w.clock.Now()
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
		w.addFound(p, fi, now)
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
