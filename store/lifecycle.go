package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Model states (models.state).
const (
	ModelCandidate = "candidate" // registered, not in use
	ModelActive    = "active"    // the one the daemon uses; at most one
	ModelRetired   = "retired"   // out of service for good
)

// Audit actions of the model lifecycle besides ActionModelPromoted.
const (
	ActionModelRetired    = "model.retired"
	ActionModelRolledBack = "model.rolled_back"
)

// Lifecycle errors, to be tested with errors.Is.
var (
	ErrModelRetired  = errors.New("store: model is retired")
	ErrModelIsActive = errors.New("store: model is the active one")
	ErrNoRollback    = errors.New("store: nothing to roll back to")
)

// Activation is one change of the active model (model_activations).
type Activation struct {
	ID         int64     `json:"id"`
	ModelID    string    `json:"model_id"`
	PreviousID string    `json:"previous_id,omitempty"` // the model it replaced, "" if none
	Kind       string    `json:"kind"`                  // promote or rollback
	Undoes     int64     `json:"undoes,omitempty"`      // for a rollback: the activation undone
	CreatedAt  time.Time `json:"created_at"`
}

// queryModel returns the first model matching where, or ErrNotFound.
func queryModel(ctx context.Context, q querier, where string, args ...any) (Model, error) {
	ms, err := queryAll(ctx, q, "read model", scanModel, modelSelect+` WHERE `+where, args...)
	if err != nil {
		return Model{}, err
	}
	if len(ms) == 0 {
		return Model{}, ErrNotFound
	}
	return ms[0], nil
}

func modelByID(ctx context.Context, q querier, id string) (Model, error) {
	m, err := queryModel(ctx, q, `id = ?`, id)
	if err != nil {
		return m, fmt.Errorf("store: model %s: %w", id, err)
	}
	return m, nil
}

func activeModel(ctx context.Context, q querier) (Model, error) {
	m, err := queryModel(ctx, q, `active = 1`)
	if err != nil {
		return m, fmt.Errorf("store: active model: %w", err)
	}
	return m, nil
}

// Model returns one model by id inside the transaction.
func (tx *Tx) Model(ctx context.Context, id string) (Model, error) {
	return modelByID(ctx, tx.tx, id)
}

// ActiveModel returns the active model inside the transaction, or
// ErrNotFound.
func (tx *Tx) ActiveModel(ctx context.Context) (Model, error) {
	return activeModel(ctx, tx.tx)
}

// PromoteModel makes id the active model: the model it replaces becomes a
// candidate (nothing is retired by a promotion), and the activation is
// recorded. The caller writes the audit row in the same transaction. A
// retired or unknown model is refused; promoting the active model again
// changes nothing and returns a zero Activation.
func (tx *Tx) PromoteModel(ctx context.Context, id string) (Activation, error) {
	m, err := tx.Model(ctx, id)
	if err != nil {
		return Activation{}, err
	}
	switch m.State {
	case ModelRetired:
		return Activation{}, fmt.Errorf("store: promote %s: %w", id, ErrModelRetired)
	case ModelActive:
		return Activation{}, nil
	}
	prev, err := tx.ActiveModel(ctx)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Activation{}, err
	}
	return tx.switchActive(ctx, id, prev.ID, "promote", 0)
}

