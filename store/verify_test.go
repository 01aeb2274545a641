package store

import (
	"context"
	"strings"
	"testing"
)

// dropResultTriggers drops every trigger but the audit table's, as the
// owner of the database file can.
func dropResultTriggers(t *testing.T, db *DB) {
	t.Helper()
	rows, err := db.sql.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name <> 'audit'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := db.sql.Exec(`DROP TRIGGER ` + n); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyRecordsDetectsTampering: with the triggers dropped, every change
// to a stored result, label, model or evaluation, and every removal, shows
// as a problem naming the table, while the audit chain itself still
// verifies.
func TestVerifyRecordsDetectsTampering(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, sql, table, reason string
	}{
		{"update flagged", `UPDATE predictions SET flagged = 0 WHERE flagged = 1`, "predictions", "flagged is false, audited true"},
		{"update probability", `UPDATE predictions SET probability = 0.01 WHERE instance_sha256 = '` + shaOf('a') + `'`, "predictions", "probability is 0.01, audited 0.9"},
		{"update threshold", `UPDATE predictions SET threshold = 0.95`, "predictions", "threshold"},
		{"update category", `UPDATE predictions SET category = 'doubt' WHERE category = 'fracture'`, "predictions", "category"},
		{"delete a prediction", `DELETE FROM predictions WHERE instance_sha256 = '` + shaOf('b') + `'`, "predictions", "missing: it was deleted"},
		{"forged prediction", `INSERT INTO predictions(instance_sha256, model_id, model_sha256, preprocess_version, probability, threshold, flagged, latency_ms, created_at)
			VALUES ('` + shaOf('d') + `', 'm1', '` + shaOf('f') + `', 'pp1', 0.99, 0.5, 1, 1, '2026')`, "predictions", "written outside fracd"},
		{"move a box", `UPDATE prediction_boxes SET x0 = 500`, "predictions", "boxes differ"},
		{"delete a box", `DELETE FROM prediction_boxes`, "predictions", "boxes is 0, audited 1"},
		{"change an archive path", `UPDATE instances SET archive_path = 'elsewhere' WHERE state = 'done'`, "instances", "archive_path"},
		{"change a body part", `UPDATE instances SET body_part = 'SKULL' WHERE state = 'done'`, "instances", "body_part"},
		{"turn a rejection into a success", `UPDATE instances SET state = 'done', reason = '' WHERE state = 'rejected'`, "instances", "rejected"},
		{"rewrite a rejection reason", `UPDATE instances SET reason = 'not_dicom: other' WHERE state = 'rejected'`, "instances", "reason is"},
		{"delete a rejected instance", `DELETE FROM instances WHERE state = 'rejected'`, "instances", "does not"},
		{"redirect a duplicate", `UPDATE instances SET duplicate_of = '` + shaOf('b') + `' WHERE state = 'duplicate'`, "instances", "duplicate_of"},
		{"flip a label", `UPDATE labels SET fractured = 0`, "labels", "fractured is false, audited true"},
		{"relabel another instance", `UPDATE labels SET sop_instance_uid = '2.25.101'`, "labels", "sop_instance_uid"},
		{"delete a label", `DELETE FROM labels`, "labels", "missing: it was deleted"},
		{"forged label", `INSERT INTO labels(sop_instance_uid, fractured, source, actor, created_at) VALUES ('2.25.101', 1, 'x', 'cli:admin', '2026')`, "labels", "written outside fracd"},
		{"swap a model's weights sha", `UPDATE models SET weights_sha256 = '` + shaOf('e') + `' WHERE id = 'm1'`, "models", "weights_sha256"},
		{"change a model's threshold", `UPDATE models SET threshold = 0.1 WHERE id = 'm1'`, "models", "threshold"},
		{"un-retire a model", `UPDATE models SET state = 'candidate' WHERE id = 'old'`, "models", "state is candidate, but the audited lifecycle leaves it retired"},
		{"switch the active model", `UPDATE models SET state = 'candidate', active = 0 WHERE id = 'm1'; UPDATE models SET state = 'active', active = 1 WHERE id = 'old'`, "models", "lifecycle"},
		{"delete a model", `DELETE FROM models WHERE id = 'old'`, "models", "missing from the registry"},
		{"inflate an evaluation", `UPDATE evaluations SET n = 1000`, "evaluations", "n is 1000, audited 2"},
		{"delete an evaluation", `DELETE FROM evaluations`, "evaluations", "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openTemp(t)
			seedRecords(t, db)
			rep, err := db.VerifyRecords(ctx)
			if err != nil || len(rep.Problems) != 0 {
				t.Fatalf("before tampering: %v, problems %v", err, rep.Problems)
			}
			dropResultTriggers(t, db)
			db.sql.Exec(`PRAGMA foreign_keys = OFF`)
			if _, err := db.sql.Exec(tc.sql); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			if _, err := db.VerifyAudit(ctx); err != nil {
				t.Fatalf("the chain itself still verifies, but: %v", err)
			}
			rep, err = db.VerifyRecords(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range rep.Problems {
				if p.Table == tc.table && strings.Contains(p.Reason, tc.reason) {
					return
				}
			}
			t.Fatalf("problems %v; want one in %s saying %q", rep.Problems, tc.table, tc.reason)
		})
	}
}

// TestVerifyRecordsCounts: the seeded records are all checked, and audit
// rows from an older fracd that lack the compared values make their records
// "not checkable" rather than failures.
func TestVerifyRecordsCounts(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	seedRecords(t, db)
	// As an older fracd wrote them: a prediction audited with its
	// probability only, a model registered with no detail.
	err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.RegisterModel(ctx, Model{ID: "m0", Arch: "resnet18", WeightsSHA256: shaOf('0'), Path: "m0", PreprocessVersion: "pp1", Threshold: 0.5}); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, "fracd", ActionModelAdded, "m0", nil); err != nil {
			return err
		}
		in := Instance{SHA256: shaOf('o'), State: StateDone, SOPInstanceUID: "2.25.200", ArchivePath: "a/o.dcm"}
		if err := tx.InsertInstance(ctx, in); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, "fracd", ActionArchived, in.SHA256, map[string]any{"sop_instance_uid": in.SOPInstanceUID, "archive_path": in.ArchivePath}); err != nil {
			return err
		}
		if _, err := tx.InsertPrediction(ctx, Prediction{InstanceSHA256: in.SHA256, ModelID: "m1", ModelSHA256: shaOf('f'), PreprocessVersion: "pp1", Probability: 0.3, Threshold: 0.5}); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, "fracd", ActionPredicted, in.SHA256, map[string]any{"sop_instance_uid": in.SOPInstanceUID, "probability": 0.3})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := db.VerifyRecords(ctx)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %v, problems %v", err, rep.Problems)
	}
	want := map[string][2]int64{"predictions": {2, 1}, "instances": {4, 1}, "labels": {1, 0}, "models": {2, 1}, "evaluations": {1, 0}}
	for _, c := range rep.Checks {
		if w := want[c.Table]; c.Checked != w[0] || c.NotCheckable != w[1] {
			t.Errorf("%s: %d checked, %d not checkable; want %d, %d", c.Table, c.Checked, c.NotCheckable, w[0], w[1])
		}
	}
	if len(rep.Checks) != len(want) {
		t.Errorf("checks %+v", rep.Checks)
	}
}
