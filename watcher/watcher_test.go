package watcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Short timings keep the suite quick; waits for events are generous so a
// loaded machine slows the tests down rather than failing them.
const (
	testSettle = 150 * time.Millisecond
	testRescan = 300 * time.Millisecond
	waitLong   = 15 * time.Second
)

// harness runs a Watcher on a fresh inbox with a consumer that records every
// emitted path and, when claim is set, claims it by renaming it out of the
// inbox and then calls Done, as the pipeline does.
type harness struct {
	t       *testing.T
	w       *Watcher
	inbox   string
	outside string // same filesystem, not watched
	claimed string

	mu     sync.Mutex
	counts map[string]int
	onEmit func(string)

	claim   bool
	seq     atomic.Int64
	cancel  context.CancelFunc
	runErr  chan error
	conDone chan struct{}
}

type option func(*harness, *Config)

func withClaim() option { return func(h *harness, _ *Config) { h.claim = true } }

func withConfig(f func(*Config)) option { return func(_ *harness, c *Config) { f(c) } }

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	base := t.TempDir()
	h := &harness{
		t:       t,
		inbox:   filepath.Join(base, "inbox"),
		outside: filepath.Join(base, "outside"),
		claimed: filepath.Join(base, "claimed"),
		counts:  map[string]int{},
	}
	for _, d := range []string{h.inbox, h.outside, h.claimed} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Dir: h.inbox, Settle: testSettle, Rescan: testRescan}
	for _, o := range opts {
		o(h, &cfg)
	}
	w, err := New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	h.w = w
	return h
}

