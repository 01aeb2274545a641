package store

import (
	"bytes"
	"context"
	"crypto/hmac"
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
	// ActionAuditKeyed marks where the chain becomes keyed: the first row
	// written with an audit key after unkeyed rows.
	ActionAuditKeyed = "audit.keyed"
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
	// Keyed rows are chained with HMAC-SHA256 under the audit key instead
	// of plain SHA-256.
	Keyed bool `json:"keyed"`
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

// auditRow is the canonical encoding of a row's contents that the chain
// hashes: a JSON array, so that no field can bleed into another.
func auditRow(id int64, ts, actor, action, subject string, canonical []byte) []byte {
	row, _ := json.Marshal([]any{id, ts, actor, action, subject, json.RawMessage(canonical)})
	return row
}

// entryHash is sha256(prev_hash || "\n" || canonical row) in hex: the hash of
// an unkeyed row. Anyone can recompute it, so it proves only that nothing
// was changed by someone who did not also recompute the rows after it.
func entryHash(prevHash string, id int64, ts, actor, action, subject string, canonical []byte) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{'\n'})
	h.Write(auditRow(id, ts, actor, action, subject, canonical))
	return hex.EncodeToString(h.Sum(nil))
}

// keyedHash is HMAC-SHA256(key, prev_hash || "\n" || canonical row) in hex:
// the hash of a keyed row, which nobody without the key can recompute.
func keyedHash(key []byte, prevHash string, id int64, ts, actor, action, subject string, canonical []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prevHash))
	m.Write([]byte{'\n'})
	m.Write(auditRow(id, ts, actor, action, subject, canonical))
	return hex.EncodeToString(m.Sum(nil))
}

