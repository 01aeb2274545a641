package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(c byte) []byte { return bytes.Repeat([]byte{c}, MinAuditKeyLen) }

// appendN appends n test rows.
func appendN(t *testing.T, db *DB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := db.AppendAudit(context.Background(), "test", "test.append", "s", map[string]int{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyedChainDetectsForgery: with the chain keyed, a row forged or
// rewritten by someone without the key breaks verification, even when its
// hash is correctly recomputed the unkeyed way.
func TestKeyedChainDetectsForgery(t *testing.T) {
	ctx := context.Background()
	head := func(db *DB) (int64, string, string) {
		var id int64
		var ts, hash string
		db.sql.QueryRow(`SELECT id, ts, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&id, &ts, &hash)
		return id, ts, hash
	}
	forge := func(keyed bool, hash func(prev string, id int64, ts string) string) func(*testing.T, *DB) int64 {
		return func(t *testing.T, db *DB) int64 {
			id, ts, prev := head(db)
			id++
			if _, err := db.sql.Exec(`INSERT INTO audit(id, ts, actor, action, subject, detail, prev_hash, hash, keyed) VALUES (?, ?, 'fracd', 'label.added', 'x', '{}', ?, ?, ?)`,
				id, ts, prev, hash(prev, id, ts), keyed); err != nil {
				t.Fatal(err)
			}
			return id
		}
	}
	plain := func(prev string, id int64, ts string) string {
		return entryHash(prev, id, ts, "fracd", "label.added", "x", []byte("{}"))
	}
	cases := []struct {
		name   string
		tamper func(*testing.T, *DB) int64 // returns the row verify must name
		reason string
	}{
		{"forged appended row with a recomputed plain hash", forge(false, plain), "not keyed"},
		{"forged row marked keyed with a plain hash", forge(true, plain), "keyed hash does not match"},
		{"forged row keyed with another key", forge(true, func(prev string, id int64, ts string) string {
			return keyedHash(testKey('m'), prev, id, ts, "fracd", "label.added", "x", []byte("{}"))
		}), "keyed hash does not match"},
		{"keyed row edited", func(t *testing.T, db *DB) int64 {
			if _, err := db.sql.Exec(`DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 6`); err != nil {
				t.Fatal(err)
			}
			return 6
		}, "keyed hash does not match"},
		{"whole chain rewritten unkeyed", func(t *testing.T, db *DB) int64 {
			// Recompute every row as plain SHA-256, as a forger without the
			// key must.
			rows, _ := db.ListAudit(ctx, AuditFilter{})
			db.sql.Exec(`DROP TRIGGER audit_no_update`)
			prev := GenesisHash
			for _, e := range rows {
				h := entryHash(prev, e.ID, e.TS.UTC().Format(TimeFormat), e.Actor, e.Action, e.Subject, e.Detail)
				if _, err := db.sql.Exec(`UPDATE audit SET prev_hash = ?, hash = ?, keyed = 0 WHERE id = ?`, prev, h, e.ID); err != nil {
					t.Fatal(err)
				}
				prev = h
			}
			return rows[len(rows)-1].ID
		}, "not keyed although"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openTemp(t)
			appendN(t, db, 3) // written before the key existed
			if err := db.UseAuditKey(testKey('k')); err != nil {
				t.Fatal(err)
			}
			appendN(t, db, 3)
			if res, err := db.VerifyAudit(ctx); err != nil || res.Keyed != 4 || res.FirstKeyedID != 4 {
				t.Fatalf("verify before tampering: %+v, %v", res, err)
			}
			want := tc.tamper(t, db)
			_, err := db.VerifyAudit(ctx)
			var ce *ChainError
			if !errors.As(err, &ce) || ce.ID != want || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("verify after tampering: %v; want a ChainError at row %d saying %q", err, want, tc.reason)
			}
		})
	}
}

// TestKeyedChainAfterUnkeyedRows: an existing unkeyed chain stays
// verifiable; the rows written once a key exists are keyed, starting with
// an audit.keyed marker; without the key those cannot be checked, and no
// unkeyed row can be appended after them.
func TestKeyedChainAfterUnkeyedRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fracd.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, db, 2)
	if res, err := db.VerifyAudit(ctx); err != nil || res.Keyed != 0 {
		t.Fatalf("unkeyed chain: %+v, %v", res, err)
	}
	key := testKey('k')
	if err := db.UseAuditKey(key); err != nil {
		t.Fatal(err)
	}
	appendN(t, db, 2)
	db.Close()

	// A second writer with the key adds no second marker, and opening
	// with the key writes nothing by itself.
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.UseAuditKey(key); err != nil {
		t.Fatal(err)
	}
	res, err := db.VerifyAudit(ctx)
	if err != nil || res.Rows != 5 || res.Keyed != 3 || res.FirstKeyedID != 3 || res.KeyID != AuditKeyID(key) {
		t.Fatalf("verify = %+v, %v; want 5 rows, 3..5 keyed", res, err)
	}
	es, _ := db.ListAudit(ctx, AuditFilter{Action: ActionAuditKeyed})
	if len(es) != 1 || es[0].ID != 3 || !es[0].Keyed || !strings.Contains(string(es[0].Detail), AuditKeyID(key)) {
		t.Fatalf("audit.keyed rows %+v", es)
	}

	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.VerifyAudit(ctx); !errors.Is(err, ErrAuditKeyNeeded) {
		t.Fatalf("verify without the key: %v; want ErrAuditKeyNeeded", err)
	}
	if err := ro.UseAuditKey(testKey('w')); err != nil {
		t.Fatal(err)
	}
	var ce *ChainError
	if _, err := ro.VerifyAudit(ctx); !errors.As(err, &ce) || ce.ID != 3 || !strings.Contains(ce.Reason, "not the one the chain was keyed with") {
		t.Fatalf("verify with another key: %v; want a ChainError at the marker naming the key", err)
	}

	plain, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.AppendAudit(ctx, "test", "test.append", "s", nil); !errors.Is(err, ErrAuditKeyRequired) {
		t.Fatalf("unkeyed append after keyed rows: %v; want ErrAuditKeyRequired", err)
	}
}

func TestAuditKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "audit.key")
	key, err := LoadOrCreateAuditKey(path)
	if err != nil || len(key) != MinAuditKeyLen {
		t.Fatalf("create: %d bytes, %v", len(key), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, err := LoadOrCreateAuditKey(path)
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("reload: %v; want the same key", err)
	}
	if _, err := LoadAuditKey(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing key: %v; want ErrNotExist", err)
	}
	os.Chmod(path, 0o640)
	if _, err := LoadAuditKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: %v; want refused", err)
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("abcd\n"), 0o600)
	if _, err := LoadAuditKey(short); err == nil {
		t.Fatal("a 2-byte key was accepted")
	}
}

// TestAuditKeyFileMadeOnFirstWrite: opening with a key file that does not
// exist yet creates nothing; the first audit row creates the key (0600) and
// is keyed.
func TestAuditKeyFileMadeOnFirstWrite(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	path := filepath.Join(t.TempDir(), "keys", "audit.key")
	if err := db.UseAuditKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("key file made before any write: %v", err)
	}
	e, err := db.AppendAudit(ctx, "test", "test.append", "s", nil)
	if err != nil || !e.Keyed || e.ID != 1 {
		t.Fatalf("first row %+v, %v; want row 1, keyed", e, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file after the first write: %v, %v; want 0600", fi, err)
	}
	key, _ := LoadAuditKey(path)
	if res, err := db.VerifyAudit(ctx); err != nil || res.Keyed != 1 || res.KeyID != AuditKeyID(key) {
		t.Fatalf("verify = %+v, %v", res, err)
	}
}
