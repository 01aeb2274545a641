package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Delivery states. pending -> sending -> delivered, or back to pending with a
// later next attempt, or failed once the attempts are spent.
const (
	DeliveryPending   = "pending"
	DeliverySending   = "sending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Audit actions of deliveries.
const (
	ActionDeliveryQueued    = "delivery.queued"
	ActionDeliveryDelivered = "delivery.delivered"
	ActionDeliveryFailed    = "delivery.failed"
)

// Delivery is one result object (kind "sr" or "sc") for one classified
// instance, addressed to the hospital's PACS. It holds no identifier: the
// object itself lives in spool/outbox.
type Delivery struct {
	SOPInstanceUID string    `json:"sop_instance_uid"` // de-identified, of the classified instance
	Kind           string    `json:"kind"`
	InstanceSHA256 string    `json:"instance_sha256"`
	Destination    string    `json:"destination"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error,omitempty"`
	QueuedAt       time.Time `json:"queued_at"`
	NextAttemptAt  time.Time `json:"next_attempt_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
}

const deliverySelect = `SELECT sop_instance_uid, kind, instance_sha256, destination, state, attempts, last_error,
	queued_at, next_attempt_at, updated_at, delivered_at FROM deliveries`

func scanDelivery(scan func(...any) error) (Delivery, error) {
	var d Delivery
	var q, next, upd, done string
	if err := scan(&d.SOPInstanceUID, &d.Kind, &d.InstanceSHA256, &d.Destination, &d.State, &d.Attempts, &d.LastError,
		&q, &next, &upd, &done); err != nil {
		return d, err
	}
	d.QueuedAt, d.NextAttemptAt, d.UpdatedAt, d.DeliveredAt = parseTime(q), parseTime(next), parseTime(upd), parseTime(done)
	return d, nil
}

// Delivery returns one delivery.
func (tx *Tx) Delivery(ctx context.Context, sopUID, kind string) (Delivery, error) {
	return queryOne(tx.tx.QueryRowContext(ctx, deliverySelect+` WHERE sop_instance_uid = ? AND kind = ?`, sopUID, kind), "read delivery", scanDelivery)
}

// Delivery returns one delivery.
func (db *DB) Delivery(ctx context.Context, sopUID, kind string) (Delivery, error) {
	return queryOne(db.sql.QueryRowContext(ctx, deliverySelect+` WHERE sop_instance_uid = ? AND kind = ?`, sopUID, kind), "read delivery", scanDelivery)
}

// InsertDelivery queues a delivery (state pending, due now unless
// NextAttemptAt is set).
func (tx *Tx) InsertDelivery(ctx context.Context, d Delivery) error {
	now := tx.db.Now()
	if d.State == "" {
		d.State = DeliveryPending
	}
	if d.NextAttemptAt.IsZero() {
		d.NextAttemptAt = now
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO deliveries(sop_instance_uid, kind, instance_sha256, destination, state,
		attempts, last_error, queued_at, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.SOPInstanceUID, d.Kind, d.InstanceSHA256, d.Destination, d.State, d.Attempts, d.LastError,
		fmtTime(now), fmtTime(d.NextAttemptAt), fmtTime(now))
	if err != nil {
		return fmt.Errorf("store: insert delivery %s/%s: %w", d.SOPInstanceUID, d.Kind, err)
	}
	return nil
}

// UpdateDelivery writes a delivery's state, attempts, error, times and (when
// set) destination.
func (tx *Tx) UpdateDelivery(ctx context.Context, d Delivery) error {
	res, err := tx.tx.ExecContext(ctx, `UPDATE deliveries SET state = ?, attempts = ?, last_error = ?, next_attempt_at = ?,
		updated_at = ?, delivered_at = ?, destination = coalesce(nullif(?, ''), destination) WHERE sop_instance_uid = ? AND kind = ?`,
		d.State, d.Attempts, d.LastError, fmtTime(d.NextAttemptAt), tx.db.now(), fmtTime(d.DeliveredAt), d.Destination, d.SOPInstanceUID, d.Kind)
	if err != nil {
		return fmt.Errorf("store: update delivery %s/%s: %w", d.SOPInstanceUID, d.Kind, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("store: update delivery %s/%s: %w", d.SOPInstanceUID, d.Kind, ErrNotFound)
	}
	return nil
}

// Deliveries lists deliveries in the given states (all when none), oldest
// next attempt first.
func (db *DB) Deliveries(ctx context.Context, states ...string) ([]Delivery, error) {
	q := deliverySelect
	var args []any
	if len(states) > 0 {
		q += ` WHERE state IN (?` + strings.Repeat(", ?", len(states)-1) + `)`
		for _, s := range states {
			args = append(args, s)
		}
	}
	q += ` ORDER BY next_attempt_at, sop_instance_uid, kind`
	return queryAll(ctx, db.sql, "list deliveries", scanDelivery, q, args...)
}

// AddStudyAccession records that a (de-identified) study was received under
// an accession number, by the number's pseudonym. Adding it twice is a no-op.
func (tx *Tx) AddStudyAccession(ctx context.Context, accessionKey, studyUID string) error {
	if accessionKey == "" || studyUID == "" {
		return errors.New("store: study accession needs a key and a study UID")
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT OR IGNORE INTO study_accessions(accession_key, study_uid) VALUES (?, ?)`, accessionKey, studyUID)
	if err != nil {
		return fmt.Errorf("store: add study accession: %w", err)
	}
	return nil
}

