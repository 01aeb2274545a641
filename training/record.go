package training

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fracd/fracd/store"
)

// training_runs.status values.
const (
	StatusRunning  = "running"
	StatusFinished = "finished"
	StatusFailed   = "failed" // errors and interruptions (the reason says which)
)

// RunRecord is the training_runs row after an event.
type RunRecord struct {
	ID         string
	Arch       string
	Params     Params
	Status     string
	Metrics    RunMetrics
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
}

// RunMetrics is training_runs.metrics.
type RunMetrics struct {
	Epochs    []EpochMetrics `json:"epochs"`
	BestEpoch int            `json:"best_epoch,omitempty"`
	Data      DataSummary    `json:"data"`
	Reason    string         `json:"reason,omitempty"` // why a run stopped early
}

// Recorder persists a run's state changes. Event is "started", "resumed",
// "epoch", "stopped" or "finished".
type Recorder interface {
	RecordRun(ctx context.Context, event string, r RunRecord) error
}

func record(ctx context.Context, cfg Config, st *state, event, status, reason string) error {
	if cfg.Recorder == nil {
		return nil
	}
	r := RunRecord{ID: st.RunID, Arch: st.Params.Arch, Params: st.Params, Status: status, StartedAt: st.StartedAt,
		Metrics: RunMetrics{Epochs: st.History, BestEpoch: st.BestEpoch, Data: st.Data, Reason: reason}}
	if r.Metrics.Epochs == nil {
		r.Metrics.Epochs = []EpochMetrics{}
	}
	if status != StatusRunning {
		r.FinishedAt = cfg.Now().UTC()
	}
	if err := cfg.Recorder.RecordRun(ctx, event, r); err != nil {
		return fmt.Errorf("training: record run %s (%s): %w", r.ID, event, err)
	}
	return nil
}

// StoreRecorder writes runs into the training_runs table and the audit
// trail (action store.ActionTrainingRun, subject the run id), both in one
// transaction.
type StoreRecorder struct {
	DB    *store.DB
	Actor string
}

// RecordRun appends the audit row for event and upserts the run's row.
func (s *StoreRecorder) RecordRun(ctx context.Context, event string, r RunRecord) error {
	params, err := json.Marshal(r.Params)
	if err != nil {
		return err
	}
	metrics, err := json.Marshal(r.Metrics)
	if err != nil {
		return err
	}
	detail := map[string]any{"event": event, "status": r.Status, "arch": r.Arch}
	switch event {
	case "started", "resumed":
		detail["params"] = r.Params
		detail["data"] = r.Metrics.Data
		detail["epochs_done"] = len(r.Metrics.Epochs)
	case "epoch":
		if n := len(r.Metrics.Epochs); n > 0 {
			detail["epoch"] = r.Metrics.Epochs[n-1]
		}
	default:
		detail["epochs_done"] = len(r.Metrics.Epochs)
		detail["best_epoch"] = r.Metrics.BestEpoch
		if r.Metrics.BestEpoch > 0 {
			detail["best"] = r.Metrics.Epochs[r.Metrics.BestEpoch-1]
		}
		if r.Metrics.Reason != "" {
			detail["reason"] = r.Metrics.Reason
		}
	}
	return s.DB.Update(ctx, func(tx *store.Tx) error {
		if err := tx.UpsertTrainingRun(ctx, store.TrainingRun{ID: r.ID, Arch: r.Arch, Params: params, Status: r.Status,
			Metrics: metrics, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, s.Actor, store.ActionTrainingRun, r.ID, detail)
		return err
	})
}
