package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fracd/fracd/store"
)

// ErrClaimed means another copy of the same content is already in flight; the
// inbox file was recorded as a duplicate and removed.
var ErrClaimed = errors.New("pipeline: same content already in flight")

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Claim moves an inbox file into spool/work/<sha256>.dcm with one atomic
// rename and records the claim. Until the rename the file is the sender's;
// after it, the spool's. Inbox paths are never logged: they may carry names.
func (p *Pipeline) Claim(ctx context.Context, inboxPath string) (Job, error) {
	sha, size, err := hashFile(inboxPath)
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: hash inbox file: %w", scrubPath(err))
	}
	job := Job{SHA256: sha, Path: filepath.Join(p.workDir, sha+".dcm"), ReceivedAt: time.Now()}
	p.mu.Lock()
	_, statErr := os.Lstat(job.Path)
	busy := p.inflight[sha] || statErr == nil
	if !busy {
		err = os.Rename(inboxPath, job.Path)
	}
	p.mu.Unlock()
	if busy {
		// Identical bytes are already in spool/work: their outcome is this
		// file's outcome too.
		if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, store.ActionDuplicate, sha, map[string]any{"duplicate_of": sha, "in_flight": true}); err != nil {
			return Job{}, err
		}
		if err := os.Remove(inboxPath); err != nil && !os.IsNotExist(err) {
			return Job{}, fmt.Errorf("pipeline: remove duplicate inbox file %s: %w", sha, scrubPath(err))
		}
		p.metrics.Files.WithLabelValues(store.StateDuplicate, "").Inc()
		return Job{SHA256: sha}, ErrClaimed
	}
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: claim %s: %w", sha, scrubPath(err))
	}
	if err := syncDir(p.workDir); err != nil {
		return job, err
	}
	if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, store.ActionClaimed, sha, map[string]any{"bytes": size}); err != nil {
		// The file is safe in spool/work and will be processed; only the
		// claim row is missing, so report but do not fail the job.
		p.log.Error("audit claim", "sha256", sha, "error", err)
	}
	p.log.Debug("file claimed", "sha256", sha, "bytes", size)
	return job, nil
}

// CopyIn puts a copy of a file into spool/work without touching the original,
// for `fracd process`.
func (p *Pipeline) CopyIn(ctx context.Context, path string) (Job, error) {
	sha, size, err := hashFile(path)
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: hash input: %w", scrubPath(err))
	}
	job := Job{SHA256: sha, Path: filepath.Join(p.workDir, sha+".dcm"), ReceivedAt: time.Now()}
	tmp := filepath.Join(p.workDir, "."+sha+".tmp")
	src, err := os.Open(path)
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: copy %s: %w", sha, scrubPath(err))
	}
	defer src.Close()
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: copy %s: %w", sha, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		os.Remove(tmp)
		return Job{}, fmt.Errorf("pipeline: copy %s: %w", sha, err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return Job{}, err
	}
	dst.Close()
	if err := os.Rename(tmp, job.Path); err != nil {
		return Job{}, fmt.Errorf("pipeline: copy %s: %w", sha, err)
	}
	if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, store.ActionClaimed, sha, map[string]any{"bytes": size, "copied": true}); err != nil {
		return job, err
	}
	return job, nil
}

// Pending lists the files in spool/work, oldest first: on start-up, what a
// crash or a retryable error left behind.
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
	for _, e := range entries {
		name := e.Name()
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
		items = append(items, item{Job{SHA256: sha, Path: filepath.Join(p.workDir, name), Recovered: true, ReceivedAt: info.ModTime()}, info.ModTime()})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].mod.Before(items[j].mod) })
	jobs := make([]Job, len(items))
	for i, it := range items {
		jobs[i] = it.job
	}
	return jobs, nil
}

// scrubPath drops the file names from filesystem errors: inbox names may
// carry a patient's name, and errors end up in logs.
func scrubPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return fmt.Errorf("%s: %w", le.Op, le.Err)
	}
	return err
}
