package store

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ActionModelEvaluated is audited with every stored evaluation; its subject
// is the model id.
const ActionModelEvaluated = "model.evaluated"

// Evaluation is one measurement of a model on a labelled data set.
type Evaluation struct {
	ID      int64  `json:"id"`
	ModelID string `json:"model_id"`
	// Dataset describes the data in words (label file, split, counts). It
	// must name no patient: the caller builds it from file names, hashes
	// and counts only.
	Dataset    string          `json:"dataset"`
	DataSHA256 string          `json:"data_sha256"` // of the sorted key,label list
	N          int             `json:"n"`
	Metrics    json.RawMessage `json:"metrics"`
	CreatedAt  time.Time       `json:"created_at"`
}

func (e *Evaluation) check() error {
	if e.ModelID == "" {
		return errors.New("store: evaluation needs a model id")
	}
	if b, err := hex.DecodeString(e.DataSHA256); err != nil || len(b) != 32 {
		return errors.New("store: evaluation data hash must be a sha256 in hex")
	}
	if e.N <= 0 {
		return fmt.Errorf("store: evaluation of %d images", e.N)
	}
	if !json.Valid(e.Metrics) {
		return errors.New("store: evaluation metrics are not JSON")
	}
	return nil
}

// InsertEvaluation records an evaluation and, in the same transaction, its
// audit row (ActionModelEvaluated, subject the model id). It fills in ID
// and CreatedAt.
func (tx *Tx) InsertEvaluation(ctx context.Context, actor string, e *Evaluation) error {
	if err := e.check(); err != nil {
		return err
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = tx.db.Now()
	}
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO evaluations(model_id, dataset, data_sha256, n, metrics, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, e.ModelID, e.Dataset, e.DataSHA256, e.N, string(e.Metrics), fmtTime(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: insert evaluation of %s: %w", e.ModelID, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("store: insert evaluation of %s: %w", e.ModelID, err)
	}
	_, err = tx.AppendAudit(ctx, actor, ActionModelEvaluated, e.ModelID, map[string]any{
		"evaluation_id": e.ID, "dataset": e.Dataset, "data_sha256": e.DataSHA256, "n": e.N,
	})
	return err
}

// InsertEvaluation records an evaluation and its audit row in one
// transaction.
func (db *DB) InsertEvaluation(ctx context.Context, actor string, e *Evaluation) error {
	return db.Update(ctx, func(tx *Tx) error { return tx.InsertEvaluation(ctx, actor, e) })
}

const evaluationSelect = `SELECT id, model_id, dataset, data_sha256, n, metrics, created_at FROM evaluations`

// Evaluations lists the evaluations of modelID (all models when ""),
// newest first; limit <= 0 means all.
func (db *DB) Evaluations(ctx context.Context, modelID string, limit int) ([]Evaluation, error) {
	q, args := evaluationSelect, []any{}
	if modelID != "" {
		q += ` WHERE model_id = ?`
		args = append(args, modelID)
	}
	q += ` ORDER BY created_at DESC, id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return queryAll(ctx, db.sql, "list evaluations", scanEvaluation, q, args...)
}

// Evaluation returns one evaluation by id.
func (db *DB) Evaluation(ctx context.Context, id int64) (Evaluation, error) {
	return queryOne(db.sql.QueryRowContext(ctx, evaluationSelect+` WHERE id = ?`, id), "read evaluation", scanEvaluation)
}

func scanEvaluation(scan func(...any) error) (Evaluation, error) {
	var e Evaluation
	var metrics, ts string
	if err := scan(&e.ID, &e.ModelID, &e.Dataset, &e.DataSHA256, &e.N, &metrics, &ts); err != nil {
		return e, err
	}
	e.Metrics, e.CreatedAt = json.RawMessage(metrics), parseTime(ts)
	return e, nil
}

// LabelledPrediction is a stored prediction of one model next to a label
// of its instance (the labelled_results view): de-identified values only.
type LabelledPrediction struct {
	PredictionID   int64   `json:"prediction_id"`
	InstanceSHA256 string  `json:"instance_sha256"`
	SOPInstanceUID string  `json:"sop_instance_uid"`
	BodyPart       string  `json:"body_part"`
	Probability    float64 `json:"probability"`
	Fractured      bool    `json:"fractured"`
	LabelSource    string  `json:"label_source"`
}

// LabelledPredictions returns modelID's predictions that have a label, one
// row per (prediction, label): an instance labelled by two sources comes
// twice, so the caller decides what disagreeing labels mean.
func (db *DB) LabelledPredictions(ctx context.Context, modelID string) ([]LabelledPrediction, error) {
	return queryAll(ctx, db.sql, "labelled predictions of "+modelID, func(scan func(...any) error) (LabelledPrediction, error) {
		var p LabelledPrediction
		err := scan(&p.PredictionID, &p.InstanceSHA256, &p.SOPInstanceUID, &p.BodyPart, &p.Probability, &p.Fractured, &p.LabelSource)
		return p, err
	}, `SELECT prediction_id, instance_sha256, sop_instance_uid, body_part, probability,
		label, label_source FROM labelled_results WHERE model_id = ? ORDER BY prediction_id, label_source`, modelID)
}

// TrainingRunParams returns the params JSON of a training run (what the
// run was bound to: arch, seed, labels_sha256, ...), or ErrNotFound.
func (db *DB) TrainingRunParams(ctx context.Context, id string) (json.RawMessage, error) {
	var params string
	err := db.sql.QueryRowContext(ctx, `SELECT params FROM training_runs WHERE id = ?`, id).Scan(&params)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: training run %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: training run %s: %w", id, err)
	}
	return json.RawMessage(params), nil
}
