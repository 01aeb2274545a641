package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func registerTestModel(t *testing.T, db *DB, id string, sha byte) {
	t.Helper()
	ctx := context.Background()
	err := db.Update(ctx, func(tx *Tx) error {
		return tx.RegisterModel(ctx, Model{ID: id, Arch: "resnet18", WeightsSHA256: strings.Repeat(string(sha), 64),
			Path: "w", PreprocessVersion: "pp", Threshold: 0.5})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func auditCount(t *testing.T, db *DB) int {
	t.Helper()
	rows, err := db.ListAudit(context.Background(), AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(rows)
}

func TestEvaluationsInsertAuditList(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	registerTestModel(t, db, "m1", 'a')
	registerTestModel(t, db, "m2", 'b')
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	hash := strings.Repeat("c", 64)
	var ids []int64
	for i, m := range []string{"m1", "m2", "m1"} {
		db.Now = func() time.Time { return base.Add(time.Duration(i) * time.Hour) }
		e := &Evaluation{ModelID: m, Dataset: "labels.csv split val", DataSHA256: hash, N: 10 + i,
			Metrics: json.RawMessage(`{"roc_auc": 0.8}`)}
		if err := db.InsertEvaluation(ctx, "cli:test", e); err != nil {
			t.Fatal(err)
		}
		if e.ID == 0 || !e.CreatedAt.Equal(base.Add(time.Duration(i)*time.Hour)) {
			t.Fatalf("inserted %+v", e)
		}
		ids = append(ids, e.ID)
	}

	all, err := db.Evaluations(ctx, "", 0)
	if err != nil || len(all) != 3 || all[0].ID != ids[2] || all[2].ID != ids[0] {
		t.Fatalf("all evaluations %+v, %v", all, err)
	}
	m1, err := db.Evaluations(ctx, "m1", 0)
	if err != nil || len(m1) != 2 || m1[0].N != 12 || m1[1].N != 10 {
		t.Fatalf("m1 evaluations %+v, %v", m1, err)
	}
	if one, err := db.Evaluations(ctx, "m1", 1); err != nil || len(one) != 1 || one[0].ID != ids[2] {
		t.Fatalf("limit 1: %+v, %v", one, err)
	}
	e, err := db.Evaluation(ctx, ids[1])
	if err != nil || e.ModelID != "m2" || e.DataSHA256 != hash || string(e.Metrics) != `{"roc_auc": 0.8}` || e.Dataset != "labels.csv split val" {
		t.Fatalf("evaluation %d: %+v, %v", ids[1], e, err)
	}
	if _, err := db.Evaluation(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing evaluation: %v", err)
	}

	audit, err := db.ListAudit(ctx, AuditFilter{Action: ActionModelEvaluated})
	if err != nil || len(audit) != 3 {
		t.Fatalf("audit rows %d, %v", len(audit), err)
	}
	var detail struct {
		ID   int64  `json:"evaluation_id"`
		Hash string `json:"data_sha256"`
		N    int    `json:"n"`
	}
	if err := json.Unmarshal(audit[1].Detail, &detail); err != nil || detail.ID != ids[1] || detail.Hash != hash || detail.N != 11 ||
		audit[1].Subject != "m2" || audit[1].Actor != "cli:test" {
		t.Fatalf("audit row %+v (%v)", audit[1], err)
	}
	if _, err := db.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestEvaluationRefusedChangesNothing(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	registerTestModel(t, db, "m1", 'a')
	good := Evaluation{ModelID: "m1", Dataset: "d", DataSHA256: strings.Repeat("0", 64), N: 3, Metrics: json.RawMessage(`{}`)}
	cases := []struct {
		name string
		edit func(*Evaluation)
		want string
	}{
		{"unknown model", func(e *Evaluation) { e.ModelID = "nope" }, "FOREIGN KEY"},
		{"no model", func(e *Evaluation) { e.ModelID = "" }, "model id"},
		{"short hash", func(e *Evaluation) { e.DataSHA256 = "abc" }, "sha256"},
		{"non-hex hash", func(e *Evaluation) { e.DataSHA256 = strings.Repeat("z", 64) }, "sha256"},
		{"no images", func(e *Evaluation) { e.N = 0 }, "0 images"},
		{"bad metrics", func(e *Evaluation) { e.Metrics = json.RawMessage(`{"a":`) }, "not JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := good
			tc.edit(&e)
			before := auditCount(t, db)
			err := db.InsertEvaluation(ctx, "cli:test", &e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want containing %q", err, tc.want)
			}
			if got := auditCount(t, db); got != before {
				t.Errorf("audit rows %d -> %d after a refused insert", before, got)
			}
			if es, _ := db.Evaluations(ctx, "", 0); len(es) != 0 {
				t.Errorf("evaluations stored: %+v", es)
			}
		})
	}
}

func TestLabelledPredictionsAndRunParams(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	registerTestModel(t, db, "m1", 'a')
	registerTestModel(t, db, "m2", 'b')
	err := db.Update(ctx, func(tx *Tx) error {
		for i, p := range []float64{0.2, 0.9} {
			sha := strings.Repeat(string(rune('d'+i)), 64)
			uid := "2.25.5" + string(rune('0'+i))
			if err := tx.InsertInstance(ctx, Instance{SHA256: sha, State: StateDone, SOPInstanceUID: uid, BodyPart: "HAND"}); err != nil {
				return err
			}
			for _, m := range []string{"m1", "m2"} {
				if _, err := tx.InsertPrediction(ctx, Prediction{InstanceSHA256: sha, ModelID: m, ModelSHA256: "x", PreprocessVersion: "pp",
					Probability: p, Threshold: 0.5, Flagged: p >= 0.5}); err != nil {
					return err
				}
			}
		}
		for _, l := range []Label{{SOPInstanceUID: "2.25.50", Fractured: false, Source: "a"}, {SOPInstanceUID: "2.25.51", Fractured: true, Source: "a"},
			{SOPInstanceUID: "2.25.51", Fractured: true, Source: "b"}} {
			l.Actor = "admin"
			if _, err := tx.AddLabel(ctx, l); err != nil {
				return err
			}
		}
		return tx.UpsertTrainingRun(ctx, TrainingRun{ID: "run-1", Arch: "resnet18", Params: json.RawMessage(`{"seed":42}`), Status: "finished",
			StartedAt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	lp, err := db.LabelledPredictions(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if len(lp) != 3 || lp[0].SOPInstanceUID != "2.25.50" || lp[0].Fractured || lp[0].Probability != 0.2 || lp[0].BodyPart != "HAND" ||
		lp[1].SOPInstanceUID != "2.25.51" || !lp[1].Fractured || lp[1].LabelSource != "a" || lp[2].LabelSource != "b" {
		t.Fatalf("labelled predictions %+v", lp)
	}
	if none, err := db.LabelledPredictions(ctx, "nope"); err != nil || len(none) != 0 {
		t.Fatalf("unknown model: %+v, %v", none, err)
	}
	if p, err := db.TrainingRunParams(ctx, "run-1"); err != nil || string(p) != `{"seed":42}` {
		t.Fatalf("params %s, %v", p, err)
	}
	if _, err := db.TrainingRunParams(ctx, "run-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
}
