package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/fracd/fracd"
	"time"
)

// Instance states.
const (
	StateDone      = "done"
	StateRejected  = "rejected"
	StateDuplicate = "duplicate"
)

// Instance is one received file, by content hash. It holds de-identified
// values only.
type Instance struct {
	SHA256         string `json:"sha256"`
	State          string `json:"state"`
	Reason         string `json:"reason,omitempty"`
	StudyUID       string `json:"study_uid,omitempty"`
	SeriesUID      string `json:"series_uid,omitempty"`
	SOPInstanceUID string `json:"sop_instance_uid,omitempty"`
	Modality       string `json:"modality,omitempty"`
	BodyPart       string `json:"body_part,omitempty"`
	TransferSyntax string `json:"transfer_syntax,omitempty"`
	ArchivePath    string `json:"archive_path,omitempty"`
	DuplicateOf    string `json:"duplicate_of,omitempty"`
	// SourceSOPInstanceUID is the (de-identified) instance this one was
	// derived from, e.g. by lossy compression.
	SourceSOPInstanceUID string    `json:"source_sop_instance_uid,omitempty"`
	ReceivedAt           time.Time `json:"received_at"`
	CompletedAt          time.Time `json:"completed_at"`
}

// Prediction is one classifier result.
type Prediction struct {
	ID                int64         `json:"id"`
	InstanceSHA256    string        `json:"instance_sha256"`
	ModelID           string        `json:"model_id"`
	ModelSHA256       string        `json:"model_sha256"`
	PreprocessVersion string        `json:"preprocess_version"`
	Probability       float64       `json:"probability"`
	Threshold         float64       `json:"threshold"`
	Flagged           bool          `json:"flagged"`
	Latency           time.Duration `json:"-"`
	CreatedAt         time.Time     `json:"created_at"`
	// Category is fracture, doubt or no_fracture ("" for predictions made
	// before categories existed); Boxes are where the model looks.
	Category string      `json:"category,omitempty"`
	Boxes    []fracd.Box `json:"boxes,omitempty"`
}

// Model is a registered model.
type Model struct {
	ID                string          `json:"id"`
	Arch              string          `json:"arch"`
	WeightsSHA256     string          `json:"weights_sha256"`
	Path              string          `json:"path"`
	PreprocessVersion string          `json:"preprocess_version"`
	Threshold         float64         `json:"threshold"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	TrainingRunID     string          `json:"training_run_id,omitempty"`
	RegisteredAt      time.Time       `json:"registered_at"`
	// State is ModelCandidate, ModelActive or ModelRetired; Active is
	// State == ModelActive, kept for older readers.
	State  string `json:"state"`
	Active bool   `json:"active"`
}

// Label is ground truth for one de-identified SOP instance.
type Label struct {
	ID             int64     `json:"id"`
	SOPInstanceUID string    `json:"sop_instance_uid"`
	Fractured      bool      `json:"fractured"`
	Source         string    `json:"source"`
	Actor          string    `json:"actor"`
	CreatedAt      time.Time `json:"created_at"`
}

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeFormat)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(TimeFormat, s)
	return t
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Instance returns the instance with the given content hash.
func (tx *Tx) Instance(ctx context.Context, sha string) (Instance, error) {
	return queryOne(tx.tx.QueryRowContext(ctx, instanceSelect+` WHERE sha256 = ?`, sha), "read instance", scanInstance)
}

// Instance returns the instance with the given content hash.
func (db *DB) Instance(ctx context.Context, sha string) (Instance, error) {
	return queryOne(db.sql.QueryRowContext(ctx, instanceSelect+` WHERE sha256 = ?`, sha), "read instance", scanInstance)
}

// DoneInstanceBySOP returns the processed instance with this de-identified
// SOP Instance UID, so a re-sent study is recognised as a duplicate.
func (tx *Tx) DoneInstanceBySOP(ctx context.Context, sopUID string) (Instance, error) {
	return queryOne(tx.tx.QueryRowContext(ctx, instanceSelect+` WHERE sop_instance_uid = ? AND state = 'done'`, sopUID), "read instance", scanInstance)
}

const instanceSelect = `SELECT sha256, state, reason, study_uid, series_uid, sop_instance_uid, modality, body_part,
	transfer_syntax, archive_path, coalesce(duplicate_of, ''), source_sop_instance_uid, received_at, completed_at FROM instances`

func scanInstance(scan func(...any) error) (Instance, error) {
	var in Instance
	var recv, done string
	if err := scan(&in.SHA256, &in.State, &in.Reason, &in.StudyUID, &in.SeriesUID, &in.SOPInstanceUID,
		&in.Modality, &in.BodyPart, &in.TransferSyntax, &in.ArchivePath, &in.DuplicateOf, &in.SourceSOPInstanceUID, &recv, &done); err != nil {
		return in, err
	}
	in.ReceivedAt, in.CompletedAt = parseTime(recv), parseTime(done)
	return in, nil
}

// InsertInstance records a file's terminal state.
func (tx *Tx) InsertInstance(ctx context.Context, in Instance) error {
	switch in.State {
	case StateDone, StateRejected, StateDuplicate:
	default:
		return fmt.Errorf("store: instance state %q is not one of done, rejected, duplicate", in.State)
	}
	if in.CompletedAt.IsZero() {
		in.CompletedAt = tx.db.Now()
	}
	if in.ReceivedAt.IsZero() {
		in.ReceivedAt = in.CompletedAt
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO instances(sha256, state, reason, study_uid, series_uid,
		sop_instance_uid, modality, body_part, transfer_syntax, archive_path, duplicate_of, source_sop_instance_uid, received_at, completed_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		in.SHA256, in.State, in.Reason, in.StudyUID, in.SeriesUID, in.SOPInstanceUID, in.Modality, in.BodyPart,
		in.TransferSyntax, in.ArchivePath, nullIfEmpty(in.DuplicateOf), in.SourceSOPInstanceUID, fmtTime(in.ReceivedAt), fmtTime(in.CompletedAt))
	if err != nil {
		return fmt.Errorf("store: insert instance %s: %w", in.SHA256, err)
	}
	return nil
}

// InsertPrediction records a prediction and returns its id.
func (tx *Tx) InsertPrediction(ctx context.Context, p Prediction) (int64, error) {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = tx.db.Now()
	}
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO predictions(instance_sha256, model_id, model_sha256,
		preprocess_version, probability, threshold, flagged, latency_ms, created_at, category) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.InstanceSHA256, p.ModelID, p.ModelSHA256, p.PreprocessVersion, p.Probability, p.Threshold, p.Flagged,
		float64(p.Latency)/float64(time.Millisecond), fmtTime(p.CreatedAt), p.Category)
	if err != nil {
		return 0, fmt.Errorf("store: insert prediction for %s: %w", p.InstanceSHA256, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("store: insert prediction for %s: %w", p.InstanceSHA256, err)
	}
	for i, b := range p.Boxes {
		if _, err := tx.tx.ExecContext(ctx, `INSERT INTO prediction_boxes(prediction_id, rank, x0, y0, x1, y1, score) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, i+1, b.X0, b.Y0, b.X1, b.Y1, b.Score); err != nil {
			return 0, fmt.Errorf("store: insert box %d of the prediction for %s: %w", i+1, p.InstanceSHA256, err)
		}
	}
	return id, nil
}

