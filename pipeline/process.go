package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/fracd/fracd"
	"image"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Job is one claimed file in spool/work.
type Job struct {
	SHA256 string
	Path   string
	// Recovered is true for files found in spool/work at start-up: a crash
	// may have left them after their result was committed.
	Recovered  bool
	ReceivedAt time.Time
}

// Outcome is a file's terminal state.
type Outcome struct {
	SHA256            string                   `json:"sha256"`
	State             string                   `json:"state"` // done, rejected, duplicate
	Reason            string                   `json:"reason,omitempty"`
	StudyUID          string                   `json:"study_uid,omitempty"`
	SeriesUID         string                   `json:"series_uid,omitempty"`
	SOPInstanceUID    string                   `json:"sop_instance_uid,omitempty"`
	Modality          string                   `json:"modality,omitempty"`
	BodyPart          string                   `json:"body_part,omitempty"`
	ArchivePath       string                   `json:"archive_path,omitempty"`
	ModelID           string                   `json:"model_id,omitempty"`
	Probability       float64                  `json:"probability,omitempty"`
	Threshold         float64                  `json:"threshold,omitempty"`
	Flagged           bool                     `json:"flagged"`
	Category          fracd.Category           `json:"category,omitempty"`
	Boxes             []fracd.Box              `json:"boxes,omitempty"` // original-image pixels
	DuplicateOf       string                   `json:"duplicate_of,omitempty"`
	AlreadyRecorded   bool                     `json:"already_recorded,omitempty"`
	Stages            map[string]time.Duration `json:"-"`
	PreprocessVersion string                   `json:"preprocess_version,omitempty"`
}

