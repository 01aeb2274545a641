package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/fsutil"
)

// spool/work: reading a claimed file, marking it while it is decoded, and
// removing it once it is done.

// A file that crashes the daemon (a decompression bomb under a memory limit,
// a fatal runtime error in a decoder) would be found in spool/work at every
// start and retried first, forever, never letting the files behind it
// through. So each file is marked in progress, durably, before it is
// decoded, and the mark is removed when its processing ends, however it
// ends. A mark left by an earlier run means that run stopped while decoding
// the file: at start (Recover) the file is moved to spool/quarantine with
// an audit row, and nothing else waits for it. An outside kill -9 looks the
// same as a crash, so a quarantined file gets one more try, alone, once
// spool/work has been empty for a retry period (retryQuarantined); if the
// daemon stops during that try too, the file is rejected as crashed_daemon
// without being decoded again.
const (
	markSuffix = ".inprogress"
	// quarantineAfter stops (the quarantine's try included) reject a file.
	quarantineAfter = 2
	// ActionQuarantined is the audit action of a file moved to quarantine.
	ActionQuarantined = "instance.quarantined"
)

// QuarantineDir is spool/quarantine.
func (p *Pipeline) QuarantineDir() string { return p.quarantineDir }

// Recover moves each file that an earlier run stopped while decoding (for
// the first time) from spool/work to spool/quarantine, with an audit row.
// Run calls it at start, before anything in spool/work is processed.
func (p *Pipeline) Recover(ctx context.Context) error {
	entries, err := os.ReadDir(p.workDir)
	if err != nil {
		return fmt.Errorf("pipeline: list %s: %w", p.workDir, err)
	}
	for _, e := range entries {
		sha, ok := strings.CutSuffix(e.Name(), ".dcm")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if n, marked := p.crashesOf(sha); !marked || n != 1 {
			continue
		}
		if _, err := p.db.Instance(ctx, sha); err == nil {
			// Its result was recorded before the stop: only the removal is
			// left, which finishExisting does without decoding.
			p.clearInProgress(sha)
			continue
		}
		if err := os.Rename(filepath.Join(p.workDir, e.Name()), filepath.Join(p.quarantineDir, e.Name())); err != nil {
			return fmt.Errorf("pipeline: quarantine %s: %w", sha, err)
		}
		if err := fsutil.SyncDir(p.quarantineDir); err != nil {
			return err
		}
		p.clearInProgress(sha)
		if err := fsutil.SyncDir(p.workDir); err != nil {
			return err
		}
		if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, ActionQuarantined, sha, map[string]any{"reason": ReasonCrashedDaemon}); err != nil {
			return fmt.Errorf("pipeline: record quarantine of %s: %w", sha, err)
		}
		p.log.Warn("file was being decoded when the daemon stopped: quarantined, to be tried once more alone", "sha256", sha)
	}
	return nil
}

// retryQuarantined moves the oldest quarantined file back into spool/work
// for its one more try, or returns false if there is none.
func (p *Pipeline) retryQuarantined() (Job, bool) {
	entries, err := os.ReadDir(p.quarantineDir)
	if err != nil {
		return Job{}, false
	}
	var oldest os.DirEntry
	var when time.Time
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".dcm") {
			continue
		}
		if oldest == nil || info.ModTime().Before(when) {
			oldest, when = e, info.ModTime()
		}
	}
	if oldest == nil {
		return Job{}, false
	}
	sha := strings.TrimSuffix(oldest.Name(), ".dcm")
	job := Job{SHA256: sha, Path: filepath.Join(p.workDir, oldest.Name()), Recovered: true, ReceivedAt: when, Crashes: 1}
	if err := os.Rename(filepath.Join(p.quarantineDir, oldest.Name()), job.Path); err != nil {
		p.log.Error("take a file out of quarantine", "sha256", sha, "error", fsutil.ScrubPath(err))
		return Job{}, false
	}
	if err := fsutil.SyncDir(p.workDir); err != nil {
		p.log.Error("take a file out of quarantine", "sha256", sha, "error", err)
	}
	// Marked before it is handed out: a stop from here on is its second.
	if err := p.markInProgress(&job); err != nil {
		p.log.Error("take a file out of quarantine", "sha256", sha, "error", err)
	}
	p.log.Info("trying a quarantined file once more", "sha256", sha)
	return job, true
}

func (p *Pipeline) markPath(sha string) string { return filepath.Join(p.workDir, sha+markSuffix) }

// markInProgress records, before decoding, that this run is working on job
// and how many earlier runs stopped while doing so.
//
// The mark counts runs that stopped while working on the file (a decoder
// that kills the process): the kernel keeps a dead process's writes, so it
// is written without fsync, and a mark cut short still reads as one stop
// (crashesOf). Only a power cut can lose it, and then it only undercounts.
func (p *Pipeline) markInProgress(job *Job) error {
	mark := fmt.Sprintf("%s %d\n", p.runID, job.Crashes)
	if err := os.WriteFile(p.markPath(job.SHA256), []byte(mark), 0o600); err != nil {
		return fmt.Errorf("pipeline: mark %s in progress: %w", job.SHA256, err)
	}
	return nil
}

