package watcher

import (
	"container/list"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A tracked file is settling (seen, waiting to be quiet for Settle), queued
// (settled, waiting for the consumer to receive it) or in flight (received,
// neither gone nor Done). move is the only way an entry changes state.
type state uint8

const (
	untracked state = iota // not in entries: new, or dropped
	settling
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

// move takes the entry at p to state to. It alone keeps entries, the
// counters, the queue and the settled IDs the consumer reads in step:
//   - settling: (re)starts the settle clock at now;
//   - queued: published in ids before the path can be received, then queued;
//   - inFlight: received at now;
//   - untracked: forgotten.
func (w *Watcher) move(p string, e *entry, to state, now time.Time) {
	switch e.state {
	case settling:
		w.nSettling--
	case queued:
		w.queue.Remove(e.elem)
		e.elem = nil
	case inFlight:
		w.nInFlight--
	}
	switch to {
	case settling:
		w.dropID(p) // what settles next may be another file
		e.changed = now
		w.nSettling++
		w.entries[p] = e
	case queued:
		w.setID(p, e.snap)
		e.elem = w.queue.PushBack(p)
	case inFlight:
		e.emitted = now
		w.nInFlight++
		w.st.emitted.Add(1)
	case untracked:
		w.dropID(p)
		delete(w.entries, p)
	}
	e.state = to
}

func (w *Watcher) publish() {
	w.st.settling.Store(int64(w.nSettling))
	w.st.queued.Store(int64(w.queue.Len()))
	w.st.inflight.Store(int64(w.nInFlight))
	w.st.dirs.Store(int64(len(w.dirs)))
	w.st.capped.Store(w.capped)
	w.st.inboxOK.Store(w.inboxOK)
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
	if e.state != settling && s == e.snap {
		// Attribute events with nothing changed are noise; a different
		// file or new content at the path is a new arrival.
		return
	}
	e.snap = s
	w.move(p, e, settling, now)
}

// add starts tracking a new file, unless the bound is reached.
func (w *Watcher) add(p string, s snapshot, now time.Time) {
	if len(w.entries) >= w.cfg.MaxTracked {
		w.setCapped()
		return
	}
	w.move(p, &entry{snap: s}, settling, now)
}

// addFound starts tracking a file a walk found. Where the inode times can
// be trusted it has been quiet since its ctime (if that is not ahead of
// now: a clock stepped back), not since now: nothing can have written it
// since without changing ctime, and check still looks at its size, inode
// and writers before it goes on.
func (w *Watcher) addFound(p string, fi fs.FileInfo, now time.Time) {
	w.add(p, snap(fi), now)
	e := w.entries[p]
	if e == nil || !w.inodeTimes {
		return
	}
	if dev, _ := fileID(fi); dev != w.rootDev {
		return // another filesystem mounted below the inbox
	}
	if t, ok := inodeChanged(fi); ok && t.Before(now) {
		e.changed = t
		if now.Sub(t) >= w.cfg.Settle {
			w.found = append(w.found, p)
		}
	}
}

func (w *Watcher) setCapped() {
	if !w.capped {
		w.log.Warn("tracking limit reached, leaving further files for a later scan", "max_tracked", w.cfg.MaxTracked)
	}
	w.capped = true
}

// forget handles a path that left: a file, or a folder with all below it.
func (w *Watcher) forget(p string) {
	if e := w.entries[p]; e != nil {
		if e.state == inFlight {
			w.markEmptied(filepath.Dir(p))
		}
		w.move(p, e, untracked, time.Time{})
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
			w.move(q, e, untracked, time.Time{})
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
			w.settle(p, e, now)
		case inFlight:
			if w.cfg.Retry < 0 || now.Sub(e.emitted) < w.cfg.Retry {
				continue
			}
			w.recheckInFlight(p, e, now, true)
		}
	}
}

// settle queues a settling file that has been quiet for Settle, unless it
// is gone, changed unseen, or still open for writing.
func (w *Watcher) settle(p string, e *entry, now time.Time) {
	if now.Sub(e.changed) < w.cfg.Settle {
		return
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		w.move(p, e, untracked, now)
		return
	}
	if s := snap(fi); s != e.snap {
		// Changed without an event reaching us: settle anew.
		e.snap = s
		w.move(p, e, settling, now)
		return
	}
	if open, _ := openForWriting(p); open {
		// Quiet but still open for writing: the sender has paused.
		w.move(p, e, settling, now)
		return
	}
	w.move(p, e, queued, now)
}

// settleFound settles at once the files the last walk found quiet for
// Settle already (addFound), rather than at the next poll.
func (w *Watcher) settleFound(now time.Time) {
	for _, p := range w.found {
		if e := w.entries[p]; e != nil && e.state == settling {
			w.settle(p, e, now)
		}
	}
	w.found = w.found[:0]
}

// recheckInFlight drops an in-flight entry whose file has gone, turns it
// back to settling if a different file now sits at the path, and, when
// retry is set and the same file is still there, queues it again.
func (w *Watcher) recheckInFlight(p string, e *entry, now time.Time, retry bool) {
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		w.markEmptied(filepath.Dir(p))
		w.move(p, e, untracked, now)
		return
	}
	if s := snap(fi); s != e.snap {
		e.snap = s
		w.move(p, e, settling, now)
		return
	}
	if retry {
		w.log.Warn("emitted file still unclaimed, offering it again", "after", now.Sub(e.emitted).Round(time.Second))
		w.move(p, e, queued, now)
	}
}

func (w *Watcher) markEmitted(p string, now time.Time) { w.move(p, w.entries[p], inFlight, now) }

func (w *Watcher) drainDone() {
	w.doneMu.Lock()
	q := w.doneQ
	w.doneQ = nil
	w.doneMu.Unlock()
	now := w.clock.Now()
	for _, p := range q {
		p = filepath.Clean(p)
		e := w.entries[p]
		if e == nil || e.state != inFlight {
			continue
		}
		w.move(p, e, untracked, now)
		// Still there: the consumer left it, so offer it again once it has
		// settled (again).
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			w.add(p, snap(fi), now)
		} else {
			w.markEmptied(filepath.Dir(p))
		}
	}
}