// The pipeline's own rejection reasons; what dicomio cannot read has its
// reason from dicomio.Reason (dicomio.ReasonNotDICOM, ...).
const (
	ReasonBurnedIn       = "burned_in_annotation"
	ReasonDeidentify     = "deidentification_failed"
	ReasonPreprocessFail = "preprocess_failed"
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

var uidPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// archivePath places a de-identified instance by its (new) UIDs. UIDs are
// checked so that nothing in a file can steer the path.
func (p *Pipeline) archivePath(study, series, sop string) (string, error) {
	for _, u := range []string{study, series, sop} {
		if len(u) == 0 || len(u) > 64 || !uidPattern.MatchString(u) {
			return "", fmt.Errorf("pipeline: de-identified UID %q is not a valid UID", u)
		}
	}
	return filepath.Join(p.cfg.Archive, study, series, sop+".dcm"), nil
}

type planeBuf struct {
	plane  *image.Gray
	tensor []float32
}

var planePool = sync.Pool{New: func() any {
	return &planeBuf{plane: image.NewGray(image.Rect(0, 0, preprocess.Size, preprocess.Size))}
}}

// Process takes one claimed file to its terminal state. An error means the
// file stays in spool/work (system trouble, or no model yet) and must be
// retried; every input problem ends as a rejected Outcome instead.
func (p *Pipeline) Process(ctx context.Context, job Job) (Outcome, error) {
	if !p.begin(job.SHA256) {
		return Outcome{}, fmt.Errorf("pipeline: %s: %w", job.SHA256, errInFlight)
	}
	// readWork may move the job to a new hash: end whichever it holds last.
	defer func() { p.end(job.SHA256) }()
	p.metrics.InFlight.Inc()
	defer p.metrics.InFlight.Dec()
	started := time.Now()
	out, err := p.process(ctx, &job)
	if err != nil {
		var rj *rejection
		if !errors.As(err, &rj) {
			return out, err
		}
		out, err = p.reject(ctx, job, rj)
		if err != nil {
			return out, err
		}
	}
	p.metrics.observe("total", time.Since(started))
	p.metrics.Files.WithLabelValues(out.State, reasonLabel(out)).Inc()
	return out, nil
}

// errInFlight: another worker has this content in hand.
var errInFlight = errors.New("already being processed")

func reasonLabel(o Outcome) string {
	if o.State != store.StateRejected {
		return ""
	}
	code, _, _ := strings.Cut(o.Reason, ":")
	return code
}

func (p *Pipeline) process(ctx context.Context, job *Job) (Outcome, error) {
	out := Outcome{SHA256: job.SHA256, Stages: map[string]time.Duration{}}
	stage := func(name string, t0 time.Time) {
		d := time.Since(t0)
		out.Stages[name] = d
		p.metrics.observe(name, d)
	}

	t0 := time.Now()
	data, err := p.readWork(job)
	var dup *sameInFlight
	if errors.As(err, &dup) {
		return p.inFlightDuplicate(ctx, job.Path, dup.sha)
	}
	if err != nil {
		return out, err
	}
	out.SHA256 = job.SHA256
	stage("read", t0)

	// A row for this content means it reached a terminal state before:
	// either we crashed after committing, or the same bytes were sent again.
	if in, err := p.db.Instance(ctx, job.SHA256); err == nil {
		return p.finishExisting(ctx, *job, in, data)
	} else if !errors.Is(err, store.ErrNotFound) {
		return out, err
	}

	am := p.model.Load()
	if am == nil {
		return out, ErrNoModel
	}

	t0 = time.Now()
	f, err := dicomio.ParseContext(ctx, data, p.cfg.DICOMOptions()...)
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, reject(dicomio.Reason(err), err)
	}
	if !f.HasPixelData() {
		return out, reject(dicomio.ReasonNoPixelData, fmt.Errorf("file %s has no Pixel Data element", job.SHA256))
	}
	if _, err := f.ImageInfo(); err != nil {
		return out, reject(dicomio.Reason(err), err)
	}
	stage("parse", t0)

	// Render before de-identification: rendering reads attributes (windows,
	// LUTs) that the profile keeps, but the decoded pixels are what prove
	// the file usable before anything is archived.
	t0 = time.Now()
	gray, err := f.Render8(0)
	if err != nil {
		return out, reject(dicomio.Reason(err), err)
	}
	stage("decode", t0)

	t0 = time.Now()
	size := am.info.InputSize
	if err := preprocess.CheckPlaneSize(size); err != nil {
		return out, fmt.Errorf("pipeline: model %s: %w", am.info.ID, err)
	}
	buf := planePool.Get().(*planeBuf)
	defer planePool.Put(buf)
	if buf.plane.Bounds().Dx() != size {
		buf.plane = image.NewGray(image.Rect(0, 0, size, size)) // the model's input side
	}
	if err := preprocess.PlaneInto(buf.plane, gray); err != nil {
		return out, reject(ReasonPreprocessFail, err)
	}
	geom := preprocess.PlaneGeometrySized(gray.Bounds().Dx(), gray.Bounds().Dy(), size)
	gray = nil
	buf.tensor = preprocess.ToTensor(buf.plane, am.info.Mean, am.info.Std, buf.tensor)
	out.PreprocessVersion = preprocess.VersionFor(size)
	stage("preprocess", t0)

	t0 = time.Now()
	// Read before the profile removes it; only its pseudonym is kept.
	sourceUID := ""
	if orig := sourceInstanceUID(f.Dataset); orig != "" {
		sourceUID = p.anon.MapUID(orig)
	}
	res, err := p.anon.Apply(&f.Dataset)
	if err != nil {
		if errors.Is(err, anonymize.ErrBurnedIn) {
			return out, reject(ReasonBurnedIn, err)
		}
		return out, reject(ReasonDeidentify, err)
	}
	out.StudyUID, out.SeriesUID, out.SOPInstanceUID = res.StudyInstanceUID, res.SeriesInstanceUID, res.SOPInstanceUID
	out.Modality, out.BodyPart = res.Modality, res.BodyPartExamined
	stage("deidentify", t0)

	instance := store.Instance{
		SHA256: job.SHA256, StudyUID: out.StudyUID, SeriesUID: out.SeriesUID, SOPInstanceUID: out.SOPInstanceUID,
		Modality: out.Modality, BodyPart: out.BodyPart, TransferSyntax: f.TransferSyntaxUID, ReceivedAt: job.ReceivedAt,
		SourceSOPInstanceUID: sourceUID,
	}
	unlock, err := p.lockSOP(ctx, out.SOPInstanceUID)
	if err != nil {
		return out, err
	}
	defer unlock()
	// The same instance sent again (perhaps re-encoded) is a duplicate: it
	// is recorded, never counted twice, and not archived again.
	if prev, err := p.db.DoneInstanceBySOP(ctx, out.SOPInstanceUID); err == nil {
		return p.duplicate(ctx, *job, instance, prev.SHA256)
	} else if !errors.Is(err, store.ErrNotFound) {
		return out, err
	}

	t0 = time.Now()
	archive, err := p.archivePath(out.StudyUID, out.SeriesUID, out.SOPInstanceUID)
	if err != nil {
		return out, reject(ReasonDeidentify, err)
	}
	if err := os.MkdirAll(filepath.Dir(archive), 0o750); err != nil {
		return out, fmt.Errorf("pipeline: archive %s: %w", job.SHA256, err)
	}
	if err := dicomio.WriteFile(archive, f.Dataset); err != nil {
		return out, fmt.Errorf("pipeline: archive %s: %w", job.SHA256, err)
	}
	// New study/series folders must be durable too.
	for _, d := range []string{filepath.Dir(filepath.Dir(archive)), p.cfg.Archive} {
		if err := fsutil.SyncDir(d); err != nil {
			return out, err
		}
	}
	out.ArchivePath = archive
	instance.ArchivePath = archive
	stage("archive", t0)

	t0 = time.Now()
	probs, boxes, err := classify(ctx, am.m, buf.tensor, geom)
	if err != nil {
		return out, fmt.Errorf("pipeline: classify %s: %w", job.SHA256, err)
	}
	if len(probs) != 1 {
		return out, fmt.Errorf("pipeline: classify %s: model returned %d probabilities for 1 image", job.SHA256, len(probs))
	}
	inference := time.Since(t0)
	stage("classify", t0)
	out.ModelID, out.Probability, out.Threshold = am.info.ID, float64(probs[0]), am.info.Threshold
	out.Flagged = out.Probability >= out.Threshold
	out.Category, out.Boxes = thresholds(am.info, out.Threshold).Categorize(out.Probability), boxes

	t0 = time.Now()
	instance.State = store.StateDone
	err = p.db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertInstance(ctx, instance); err != nil {
			return err
		}
		// The audit rows carry the stored values, for audit verify to compare.
		if _, err := tx.AppendAudit(ctx, p.cfg.Actor, store.ActionArchived, job.SHA256, store.ArchivedDetail(instance, anonymize.MethodDescription)); err != nil {
			return err
		}
		pred := store.Prediction{
			InstanceSHA256: job.SHA256, ModelID: am.info.ID, ModelSHA256: am.info.WeightsSHA256,
			PreprocessVersion: out.PreprocessVersion, Probability: out.Probability, Threshold: out.Threshold,
			Flagged: out.Flagged, Latency: inference, Category: string(out.Category), Boxes: out.Boxes,
		}
		if _, err := tx.InsertPrediction(ctx, pred); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, p.cfg.Actor, store.ActionPredicted, job.SHA256, store.PredictedDetail(out.SOPInstanceUID, pred))
		return err
	})
	if err != nil {
		return out, fmt.Errorf("pipeline: record %s: %w", job.SHA256, err)
	}
	stage("record", t0)
	out.State = store.StateDone
	if err := p.sinkDone(ctx, out, am.info, data); err != nil {
		return out, err
	}
	if err := p.removeWork(job.Path); err != nil {
		return out, err
	}
	stages := make([]any, 0, 2*len(out.Stages))
	for name, d := range out.Stages {
		stages = append(stages, slog.Float64(name, float64(d.Microseconds())/1000))
	}
	p.log.Info("file done", "sha256", job.SHA256, "study_uid", out.StudyUID, "sop_instance_uid", out.SOPInstanceUID,
		"probability", out.Probability, "flagged", out.Flagged, "model_id", out.ModelID,
		slog.Group("stage_ms", stages...))
	return out, nil
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

