package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "fracd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsFromEmptyAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "fracd.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil || v != ms[len(ms)-1].version {
		t.Fatalf("schema version = %d, %v; want %d", v, err, ms[len(ms)-1].version)
	}
	var mode string
	if err := db.sql.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := db.sql.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
	}
	if _, err := db.AppendAudit(ctx, "test", "test.action", "x", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Reopening applies nothing again and keeps the data.
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	var applied int
	if err := db.sql.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil || applied != len(ms) {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", applied, err, len(ms))
	}
	if res, err := db.VerifyAudit(ctx); err != nil || res.Rows != 1 {
		t.Fatalf("verify after reopen = %+v, %v", res, err)
	}

	// A read-only handle refuses writes.
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.AppendAudit(ctx, "test", "test.action", "x", nil); err == nil {
		t.Fatal("append through a read-only handle succeeded")
	}
	if _, err := ro.sql.Exec(`INSERT INTO labels(sop_instance_uid, fractured, actor, created_at) VALUES ('1', 1, 'a', 'b')`); err == nil {
		t.Fatal("raw insert through a read-only handle succeeded")
	}
}

func TestOpenReadOnlyRejectsMissingAndForeign(t *testing.T) {
	ctx := context.Background()
	if _, err := OpenReadOnly(ctx, filepath.Join(t.TempDir(), "absent.db")); err == nil {
		t.Fatal("opened a missing database")
	}
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := open(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	db.sql.Exec(`CREATE TABLE t(x)`)
	db.Close()
	if _, err := OpenReadOnly(ctx, path); err == nil || !strings.Contains(err.Error(), "not a fracd database") {
		t.Fatalf("err = %v; want 'not a fracd database'", err)
	}
}

func TestConcurrentAuditWriters(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	const perWriter = 1000
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if _, err := db.AppendAudit(ctx, fmt.Sprintf("writer%d", w), "test.append", fmt.Sprint(i), map[string]int{"i": i}); err != nil {
					errs <- fmt.Errorf("writer %d row %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	res, err := db.VerifyAudit(ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Rows != 2*perWriter || res.HeadID != 2*perWriter {
		t.Fatalf("verify = %+v; want %d rows", res, 2*perWriter)
	}
}

func TestAuditIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	db.AppendAudit(ctx, "test", "a", "s", nil)
	if _, err := db.sql.Exec(`UPDATE audit SET actor = 'mallory'`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("update: %v; want append-only error", err)
	}
	if _, err := db.sql.Exec(`DELETE FROM audit`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("delete: %v; want append-only error", err)
	}
}

// TestVerifyNamesTamperedRow tampers through raw SQL, as an attacker with file
// access would, and checks that verification names the first broken row.
func TestVerifyNamesTamperedRow(t *testing.T) {
	dropTriggers := `DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;`
	cases := []struct {
		name   string
		tamper string
		wantID int64
	}{
		{"edited detail", dropTriggers + `UPDATE audit SET detail = '{"i":99}' WHERE id = 5`, 5},
		{"edited actor", dropTriggers + `UPDATE audit SET actor = 'mallory' WHERE id = 3`, 3},
		{"edited timestamp", dropTriggers + `UPDATE audit SET ts = '2000-01-01T00:00:00.000000000Z' WHERE id = 8`, 8},
		{"deleted row", dropTriggers + `DELETE FROM audit WHERE id = 4`, 5},
		{"deleted first row", dropTriggers + `DELETE FROM audit WHERE id = 1`, 2},
		{
			// Make room at id 6 and insert a forged row whose prev_hash is
			// copied from the real row 5 and whose hash looks plausible.
			"forged row in the middle",
			dropTriggers + `UPDATE audit SET id = id + 100 WHERE id >= 6;
			UPDATE audit SET id = id - 99 WHERE id >= 106;
			INSERT INTO audit(id, ts, actor, action, subject, detail, prev_hash, hash)
			SELECT 6, ts, 'mallory', 'label.added', 'x', '{}', hash, printf('%064d', 1) FROM audit WHERE id = 5`,
			6,
		},
		{
			"forged row recomputed but chain not re-linked",
			dropTriggers + `UPDATE audit SET id = id + 100 WHERE id >= 6;
			UPDATE audit SET id = id - 99 WHERE id >= 106;`,
			7, // row 6 is filled in below with a correct hash; row 7 no longer links to it
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := openTemp(t)
			for i := 0; i < 10; i++ {
				if _, err := db.AppendAudit(ctx, "test", "test.append", fmt.Sprint(i), map[string]int{"i": i}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.VerifyAudit(ctx); err != nil {
				t.Fatalf("verify before tampering: %v", err)
			}
			if _, err := db.sql.Exec(tc.tamper); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			if tc.name == "forged row recomputed but chain not re-linked" {
				var prev string
				db.sql.QueryRow(`SELECT hash FROM audit WHERE id = 5`).Scan(&prev)
				ts := time.Now().UTC().Format(TimeFormat)
				h := entryHash(prev, 6, ts, "mallory", "label.added", "x", []byte("{}"))
				if _, err := db.sql.Exec(`INSERT INTO audit(id, ts, actor, action, subject, detail, prev_hash, hash) VALUES (6, ?, 'mallory', 'label.added', 'x', '{}', ?, ?)`, ts, prev, h); err != nil {
					t.Fatal(err)
				}
			}
			_, err := db.VerifyAudit(ctx)
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("verify after tampering: %v; want a ChainError", err)
			}
			if ce.ID != tc.wantID {
				t.Fatalf("verify names row %d (%s); want row %d", ce.ID, ce.Reason, tc.wantID)
			}
		})
	}
}

func TestCanonicalDetailHashIndependentOfSpelling(t *testing.T) {
	a, err := canonicalDetail([]byte(`{ "b": 1, "a": [1, 2.50, "x"] }`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := canonicalDetail([]byte(`{"a":[1,2.50,"x"],"b":1}`))
	if string(a) != string(b) || string(a) != `{"a":[1,2.50,"x"],"b":1}` {
		t.Fatalf("canonical forms differ: %s vs %s", a, b)
	}
	if _, err := canonicalDetail([]byte(`{"a":`)); err == nil {
		t.Fatal("accepted invalid JSON")
	}
}

func TestInstancesPredictionsResults(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db.Now = func() time.Time { return base }
	sha := func(c byte) string { return strings.Repeat(string(c), 64) }

	err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.RegisterModel(ctx, Model{ID: "m1", Arch: "resnet18", WeightsSHA256: sha('f'), Path: "m1.safetensors", PreprocessVersion: "pp1", Threshold: 0.5}); err != nil {
			return err
		}
		return tx.ActivateModel(ctx, "m1")
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []float64{0.2, 0.7, 0.9} {
		i, p := i, p
		db.Now = func() time.Time { return base.Add(time.Duration(i) * time.Hour) }
		err := db.Update(ctx, func(tx *Tx) error {
			s := sha(byte('a' + i))
			if err := tx.InsertInstance(ctx, Instance{SHA256: s, State: StateDone, SOPInstanceUID: fmt.Sprintf("2.25.%d", i), Modality: "DX"}); err != nil {
				return err
			}
			_, err := tx.InsertPrediction(ctx, Prediction{InstanceSHA256: s, ModelID: "m1", ModelSHA256: sha('f'), PreprocessVersion: "pp1", Probability: p, Threshold: 0.5, Flagged: p >= 0.5})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		f    ResultFilter
		want int
	}{
		{"all", ResultFilter{}, 3},
		{"flagged", ResultFilter{FlaggedOnly: true}, 2},
		{"since", ResultFilter{Since: base.Add(time.Hour)}, 2},
		{"until", ResultFilter{Until: base.Add(time.Hour)}, 1},
		{"model", ResultFilter{ModelID: "m1"}, 3},
		{"other model", ResultFilter{ModelID: "m2"}, 0},
		{"limit", ResultFilter{Limit: 1}, 1},
	}
	for _, tc := range cases {
		rs, err := db.Results(ctx, tc.f)
		if err != nil || len(rs) != tc.want {
			t.Errorf("%s: %d results, %v; want %d", tc.name, len(rs), err, tc.want)
		}
	}
	// The same SOP instance cannot be 'done' twice.
	err = db.Update(ctx, func(tx *Tx) error {
		return tx.InsertInstance(ctx, Instance{SHA256: sha('z'), State: StateDone, SOPInstanceUID: "2.25.1"})
	})
	if err == nil {
		t.Fatal("a second done instance with the same SOP Instance UID was accepted")
	}
	// A failed transaction leaves no audit row behind.
	err = db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.AppendAudit(ctx, "test", "x", "y", nil); err != nil {
			return err
		}
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("want error")
	}
	if rows, _ := db.ListAudit(ctx, AuditFilter{}); len(rows) != 0 {
		t.Fatalf("rolled-back audit row persisted: %d rows", len(rows))
	}
	if m, err := db.ActiveModel(ctx); err != nil || m.ID != "m1" {
		t.Fatalf("active model = %+v, %v", m, err)
	}
}