// RegisterModel adds a model (inactive) to the registry.
func (tx *Tx) RegisterModel(ctx context.Context, m Model) error {
	if m.RegisteredAt.IsZero() {
		m.RegisteredAt = tx.db.Now()
	}
	meta := string(m.Metadata)
	if meta == "" {
		meta = "{}"
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO models(id, arch, weights_sha256, path, preprocess_version,
		threshold, metadata, training_run_id, registered_at, active) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`,
		m.ID, m.Arch, m.WeightsSHA256, m.Path, m.PreprocessVersion, m.Threshold, meta, nullIfEmpty(m.TrainingRunID), fmtTime(m.RegisteredAt))
	if err != nil {
		return fmt.Errorf("store: register model %s: %w", m.ID, err)
	}
	return nil
}

// ActivateModel makes id the single active model (the one it replaces
// becomes a candidate) and records the activation; see PromoteModel.
func (tx *Tx) ActivateModel(ctx context.Context, id string) error {
	_, err := tx.PromoteModel(ctx, id)
	return err
}

const modelSelect = `SELECT id, arch, weights_sha256, path, preprocess_version, threshold, metadata,
	coalesce(training_run_id, ''), registered_at, state, active FROM models`

func scanModel(scan func(...any) error) (Model, error) {
	var m Model
	var meta, reg string
	if err := scan(&m.ID, &m.Arch, &m.WeightsSHA256, &m.Path, &m.PreprocessVersion, &m.Threshold,
		&meta, &m.TrainingRunID, &reg, &m.State, &m.Active); err != nil {
		return m, err
	}
	m.Metadata, m.RegisteredAt = json.RawMessage(meta), parseTime(reg)
	return m, nil
}

// Models lists the registry, newest first.
func (db *DB) Models(ctx context.Context) ([]Model, error) {
	return queryAll(ctx, db.sql, "list models", scanModel, modelSelect+` ORDER BY registered_at DESC, id`)
}

// Model returns one model by id.
func (db *DB) Model(ctx context.Context, id string) (Model, error) {
	return modelByID(ctx, db.sql, id)
}

// ActiveModel returns the active model, or ErrNotFound.
func (db *DB) ActiveModel(ctx context.Context) (Model, error) {
	return activeModel(ctx, db.sql)
}

// AddLabel records ground truth; a second label from the same source for the
// same instance is an error rather than a silent overwrite.
func (tx *Tx) AddLabel(ctx context.Context, l Label) (int64, error) {
	if l.CreatedAt.IsZero() {
		l.CreatedAt = tx.db.Now()
	}
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO labels(sop_instance_uid, fractured, source, actor, created_at)
		VALUES (?, ?, ?, ?, ?)`, l.SOPInstanceUID, l.Fractured, l.Source, l.Actor, fmtTime(l.CreatedAt))
	if err != nil {
		return 0, fmt.Errorf("store: add label: %w", err)
	}
	return res.LastInsertId()
}

