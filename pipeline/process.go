package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"sync"
	"time"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
)

// Job is one claimed file in spool/work.
type Job struct {
	SHA256 string
	Path   string
	// Recovered is true for files found in spool/work at start-up: a crash
	// may have left them after their result was committed.
	Recovered  bool
	ReceivedAt time.Time
	// Crashes counts the earlier runs that stopped while decoding this
	// file (see markInProgress); at quarantineAfter it is rejected.
	Crashes int
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
	// readWork may move the job to a new hash: end whichever it holds last,
	// after removing its in-progress mark (deferred calls run last first).
	defer func() { p.end(job.SHA256) }()
	defer func() { p.clearInProgress(job.SHA256) }()
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

// file is one file on its way through the stages: what each stage makes
// and the next one needs.
type file struct {
	job      *Job
	out      Outcome
	data     []byte
	model    *activeModel
	dcm      *dicomio.File
	gray     *image.Gray
	buf      *planeBuf
	geom     preprocess.Geometry
	instance store.Instance
}

// timed runs one stage and, when it succeeds, records how long it took
// in the outcome and the stage metric.
func (p *Pipeline) timed(f *file, name string, stage func() error) error {
	t0 := time.Now()
	if err := stage(); err != nil {
		return err
	}
	d := time.Since(t0)
	f.out.Stages[name] = d
	p.metrics.observe(name, d)
	return nil
}

// process runs the stages in order. A rejection error ends the file as
// rejected (Process records it); any other error leaves it for a retry.
func (p *Pipeline) process(ctx context.Context, job *Job) (Outcome, error) {
	f := &file{job: job, out: Outcome{SHA256: job.SHA256, Stages: map[string]time.Duration{}}}
	err := p.timed(f, "read", func() error { return p.readStage(f) })
	var dup *sameInFlight
	if errors.As(err, &dup) {
		return p.inFlightDuplicate(ctx, job.Path, dup.sha)
	}
	if err != nil {
		return f.out, err
	}

	// A row for this content means it reached a terminal state before:
	// either we crashed after committing, or the same bytes were sent again.
	if in, err := p.db.Instance(ctx, job.SHA256); err == nil {
		return p.finishExisting(ctx, *job, in, f.data)
	} else if !errors.Is(err, store.ErrNotFound) {
		return f.out, err
	}
	if f.model = p.model.Load(); f.model == nil {
		return f.out, ErrNoModel
	}
	if job.Crashes >= quarantineAfter {
		return f.out, reject(ReasonCrashedDaemon, fmt.Errorf("file %s was being decoded each of the last %d times the daemon stopped", job.SHA256, job.Crashes))
	}
	if err := p.markInProgress(job); err != nil {
		return f.out, err
	}
	f.buf = planePool.Get().(*planeBuf)
	defer planePool.Put(f.buf)

	// Render before de-identification: rendering reads attributes (windows,
	// LUTs) that the profile keeps, but the decoded pixels are what prove
	// the file usable before anything is archived.
	for _, s := range []struct {
		name string
		run  func(context.Context, *file) error
	}{{"parse", p.parseStage}, {"decode", p.decodeStage}, {"preprocess", p.preprocessStage}, {"deidentify", p.deidentifyStage}} {
		if err := p.timed(f, s.name, func() error { return s.run(ctx, f) }); err != nil {
			return f.out, err
		}
	}

	unlock, err := p.lockSOP(ctx, f.out.SOPInstanceUID)
	if err != nil {
		return f.out, err
	}
	defer unlock()
	// The same instance sent again (perhaps re-encoded) is a duplicate: it
	// is recorded, never counted twice, and not archived again.
	if prev, err := p.db.DoneInstanceBySOP(ctx, f.out.SOPInstanceUID); err == nil {
		return p.duplicate(ctx, *job, f.instance, prev.SHA256)
	} else if !errors.Is(err, store.ErrNotFound) {
		return f.out, err
	}

	for _, s := range []struct {
		name string
		run  func(context.Context, *file) error
	}{{"archive", p.archiveStage}, {"classify", p.classifyStage}, {"record", p.recordStage}} {
		if err := p.timed(f, s.name, func() error { return s.run(ctx, f) }); err != nil {
			return f.out, err
		}
	}
	out := f.out
	out.State = store.StateDone
	if err := p.sinkDone(ctx, out, f.model.info, f.data); err != nil {
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

// readStage reads the work file (readWork may move it to its content's
// hash).
func (p *Pipeline) readStage(f *file) error {
	data, err := p.readWork(f.job)
	if err != nil {
		return err
	}
	f.data, f.out.SHA256 = data, f.job.SHA256
	return nil
}