// clearInProgress removes the mark: processing ended without a crash.
func (p *Pipeline) clearInProgress(sha string) {
	if err := os.Remove(p.markPath(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.log.Warn("remove in-progress mark", "sha256", sha, "error", fsutil.ScrubPath(err))
	}
}

// crashesOf reads sha's mark: how many runs stopped while decoding it
// (a mark of this run is a file in progress now, not a crash). ok is false
// when there is no mark.
func (p *Pipeline) crashesOf(sha string) (n int, ok bool) {
	b, err := os.ReadFile(p.markPath(sha))
	if err != nil {
		return 0, false
	}
	var run string
	if _, err := fmt.Sscanf(string(b), "%s %d", &run, &n); err != nil {
		// A mark cut short by the crash itself still says one.
		return 1, true
	}
	if run != p.runID {
		n++
	}
	return n, true
}

// Pending lists the files in spool/work, oldest first: on start-up, what a
// crash or a retryable error left behind (files being decoded when a run
// stopped are quarantined first: see Recover).
func (p *Pipeline) Pending() ([]Job, error) {
	entries, err := os.ReadDir(p.workDir)
	if err != nil {
		return nil, fmt.Errorf("pipeline: list %s: %w", p.workDir, err)
	}
	type item struct {
		job Job
		mod time.Time
	}
	var items []item
	have := map[string]bool{}
	var marks []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, markSuffix) {
			marks = append(marks, strings.TrimSuffix(name, markSuffix))
			continue
		}
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".dcm") {
			if strings.HasSuffix(name, ".tmp") {
				os.Remove(filepath.Join(p.workDir, name)) // an interrupted CopyIn; the original is untouched
			}
			continue
		}
		sha := strings.TrimSuffix(name, ".dcm")
		info, err := e.Info()
		if err != nil {
			continue
		}
		have[sha] = true
		job := Job{SHA256: sha, Path: filepath.Join(p.workDir, name), Recovered: true, ReceivedAt: info.ModTime()}
		if n, ok := p.crashesOf(sha); ok && n > 0 {
			job.Crashes = n // Recover quarantined those with 1
		}
		items = append(items, item{job, info.ModTime()})
	}
	for _, sha := range marks {
		if n, ok := p.crashesOf(sha); !have[sha] && ok && n > 0 {
			p.clearInProgress(sha) // its file reached a terminal state before the stop
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].job.Crashes != items[j].job.Crashes {
			return items[i].job.Crashes < items[j].job.Crashes
		}
		return items[i].mod.Before(items[j].mod)
	})
	jobs := make([]Job, len(items))
	for i, it := range items {
		jobs[i] = it.job
	}
	return jobs, nil
}

func (p *Pipeline) maxFileBytes() int64 { return p.cfg.maxFileBytes() }

// readWork reads the claimed file and checks that its name is its hash: if
// the file changed between hashing and claiming, the content wins.
func (p *Pipeline) readWork(job *Job) ([]byte, error) {
	// Never through a symlink, nor blocking on a FIFO: only a regular file
	// in spool/work is content.
	f, err := openRegular(job.Path, false)
	if err != nil {
		return nil, fmt.Errorf("pipeline: open work file %s: %w", job.SHA256, err)
	}
	defer f.Close()
	limit := p.maxFileBytes()
	var size int64
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	data, err := fsutil.ReadLimited(f, size, limit+1)
	if err != nil {
		return nil, fmt.Errorf("pipeline: read work file %s: %w", job.SHA256, err)
	}
	if int64(len(data)) > limit {
		return nil, reject(dicomio.ReasonTooLarge, fmt.Errorf("file %s is larger than %d bytes", job.SHA256, limit))
	}
	if got := fsutil.HashBytes(data); got != job.SHA256 {
		newPath := filepath.Join(p.workDir, got+".dcm")
		// As in Claim: the rename and the hand-over of the in-flight mark
		// happen under one lock, and never onto a work file of the same
		// content (another job's, in flight or waiting for a retry).
		p.mu.Lock()
		_, statErr := os.Lstat(newPath)
		busy := p.inflight[got] || statErr == nil
		if !busy {
			err = os.Rename(job.Path, newPath)
			if err == nil {
				delete(p.inflight, job.SHA256)
				p.inflight[got] = true
			}
		}
		p.mu.Unlock()
		if busy {
			return nil, &sameInFlight{sha: got}
		}
		if err != nil {
			return nil, fmt.Errorf("pipeline: rename work file %s: %w", job.SHA256, err)
		}
		p.log.Warn("work file content changed since claim", "claimed_sha256", job.SHA256, "sha256", got)
		job.SHA256, job.Path = got, newPath
	}
	return data, nil
}

// sameInFlight says that a work file's content is already in spool/work
// under its own hash.
type sameInFlight struct{ sha string }

func (e *sameInFlight) Error() string { return "pipeline: content " + e.sha + " already in spool/work" }

// removeWork removes a work file whose outcome is committed. The removal
// is not fsync'd: should power fail before it reaches the disk, the file is
// found again at start-up and finished from its committed row
// (finishExisting), as after a kill -9 between the commit and the removal.
func (p *Pipeline) removeWork(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("pipeline: remove work file: %w", err)
	}
	return nil
}