func (p *Pipeline) removeWork(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("pipeline: remove work file: %w", err)
	}
	return fsutil.SyncDir(p.workDir)
}

// sourceInstanceUID returns the first Referenced SOP Instance UID of Source
// Image Sequence, or "". A lossy re-encoding names its original there.
func sourceInstanceUID(ds dicom.Dataset) string {
	seq, err := ds.FindElementByTag(tag.SourceImageSequence)
	if err != nil {
		return ""
	}
	items, ok := seq.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok || len(items) == 0 {
		return ""
	}
	for _, e := range items[0].GetValue().([]*dicom.Element) {
		if e.Tag == tag.ReferencedSOPInstanceUID {
			if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
				uid := strings.TrimRight(v[0], "\x00 ")
				if uidPattern.MatchString(uid) {
					return uid
				}
			}
		}
	}
	return ""
}

// classify runs the model on one input; a Localiser also gives its boxes,
// mapped from the plane to the original image's pixels.
func classify(ctx context.Context, m Model, input []float32, g preprocess.Geometry) ([]float32, []fracd.Box, error) {
	l, ok := m.(Localiser)
	if !ok {
		p, err := m.Predict(ctx, input, 1)
		return p, nil, err
	}
	p, boxes, err := l.Localise(ctx, input)
	if err != nil {
		return nil, nil, err
	}
	for i, b := range boxes {
		boxes[i].X0, boxes[i].Y0 = g.ToSource(b.X0, b.Y0)
		boxes[i].X1, boxes[i].Y1 = g.ToSource(b.X1, b.Y1)
	}
	return []float32{p}, boxes, nil
}
