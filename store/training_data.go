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
	return queryAll(ctx, db.sql, "labelled archive", func(scan func(...any) error) (ArchivedLabel, error) {
		var a ArchivedLabel
		err := scan(&a.SHA256, &a.SOPInstanceUID, &a.StudyUID, &a.BodyPart, &a.ArchivePath, &a.Fractured)
		return a, err
	}, `
SELECT i.sha256, i.sop_instance_uid, i.study_uid, i.body_part, i.archive_path,
       (SELECT l.fractured FROM labels l
         WHERE l.sop_instance_uid = i.sop_instance_uid
            OR (i.source_sop_instance_uid <> '' AND l.sop_instance_uid = i.source_sop_instance_uid)
         ORDER BY l.created_at DESC, l.id DESC LIMIT 1) AS fractured
FROM instances i
WHERE i.state = 'done' AND fractured IS NOT NULL
ORDER BY i.sop_instance_uid, i.sha256`)
}

// PatientSplits returns the stored split of every assigned patient key.
func (db *DB) PatientSplits(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := queryEach(ctx, db.sql, "patient splits", func(scan func(...any) error) error {
		var k, s string
		if err := scan(&k, &s); err != nil {
			return err
		}
		out[k] = s
		return nil
	}, `SELECT patient_key, split FROM patient_splits`)
	if err != nil {
		return nil, err
	}
	return out, nil
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
	return queryAll(ctx, db.sql, "prediction boxes", func(scan func(...any) error) (fracd.Box, error) {
		var b fracd.Box
		err := scan(&b.X0, &b.Y0, &b.X1, &b.Y1, &b.Score)
		return b, err
	}, `SELECT x0, y0, x1, y1, score FROM prediction_boxes WHERE prediction_id = ? ORDER BY rank`, predictionID)
}
