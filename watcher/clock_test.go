package watcher

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// manualClock is a clock that moves only when a test says so. Its ticker
// and timer channels are unbuffered and Step blocks until the watcher has
// received each tick, so after Step the watcher has seen that moment;
// nothing depends on how fast the machine is.
type manualClock struct {
	t       *testing.T
	mu      sync.Mutex
	now     time.Time
	tickers []*manualTick
}

// manualTick is a ticker (period > 0) or a timer (period 0, armed).
type manualTick struct {
	c      chan time.Time
	period time.Duration
	next   time.Time
	armed  bool
	clock  *manualClock
}

func newManualClock(t *testing.T) *manualClock {
	return &manualClock{t: t, now: time.Now()}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) add(period, first time.Duration) *manualTick {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := &manualTick{c: make(chan time.Time), period: period, next: c.now.Add(first), armed: true, clock: c}
	c.tickers = append(c.tickers, k)
	return k
}

func (c *manualClock) NewTicker(d time.Duration) ticker { return c.add(d, d) }
func (c *manualClock) NewTimer(d time.Duration) timer   { return c.add(0, d) }

func (k *manualTick) C() <-chan time.Time { return k.c }

func (k *manualTick) Stop() {
	k.clock.mu.Lock()
	k.armed = false
	k.clock.mu.Unlock()
}

func (k *manualTick) Reset(d time.Duration) {
	k.clock.mu.Lock()
	k.next, k.armed = k.clock.now.Add(d), true
	k.clock.mu.Unlock()
}

// Step moves the clock on by d and delivers every tick and timer now due
// (a ticker's missed ticks coalesce into one, as time.Ticker's do).
func (c *manualClock) Step(d time.Duration) {
	c.t.Helper()
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	var due []*manualTick
	for _, k := range c.tickers {
		if !k.armed || k.next.After(now) {
			continue
		}
		if k.period > 0 {
			k.next = now.Add(k.period)
		} else {
			k.armed = false
		}
		due = append(due, k)
	}
	c.mu.Unlock()
	c.deliver(due, now)
}

// deliver sends now on each tick's channel, waiting for the watcher to
// take it.
func (c *manualClock) deliver(ks []*manualTick, now time.Time) {
	c.t.Helper()
	for _, k := range ks {
		select {
		case k.c <- now:
		case <-time.After(waitLong):
			c.t.Fatalf("watcher did not take the tick at %v", now)
		}
	}
}

// Sync delivers one more tick at the current time: once the watcher has
// taken it, it has finished with every tick before, and its Stats say so.
func (c *manualClock) Sync() {
	c.t.Helper()
	c.mu.Lock()
	now := c.now
	var ticks []*manualTick
	for _, k := range c.tickers {
		if k.armed && k.period > 0 {
			ticks = append(ticks, k)
		}
	}
	c.mu.Unlock()
	c.deliver(ticks, now)
}

// TestSettleOnTheWatchersClock: a file found by a scan is held back until
// Settle has passed on the watcher's clock, then emitted once; left
// unclaimed, it is offered again each time Retry passes. No sleep: the
// clock is stepped by hand and events are off, so each step is the only
// thing that happens.
func TestSettleOnTheWatchersClock(t *testing.T) {
	clk := newManualClock(t)
	h := newHarness(t, withConfig(func(c *Config) { c.Retry = time.Minute }))
	h.start(func(w *Watcher) { w.clock, w.noNotify, w.inodeTimes = clk, true, false })
	h.waitFor("initial scan", func() bool { return h.w.Stats().Rescans == 1 })
	p := h.path("a/b.dcm")
	writeFile(t, p, 100)
	clk.Step(testRescan) // the rescan finds it
	h.waitFor("file tracked", func() bool { return h.w.Stats().Settling == 1 })
	clk.Step(testSettle / 2)
	clk.Sync()
	if s := h.w.Stats(); s.Settling != 1 || s.Queued != 0 || h.count(p) != 0 {
		t.Fatalf("after half of Settle: %+v, emitted %d; want still settling", s, h.count(p))
	}
	clk.Step(testSettle / 2)
	h.waitFor("emission after Settle", func() bool { return h.count(p) == 1 })
	for n := 2; n <= 3; n++ {
		clk.Step(time.Minute)
		h.waitFor("re-offer after Retry", func() bool { return h.count(p) == n })
	}
}

// TestFoundFilesQuietSinceTheirCtime: a file a walk finds (the initial scan,
// or a folder moved in) has been quiet since its inode last changed, where
// the inbox's filesystem stamps inode times with this machine's clock. The
// manual clock is set ahead of or behind the real time the file was written
// at, and never ticks here, so an emission without a step can only come
// from the walk itself. inodeTimes is decided at New; this inbox is in the
// test's temp folder, a local filesystem on any CI machine worth the name.
func TestFoundFilesQuietSinceTheirCtime(t *testing.T) {
	cases := []struct {
		name       string
		ahead      time.Duration // the watcher's clock minus the real time
		inodeTimes bool
		moveIn     bool // a folder moved into the running watcher's inbox; else on disk before Run
		atOnce     bool
	}{
		{"on disk at start, written an hour ago", time.Hour, true, false, true},
		{"folder moved in, written an hour ago", time.Hour, true, true, true},
		{"written just now", 0, true, false, false},
		{"ctime ahead of the clock (stepped back)", -time.Hour, true, false, false},
		{"network filesystem: only what was seen counts", time.Hour, false, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clk := newManualClock(t)
			clk.now = time.Now().Add(c.ahead)
			h := newHarness(t)
			if !h.w.inodeTimes {
				t.Skip("the temp folder's filesystem does not stamp inode times locally")
			}
			p := h.path("study/a.dcm")
			staged := filepath.Join(h.outside, "study")
			if c.moveIn {
				writeFile(t, filepath.Join(staged, "a.dcm"), 100)
			} else {
				writeFile(t, p, 100)
			}
			h.start(func(w *Watcher) { w.clock, w.inodeTimes = clk, c.inodeTimes })
			h.waitFor("initial scan", func() bool { return h.w.Stats().Rescans == 1 })
			if c.moveIn {
				if err := os.Rename(staged, filepath.Dir(p)); err != nil {
					t.Fatal(err)
				}
			}
			if c.atOnce {
				h.waitFor("emission without a tick", func() bool { return h.count(p) == 1 })
				return
			}
			h.waitFor("file tracked", func() bool { return h.w.Stats().Settling == 1 })
			time.Sleep(50 * time.Millisecond) // room for a wrong emission
			if n := h.count(p); n != 0 {
				t.Fatalf("emitted %d times before Settle passed on the watcher's clock", n)
			}
			clk.Step(testSettle)
			h.waitFor("emission after Settle", func() bool { return h.count(p) == 1 })
		})
	}
}
