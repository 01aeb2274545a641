package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/fracd/fracd/store"
)

// dropResultTriggers is what someone with write access to the database file
// does first: the protecting triggers are schema, and schema can be dropped.
// IF EXISTS so the same tampering runs on a schema without them.
const dropResultTriggers = `DROP TRIGGER IF EXISTS predictions_no_update; DROP TRIGGER IF EXISTS predictions_no_delete;
	DROP TRIGGER IF EXISTS prediction_boxes_no_update; DROP TRIGGER IF EXISTS prediction_boxes_no_delete;
	DROP TRIGGER IF EXISTS labels_no_update; DROP TRIGGER IF EXISTS labels_no_delete;
	DROP TRIGGER IF EXISTS instances_no_update; DROP TRIGGER IF EXISTS instances_no_delete;
	DROP TRIGGER IF EXISTS models_immutable; DROP TRIGGER IF EXISTS models_no_delete; DROP TRIGGER IF EXISTS models_state_transition;`

// plainAuditHash is the unkeyed chain hash, computed as a forger would from
// the published scheme: sha256(prev_hash "\n" [id, ts, actor, action,
// subject, detail]).
func plainAuditHash(prev string, id int64, ts, actor, action, subject, detail string) string {
	row, _ := json.Marshal([]any{id, ts, actor, action, subject, json.RawMessage(detail)})
	h := sha256.New()
	h.Write([]byte(prev + "\n"))
	h.Write(row)
	return hex.EncodeToString(h.Sum(nil))
}

// forgeAuditRow appends a row to the chain with a correctly recomputed plain
// hash, as someone without the audit key would.
func forgeAuditRow(t *testing.T, db *store.DB, action, subject, detail string) {
	t.Helper()
	var id int64
	var ts, prev string
	if err := db.SQL().QueryRow(`SELECT id, ts, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&id, &ts, &prev); err != nil {
		t.Fatal(err)
	}
	id++
	h := plainAuditHash(prev, id, ts, "fracd", action, subject, detail)
	if _, err := db.SQL().Exec(`INSERT INTO audit(id, ts, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, 'fracd', ?, ?, ?, ?, ?)`,
		id, ts, action, subject, detail, prev, h); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyDetectsResultTampering: each change an attacker with write
// access to the database file can make to a result must make `fracd audit
// verify` fail with exit status 2, even though the audit rows themselves are
// untouched (or, for the forged row, correctly chained).
func TestAuditVerifyDetectsResultTampering(t *testing.T) {
	sha := func(c byte) string { return strings.Repeat(string(c), 64) }
	cases := []struct {
		name   string
		tamper func(t *testing.T, db *store.DB)
		want   string // in the error or the output
	}{
		{"update flagged", func(t *testing.T, db *store.DB) {
			mustExec(t, db, dropResultTriggers+`UPDATE predictions SET flagged = 0 WHERE instance_sha256 = '`+sha('c')+`'`)
		}, "flagged"},
		{"update probability", func(t *testing.T, db *store.DB) {
			mustExec(t, db, dropResultTriggers+`UPDATE predictions SET probability = 0.01 WHERE instance_sha256 = '`+sha('c')+`'`)
		}, "probability"},
		{"delete a prediction", func(t *testing.T, db *store.DB) {
			mustExec(t, db, dropResultTriggers+`DELETE FROM predictions WHERE instance_sha256 = '`+sha('b')+`'`)
		}, "missing"},
		{"update a label", func(t *testing.T, db *store.DB) {
			mustExec(t, db, dropResultTriggers+`UPDATE labels SET fractured = 0`)
		}, "fractured"},
		{"swap a model's weights sha", func(t *testing.T, db *store.DB) {
			mustExec(t, db, dropResultTriggers+`UPDATE models SET weights_sha256 = '`+sha('e')+`'`)
		}, "weights_sha256"},
		{"forged appended row with a recomputed plain hash", func(t *testing.T, db *store.DB) {
			forgeAuditRow(t, db, store.ActionLabelAdded, "2.25.102", `{"fractured":false,"label_id":99,"source":"manual"}`)
		}, "not keyed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := seedDB(t)
			// A label through fracd, so that the chain is keyed from there on
			// (the key is created next to the database).
			if _, _, err := runFracd(t, "--db", db, "label", "add", "2.25.101", "--deidentified", "--fractured"); err != nil {
				t.Fatal(err)
			}
			out, _, err := runFracd(t, "--db", db, "audit", "verify")
			if err != nil {
				t.Fatalf("verify before tampering: %v\n%s", err, out)
			}
			headHash := strings.Fields(strings.SplitN(out, "\n", 2)[0])
			anchor := strings.TrimSuffix(headHash[len(headHash)-2], ",") + ":" + headHash[len(headHash)-1]

			raw, err := store.Open(context.Background(), db)
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, raw)
			raw.Close()
			for _, args := range [][]string{{"audit", "verify"}, {"audit", "verify", "--anchor", anchor}} {
				out, _, err := runFracd(t, append([]string{"--db", db}, args...)...)
				if exitCode(err) != 2 {
					t.Fatalf("%v after tampering: %v (exit %d); want exit 2\n%s", args, err, exitCode(err), out)
				}
				if !strings.Contains(err.Error()+out, tc.want) {
					t.Errorf("%v: %v\n%s\nwant it to mention %q", args, err, out, tc.want)
				}
			}
		})
	}
}

func mustExec(t *testing.T, db *store.DB, q string) {
	t.Helper()
	if _, err := db.SQL().Exec(q); err != nil {
		t.Fatal(err)
	}
}
