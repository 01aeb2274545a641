// Package pipeline takes one DICOM file from its claim to a terminal state:
// parse and decode, de-identify, archive, render and preprocess, classify, and
// record instance, prediction and audit rows in one transaction. Only then is
// the original removed. It also runs the bounded worker pool that serve uses.
//
// Crash safety rests on three facts: the claim is an atomic rename into
// spool/work/<sha256>.dcm; every later step is idempotent (the archive path and
// pseudonyms are functions of the content and the site secret); and the
// database row keyed by the content hash is the single commit point. Anything
// left in spool/work/ at start-up is processed again.
package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fracd/fracd"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
)

// Model is what the pipeline needs of a classifier.
type Model interface {
	Info() ModelInfo
	// Predict returns one probability per image; inputs holds n CHW float32
	// images of 3 x InputSize x InputSize.
	Predict(ctx context.Context, inputs []float32, n int) ([]float32, error)
}

// Localiser is a Model that can also say where it looks: the probability
// of one image and its boxes in input-plane pixels (0..InputSize).
type Localiser interface {
	Localise(ctx context.Context, input []float32) (float32, []fracd.Box, error)
}

// ModelInfo names a model and how to feed it.
type ModelInfo struct {
	ID                string
	Arch              string
	WeightsSHA256     string
	PreprocessVersion string
	InputSize         int
	Mean, Std         [3]float32
	Threshold         float64
	// Suspected and Definite are the model's optional two operating points
	// (0 when it has only Threshold); see fracd.Thresholds.
	Suspected, Definite float64
	// Path is where the weights were loaded from (for the registry).
	Path string
	// Precision is the inference arithmetic ("f32" or "bf16"; empty: f32).
	Precision string
}

// Config configures a Pipeline.
type Config struct {
	Spool   string // spool/work and spool/rejected live here
	Archive string // de-identified DICOM, by study/series/instance UID
	// MaxPixelBytes bounds the decoded pixel data of one file.
	MaxPixelBytes int64
	// MaxFileBytes bounds the size of one input file.
	MaxFileBytes int64
	// MaxInflateRatio bounds decompression per input byte (dicomio's
	// WithMaxInflateRatio); 0 takes dicomio's default.
	MaxInflateRatio float64
	// Actor is written to audit rows ("fracd").
	Actor string
	// ThresholdOverride replaces the model's threshold when > 0.
	ThresholdOverride float64
	// CodecThreads is dicomio's WithCodecThreads for the files processed
	// (0: dicomio's default); the commands' DICOM reads keep the default.
	CodecThreads int
}

// DICOMOptions are the limits every DICOM read of fracd uses: the daemon's
// and the commands' (inspect, render, preprocess, anonymize), so that each
// says what the daemon would do with a file.
func (c Config) DICOMOptions() []dicomio.Option {
	return []dicomio.Option{dicomio.WithMaxPixelBytes(c.MaxPixelBytes), dicomio.WithMaxFileBytes(c.maxFileBytes()),
		dicomio.WithMaxInflateRatio(c.MaxInflateRatio)}
}

// processOptions are DICOMOptions plus the codec threads, for the files
// the pipeline processes.
func (c Config) processOptions() []dicomio.Option {
	return append(c.DICOMOptions(), dicomio.WithCodecThreads(c.CodecThreads))
}

func (c Config) maxFileBytes() int64 {
	if c.MaxFileBytes > 0 {
		return c.MaxFileBytes
	}
	return dicomio.DefaultMaxFileBytes
}

// Pipeline processes files. It is safe for concurrent use by many workers.
type Pipeline struct {
	cfg     Config
	db      *store.DB
	anon    *anonymize.Anonymizer
	log     *slog.Logger
	metrics *Metrics
	sink    ResultSink // optional; see SetResultSink

	model atomic.Pointer[activeModel]

	mu       sync.Mutex
	inflight map[string]bool          // content hashes being processed
	sops     map[string]chan struct{} // de-identified SOP Instance UIDs being archived and recorded

	dirs durableDirs // archive folders whose entries are known durable

	workDir, rejectedDir, quarantineDir string
	running                             runningJobs // run.go: for readiness (a hung worker)
	claimFailures                       pathSet     // run.go: inbox paths already warned about
	// runID tells this run's in-progress marks from an earlier run's.
	runID string

	// hookBeforeRename, in tests, runs between a claim's open and its
	// rename, to swap entries at that moment.
	hookBeforeRename func()
	// fchmod is (*os.File).Chmod; tests make it fail as for another user's file.
	fchmod func(*os.File, os.FileMode) error
}

type activeModel struct {
	m    Model
	info ModelInfo
}

