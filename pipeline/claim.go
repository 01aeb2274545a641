package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/store"
)

// ErrClaimed means another copy of the same content is already in flight; the
// inbox file was recorded as a duplicate and removed.
var ErrClaimed = errors.New("pipeline: same content already in flight")

// errNotRegular refuses an entry that is not a regular file (a symlink, a
// FIFO, a device, a folder): it is never read, moved or changed.
var errNotRegular = errors.New("not a regular file")

// errReplaced means the entry at an inbox path is no longer the file that
// settled (or that the claim opened): it is left for the watcher to offer
// again once it settles.
var errReplaced = errors.New("inbox file replaced since it settled")

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

// hashCapped hashes at most limit+1 bytes: enough to tell a file over the
// limit, which is rejected as too large, without reading all of it. Such a
// file is named by the hash of those bytes, as readWork computes it too.
func hashCapped(r io.Reader, limit int64) (string, int64, error) {
	return fsutil.HashReader(io.LimitReader(r, limit+1))
}

// Claim moves an inbox file into spool/work/<sha256>.dcm with one atomic
// rename and records the claim. Until the rename the file is the sender's;
// after it, the spool's. Inbox paths are never logged: they may carry names.
func (p *Pipeline) Claim(ctx context.Context, inboxPath string) (Job, error) {
	return p.claim(ctx, inboxPath, nil)
}

// claim is Claim, refusing the file unless it is want (when known): the
// file the watcher saw settle. The file is opened without following links,
// hashed from that descriptor, and renamed relative to its folder's
// descriptor, so a symlink, FIFO or other file swapped in at the path (or
// above it) is never read, moved, removed or changed.
func (p *Pipeline) claim(ctx context.Context, inboxPath string, want *fileID) (Job, error) {
	in, err := openInbox(inboxPath)
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: open inbox file: %w", fsutil.ScrubPath(err))
	}
	defer in.close()
	if want != nil && *want != in.id {
		return Job{}, fmt.Errorf("pipeline: claim: %w", errReplaced)
	}
	sha, size, err := hashCapped(in.f, p.maxFileBytes())
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: hash inbox file: %w", fsutil.ScrubPath(err))
	}
	if p.hookBeforeRename != nil {
		p.hookBeforeRename()
	}
	job := Job{SHA256: sha, Path: filepath.Join(p.workDir, sha+".dcm"), ReceivedAt: time.Now()}
	p.mu.Lock()
	_, statErr := os.Lstat(job.Path)
	busy := p.inflight[sha] || statErr == nil
	if !busy {
		err = in.moveTo(p.workDir, sha+".dcm")
	}
	p.mu.Unlock()
	if busy {
		// Identical bytes are already in spool/work: their outcome is this
		// file's outcome too.
		if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, store.ActionDuplicate, sha, map[string]any{"duplicate_of": sha, "in_flight": true}); err != nil {
			return Job{}, err
		}
		if err := in.remove(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Job{}, fmt.Errorf("pipeline: remove duplicate inbox file %s: %w", sha, fsutil.ScrubPath(err))
		}
		p.metrics.Files.WithLabelValues(store.StateDuplicate, "").Inc()
		return Job{SHA256: sha}, ErrClaimed
	}
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: claim %s: %w", sha, fsutil.ScrubPath(err))
	}
	if err := fsutil.SyncDir(p.workDir); err != nil {
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
// for `fracd process`. The copy and its hash come from one descriptor and
// one pass, bounded like a claim; a FIFO or device is refused, not read.
func (p *Pipeline) CopyIn(ctx context.Context, path string) (Job, error) {
	src, err := openRegular(path, true)
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: open input: %w", fsutil.ScrubPath(err))
	}
	defer src.Close()
	// The name is the content's hash, known only once copied: a temporary
	// file (removed by Pending if a crash leaves it) until then.
	dst, err := fsutil.CreateTemp(p.workDir, ".copy-*.tmp")
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: copy input: %w", err)
	}
	defer dst.Abort()
	sha, size, err := hashCapped(io.TeeReader(src, dst), p.maxFileBytes())
	if err != nil {
		return Job{}, fmt.Errorf("pipeline: copy input: %w", fsutil.ScrubPath(err))
	}
	job := Job{SHA256: sha, Path: filepath.Join(p.workDir, sha+".dcm"), ReceivedAt: time.Now()}
	if err := dst.Commit(job.Path, 0o600); err != nil {
		return Job{}, fmt.Errorf("pipeline: copy %s: %w", sha, err)
	}
	if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, store.ActionClaimed, sha, map[string]any{"bytes": size, "copied": true}); err != nil {
		return job, err
	}
	return job, nil
}
