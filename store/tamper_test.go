package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fracd/fracd"
)

func shaOf(c byte) string { return strings.Repeat(string(c), 64) }

// seedRecords writes one of each record with the audit rows fracd writes for
// it (the same details as the pipeline and the commands): a model registered
// and promoted, a retired one, a classified instance with boxes, one without,
// a rejected and a duplicate instance, a label, an evaluation, a finished
// training run, a delivered delivery and a patient split.
func seedRecords(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	audit := func(tx *Tx, actor, action, subject string, detail any) error {
		_, err := tx.AppendAudit(ctx, actor, action, subject, detail)
		return err
	}
	register := func(tx *Tx, id string, w byte) error {
		if err := tx.RegisterModel(ctx, Model{ID: id, Arch: "resnet18", WeightsSHA256: shaOf(w), Path: id + ".safetensors", PreprocessVersion: "pp1", Threshold: 0.5}); err != nil {
			return err
		}
		return audit(tx, "cli:admin", ActionModelAdded, id, map[string]any{"weights_sha256": shaOf(w), "arch": "resnet18", "threshold": 0.5, "preprocess_version": "pp1"})
	}
	must(db.Update(ctx, func(tx *Tx) error {
		must(register(tx, "old", '1'))
		must(register(tx, "m1", 'f'))
		must(tx.ActivateModel(ctx, "m1"))
		must(audit(tx, "cli:admin", ActionModelPromoted, "m1", map[string]any{"forced": true, "reason": "test"}))
		if _, err := tx.RetireModel(ctx, "old"); err != nil {
			return err
		}
		return audit(tx, "cli:admin", ActionModelRetired, "old", map[string]any{"reason": "test"})
	}))
	classified := func(c byte, sop string, p float64, boxes []fracd.Box) {
		must(db.Update(ctx, func(tx *Tx) error {
			in := Instance{SHA256: shaOf(c), State: StateDone, StudyUID: "2.25.1", SeriesUID: "2.25.2", SOPInstanceUID: sop,
				Modality: "DX", BodyPart: "HAND", TransferSyntax: "1.2.840.10008.1.2.1", ArchivePath: "a/" + sop + ".dcm"}
			must(tx.InsertInstance(ctx, in))
			must(audit(tx, "fracd", ActionArchived, in.SHA256, ArchivedDetail(in, "test")))
			pr := Prediction{InstanceSHA256: in.SHA256, ModelID: "m1", ModelSHA256: shaOf('f'), PreprocessVersion: "pp1",
				Probability: p, Threshold: 0.5, Flagged: p >= 0.5, Category: "no_fracture", Boxes: boxes}
			if pr.Flagged {
				pr.Category = "fracture"
			}
			if _, err := tx.InsertPrediction(ctx, pr); err != nil {
				return err
			}
			return audit(tx, "fracd", ActionPredicted, in.SHA256, PredictedDetail(sop, pr))
		}))
	}
	classified('a', "2.25.100", 0.9, []fracd.Box{{X0: 1, Y0: 2, X1: 30.5, Y1: 40.25, Score: 0.75}})
	classified('b', "2.25.101", 0.2, nil)
	must(db.Update(ctx, func(tx *Tx) error {
		must(tx.InsertInstance(ctx, Instance{SHA256: shaOf('r'), State: StateRejected, Reason: "not_dicom: no DICM prefix"}))
		must(audit(tx, "fracd", ActionRejected, shaOf('r'), map[string]any{"reason": "not_dicom", "detail": "no DICM prefix"}))
		must(tx.InsertInstance(ctx, Instance{SHA256: shaOf('d'), State: StateDuplicate, SOPInstanceUID: "2.25.100", DuplicateOf: shaOf('a')}))
		must(audit(tx, "fracd", ActionDuplicate, shaOf('d'), map[string]any{"duplicate_of": shaOf('a'), "sop_instance_uid": "2.25.100"}))
		// Duplicates that make no instance row.
		must(audit(tx, "fracd", ActionDuplicate, shaOf('a'), map[string]any{"duplicate_of": shaOf('a'), "earlier_state": "done"}))
		must(audit(tx, "fracd", ActionDuplicate, shaOf('x'), map[string]any{"duplicate_of": shaOf('x'), "in_flight": true}))
		id, err := tx.AddLabel(ctx, Label{SOPInstanceUID: "2.25.100", Fractured: true, Source: "manual", Actor: "cli:admin"})
		must(err)
		must(audit(tx, "cli:admin", ActionLabelAdded, "2.25.100", map[string]any{"label_id": id, "fractured": true, "source": "manual"}))
		must(tx.InsertEvaluation(ctx, "cli:admin", &Evaluation{ModelID: "m1", Dataset: "test", DataSHA256: shaOf('e'), N: 2, Metrics: []byte(`{"auc":0.9}`)}))
		must(tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run1", Arch: "resnet18", Status: "running", StartedAt: time.Now()}))
		must(tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run1", Arch: "resnet18", Status: "finished", Metrics: []byte(`{"best_epoch":1}`), StartedAt: time.Now(), FinishedAt: time.Now()}))
		must(tx.InsertDelivery(ctx, Delivery{SOPInstanceUID: "2.25.100", Kind: "sr", InstanceSHA256: shaOf('a'), Destination: "PACS@h:104"}))
		must(tx.UpdateDelivery(ctx, Delivery{SOPInstanceUID: "2.25.100", Kind: "sr", State: DeliverySending, Attempts: 1}))
		must(tx.UpdateDelivery(ctx, Delivery{SOPInstanceUID: "2.25.100", Kind: "sr", State: DeliveryDelivered, Attempts: 1, DeliveredAt: time.Now()}))
		err = tx.AssignPatientSplits(ctx, map[string]string{"p1": "train"})
		must(err)
		return tx.AddStudyAccession(ctx, "acc-key", "2.25.1")
	}))
}

// TestResultTablesRefuseChanges: results, their history and the registry
// are written once; a change or a removal through SQL is refused by the
// schema (as the audit table already was), so a slip with the sqlite3 shell
// cannot silently rewrite a finding.
func TestResultTablesRefuseChanges(t *testing.T) {
	db := openTemp(t)
	seedRecords(t, db)
	cases := []struct{ name, sql string }{
		{"update flagged", `UPDATE predictions SET flagged = 0 WHERE flagged = 1`},
		{"update probability", `UPDATE predictions SET probability = 0.01`},
		{"update category", `UPDATE predictions SET category = 'doubt'`},
		{"delete a prediction", `DELETE FROM predictions WHERE instance_sha256 = '` + shaOf('b') + `'`},
		{"update a box", `UPDATE prediction_boxes SET score = 0.1`},
		{"delete a box", `DELETE FROM prediction_boxes`},
		{"update an instance's archive path", `UPDATE instances SET archive_path = 'elsewhere' WHERE state = 'done'`},
		{"turn a rejection into a success", `UPDATE instances SET state = 'done', reason = '' WHERE state = 'rejected'`},
		{"delete a rejected instance", `DELETE FROM instances WHERE state = 'rejected'`},
		{"update a label", `UPDATE labels SET fractured = 0`},
		{"delete a label", `DELETE FROM labels`},
		{"swap a model's weights sha", `UPDATE models SET weights_sha256 = '` + shaOf('e') + `' WHERE id = 'm1'`},
		{"change a model's threshold", `UPDATE models SET threshold = 0.1 WHERE id = 'm1'`},
		{"un-retire a model", `UPDATE models SET state = 'candidate' WHERE id = 'old'`},
		{"retire the active model directly", `UPDATE models SET state = 'retired', active = 0 WHERE id = 'm1'`},
		{"delete a model", `DELETE FROM models WHERE id = 'old'`},
		{"update an evaluation", `UPDATE evaluations SET n = 1000`},
		{"delete an evaluation", `DELETE FROM evaluations`},
		{"rewrite a finished training run", `UPDATE training_runs SET metrics = '{"best_epoch":9}'`},
		{"turn a finished training run into a failed one", `UPDATE training_runs SET status = 'failed'`},
		{"delete a training run", `DELETE FROM training_runs`},
		{"update an activation", `UPDATE model_activations SET model_id = 'old'`},
		{"delete an activation", `DELETE FROM model_activations`},
		{"undo a delivery", `UPDATE deliveries SET state = 'pending', delivered_at = '' WHERE state = 'delivered'`},
		{"delete a delivery", `DELETE FROM deliveries`},
		{"move a patient to another split", `UPDATE patient_splits SET split = 'test'`},
		{"delete a patient split", `DELETE FROM patient_splits`},
		{"delete a study accession", `DELETE FROM study_accessions`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := db.sql.Exec(tc.sql)
			if err == nil {
				n, _ := res.RowsAffected()
				t.Fatalf("%s: accepted (%d rows changed)", tc.sql, n)
			}
		})
	}
}

// TestResultTablesAllowLegalChanges: what fracd itself changes still works
// under the triggers: a running training run is updated until it ends (and
// again when resumed), a
// delivery moves through its states, a candidate is retired, the active
// model changes.
func TestResultTablesAllowLegalChanges(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	seedRecords(t, db)
	err := db.Update(ctx, func(tx *Tx) error {
		if err := tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run2", Arch: "resnet18", Status: "running", StartedAt: time.Now()}); err != nil {
			return err
		}
		if err := tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run2", Arch: "resnet18", Status: "running", Metrics: []byte(`{"epochs":[1]}`), StartedAt: time.Now()}); err != nil {
			return err
		}
		if err := tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run2", Arch: "resnet18", Status: "failed", StartedAt: time.Now(), FinishedAt: time.Now()}); err != nil {
			return err
		}
		// Resumed (fracd train --resume), then finished.
		if err := tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run2", Arch: "resnet18", Status: "running", Params: []byte(`{"epochs":2}`), StartedAt: time.Now()}); err != nil {
			return err
		}
		if err := tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run2", Arch: "resnet18", Status: "finished", Params: []byte(`{"epochs":2}`), StartedAt: time.Now(), FinishedAt: time.Now()}); err != nil {
			return err
		}
		if err := tx.InsertDelivery(ctx, Delivery{SOPInstanceUID: "2.25.101", Kind: "sc", InstanceSHA256: shaOf('b'), Destination: "PACS@h:104"}); err != nil {
			return err
		}
		for _, s := range []string{DeliverySending, DeliveryPending, DeliverySending, DeliveryFailed, DeliveryPending, DeliverySending, DeliveryDelivered} {
			if err := tx.UpdateDelivery(ctx, Delivery{SOPInstanceUID: "2.25.101", Kind: "sc", State: s, Attempts: 1}); err != nil {
				return err
			}
		}
		if err := tx.RegisterModel(ctx, Model{ID: "m2", Arch: "resnet18", WeightsSHA256: shaOf('2'), Path: "m2", PreprocessVersion: "pp1", Threshold: 0.4}); err != nil {
			return err
		}
		if _, err := tx.PromoteModel(ctx, "m2"); err != nil {
			return err
		}
		if _, _, err := tx.RollbackModel(ctx); err != nil {
			return err
		}
		_, err := tx.RetireModel(ctx, "m2")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