// start runs the watcher and the consumer; hook lets a test set internal
// test hooks before Run.
func (h *harness) start(hook func(*Watcher)) {
	h.t.Helper()
	if hook != nil {
		hook(h.w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	ready := make(chan string)
	h.runErr = make(chan error, 1)
	h.conDone = make(chan struct{})
	go func() { h.runErr <- h.w.Run(ctx, ready) }()
	go func() {
		defer close(h.conDone)
		for {
			select {
			case <-ctx.Done():
				return
			case p := <-ready:
				h.consume(p)
			}
		}
	}()
	h.t.Cleanup(h.stop)
}

func (h *harness) consume(p string) {
	h.mu.Lock()
	h.counts[p]++
	on := h.onEmit
	h.mu.Unlock()
	if on != nil {
		on(p)
	}
	if h.claim {
		dst := filepath.Join(h.claimed, fmt.Sprintf("%06d-%s", h.seq.Add(1), filepath.Base(p)))
		if err := os.Rename(p, dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.t.Errorf("claim: %v", err)
		}
		h.w.Done(p)
	}
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.runErr:
		if !errors.Is(err, context.Canceled) {
			h.t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(waitLong):
		h.t.Errorf("Run did not return after cancel")
	}
	<-h.conDone
}

func (h *harness) count(p string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[p]
}

func (h *harness) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := make(map[string]int, len(h.counts))
	for k, v := range h.counts {
		m[k] = v
	}
	return m
}

func (h *harness) total() int {
	n := 0
	for _, v := range h.snapshot() {
		n += v
	}
	return n
}

// waitFor polls cond until it holds or the generous deadline passes.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; emitted so far: %v", what, h.snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet lets several settle periods and rescans pass, so that anything the
// watcher would wrongly emit has had every chance to be emitted.
func (h *harness) quiet() { time.Sleep(4*testSettle + 2*testRescan) }

func (h *harness) path(rel string) string { return filepath.Join(h.inbox, filepath.FromSlash(rel)) }

func writeFile(t *testing.T, p string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{0x5a}, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestSlowChunkedWriteEmittedOnceAfterSettle(t *testing.T) {
	const (
		chunks = 10
		chunk  = 64 << 10
		settle = 400 * time.Millisecond
		gap    = 40 * time.Millisecond // well under settle
	)
	h := newHarness(t, withConfig(func(c *Config) { c.Settle = settle }))
	p := h.path("study/slow.dcm")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	var writerDone atomic.Bool
	type seen struct {
		done bool
		size int64
	}
	var at []seen
	var atMu sync.Mutex
	h.onEmit = func(q string) {
		fi, err := os.Stat(q)
		if err != nil {
			t.Errorf("emitted path not there: %v", err)
			return
		}
		atMu.Lock()
		at = append(at, seen{writerDone.Load(), fi.Size()})
		atMu.Unlock()
	}
	h.start(nil)

	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte{1}, chunk)
	for i := 0; i < chunks; i++ {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(gap)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	writerDone.Store(true)

	h.waitFor("the slow file", func() bool { return h.count(p) == 1 })
	h.quiet()
	if n := h.count(p); n != 1 {
		t.Fatalf("emitted %d times, want 1", n)
	}
	atMu.Lock()
	defer atMu.Unlock()
	if !at[0].done || at[0].size != chunks*chunk {
		t.Fatalf("emitted while still being written: writer done=%v size=%d want %d", at[0].done, at[0].size, chunks*chunk)
	}
}

func TestPausedWriterHeldBackUntilClose(t *testing.T) {
	h := newHarness(t)
	probe := filepath.Join(h.outside, "probe")
	writeFile(t, probe, 1)
	if open, known := openForWriting(probe); open || !known {
		t.Skip("file leases unavailable here; Settle alone decides")
	}
	h.start(nil)
	p := h.path("paused.dcm")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	h.quiet() // many times Settle with no write, file still open
	if n := h.count(p); n != 0 {
		t.Fatalf("emitted %d times while still open for writing", n)
	}
	if _, err := f.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("file after close", func() bool { return h.count(p) == 1 })
}

func TestAtomicRenameInEmitted(t *testing.T) {
	h := newHarness(t, withClaim())
	h.start(nil)
	for _, rel := range []string{"a.dcm", "sub/b.dcm", "IM0001"} {
		src := filepath.Join(h.outside, filepath.Base(rel))
		writeFile(t, src, 1000)
		dst := h.path(rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(src, dst); err != nil {
			t.Fatal(err)
		}
		h.waitFor(rel, func() bool { return h.count(dst) == 1 })
	}
	h.quiet()
	for p, n := range h.snapshot() {
		if n != 1 {
			t.Errorf("%s emitted %d times", p, n)
		}
	}
}

func TestHiddenAndPartialIgnoredUntilRenamed(t *testing.T) {
	cases := []struct{ staged, final string }{
		{".hidden.dcm", "hidden.dcm"},
		{"upload.dcm.part", "upload.dcm"},
		{"UPLOAD2.PART", "UPLOAD2"},
		{"x.tmp", "x.dcm"},
		{"y.TMP", "y"},
		{"sub/.z", "sub/z"},
		{".staging/in-hidden-dir.dcm", "staging/in-hidden-dir.dcm"}, // the folder is renamed
		{"batch.tmp/f.dcm", "batch/f.dcm"},
	}
	h := newHarness(t)
	h.start(nil)
	for _, c := range cases {
		writeFile(t, h.path(c.staged), 500)
	}
	h.quiet()
	if n := h.total(); n != 0 {
		t.Fatalf("staged files emitted: %v", h.snapshot())
	}
	for _, c := range cases {
		from, to := h.path(c.staged), h.path(c.final)
		if strings.Contains(c.staged, "/") && filepath.Dir(c.staged) != filepath.Dir(c.final) {
			from, to = filepath.Dir(from), filepath.Dir(to) // rename the folder
		}
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		p := h.path(c.final)
		h.waitFor(c.final, func() bool { return h.count(p) >= 1 })
	}
	h.quiet()
	got := h.snapshot()
	if len(got) != len(cases) {
		t.Errorf("emitted %d paths, want %d: %v", len(got), len(cases), got)
	}
	for _, c := range cases {
		if n := got[h.path(c.final)]; n != 1 {
			t.Errorf("%s: emitted %d times, want 1", c.final, n)
		}
	}
}

func TestDICOMDIRSkipped(t *testing.T) {
	cases := []struct {
		rel  string
		emit bool
	}{
		{"DICOMDIR", false},
		{"cd1/DICOMDIR", false},
		{"cd2/dicomdir", false},
		{"cd1/IMAGES/IM0001", true},
		{"DICOMDIR.dcm", true},    // only the exact name is the media index
		{"dicomdir/IM0002", true}, // a folder so named is just a folder
	}
	h := newHarness(t)
	writeFile(t, h.path("DICOMDIR"), 100) // present at start too
	h.start(nil)
	for _, c := range cases {
		writeFile(t, h.path(c.rel), 100)
	}
	for _, c := range cases {
		if c.emit {
			p := h.path(c.rel)
			h.waitFor(c.rel, func() bool { return h.count(p) == 1 })
		}
	}
	h.quiet()
	for _, c := range cases {
		want := 0
		if c.emit {
			want = 1
		}
		if n := h.count(h.path(c.rel)); n != want {
			t.Errorf("%s: emitted %d times, want %d", c.rel, n, want)
		}
	}
}

func TestNewSubfoldersWatched(t *testing.T) {
	// A long rescan period: these must be found through events alone.
	h := newHarness(t, withClaim(), withConfig(func(c *Config) { c.Rescan = time.Hour }))
	h.start(nil)
	h.waitFor("initial scan", func() bool { return h.w.Stats().Rescans == 1 })

	// mkdir -p then a file at the bottom: the inner folders may exist before
	// their parent is watched.
	deep := h.path("a/b/c/d/deep.dcm")
	writeFile(t, deep, 100)
	h.waitFor("deep file", func() bool { return h.count(deep) == 1 })

	// A folder made first, a nested one later, then a file in it.
	if err := os.Mkdir(h.path("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.waitFor("x watched", func() bool { return h.w.Stats().Dirs >= 6 })
	later := h.path("x/y/later.dcm")
	writeFile(t, later, 100)
	h.waitFor("later file", func() bool { return h.count(later) == 1 })

	// A whole tree moved in with files already inside.
	tree := filepath.Join(h.outside, "tree")
	rels := []string{"t1.dcm", "s1/t2.dcm", "s1/s2/t3.dcm", "s1/s2/s3/t4.dcm"}
	for _, r := range rels {
		writeFile(t, filepath.Join(tree, filepath.FromSlash(r)), 100)
	}
	if err := os.Rename(tree, h.path("moved")); err != nil {
		t.Fatal(err)
	}
	for _, r := range rels {
		p := h.path("moved/" + r)
		h.waitFor(r, func() bool { return h.count(p) == 1 })
	}
	// And a file added afterwards in the moved tree's deepest folder.
	after := h.path("moved/s1/s2/s3/after.dcm")
	writeFile(t, after, 100)
	h.waitFor("file in moved tree", func() bool { return h.count(after) == 1 })

	h.quiet()
	if got := h.total(); got != 7 {
		t.Fatalf("emitted %d, want 7: %v", got, h.snapshot())
	}
	if s := h.w.Stats(); s.Rescans != 1 || s.Overflow != 0 {
		t.Fatalf("found by a rescan, not events: %+v", s)
	}
}

func TestInitialScanFindsExistingFiles(t *testing.T) {
	h := newHarness(t, withClaim(), withConfig(func(c *Config) { c.Rescan = time.Hour }))
	rels := []string{"old1.dcm", "p/old2.dcm", "p/q/old3"}
	for _, r := range rels {
		writeFile(t, h.path(r), 2048)
	}
	h.start(nil)
	for _, r := range rels {
		p := h.path(r)
		h.waitFor(r, func() bool { return h.count(p) == 1 })
	}
	h.quiet()
	if got := h.total(); got != len(rels) {
		t.Fatalf("emitted %d, want %d", got, len(rels))
	}
}

func TestSymlinkedInbox(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	link := filepath.Join(base, "link")
	writeFile(t, filepath.Join(real, "at-start.dcm"), 10)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{Dir: link, Settle: testSettle, Rescan: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.Dir() != real {
		t.Fatalf("Dir() = %q, want %q", w.Dir(), real)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string)
	go func() { _ = w.Run(ctx, ready) }()
	later := filepath.Join(link, "later.dcm")
	for i, want := range []string{"at-start.dcm", "later.dcm"} {
		select {
		case p := <-ready:
			if p != filepath.Join(real, want) {
				t.Fatalf("emitted %q, want %q", p, filepath.Join(real, want))
			}
		case <-time.After(waitLong):
			t.Fatalf("timed out waiting for %s", want)
		}
		if i == 0 {
			writeFile(t, later, 10)
		}
	}
}

func TestRescanFindsMissedFiles(t *testing.T) {
	cases := []struct {
		name   string
		rescan time.Duration
		kick   func(w *Watcher) // how the rescan is brought about
	}{
		{"periodic rescan", testRescan, nil},
		{"overflow", time.Hour, func(w *Watcher) { w.injectErr <- fsnotify.ErrEventOverflow }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, withClaim(), withConfig(func(cfg *Config) { cfg.Rescan = c.rescan }))
			// No fsnotify at all: every event is "lost".
			h.start(func(w *Watcher) {
				w.noNotify = true
				w.injectErr = make(chan error)
			})
			h.waitFor("initial scan", func() bool { return h.w.Stats().Rescans == 1 })
			p := h.path("deep/er/missed.dcm")
			writeFile(t, p, 100)
			if c.kick != nil {
				h.quiet()
				if n := h.count(p); n != 0 {
					t.Fatalf("emitted without events or rescan")
				}
				c.kick(h.w)
			}
			h.waitFor("missed file", func() bool { return h.count(p) == 1 })
			if c.kick != nil && h.w.Stats().Overflow != 1 {
				t.Errorf("overflow not counted: %+v", h.w.Stats())
			}
		})
	}
}

func TestPendingNotReemittedUntilDone(t *testing.T) {
	h := newHarness(t) // consumer neither claims nor calls Done
	h.start(nil)
	p := h.path("pending.dcm")
	writeFile(t, p, 100)
	h.waitFor("first emission", func() bool { return h.count(p) == 1 })
	// Events on the unchanged file and several rescans must not re-emit it.
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	h.quiet()
	if n := h.count(p); n != 1 {
		t.Fatalf("pending file emitted %d times, want 1", n)
	}
	if s := h.w.Stats(); s.InFlight != 1 {
		t.Fatalf("stats %+v, want 1 in flight", s)
	}

	// The consumer gives it back: still there, so offered again.
	h.w.Done(p)
	h.waitFor("emission after Done", func() bool { return h.count(p) == 2 })

	// Claimed (renamed away) and Done: never again.
	if err := os.Rename(p, filepath.Join(h.claimed, "x")); err != nil {
		t.Fatal(err)
	}
	h.w.Done(p)
	h.w.Done(p) // twice is harmless
	h.quiet()
	if n := h.count(p); n != 2 {
		t.Fatalf("emitted %d times, want 2", n)
	}
	h.waitFor("forgotten", func() bool { s := h.w.Stats(); return s.InFlight == 0 && s.Settling == 0 })
}

func TestReplacedWhileInFlightIsNewFile(t *testing.T) {
	cases := []struct {
		name     string
		noNotify bool // the replacement is then seen by a rescan only
	}{
		{"by event", false},
		{"by rescan", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.start(func(w *Watcher) { w.noNotify = c.noNotify })
			p := h.path("same-name.dcm")
			writeFile(t, p, 100)
			h.waitFor("first", func() bool { return h.count(p) == 1 })
			// A different file renamed over the emitted one, unclaimed.
			src := filepath.Join(h.outside, "new")
			writeFile(t, src, 200)
			if err := os.Rename(src, p); err != nil {
				t.Fatal(err)
			}
			h.waitFor("replacement", func() bool { return h.count(p) == 2 })
			h.quiet()
			if n := h.count(p); n != 2 {
				t.Fatalf("emitted %d times, want 2", n)
			}
		})
	}
}

func TestRetryReoffersUnclaimedFile(t *testing.T) {
	// On a manual clock: Retry passes when the test says, not after a wait.
	// The file is on disk before Run and events are off, so the initial
	// scan is the only sighting: a late Write event can't restart Settle
	// after the step below.
	clk := newManualClock(t)
	h := newHarness(t, withConfig(func(c *Config) { c.Retry = 300 * time.Millisecond }))
	p := h.path("forgotten.dcm")
	writeFile(t, p, 100)
	h.start(func(w *Watcher) { w.clock, w.noNotify, w.inodeTimes = clk, true, false })
	h.waitFor("file seen", func() bool { return h.w.Stats().Settling == 1 })
	clk.Step(testSettle)
	h.waitFor("first offer", func() bool { return h.count(p) == 1 })
	for n := 2; n <= 3; n++ {
		clk.Step(300 * time.Millisecond)
		h.waitFor("re-offer", func() bool { return h.count(p) == n })
	}
}

func TestManyFilesEmittedExactlyOnce(t *testing.T) {
	const n = 500
	cases := []struct {
		name       string
		maxTracked int
	}{
		{"default bound", 0},
		{"bound below the backlog", 64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, withClaim(), withConfig(func(cfg *Config) { cfg.MaxTracked = c.maxTracked }))
			var peak atomic.Int64
			h.onEmit = func(string) {
				s := h.w.Stats()
				if v := int64(s.Settling + s.Queued + s.InFlight); v > peak.Load() {
					peak.Store(v)
				}
			}
			h.start(nil)
			for i := 0; i < n; i++ {
				writeFile(t, h.path(fmt.Sprintf("burst/%03d/f%03d.dcm", i%7, i)), 256)
			}
			h.waitFor("all files", func() bool { return h.total() >= n })
			h.quiet()
			got := h.snapshot()
			if len(got) != n {
				t.Errorf("%d distinct paths emitted, want %d", len(got), n)
			}
			for p, k := range got {
				if k != 1 {
					t.Errorf("%s emitted %d times", filepath.Base(p), k)
				}
			}
			claimed, err := os.ReadDir(h.claimed)
			if err != nil {
				t.Fatal(err)
			}
			if len(claimed) != n {
				t.Errorf("%d files claimed, want %d", len(claimed), n)
			}
			if c.maxTracked > 0 && peak.Load() > int64(c.maxTracked) {
				t.Errorf("tracked %d files at once, bound %d", peak.Load(), c.maxTracked)
			}
			h.waitFor("nothing tracked", func() bool {
				s := h.w.Stats()
				return s.Settling+s.Queued+s.InFlight == 0
			})
		})
	}
}

func TestCancelReturnsPromptlyWithoutLeaks(t *testing.T) {
	inbox := t.TempDir()
	for i := 0; i < 20; i++ {
		writeFile(t, filepath.Join(inbox, fmt.Sprintf("d%d/f%d", i%3, i)), 10)
	}
	base := runtime.NumGoroutine()
	w, err := New(Config{Dir: inbox, Settle: testSettle, Rescan: testRescan}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string) // never read: Run is blocked offering files
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, ready) }()
	deadline := time.Now().Add(waitLong)
	for w.Stats().Queued == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing queued")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("Run did not return after cancel")
	}
	if err := w.Run(context.Background(), ready); err == nil {
		t.Fatal("second Run accepted")
	}
	w.Done(filepath.Join(inbox, "d0/f0")) // after Run: must not block
	for {
		if runtime.NumGoroutine() <= base {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, before Run: %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	if st := string(buf[:runtime.Stack(buf, true)]); strings.Contains(st, "fsnotify") || strings.Contains(st, "watcher.(*Watcher)") {
		t.Fatalf("watcher goroutine left:\n%s", st)
	}
}

func TestInboxRemovedAndRecreated(t *testing.T) {
	h := newHarness(t, withClaim())
	h.start(nil)
	h.waitFor("initial scan", func() bool { return h.w.Stats().InboxOK })
	if err := os.RemoveAll(h.inbox); err != nil {
		t.Fatal(err)
	}
	h.waitFor("inbox loss noticed", func() bool { return !h.w.Stats().InboxOK })
	writeFile(t, h.path("back/again.dcm"), 100) // recreates the inbox
	p := h.path("back/again.dcm")
	h.waitFor("file in recreated inbox", func() bool { return h.count(p) == 1 })
	// Watches are back too: a file now arrives by event.
	q := h.path("back/event.dcm")
	writeFile(t, q, 100)
	h.waitFor("second file", func() bool { return h.count(q) == 1 })
}

func TestNoInboxNamesInLogs(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	lw := writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	})
	base := t.TempDir()
	inbox := filepath.Join(base, "inbox")
	const phi = "DOE^JOHN-MRN4711"
	writeFile(t, filepath.Join(inbox, phi, phi+".dcm"), 100)
	w, err := New(Config{Dir: inbox, Settle: testSettle, Rescan: testRescan, Retry: 200 * time.Millisecond, MaxTracked: 1},
		slog.New(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	w.injectErr = make(chan error)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string)
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx, ready) }()
	got := <-ready                                             // not claimed: Retry logs a warning
	writeFile(t, filepath.Join(inbox, phi, phi+"-2.dcm"), 100) // over MaxTracked: logged
	for _, e := range []error{
		&fs.PathError{Op: "open", Path: filepath.Join(inbox, phi), Err: syscall.EACCES},
		fmt.Errorf("fsnotify: not a directory: %q", filepath.Join(inbox, phi)),
		fsnotify.ErrEventOverflow,
	} {
		w.injectErr <- e
	}
	if again := <-ready; again != got {
		t.Fatalf("re-offer of another path")
	}
	cancel()
	<-errc
	logMu.Lock()
	defer logMu.Unlock()
	out := logs.String()
	for _, want := range []string{"overflow", "permission denied", "withheld", "still unclaimed", "tracking limit"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "DOE") || strings.Contains(out, "MRN4711") {
		t.Fatalf("inbox name leaked into logs:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, 1)
	cases := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Dir: dir}, true},
		{"no dir", Config{}, false},
		{"missing", Config{Dir: filepath.Join(dir, "nope")}, false},
		{"not a dir", Config{Dir: file}, false},
		{"negative settle", Config{Dir: dir, Settle: -1}, false},
		{"negative rescan", Config{Dir: dir, Rescan: -1}, false},
		{"negative bound", Config{Dir: dir, MaxTracked: -1}, false},
		{"retry off", Config{Dir: dir, Retry: -1}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := New(c.cfg, nil)
			if (err == nil) != c.ok {
				t.Fatalf("New: err=%v, want ok=%v", err, c.ok)
			}
			if err != nil {
				return
			}
			if c.cfg.Settle == 0 && w.cfg.Settle != DefaultSettle || c.cfg.Rescan == 0 && w.cfg.Rescan != DefaultRescan ||
				c.cfg.MaxTracked == 0 && w.cfg.MaxTracked != DefaultMaxTracked {
				t.Errorf("defaults not applied: %+v", w.cfg)
			}
			if c.cfg.Retry == 0 && w.cfg.Retry != DefaultRetry {
				t.Errorf("retry default not applied: %v", w.cfg.Retry)
			}
			if !filepath.IsAbs(w.Dir()) {
				t.Errorf("Dir %q not absolute", w.Dir())
			}
		})
	}
}

