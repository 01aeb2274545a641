package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fracd/fracd/store"
)

// seedReportDB writes, through the store's API, two ISO weeks of results of
// the active model m1 (some labelled), one result of another model, and
// rejected and duplicate files.
func seedReportDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	db, path := newTestDB(t)
	defer db.Close()
	w45 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC) // a Monday
	w46 := w45.AddDate(0, 0, 7)
	db.Now = func() time.Time { return w45 }
	err := db.Update(ctx, func(tx *store.Tx) error {
		for i, m := range []struct{ id, meta string }{{"m0", `{}`}, {"m1", `{"val_auc": 0.9, "val_flagged_rate": 0.2}`}} {
			if err := tx.RegisterModel(ctx, store.Model{ID: m.id, Arch: "resnet18", WeightsSHA256: fmt.Sprintf("%064x", i+1), Path: m.id,
				PreprocessVersion: "pp", Threshold: 0.5, Metadata: json.RawMessage(m.meta)}); err != nil {
				return err
			}
		}
		return tx.ActivateModel(ctx, "m1")
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	add := func(at time.Time, state, reason, model string, p float64, label *bool) {
		t.Helper()
		n++
		sha, uid := fmt.Sprintf("%064x", 1000+n), fmt.Sprintf("2.25.%d", 1000+n)
		db.Now = func() time.Time { return at }
		err := db.Update(ctx, func(tx *store.Tx) error {
			in := store.Instance{SHA256: sha, State: state, Reason: reason, CompletedAt: at}
			if state == store.StateDone {
				in.SOPInstanceUID = uid
			}
			if err := tx.InsertInstance(ctx, in); err != nil {
				return err
			}
			if model != "" {
				if _, err := tx.InsertPrediction(ctx, store.Prediction{InstanceSHA256: sha, ModelID: model, ModelSHA256: "x",
					PreprocessVersion: "pp", Probability: p, Threshold: 0.5, Flagged: p >= 0.5}); err != nil {
					return err
				}
			}
			if label != nil {
				if _, err := tx.AddLabel(ctx, store.Label{SOPInstanceUID: uid, Fractured: *label, Source: "test", Actor: "t"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	yes, no := true, false
	add(w45, store.StateDone, "", "m1", 0.9, &yes) // TP
	add(w45.Add(time.Hour), store.StateDone, "", "m1", 0.7, &no)
	add(w45.Add(2*time.Hour), store.StateDone, "", "m1", 0.2, &yes)
	add(w45.Add(3*time.Hour), store.StateDone, "", "m1", 0.1, &no)
	add(w45.Add(4*time.Hour), store.StateRejected, "not_dicom", "", 0, nil)
	add(w45.Add(5*time.Hour), store.StateRejected, "not_dicom", "", 0, nil)
	add(w45.Add(6*time.Hour), store.StateDuplicate, "", "", 0, nil)
	add(w46, store.StateDone, "", "m1", 0.6, &yes)
	add(w46.Add(time.Hour), store.StateDone, "", "m1", 0.3, nil)
	add(w46.Add(2*time.Hour), store.StateDone, "", "m0", 0.95, nil)
	add(w46.Add(3*time.Hour), store.StateRejected, "truncated", "", 0, nil)
	return path
}

func TestReportCountsInEveryFormat(t *testing.T) {
	db := seedReportDB(t)

	out, _, err := runFracd(t, "--db", db, "report", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r monitorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report json: %v\n%s", err, out)
	}
	outcomes := map[string]int64{}
	for _, o := range r.Outcomes {
		outcomes[o.Outcome] = o.Files
	}
	reasons := map[string]int64{}
	for _, o := range r.Rejections {
		reasons[o.Reason] = o.Files
	}
	if r.Files != 11 || fmt.Sprint(outcomes) != "map[done:7 duplicate:1 rejected:3]" || fmt.Sprint(reasons) != "map[not_dicom:2 truncated:1]" {
		t.Fatalf("files %d, outcomes %v, reasons %v", r.Files, outcomes, reasons)
	}
	if r.Results.Results != 7 || r.Results.Flagged != 4 {
		t.Fatalf("all results %+v", r.Results)
	}
	mm := r.Model
	if mm == nil || mm.ID != "m1" || mm.Window.Results != 6 || mm.Window.Flagged != 3 || *mm.Window.FlaggedRate != 0.5 || len(mm.Weeks) != 2 {
		t.Fatalf("model section %+v", mm)
	}
	w0, w1 := mm.Weeks[0], mm.Weeks[1]
	if w0.ISOWeek != "2026-W45" || w0.WeekStart != "2026-11-02" || w0.Results != 4 || w0.Labelled != 4 ||
		w0.TP != 1 || w0.FN != 1 || w0.TN != 1 || w0.FP != 1 || *w0.Sensitivity != 0.5 || *w0.Specificity != 0.5 || fmtRate(w0.MeanProbability) != "0.4750" {
		t.Fatalf("week 45 %+v", w0)
	}
	if w1.ISOWeek != "2026-W46" || w1.Results != 2 || w1.Labelled != 1 || w1.TP != 1 || *w1.Sensitivity != 1 || w1.Specificity != nil {
		t.Fatalf("week 46 %+v", w1)
	}
	// Flagged rate 0.5 everywhere against a validation 0.2: three warnings;
	// no validation mean probability: a note, no warning.
	if len(mm.Drift) != 3 || mm.Drift[0].Period != "window" || mm.Drift[0].Figure != "flagged_rate" {
		t.Fatalf("drift %+v", mm.Drift)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "m1 records no validation mean probability") {
		t.Fatalf("notes %q", r.Notes)
	}

	// The auditor's views hold the same numbers.
	rdb, err := store.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var views string
	rows, err := rdb.SQL().Query(`SELECT iso_week, week_start, labelled, tp, fn, tn, fp, coalesce(sensitivity, -1), coalesce(specificity, -1)
		FROM weekly_labelled_performance WHERE model_id = 'm1' ORDER BY week_start`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var wk, start string
		var l, tp, fn, tn, fp int
		var se, sp float64
		rows.Scan(&wk, &start, &l, &tp, &fn, &tn, &fp, &se, &sp)
		views += fmt.Sprintf("%s %s %d %d %d %d %d %v %v;", wk, start, l, tp, fn, tn, fp, se, sp)
	}
	rows.Close()
	var flaggedRate float64
	var results int
	if err := rdb.SQL().QueryRow(`SELECT results, flagged_rate FROM weekly_model_stats WHERE model_id = 'm1' AND iso_week = '2026-W45'`).Scan(&results, &flaggedRate); err != nil {
		t.Fatal(err)
	}
	var rejected int
	if err := rdb.SQL().QueryRow(`SELECT sum(files) FROM weekly_outcomes WHERE outcome = 'rejected'`).Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	if views != "2026-W45 2026-11-02 4 1 1 1 1 0.5 0.5;2026-W46 2026-11-09 1 1 0 0 0 1 -1;" || results != 4 || flaggedRate != 0.5 || rejected != 3 {
		t.Fatalf("views: %s; W45 %d results, flagged rate %v; %d rejected", views, results, flaggedRate, rejected)
	}

	out, _, err = runFracd(t, "--db", db, "report")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| done | 7 |", "| rejected | 3 |", "| total | 11 |", "| not_dicom | 2 |", "| truncated | 1 |",
		"7 results, 4 flagged", "## Model m1 (active)", "ROC-AUC 0.9000, flagged rate 0.2000, mean probability -",
		"| 2026-W45 | 2026-11-02 | 4 | 2 | 0.5000 | 0.4750 | 4 | 1 | 1 | 1 | 1 | 0.5000 | 0.5000 |",
		"| 2026-W46 | 2026-11-09 | 2 | 1 | 0.5000 | 0.4500 | 1 | 1 | 0 | 0 | 0 | 1.0000 | - |",
		"**WARNING** window: flagged rate 0.5000, validation 0.2000 (change +0.3000)", "records no validation mean probability"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}

	out, _, err = runFracd(t, "--db", db, "report", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	cells := map[string]string{}
	for _, rec := range recs[1:] {
		cells[rec[0]+"/"+rec[1]+"/"+rec[2]+"/"+rec[3]] = rec[4]
	}
	for key, want := range map[string]string{
		"outcome/window//done": "7", "outcome/window//total": "11", "rejection/window//not_dicom": "2", "rejection/window//truncated": "1",
		"results/window//results": "7", "results/window//flagged": "4", "model/window/m1/flagged_rate": "0.5000",
		"week/2026-W45/m1/tp": "1", "week/2026-W45/m1/sensitivity": "0.5000", "week/2026-W46/m1/specificity": "-",
		"drift_warning/2026-W46/m1/flagged_rate": "0.3000", "baseline/validation/m1/val_mean_probability": "-",
	} {
		if cells[key] != want {
			t.Errorf("csv %s = %q; want %q", key, cells[key], want)
		}
	}
}

func TestReportWindowToleranceAndBadInput(t *testing.T) {
	db := seedReportDB(t)
	cases := []struct {
		name    string
		env     string // report.drift_tolerance
		args    []string
		files   int64
		results int64
		weeks   int
		drift   int
		wantErr string
	}{
		{name: "since", args: []string{"--since", "2026-11-09"}, files: 4, results: 3, weeks: 1, drift: 2},
		{name: "until", args: []string{"--until", "2026-11-09T00:00:00Z"}, files: 7, results: 4, weeks: 1, drift: 2},
		{name: "wide tolerance", env: "0.35", files: 11, results: 7, weeks: 2, drift: 0},
		{name: "other model", args: []string{"--model", "m0"}, files: 11, results: 7, weeks: 1, drift: 0},
		{name: "unknown model", args: []string{"--model", "zz"}, wantErr: `no model "zz"`},
		{name: "bad format", args: []string{"--format", "xml"}, wantErr: "not one of md, json, csv"},
		{name: "bad since", args: []string{"--since", "yesterday"}, wantErr: "--since"},
		{name: "empty window", args: []string{"--since", "2026-11-09", "--until", "2026-11-02"}, wantErr: "--since must be before --until"},
		{name: "bad tolerance", env: "2", wantErr: "report.drift_tolerance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("FRACD_REPORT_DRIFT_TOLERANCE", tc.env)
			}
			args := append([]string{"--db", db, "report"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--format") {
				args = append(args, "--format", "json")
			}
			out, _, err := runFracd(t, args...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v; want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var r monitorReport
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatal(err)
			}
			if r.Files != tc.files || r.Results.Results != tc.results || len(r.Model.Weeks) != tc.weeks || len(r.Model.Drift) != tc.drift {
				t.Fatalf("files %d, results %d, weeks %d, drift %+v", r.Files, r.Results.Results, len(r.Model.Weeks), r.Model.Drift)
			}
		})
	}
}
