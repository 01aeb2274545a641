package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fracd/fracd"
)

// ArchivedLabel is a de-identified archived instance with its current label
// (the newest label row for its SOP instance, or for the instance it was
// re-encoded from).
type ArchivedLabel struct {
	SHA256         string `json:"sha256"`
	SOPInstanceUID string `json:"sop_instance_uid"`
	StudyUID       string `json:"study_uid"`
	BodyPart       string `json:"body_part"`
	ArchivePath    string `json:"-"`
	Fractured      bool   `json:"fractured"`
}

// LabelledArchive lists the done instances that carry a label, in SOP
// Instance UID order.
func (db *DB) LabelledArchive(ctx context.Context) ([]ArchivedLabel, error) {
	rows, err := db.sql.QueryContext(ctx, `
SELECT i.sha256, i.sop_instance_uid, i.study_uid, i.body_part, i.archive_path,
       (SELECT l.fractured FROM labels l
         WHERE l.sop_instance_uid = i.sop_instance_uid
            OR (i.source_sop_instance_uid <> '' AND l.sop_instance_uid = i.source_sop_instance_uid)
         ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS fractured
FROM instances i
WHERE i.state = 'done' AND fractured IS NOT NULL
ORDER BY i.sop_instance_uid, i.sha256`)
	if err != nil {
		return nil, fmt.Errorf("store: labelled archive: %w", err)
	}
	defer rows.Close()
	var out []ArchivedLabel
	for rows.Next() {
		var a ArchivedLabel
		if err := rows.Scan(&a.SHA256, &a.SOPInstanceUID, &a.StudyUID, &a.BodyPart, &a.ArchivePath, &a.Fractured); err != nil {
			return nil, fmt.Errorf("store: labelled archive: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// PatientSplits returns the stored split of every assigned patient key.
func (db *DB) PatientSplits(ctx context.Context) (map[string]string, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT patient_key, split FROM patient_splits`)
	if err != nil {
		return nil, fmt.Errorf("store: patient splits: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, s string
		if err := rows.Scan(&k, &s); err != nil {
			return nil, fmt.Errorf("store: patient splits: %w", err)
		}
		out[k] = s
	}
	return out, rows.Err()
}

// AssignPatientSplits stores new assignments; a patient already assigned
// keeps its split (the insert is ignored), so concurrent runs cannot move
// a patient.
func (tx *Tx) AssignPatientSplits(ctx context.Context, splits map[string]string) error {
	now := fmtTime(tx.db.Now())
	for k, s := range splits {
		if _, err := tx.tx.ExecContext(ctx, `INSERT OR IGNORE INTO patient_splits(patient_key, split, assigned_at) VALUES (?, ?, ?)`, k, s, now); err != nil {
			return fmt.Errorf("store: assign patient split: %w", err)
		}
	}
	return nil
}

// TrainingDataset is the recorded data of one training run.
type TrainingDataset struct {
	RunID  string          `json:"run_id"`
	SHA256 string          `json:"sha256"`
	Counts json.RawMessage `json:"counts"`
	Items  json.RawMessage `json:"items"`
}

// RecordTrainingDataset stores (or, for a resumed run, keeps) a run's data.
func (db *DB) RecordTrainingDataset(ctx context.Context, d TrainingDataset) error {
	return db.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `INSERT INTO training_datasets(run_id, sha256, counts, items, created_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(run_id) DO NOTHING`, d.RunID, d.SHA256, string(d.Counts), string(d.Items), fmtTime(tx.db.Now()))
		if err != nil {
			return fmt.Errorf("store: record training dataset %s: %w", d.RunID, err)
		}
		return nil
	})
}

// TrainingDatasetOf returns the recorded data of a run, or ErrNotFound.
func (db *DB) TrainingDatasetOf(ctx context.Context, runID string) (TrainingDataset, error) {
	var d TrainingDataset
	var counts, items string
	err := db.sql.QueryRowContext(ctx, `SELECT run_id, sha256, counts, items FROM training_datasets WHERE run_id = ?`, runID).Scan(&d.RunID, &d.SHA256, &counts, &items)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("store: training dataset %s: %w", runID, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("store: training dataset %s: %w", runID, err)
	}
	d.Counts, d.Items = json.RawMessage(counts), json.RawMessage(items)
	return d, nil
}

// PredictionBoxes returns the boxes stored with a prediction, best first.
func (db *DB) PredictionBoxes(ctx context.Context, predictionID int64) ([]fracd.Box, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT x0, y0, x1, y1, score FROM prediction_boxes WHERE prediction_id = ? ORDER BY rank`, predictionID)
	if err != nil {
		return nil, fmt.Errorf("store: prediction boxes: %w", err)
	}
	defer rows.Close()
	var out []fracd.Box
	for rows.Next() {
		var b fracd.Box
		if err := rows.Scan(&b.X0, &b.Y0, &b.X1, &b.Y1, &b.Score); err != nil {
			return nil, fmt.Errorf("store: prediction boxes: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