// Labels lists all labels in id order.
func (db *DB) Labels(ctx context.Context) ([]Label, error) {
	return queryAll(ctx, db.sql, "list labels", func(scan func(...any) error) (Label, error) {
		var l Label
		var ts string
		if err := scan(&l.ID, &l.SOPInstanceUID, &l.Fractured, &l.Source, &l.Actor, &ts); err != nil {
			return l, err
		}
		l.CreatedAt = parseTime(ts)
		return l, nil
	}, `SELECT id, sop_instance_uid, fractured, source, actor, created_at FROM labels ORDER BY id`)
}

// Result is one row of the auditors' results view.
type Result struct {
	PredictionID      int64     `json:"prediction_id"`
	PredictedAt       time.Time `json:"predicted_at"`
	InstanceSHA256    string    `json:"instance_sha256"`
	StudyUID          string    `json:"study_uid"`
	SeriesUID         string    `json:"series_uid"`
	SOPInstanceUID    string    `json:"sop_instance_uid"`
	Modality          string    `json:"modality"`
	BodyPart          string    `json:"body_part"`
	Probability       float64   `json:"probability"`
	Threshold         float64   `json:"threshold"`
	Flagged           bool      `json:"flagged"`
	ModelID           string    `json:"model_id"`
	ModelArch         string    `json:"model_arch"`
	ModelSHA256       string    `json:"model_sha256"`
	PreprocessVersion string    `json:"preprocess_version"`
	LatencyMS         float64   `json:"latency_ms"`
}

// ResultFilter selects results. Zero values mean "no constraint".
type ResultFilter struct {
	FlaggedOnly  bool
	Since, Until time.Time
	ModelID      string
	Limit        int
}

// Results queries the results view in prediction order.
func (db *DB) Results(ctx context.Context, f ResultFilter) ([]Result, error) {
	var w filter
	if f.FlaggedOnly {
		w.add("flagged = 1")
	}
	w.window("predicted_at", f.Since, f.Until)
	if f.ModelID != "" {
		w.add("model_id = ?", f.ModelID)
	}
	return queryAll(ctx, db.sql, "query results", scanResult, w.query(resultSelect, "prediction_id", f.Limit), w.args...)
}

// Counts returns how many instances are in each state.
func (db *DB) Counts(ctx context.Context) (map[string]int64, error) {
	out := map[string]int64{}
	err := queryEach(ctx, db.sql, "count instances", func(scan func(...any) error) error {
		var s string
		var n int64
		if err := scan(&s, &n); err != nil {
			return err
		}
		out[s] = n
		return nil
	}, `SELECT state, count(*) FROM instances GROUP BY state`)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DoneInstanceBySOP returns the processed instance with this de-identified
// SOP Instance UID.
func (db *DB) DoneInstanceBySOP(ctx context.Context, sopUID string) (Instance, error) {
	return queryOne(db.sql.QueryRowContext(ctx, instanceSelect+` WHERE sop_instance_uid = ? AND state = 'done'`, sopUID), "read instance", scanInstance)
}

// ModelBySHA returns the registered model with these weights.
func (tx *Tx) ModelBySHA(ctx context.Context, sha string) (Model, error) {
	m, err := queryModel(ctx, tx.tx, `weights_sha256 = ?`, sha)
	if err != nil {
		return m, fmt.Errorf("store: model with weights %s: %w", sha, err)
	}
	return m, nil
}

// TrainingRun is one training run.
type TrainingRun struct {
	ID         string          `json:"id"`
	Arch       string          `json:"arch"`
	Params     json.RawMessage `json:"params"`
	Status     string          `json:"status"` // running, finished, failed
	Metrics    json.RawMessage `json:"metrics"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
}

// UpsertTrainingRun creates or updates a training run; its audit row should
// go through the same Tx.
func (tx *Tx) UpsertTrainingRun(ctx context.Context, r TrainingRun) error {
	params, metrics := string(r.Params), string(r.Metrics)
	if params == "" {
		params = "{}"
	}
	if metrics == "" {
		metrics = "{}"
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO training_runs (id, arch, params, status, metrics, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET params = excluded.params, status = excluded.status,
			metrics = excluded.metrics, finished_at = excluded.finished_at`,
		r.ID, r.Arch, params, r.Status, metrics, fmtTime(r.StartedAt), fmtTime(r.FinishedAt))
	if err != nil {
		return fmt.Errorf("store: training run %s: %w", r.ID, err)
	}
	return nil
}

// ReceivedSOPInstanceUIDs is the set of de-identified SOP Instance UIDs a
// label can apply to: those of processed instances and of the instances
// they were re-encoded from.
func (db *DB) ReceivedSOPInstanceUIDs(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := queryEach(ctx, db.sql, "received instances", func(scan func(...any) error) error {
		var a, b string
		if err := scan(&a, &b); err != nil {
			return err
		}
		out[a] = true
		if b != "" {
			out[b] = true
		}
		return nil
	}, `SELECT sop_instance_uid, source_sop_instance_uid FROM instances WHERE state = 'done'`)
	if err != nil {
		return nil, err
	}
	return out, nil
}