// TestSettledIDNamesTheEmittedFile: the consumer can ask, as soon as it
// receives a path, which file (device and inode) settled there, so that a
// file swapped in after settling is not claimed in its place.
func TestSettledIDNamesTheEmittedFile(t *testing.T) {
	h := newHarness(t)
	type seen struct {
		dev, ino uint64
		ok       bool
	}
	var mu sync.Mutex
	var got []seen
	h.onEmit = func(p string) {
		dev, ino, ok := h.w.SettledID(p)
		mu.Lock()
		got = append(got, seen{dev, ino, ok})
		mu.Unlock()
	}
	h.start(nil)
	idOf := func(p string) seen {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return seen{uint64(st.Dev), st.Ino, true}
	}
	p := h.path("a.dcm")
	writeFile(t, p, 100)
	first := idOf(p)
	h.waitFor("first", func() bool { return h.count(p) == 1 })
	src := filepath.Join(h.outside, "new")
	writeFile(t, src, 200)
	if err := os.Rename(src, p); err != nil {
		t.Fatal(err)
	}
	second := idOf(p)
	h.waitFor("replacement", func() bool { return h.count(p) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != first || got[1] != second {
		t.Fatalf("SettledID at emission = %+v; want %+v then %+v", got, first, second)
	}
	if _, _, ok := h.w.SettledID(h.path("never-seen.dcm")); ok {
		t.Fatal("SettledID of an unknown path is ok")
	}
	if err := os.Rename(p, filepath.Join(h.claimed, "x")); err != nil {
		t.Fatal(err)
	}
	h.w.Done(p)
	h.waitFor("forgotten", func() bool { _, _, ok := h.w.SettledID(p); return !ok })
}

// TestEmptiedSubfoldersRemoved: folders that claims left empty go (nested
// ones too, from the inside out); the inbox itself, a folder that still
// holds a file and an empty folder nothing was claimed from stay.
func TestEmptiedSubfoldersRemoved(t *testing.T) {
	h := newHarness(t, withClaim())
	h.start(nil)
	kept := h.path("never-used")
	if err := os.Mkdir(kept, 0o755); err != nil {
		t.Fatal(err)
	}
	a := h.path("study/series/a.dcm")
	writeFile(t, a, 100)
	busy := h.path("busy/b.dcm")
	writeFile(t, busy, 100)
	h.waitFor("claims", func() bool { return h.count(a) == 1 && h.count(busy) == 1 })
	// A new file arrives in one emptied folder before it is pruned.
	later := h.path("busy/hold.part")
	writeFile(t, later, 10)
	h.waitFor("emptied folders removed", func() bool {
		_, err := os.Lstat(h.path("study"))
		return errors.Is(err, fs.ErrNotExist)
	})
	h.quiet()
	for _, d := range []string{h.inbox, kept, h.path("busy")} {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s removed: %v", d, err)
		}
	}
}

// TestPruneNeverFollowsSymlinks: an emptied folder swapped for a symlink
// to an empty folder outside the inbox is not followed.
func TestPruneNeverFollowsSymlinks(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	outsideEmpty := filepath.Join(h.outside, "empty", "inner")
	if err := os.MkdirAll(outsideEmpty, 0o755); err != nil {
		t.Fatal(err)
	}
	p := h.path("sub/inner/a.dcm")
	writeFile(t, p, 100)
	h.waitFor("emitted", func() bool { return h.count(p) == 1 })
	if err := os.Rename(p, filepath.Join(h.claimed, "a")); err != nil {
		t.Fatal(err)
	}
	// sub becomes a symlink to a folder holding an empty "inner".
	if err := os.Rename(h.path("sub"), filepath.Join(h.claimed, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(h.outside, "empty"), h.path("sub")); err != nil {
		t.Fatal(err)
	}
	h.w.Done(p)
	h.quiet()
	h.quiet()
	if _, err := os.Lstat(outsideEmpty); err != nil {
		t.Fatalf("empty folder outside the inbox removed: %v", err)
	}
}