// ErrAuditKeyRequired refuses an unkeyed row after keyed ones: the chain
// would no longer verify.
var ErrAuditKeyRequired = errors.New("store: the audit chain is keyed; open the database with the audit key (audit.key_file) to write to it")

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
	lastID, prev, headKeyed, err := tx.auditHead(ctx)
	if err != nil {
		return AuditEntry{}, err
	}
	key, err := tx.db.writeKey()
	if err != nil {
		return AuditEntry{}, err
	}
	if key == nil && headKeyed {
		return AuditEntry{}, ErrAuditKeyRequired
	}
	if key != nil && !headKeyed && lastID > 0 && action != ActionAuditKeyed {
		// Unkeyed rows before: mark where the keyed chain starts, and with
		// which key, in the same transaction.
		if _, err := tx.AppendAudit(ctx, actor, ActionAuditKeyed, "audit", map[string]any{"key_id": AuditKeyID(key), "unkeyed_rows": lastID}); err != nil {
			return AuditEntry{}, err
		}
		if lastID, prev, headKeyed, err = tx.auditHead(ctx); err != nil {
			return AuditEntry{}, err
		}
	}
	ts := tx.db.now()
	id := lastID + 1
	hash := entryHash(prev, id, ts, actor, action, subject, canonical)
	if key != nil {
		hash = keyedHash(key, prev, id, ts, actor, action, subject, canonical)
	}
	if _, err := tx.tx.ExecContext(ctx,
		`INSERT INTO audit(id, ts, actor, action, subject, detail, prev_hash, hash, keyed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, ts, actor, action, subject, string(canonical), prev, hash, key != nil); err != nil {
		return AuditEntry{}, fmt.Errorf("store: append audit row: %w", err)
	}
	t, _ := time.Parse(TimeFormat, ts)
	return AuditEntry{ID: id, TS: t, Actor: actor, Action: action, Subject: subject, Detail: canonical, PrevHash: prev, Hash: hash, Keyed: key != nil}, nil
}

// auditHead is the last row's id, hash and keyed flag (0, GenesisHash and
// false for an empty chain).
func (tx *Tx) auditHead(ctx context.Context) (int64, string, bool, error) {
	var id int64
	var hash string
	var keyed bool
	err := tx.tx.QueryRowContext(ctx, `SELECT id, hash, keyed FROM audit ORDER BY id DESC LIMIT 1`).Scan(&id, &hash, &keyed)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, GenesisHash, false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("store: read audit head: %w", err)
	}
	return id, hash, keyed, nil
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
	// Keyed rows are FirstKeyedID..HeadID (none when Keyed is 0); the rows
	// before them were written before the chain had a key.
	Keyed        int64
	FirstKeyedID int64
	// KeyID names the key the keyed rows were checked with ("" without one).
	KeyID string
}

// ErrAuditKeyNeeded is returned (after the whole walk) when the chain has
// keyed rows but no key was given: their links were checked, their hashes
// could not be.
var ErrAuditKeyNeeded = errors.New("store: the audit chain is keyed; verifying it needs the audit key (audit.key_file)")

// VerifyAudit walks the whole chain in id order. It returns a *ChainError
// naming the first row that breaks it: an edited row (hash mismatch), a
// deleted row (gap in ids or prev_hash mismatch), or a forged insertion.
//
// With an audit key (UseAuditKey, UseAuditKeyFile), keyed rows are checked with HMAC, so a
// row forged or rewritten without the key breaks the chain even when its
// hash was recomputed; an unkeyed row after a keyed one, or a chain whose
// head is unkeyed although a key is given, is such a forgery. Without a key,
// keyed rows are checked for their links only and ErrAuditKeyNeeded says so.
//
// Removing rows from the tail cannot be seen from inside the database; compare
// HeadID/HeadHash with a copy kept elsewhere (fracd audit verify --anchor).
func (db *DB) VerifyAudit(ctx context.Context) (VerifyResult, error) {
	rows, err := db.sql.QueryContext(ctx, auditSelect+` ORDER BY id`)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("store: read audit: %w", err)
	}
	defer rows.Close()
	key := db.readKey()
	res := VerifyResult{HeadHash: GenesisHash}
	if key != nil {
		res.KeyID = AuditKeyID(key)
	}
	prev := GenesisHash
	var lastID int64
	headKeyed := false
	for rows.Next() {
		var id int64
		var ts, actor, action, subject, detail, prevHash, hash string
		var keyed bool
		if err := rows.Scan(&id, &ts, &actor, &action, &subject, &detail, &prevHash, &hash, &keyed); err != nil {
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
		switch {
		case !keyed && res.Keyed > 0:
			return res, &ChainError{ID: id, Reason: "row is not keyed but follows keyed rows: it was written or rewritten without the audit key"}
		case !keyed:
			if want := entryHash(prevHash, id, ts, actor, action, subject, canonical); want != hash {
				return res, &ChainError{ID: id, Reason: "hash does not match the row's contents"}
			}
		case key != nil:
			if want := keyedHash(key, prevHash, id, ts, actor, action, subject, canonical); !hmac.Equal([]byte(want), []byte(hash)) {
				reason := "keyed hash does not match the row's contents: the row was edited or forged without the audit key"
				if kid := markerKeyID(action, canonical); kid != "" && kid != res.KeyID {
					reason = fmt.Sprintf("the audit key given (key id %s) is not the one the chain was keyed with (key id %s), or the row was edited", res.KeyID, kid)
				}
				return res, &ChainError{ID: id, Reason: reason}
			}
		}
		if keyed {
			if res.Keyed == 0 {
				res.FirstKeyedID = id
			}
			res.Keyed++
		}
		prev, lastID, headKeyed = hash, id, keyed
		res.Rows++
		res.HeadID, res.HeadHash = id, hash
	}
	if err := rows.Err(); err != nil {
		return res, fmt.Errorf("store: read audit: %w", err)
	}
	if key != nil && res.Rows > 0 && !headKeyed {
		// fracd makes the key file with the first keyed row
		// (UseAuditKeyFile), so an unkeyed head next to a key means the
		// keyed rows were replaced by recomputed plain ones.
		return res, &ChainError{ID: res.HeadID, Reason: "the chain is not keyed although an audit key exists: its keyed rows were rewritten without the key (or no fracd writer has opened the database since the key was made)"}
	}
	if key == nil && res.Keyed > 0 {
		return res, fmt.Errorf("rows %d..%d: %w", res.FirstKeyedID, res.HeadID, ErrAuditKeyNeeded)
	}
	return res, nil
}

// markerKeyID is the key id an audit.keyed row records, "" for other rows.
func markerKeyID(action string, canonical []byte) string {
	if action != ActionAuditKeyed {
		return ""
	}
	var d struct {
		KeyID string `json:"key_id"`
	}
	json.Unmarshal(canonical, &d)
	return d.KeyID
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
	var w filter
	w.window("ts", f.Since, f.Until)
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			w.add("substr(action, 1, ?) = ?", len(f.Action), f.Action)
		} else {
			w.add("action = ?", f.Action)
		}
	}
	if f.Subject != "" {
		w.add("subject = ?", f.Subject)
	}
	return queryAll(ctx, db.sql, "list audit", scanAuditEntry, w.query(auditSelect, "id", f.Limit), w.args...)
}

const auditSelect = `SELECT id, ts, actor, action, subject, detail, prev_hash, hash, keyed FROM audit`

func scanAuditEntry(scan func(...any) error) (AuditEntry, error) {
	var e AuditEntry
	var ts, detail string
	if err := scan(&e.ID, &ts, &e.Actor, &e.Action, &e.Subject, &detail, &e.PrevHash, &e.Hash, &e.Keyed); err != nil {
		return e, err
	}
	e.TS, e.Detail = parseTime(ts), json.RawMessage(detail)
	return e, nil
}

// LatestAudit returns the newest audit row with this action, or
// ErrNotFound.
func (tx *Tx) LatestAudit(ctx context.Context, action string) (AuditEntry, error) {
	return queryOne(tx.tx.QueryRowContext(ctx, auditSelect+` WHERE action = ? ORDER BY id DESC LIMIT 1`, action),
		"latest "+action+" audit row", scanAuditEntry)
}