// New creates the spool folders and returns a Pipeline. metrics may be nil.
func New(cfg Config, db *store.DB, anon *anonymize.Anonymizer, log *slog.Logger, metrics *Metrics) (*Pipeline, error) {
	if cfg.Actor == "" {
		cfg.Actor = "fracd"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	p := &Pipeline{
		cfg: cfg, db: db, anon: anon, log: log, metrics: metrics,
		inflight:      map[string]bool{},
		sops:          map[string]chan struct{}{},
		workDir:       filepath.Join(cfg.Spool, "work"),
		rejectedDir:   filepath.Join(cfg.Spool, "rejected"),
		quarantineDir: filepath.Join(cfg.Spool, "quarantine"),
		runID:         newRunID(),
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{p.workDir, 0o700}, {p.rejectedDir, 0o700}, {p.quarantineDir, 0o700}, {cfg.Archive, 0o750}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("pipeline: create %s: %w", d.path, err)
		}
	}
	return p, nil
}

func newRunID() string {
	b := make([]byte, 8)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// WorkDir is spool/work.
func (p *Pipeline) WorkDir() string { return p.workDir }

// RejectedDir is spool/rejected.
func (p *Pipeline) RejectedDir() string { return p.rejectedDir }

// SetModel switches the model used for files that start after this call,
// recording the switch in the audit trail.
func (p *Pipeline) SetModel(ctx context.Context, m Model, why string) error {
	info := m.Info()
	if p.cfg.ThresholdOverride > 0 {
		info.Threshold = p.cfg.ThresholdOverride
	}
	if info.InputSize <= 0 {
		return fmt.Errorf("pipeline: model %s: input size %d", info.ID, info.InputSize)
	}
	if info.WeightsSHA256 == "" {
		return fmt.Errorf("pipeline: model %s has no weights sha256", info.ID)
	}
	if info.Precision == "" {
		info.Precision = "f32"
	}
	// Every prediction references a registered model: register unknown
	// weights on first use; known weights keep their registry id.
	err := p.db.Update(ctx, func(tx *store.Tx) error {
		reg, err := tx.ModelBySHA(ctx, info.WeightsSHA256)
		switch {
		case err == nil:
			info.ID = reg.ID
		case errors.Is(err, store.ErrNotFound):
			if err := tx.AddModel(ctx, p.cfg.Actor, store.Model{ID: info.ID, Arch: info.Arch, WeightsSHA256: info.WeightsSHA256,
				Path: info.Path, PreprocessVersion: info.PreprocessVersion, Threshold: info.Threshold}, nil); err != nil {
				return err
			}
		default:
			return err
		}
		// The same model as the last activation (every `fracd process`,
		// every restart): nothing changed, so nothing to audit.
		if last, err := tx.LatestAudit(ctx, store.ActionModelActivated); err == nil && last.Subject == info.ID {
			var d struct {
				WeightsSHA256     string  `json:"weights_sha256"`
				Threshold         float64 `json:"threshold"`
				PreprocessVersion string  `json:"preprocess_version"`
				Precision         string  `json:"precision"`
			}
			if d.Precision == "" {
				d.Precision = "f32" // rows from before the precision option
			}
			if json.Unmarshal(last.Detail, &d) == nil && d.WeightsSHA256 == info.WeightsSHA256 &&
				d.Threshold == info.Threshold && d.PreprocessVersion == info.PreprocessVersion && d.Precision == info.Precision {
				return nil
			}
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err = tx.AppendAudit(ctx, p.cfg.Actor, store.ActionModelActivated, info.ID, map[string]any{
			"weights_sha256": info.WeightsSHA256, "arch": info.Arch, "threshold": info.Threshold,
			"preprocess_version": info.PreprocessVersion, "precision": info.Precision, "reason": why,
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("pipeline: activate model %s: %w", info.ID, err)
	}
	if want := preprocess.VersionFor(info.InputSize); info.PreprocessVersion != "" && info.PreprocessVersion != want {
		p.log.Warn("model was trained with other preprocessing", "model_id", info.ID,
			"model_preprocess_version", info.PreprocessVersion, "preprocess_version", want)
	}
	p.model.Store(&activeModel{m: m, info: info})
	p.metrics.setModel(info)
	p.log.Info("model active", "model_id", info.ID, "weights_sha256", info.WeightsSHA256, "precision", info.Precision, "reason", why)
	return nil
}

// ModelInfo returns the active model, if any.
func (p *Pipeline) ModelInfo() (ModelInfo, bool) {
	am := p.model.Load()
	if am == nil {
		return ModelInfo{}, false
	}
	return am.info, true
}

// ErrNoModel is returned when a file would need a classifier and none is set.
var ErrNoModel = errors.New("pipeline: no active model")

func (p *Pipeline) begin(sha string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[sha] {
		return false
	}
	p.inflight[sha] = true
	return true
}

func (p *Pipeline) end(sha string) {
	p.mu.Lock()
	delete(p.inflight, sha)
	p.mu.Unlock()
}

// lockSOP serialises the files of one instance (e.g. two encodings sent at
// once): the second must see the first's row and become a duplicate, not
// overwrite its archive file.
func (p *Pipeline) lockSOP(ctx context.Context, uid string) (unlock func(), err error) {
	for {
		p.mu.Lock()
		busy, ok := p.sops[uid]
		if !ok {
			done := make(chan struct{})
			p.sops[uid] = done
			p.mu.Unlock()
			return func() {
				p.mu.Lock()
				delete(p.sops, uid)
				p.mu.Unlock()
				close(done)
			}, nil
		}
		p.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