// switchActive demotes the active model to candidate, activates id and
// records the activation.
func (tx *Tx) switchActive(ctx context.Context, id, prev, kind string, undoes int64) (Activation, error) {
	if _, err := tx.tx.ExecContext(ctx, `UPDATE models SET active = 0, state = 'candidate' WHERE active = 1 AND id <> ?`, id); err != nil {
		return Activation{}, fmt.Errorf("store: activate model %s: %w", id, err)
	}
	res, err := tx.tx.ExecContext(ctx, `UPDATE models SET active = 1, state = 'active' WHERE id = ? AND state <> 'retired'`, id)
	if err != nil {
		return Activation{}, fmt.Errorf("store: activate model %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Activation{}, fmt.Errorf("store: activate model %s: %w", id, ErrNotFound)
	}
	a := Activation{ModelID: id, PreviousID: prev, Kind: kind, Undoes: undoes, CreatedAt: tx.db.Now().UTC()}
	var und any
	if undoes != 0 {
		und = undoes
	}
	res, err = tx.tx.ExecContext(ctx, `INSERT INTO model_activations(model_id, previous_id, kind, undoes, created_at) VALUES (?, ?, ?, ?, ?)`,
		id, nullIfEmpty(prev), kind, und, fmtTime(a.CreatedAt))
	if err != nil {
		return Activation{}, fmt.Errorf("store: record activation of %s: %w", id, err)
	}
	if a.ID, err = res.LastInsertId(); err != nil {
		return Activation{}, fmt.Errorf("store: record activation of %s: %w", id, err)
	}
	return a, nil
}

// RetireModel takes a candidate out of service for good. The active model
// is refused (ErrModelIsActive: promote another first), as is one already
// retired (ErrModelRetired).
func (tx *Tx) RetireModel(ctx context.Context, id string) (Model, error) {
	m, err := tx.Model(ctx, id)
	if err != nil {
		return m, err
	}
	switch m.State {
	case ModelActive:
		return m, fmt.Errorf("store: retire %s: %w", id, ErrModelIsActive)
	case ModelRetired:
		return m, fmt.Errorf("store: retire %s: %w", id, ErrModelRetired)
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE models SET state = 'retired' WHERE id = ?`, id); err != nil {
		return m, fmt.Errorf("store: retire %s: %w", id, err)
	}
	return m, nil
}

// RollbackPlan is what RollbackModel would do: undo activation Undo, which
// made From active in place of To.
type RollbackPlan struct {
	Undo Activation `json:"undo"`
	From string     `json:"from"`
	To   string     `json:"to"`
}

// PlanRollback finds the latest promotion that no rollback has undone: its
// previous model is the one to re-activate. Rollbacks thus walk back one
// promotion at a time, like a stack. ErrNoRollback when there is none, the
// history does not end at the active model, or the previous one is gone.
func (tx *Tx) PlanRollback(ctx context.Context) (RollbackPlan, error) {
	active, err := tx.ActiveModel(ctx)
	if errors.Is(err, ErrNotFound) {
		return RollbackPlan{}, fmt.Errorf("store: no active model: %w", ErrNoRollback)
	}
	if err != nil {
		return RollbackPlan{}, err
	}
	var a Activation
	var prev sql.NullString
	var ts string
	err = tx.tx.QueryRowContext(ctx, `SELECT id, model_id, previous_id, kind, created_at FROM model_activations p
		WHERE kind = 'promote' AND NOT EXISTS (SELECT 1 FROM model_activations r WHERE r.undoes = p.id)
		ORDER BY id DESC LIMIT 1`).Scan(&a.ID, &a.ModelID, &prev, &a.Kind, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return RollbackPlan{}, fmt.Errorf("store: no promotion of %s is recorded: %w", active.ID, ErrNoRollback)
	}
	if err != nil {
		return RollbackPlan{}, fmt.Errorf("store: read activations: %w", err)
	}
	a.PreviousID, a.CreatedAt = prev.String, parseTime(ts)
	switch {
	case a.ModelID != active.ID:
		return RollbackPlan{}, fmt.Errorf("store: the latest recorded promotion (#%d) is of %s, but %s is active: %w", a.ID, a.ModelID, active.ID, ErrNoRollback)
	case a.PreviousID == "":
		return RollbackPlan{}, fmt.Errorf("store: %s was activated with no model before it (#%d): %w", active.ID, a.ID, ErrNoRollback)
	}
	to, err := tx.Model(ctx, a.PreviousID)
	if err != nil {
		return RollbackPlan{}, err
	}
	if to.State == ModelRetired {
		return RollbackPlan{}, fmt.Errorf("store: %s, active before %s, is retired: %w", to.ID, active.ID, ErrNoRollback)
	}
	return RollbackPlan{Undo: a, From: active.ID, To: to.ID}, nil
}

// RollbackModel re-activates the model that was active before the latest
// promotion not yet undone (PlanRollback); the model it replaces becomes a
// candidate, not retired. The caller writes the audit row in the same
// transaction.
func (tx *Tx) RollbackModel(ctx context.Context) (RollbackPlan, Activation, error) {
	p, err := tx.PlanRollback(ctx)
	if err != nil {
		return p, Activation{}, err
	}
	a, err := tx.switchActive(ctx, p.To, p.From, "rollback", p.Undo.ID)
	return p, a, err
}

// Activations lists the changes of the active model that involve modelID
// (as the new or the replaced one; all when ""), oldest first.
func (db *DB) Activations(ctx context.Context, modelID string) ([]Activation, error) {
	q := `SELECT id, model_id, coalesce(previous_id, ''), kind, coalesce(undoes, 0), created_at FROM model_activations`
	var args []any
	if modelID != "" {
		q += ` WHERE model_id = ? OR previous_id = ?`
		args = append(args, modelID, modelID)
	}
	return queryAll(ctx, db.sql, "list activations", func(scan func(...any) error) (Activation, error) {
		var a Activation
		var ts string
		if err := scan(&a.ID, &a.ModelID, &a.PreviousID, &a.Kind, &a.Undoes, &ts); err != nil {
			return a, err
		}
		a.CreatedAt = parseTime(ts)
		return a, nil
	}, q+` ORDER BY id`, args...)
}

// Evaluations lists modelID's evaluations inside the transaction, newest
// first.
func (tx *Tx) Evaluations(ctx context.Context, modelID string) ([]Evaluation, error) {
	return queryAll(ctx, tx.tx, "list evaluations of "+modelID, scanEvaluation,
		evaluationSelect+` WHERE model_id = ? ORDER BY created_at DESC, id DESC`, modelID)
}

// ModelAudit returns the audit rows about a model, in id order: those whose
// subject it is, and lifecycle rows that name it as the model replaced.
func (db *DB) ModelAudit(ctx context.Context, id string) ([]AuditEntry, error) {
	return queryAll(ctx, db.sql, "audit of model "+id, scanAuditEntry,
		auditSelect+` WHERE subject = ? OR (substr(action, 1, 6) = 'model.' AND json_extract(detail, '$.previous') = ?) ORDER BY id`, id, id)
}
