package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GenesisHash is the prev_hash of the first audit row.
var GenesisHash = strings.Repeat("0", 64)

// Audit actions written by fracd.
const (
	ActionClaimed        = "instance.claimed"
	ActionArchived       = "instance.archived"
	ActionPredicted      = "instance.predicted"
	ActionRejected       = "instance.rejected"
	ActionDuplicate      = "instance.duplicate"
	ActionLabelAdded     = "label.added"
	ActionModelAdded     = "model.registered"
	ActionModelPromoted  = "model.promoted"
	ActionModelActivated = "model.activated"
	ActionTrainingRun    = "training.run"
)

// AuditEntry is one row of the audit trail.
type AuditEntry struct {
	ID       int64           `json:"id"`
	TS       time.Time       `json:"ts"`
	Actor    string          `json:"actor"`
	Action   string          `json:"action"`
	Subject  string          `json:"subject"`
	Detail   json.RawMessage `json:"detail"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// canonicalDetail re-encodes JSON with sorted keys and no insignificant
// whitespace, so the hash does not depend on how the detail was spelled.
func canonicalDetail(detail []byte) ([]byte, error) {
	if len(bytes.TrimSpace(detail)) == 0 {
		return []byte("{}"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(detail))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("store: audit detail is not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("store: audit detail has trailing data")
	}
	return json.Marshal(v)
}

// entryHash is sha256(prev_hash || "\n" || canonical row) in hex. The row is
// encoded as a JSON array so that no field can bleed into another.
func entryHash(prevHash string, id int64, ts, actor, action, subject string, canonical []byte) string {
	row, _ := json.Marshal([]any{id, ts, actor, action, subject, json.RawMessage(canonical)})
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{'\n'})
	h.Write(row)
	return hex.EncodeToString(h.Sum(nil))
}

// AppendAudit appends one row to the chain inside the transaction. detail is
// any JSON-marshallable value (nil for none). It returns the new row.
func (tx *Tx) AppendAudit(ctx context.Context, actor, action, subject string, detail any) (AuditEntry, error) {
	var raw []byte
	switch d := detail.(type) {
	case nil:
		raw = []byte("{}")
	case json.RawMessage:
		raw = d
	case []byte:
		raw = d
	default:
		var err error
		if raw, err = json.Marshal(d); err != nil {
			return AuditEntry{}, fmt.Errorf("store: encode audit detail: %w", err)
		}
	}
	canonical, err := canonicalDetail(raw)
	if err != nil {
		return AuditEntry{}, err
	}
	if actor == "" || action == "" {
		return AuditEntry{}, errors.New("store: audit row needs an actor and an action")
	}
	var lastID int64
	prev := GenesisHash
	err = tx.tx.QueryRowContext(ctx, `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&lastID, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AuditEntry{}, fmt.Errorf("store: read audit head: %w", err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		prev = GenesisHash
	}
	ts := tx.db.now()
	id := lastID + 1
	hash := entryHash(prev, id, ts, actor, action, subject, canonical)
	if _, err := tx.tx.ExecContext(ctx,
		`INSERT INTO audit(id, ts, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		id, ts, actor, action, subject, string(canonical), prev, hash); err != nil {
		return AuditEntry{}, fmt.Errorf("store: append audit row: %w", err)
	}
	t, _ := time.Parse(TimeFormat, ts)
	return AuditEntry{ID: id, TS: t, Actor: actor, Action: action, Subject: subject, Detail: canonical, PrevHash: prev, Hash: hash}, nil
}

// AppendAudit appends one audit row in its own transaction.
func (db *DB) AppendAudit(ctx context.Context, actor, action, subject string, detail any) (AuditEntry, error) {
	var e AuditEntry
	err := db.Update(ctx, func(tx *Tx) error {
		var err error
		e, err = tx.AppendAudit(ctx, actor, action, subject, detail)
		return err
	})
	return e, err
}

// ChainError says where and why the audit chain is broken.
type ChainError struct {
	ID     int64 // the first row that does not verify
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at row %d: %s", e.ID, e.Reason)
}

// VerifyResult summarises a successful verification.
type VerifyResult struct {
	Rows     int64
	HeadID   int64
	HeadHash string
}

// VerifyAudit walks the whole chain in id order. It returns a *ChainError
// naming the first row that breaks it: an edited row (hash mismatch), a
// deleted row (gap in ids or prev_hash mismatch), or a forged insertion.
// Removing rows from the tail cannot be seen from inside the database; compare
// HeadID/HeadHash with a copy kept elsewhere (fracd audit verify --anchor).
func (db *DB) VerifyAudit(ctx context.Context) (VerifyResult, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT id, ts, actor, action, subject, detail, prev_hash, hash FROM audit ORDER BY id`)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("store: read audit: %w", err)
	}
	defer rows.Close()
	res := VerifyResult{HeadHash: GenesisHash}
	prev := GenesisHash
	var lastID int64
	for rows.Next() {
		var id int64
		var ts, actor, action, subject, detail, prevHash, hash string
		if err := rows.Scan(&id, &ts, &actor, &action, &subject, &detail, &prevHash, &hash); err != nil {
			return res, fmt.Errorf("store: read audit: %w", err)
		}
		if id != lastID+1 {
			return res, &ChainError{ID: id, Reason: fmt.Sprintf("expected row %d next: rows are missing or inserted", lastID+1)}
		}
		if prevHash != prev {
			return res, &ChainError{ID: id, Reason: "prev_hash does not match the previous row's hash"}
		}
		canonical, err := canonicalDetail([]byte(detail))
		if err != nil || string(canonical) != detail {
			return res, &ChainError{ID: id, Reason: "detail is not in canonical form"}
		}
		if want := entryHash(prevHash, id, ts, actor, action, subject, canonical); want != hash {
			return res, &ChainError{ID: id, Reason: "hash does not match the row's contents"}
		}
		prev, lastID = hash, id
		res.Rows++
		res.HeadID, res.HeadHash = id, hash
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("store: read audit: %w", err)
	}
	return res, nil
}

// AuditFilter selects audit rows. Zero values mean "no constraint".
type AuditFilter struct {
	Since, Until time.Time
	Action       string // exact, or a prefix ending in '.' ("instance.")
	Subject      string
	Limit        int
}

// ListAudit returns audit rows in id order.
func (db *DB) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var where []string
	var args []any
	if !f.Since.IsZero() {
		where = append(where, "ts >= ?")
		args = append(args, f.Since.UTC().Format(TimeFormat))
	}
	if !f.Until.IsZero() {
		where = append(where, "ts < ?")
		args = append(args, f.Until.UTC().Format(TimeFormat))
	}
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			where = append(where, "substr(action, 1, ?) = ?")
			args = append(args, len(f.Action), f.Action)
		} else {
			where = append(where, "action = ?")
			args = append(args, f.Action)
		}
	}
	if f.Subject != "" {
		where = append(where, "subject = ?")
		args = append(args, f.Subject)
	}
	q := `SELECT id, ts, actor, action, subject, detail, prev_hash, hash FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var ts, detail string
		if err := rows.Scan(&e.ID, &ts, &e.Actor, &e.Action, &e.Subject, &detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, fmt.Errorf("store: list audit: %w", err)
		}
		e.TS, _ = time.Parse(TimeFormat, ts)
		e.Detail = json.RawMessage(detail)
		out = append(out, e)
	}
	return out, rows.Err()
}
