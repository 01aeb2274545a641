package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/fsutil"
)

// spool/work: reading a claimed file and removing it once it is done.

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
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("pipeline: read work file %s: %w", job.SHA256, err)
	}
	if int64(len(data)) > limit {
		return nil, reject(dicomio.ReasonTooLarge, fmt.Errorf("file %s is larger than %d bytes", job.SHA256, limit))
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != job.SHA256 {
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

func (p *Pipeline) removeWork(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("pipeline: remove work file: %w", err)
	}
	return fsutil.SyncDir(p.workDir)
}
