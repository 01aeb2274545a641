package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/store"
)

// The terminal states other than done: rejected, duplicate, and a file
// whose content already has one.

// The pipeline's own rejection reasons; what dicomio cannot read has its
// reason from dicomio.Reason (dicomio.ReasonNotDICOM, ...).
const (
	ReasonBurnedIn       = "burned_in_annotation"
	ReasonDeidentify     = "deidentification_failed"
	ReasonPreprocessFail = "preprocess_failed"
	// ReasonCrashedDaemon: the daemon stopped while decoding the file, more
	// than once; it is quarantined rather than tried again (spool.go).
	ReasonCrashedDaemon = "crashed_daemon"
)

// rejection is an error caused by the input itself: the file goes to
// spool/rejected. Any other error is the system's (disk, database, model) and
// leaves the file in spool/work to be retried.
type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.reason + ": " + r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

func reject(reason string, err error) error { return &rejection{reason: reason, err: err} }

func reasonLabel(o Outcome) string {
	if o.State != store.StateRejected {
		return ""
	}
	code, _, _ := strings.Cut(o.Reason, ":")
	return code
}

// inFlightDuplicate ends a file whose bytes are already in spool/work under
// their hash: that copy's outcome is this one's too, so this one is only
// recorded and removed.
func (p *Pipeline) inFlightDuplicate(ctx context.Context, path, sha string) (Outcome, error) {
	if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, store.ActionDuplicate, sha, map[string]any{"duplicate_of": sha, "in_flight": true}); err != nil {
		return Outcome{}, fmt.Errorf("pipeline: record duplicate %s: %w", sha, err)
	}
	p.log.Info("file duplicate", "sha256", sha, "duplicate_of", sha, "in_flight", true)
	return Outcome{SHA256: sha, State: store.StateDuplicate, DuplicateOf: sha}, p.removeWork(path)
}

// finishExisting ends a file whose content already has a terminal state.
func (p *Pipeline) finishExisting(ctx context.Context, job Job, in store.Instance, data []byte) (Outcome, error) {
	out := Outcome{SHA256: job.SHA256, State: in.State, Reason: in.Reason, StudyUID: in.StudyUID, SeriesUID: in.SeriesUID,
		SOPInstanceUID: in.SOPInstanceUID, Modality: in.Modality, BodyPart: in.BodyPart, ArchivePath: in.ArchivePath,
		DuplicateOf: in.DuplicateOf, AlreadyRecorded: true}
	if !job.Recovered {
		// The same bytes again: record that it arrived, count nothing.
		if _, err := p.db.AppendAudit(ctx, p.cfg.Actor, store.ActionDuplicate, job.SHA256, map[string]any{
			"duplicate_of": job.SHA256, "earlier_state": in.State,
		}); err != nil {
			return out, err
		}
		out.State, out.DuplicateOf = store.StateDuplicate, job.SHA256
	}
	if in.State == store.StateRejected && job.Recovered {
		// Crashed after recording the rejection, before moving the file.
		return out, p.moveToRejected(job, in.Reason)
	}
	if job.Recovered {
		// Crashed after the commit: the sink may not have seen the result.
		if err := p.sinkRecovered(ctx, in, data); err != nil {
			return out, err
		}
	}
	return out, p.removeWork(job.Path)
}
func (p *Pipeline) duplicate(ctx context.Context, job Job, in store.Instance, of string) (Outcome, error) {
	in.State, in.DuplicateOf = store.StateDuplicate, of
	err := p.db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertInstance(ctx, in); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, p.cfg.Actor, store.ActionDuplicate, job.SHA256, map[string]any{
			"duplicate_of": of, "sop_instance_uid": in.SOPInstanceUID,
		})
		return err
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("pipeline: record duplicate %s: %w", job.SHA256, err)
	}
	p.log.Info("file duplicate", "sha256", job.SHA256, "duplicate_of", of, "sop_instance_uid", in.SOPInstanceUID)
	out := Outcome{SHA256: job.SHA256, State: store.StateDuplicate, DuplicateOf: of, StudyUID: in.StudyUID,
		SeriesUID: in.SeriesUID, SOPInstanceUID: in.SOPInstanceUID, Modality: in.Modality, BodyPart: in.BodyPart}
	return out, p.removeWork(job.Path)
}

// reject records the rejection, then moves the original to spool/rejected
// with a reason file. Recording first means a crash in between is finished
// by finishExisting, which moves rather than deletes.
func (p *Pipeline) reject(ctx context.Context, job Job, rj *rejection) (Outcome, error) {
	reason := rj.Error()
	err := p.db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertInstance(ctx, store.Instance{SHA256: job.SHA256, State: store.StateRejected, Reason: reason, ReceivedAt: job.ReceivedAt}); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, p.cfg.Actor, store.ActionRejected, job.SHA256, map[string]any{"reason": rj.reason, "detail": rj.err.Error()})
		return err
	})
	if err != nil {
		return Outcome{}, fmt.Errorf("pipeline: record rejection of %s: %w", job.SHA256, err)
	}
	p.log.Warn("file rejected", "sha256", job.SHA256, "reason", rj.reason, "error", rj.err.Error())
	out := Outcome{SHA256: job.SHA256, State: store.StateRejected, Reason: reason}
	return out, p.moveToRejected(job, reason)
}
func (p *Pipeline) moveToRejected(job Job, reason string) error {
	base := filepath.Join(p.rejectedDir, job.SHA256)
	if err := fsutil.WriteFileAtomic(base+".reason.txt", []byte(reason+"\n"), 0o600); err != nil {
		return fmt.Errorf("pipeline: write rejection reason for %s: %w", job.SHA256, err)
	}
	// fchmod on a descriptor opened without following links: a path could
	// lead to any file.
	f, err := openRegular(job.Path, false)
	if errors.Is(err, fs.ErrNotExist) {
		// Moved before a crash; only the folders' durability is left.
		return p.syncRejected()
	}
	if err != nil {
		return fmt.Errorf("pipeline: open %s to reject it: %w", job.SHA256, err)
	}
	defer f.Close()
	if ownedAlone(f) {
		err := p.chmod(f, 0o600)
		if err == nil {
			if err := os.Rename(job.Path, base+".dcm"); err != nil {
				return fmt.Errorf("pipeline: move %s to rejected: %w", job.SHA256, err)
			}
			return p.syncRejected()
		}
		if !errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("pipeline: chmod %s: %w", job.SHA256, err)
		}
	}
	// Another user's file (chmod fails, the sender keeps its ownership) or
	// one still linked elsewhere (the sender can still reach it): keep our
	// own 0600 copy, durable before the original goes.
	if err := fsutil.CopyAtomic(base+".dcm", f, 0o600); err != nil {
		return fmt.Errorf("pipeline: copy %s to rejected: %w", job.SHA256, err)
	}
	if err := fsutil.SyncDir(p.rejectedDir); err != nil {
		return err
	}
	if err := os.Remove(job.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pipeline: remove rejected work file %s: %w", job.SHA256, err)
	}
	return fsutil.SyncDir(p.workDir)
}
func (p *Pipeline) chmod(f *os.File, mode os.FileMode) error {
	if p.fchmod != nil {
		return p.fchmod(f, mode)
	}
	return f.Chmod(mode)
}
func (p *Pipeline) syncRejected() error {
	if err := fsutil.SyncDir(p.rejectedDir); err != nil {
		return err
	}
	return fsutil.SyncDir(p.workDir)
}