// StudiesByAccession returns the de-identified study UIDs received under an
// accession number's pseudonym.
func (db *DB) StudiesByAccession(ctx context.Context, accessionKey string) ([]string, error) {
	return queryAll(ctx, db.sql, "studies by accession", func(scan func(...any) error) (string, error) {
		var s string
		err := scan(&s)
		return s, err
	}, `SELECT study_uid FROM study_accessions WHERE accession_key = ? ORDER BY study_uid`, accessionKey)
}

const resultSelect = `SELECT prediction_id, predicted_at, instance_sha256, study_uid, series_uid, sop_instance_uid, modality,
	body_part, probability, threshold, flagged, model_id, model_arch, model_sha256, preprocess_version, latency_ms FROM results`

func scanResult(scan func(...any) error) (Result, error) {
	var r Result
	var ts string
	if err := scan(&r.PredictionID, &ts, &r.InstanceSHA256, &r.StudyUID, &r.SeriesUID, &r.SOPInstanceUID,
		&r.Modality, &r.BodyPart, &r.Probability, &r.Threshold, &r.Flagged, &r.ModelID, &r.ModelArch,
		&r.ModelSHA256, &r.PreprocessVersion, &r.LatencyMS); err != nil {
		return r, err
	}
	r.PredictedAt = parseTime(ts)
	return r, nil
}

// LatestResult is the newest prediction for one instance.
func (db *DB) LatestResult(ctx context.Context, instanceSHA string) (Result, error) {
	return queryOne(db.sql.QueryRowContext(ctx, resultSelect+` WHERE instance_sha256 = ? ORDER BY prediction_id DESC LIMIT 1`, instanceSHA), "read result", scanResult)
}

// ResultsForStudies returns the results of the given (de-identified)
// studies in prediction order.
func (db *DB) ResultsForStudies(ctx context.Context, studyUIDs []string) ([]Result, error) {
	if len(studyUIDs) == 0 {
		return nil, nil
	}
	args := make([]any, len(studyUIDs))
	for i, s := range studyUIDs {
		args[i] = s
	}
	return queryAll(ctx, db.sql, "results for studies", scanResult,
		resultSelect+` WHERE study_uid IN (?`+strings.Repeat(", ?", len(studyUIDs)-1)+`) ORDER BY prediction_id`, args...)
}
