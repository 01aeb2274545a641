package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/fracd/fracd/training"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressLogEvery is how often a progress line is logged when stdout is
// not a terminal (a bar redrawn in a log file or a pipe would be noise).
const progressLogEvery = 5 * time.Second

// progress reports how far a long loop has come: on a terminal a bar with
// count, rate and ETA; otherwise an slog line at most every
// progressLogEvery, and a last one when it finishes if any was logged (so
// short runs stay quiet). Use one per phase: Add as work is done, Finish at
// the end. Nothing it prints names a file's content: callers describe the
// phase, never a row.
type progress struct {
	mu    sync.Mutex // Add may come from several workers
	what  string     // the phase, e.g. "label import: storing labels"
	unit  string     // "rows", "bytes", "images"
	total int64

	bar *progressbar.ProgressBar // nil when not on a terminal

	log        *slog.Logger
	now        func() time.Time
	start      time.Time
	last       time.Time
	done       int64
	logged     bool
	finished   bool
	logEvery   time.Duration
	terminalTo io.Writer
}

// isTerminal reports whether w is a terminal (not a file, pipe or buffer).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress starts a progress report for total units (total <= 0: not
// known), drawn on m.Stdout when it is a terminal, else logged.
func (m *Main) newProgress(what, unit string, total int64) *progress {
	var bar io.Writer
	if isTerminal(m.Stdout) {
		bar = m.Stdout
	}
	return newProgressTo(bar, m.Logger, time.Now, what, unit, total)
}

// newProgressTo is newProgress with its parts given: barTo nil means log
// lines to log, timed by now.
func newProgressTo(barTo io.Writer, log *slog.Logger, now func() time.Time, what, unit string, total int64) *progress {
	p := &progress{what: what, unit: unit, total: total, log: log, now: now, logEvery: progressLogEvery, terminalTo: barTo}
	p.start = now()
	p.last = p.start
	if barTo != nil {
		max := total
		if max <= 0 {
			max = -1 // a spinner: the total is not known
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(barTo),
			progressbar.OptionSetDescription(what),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionShowBytes(unit == "bytes"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(barTo) }),
		)
	}
	return p
}

// Add records n more units done.
func (p *progress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.bar != nil {
		p.bar.Add64(n)
		return
	}
	if t := p.now(); t.Sub(p.last) >= p.logEvery {
		p.last = t
		p.logged = true
		p.logLine("progress", t)
	}
}

// Finish ends the report: the bar is completed, or a last line is logged
// if the run was long enough to log any.
func (p *progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	if p.bar != nil {
		if p.total > 0 && p.done < p.total {
			// Stopped early (an error): leave the bar where it was, on its own line.
			fmt.Fprintln(p.terminalTo)
			return
		}
		p.bar.Finish()
		return
	}
	if p.logged {
		p.logLine("done", p.now())
	}
}

func (p *progress) logLine(msg string, t time.Time) {
	if p.log == nil {
		return
	}
	elapsed := t.Sub(p.start)
	attrs := []any{"done", p.done, "unit", p.unit, "elapsed", elapsed.Round(time.Second).String()}
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed.Seconds()
		attrs = append(attrs, "rate_per_s", fmt.Sprintf("%.1f", rate))
	}
	if p.total > 0 {
		attrs = append(attrs, "total", p.total, "percent", fmt.Sprintf("%.1f", 100*float64(p.done)/float64(p.total)))
		if rate > 0 && p.done < p.total {
			eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second))
			attrs = append(attrs, "eta", eta.Round(time.Second).String())
		}
	}
	p.log.Info(p.what+": "+msg, attrs...)
}

// trainingProgress adapts newProgress to training.ProgressFunc, logging
// at most every every when not on a terminal (epochs take minutes).
func (m *Main) trainingProgress(every time.Duration) training.ProgressFunc {
	return func(what, unit string, total int64) training.Progress {
		p := m.newProgress(what, unit, total)
		p.logEvery = every
		return p
	}
}

// progressReader counts the bytes read through it.
type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.Add(int64(n))
	return n, err
}
