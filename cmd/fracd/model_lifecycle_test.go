package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fracd/fracd/store"
)

// dbSnapshot renders every row of every table, so a refused command can be
// shown to have changed nothing.
func dbSnapshot(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tb := range tables {
		rs, err := db.Query(`SELECT * FROM "` + tb + `" ORDER BY rowid`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rs.Columns()
		for rs.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %q\n", tb, fmt.Sprint(vals...))
		}
		rs.Close()
	}
	return b.String()
}

type seedModel struct {
	id    string
	evals map[string]float64 // data hash letter -> ROC-AUC
}

// seedLifecycleDB registers models with stored evaluations through the
// store's API, activates the one named active (if any) and retires "ret".
func seedLifecycleDB(t *testing.T, models []seedModel, active string) string {
	t.Helper()
	ctx := context.Background()
	db, path := newTestDB(t)
	defer db.Close()
	base := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	tick := 0
	db.Now = func() time.Time { tick++; return base.Add(time.Duration(tick) * time.Minute) }
	for i, sm := range models {
		err := db.Update(ctx, func(tx *store.Tx) error {
			if err := tx.RegisterModel(ctx, store.Model{ID: sm.id, Arch: "resnet18", WeightsSHA256: fmt.Sprintf("%064x", i+1),
				Path: sm.id + ".safetensors", PreprocessVersion: "pp", Threshold: 0.5}); err != nil {
				return err
			}
			if _, err := tx.AppendAudit(ctx, "cli:seed", store.ActionModelAdded, sm.id, nil); err != nil {
				return err
			}
			for data, auc := range sm.evals {
				e := &store.Evaluation{ModelID: sm.id, Dataset: "labels.csv split val", DataSHA256: strings.Repeat(data, 64), N: 50,
					Metrics: json.RawMessage(fmt.Sprintf(`{"roc_auc": %v}`, auc))}
				if err := tx.InsertEvaluation(ctx, "cli:seed", e); err != nil {
					return err
				}
			}
			if sm.id == active {
				if err := tx.ActivateModel(ctx, sm.id); err != nil {
					return err
				}
				_, err := tx.AppendAudit(ctx, "cli:seed", store.ActionModelPromoted, sm.id, map[string]any{"forced": true, "reason": "seed"})
				return err
			}
			if sm.id == "ret" {
				if _, err := tx.RetireModel(ctx, sm.id); err != nil {
					return err
				}
				_, err := tx.AppendAudit(ctx, "cli:seed", store.ActionModelRetired, sm.id, map[string]any{"reason": "seed"})
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func modelStatesCLI(t *testing.T, db string) string {
	t.Helper()
	out, _, err := runFracd(t, "--db", db, "model", "list", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ms []struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Active bool   `json:"active"`
	}
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("model list json: %v\n%s", err, out)
	}
	var parts []string
	for _, m := range ms {
		if m.State == "" || m.Active != (m.State == "active") {
			t.Fatalf("model list: %+v", m)
		}
		parts = append(parts, m.ID+"="+m.State)
	}
	return strings.Join(parts, " ")
}

var lifecycleModels = []seedModel{
	{"old", map[string]float64{"a": 0.80}},
	{"good", map[string]float64{"a": 0.85, "b": 0.9}},
	{"bad", map[string]float64{"a": 0.75}},
	{"other", map[string]float64{"c": 0.95}},
	{"noeval", nil},
	{"ret", map[string]float64{"a": 0.99}},
}

func TestModelLifecycleRefusalsChangeNothing(t *testing.T) {
	db := seedLifecycleDB(t, lifecycleModels, "old")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"promote unknown", []string{"promote", "zz"}, `no model "zz" is registered`},
		{"promote retired", []string{"promote", "ret"}, "ret is retired"},
		{"promote retired forced", []string{"promote", "ret", "--force", "--reason", "x"}, "ret is retired"},
		{"promote active", []string{"promote", "old"}, "already the active model"},
		{"promote worse", []string{"promote", "bad"}, "bad is worse than the active model old: ROC-AUC 0.7500 < 0.8000"},
		{"promote without common set", []string{"promote", "other"}, "never evaluated on the same labelled set"},
		{"promote unevaluated", []string{"promote", "noeval"}, "noeval has no stored evaluation"},
		{"force without reason", []string{"promote", "bad", "--force"}, "--force needs --reason"},
		{"reason with a line break", []string{"promote", "bad", "--force", "--reason", "a\nb"}, "no control characters"},
		{"retire active", []string{"retire", "old"}, "old is the active model: promote another one first"},
		{"retire retired", []string{"retire", "ret"}, "already retired"},
		{"retire unknown", []string{"retire", "zz"}, `no model "zz" is registered`},
		{"rollback past the first activation", []string{"rollback"}, "nothing to roll back to"},
		{"activate alias on retired", []string{"activate", "ret"}, "ret is retired"},
		{"show unknown", []string{"show", "zz"}, `no model "zz" is registered`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := dbSnapshot(t, db)
			_, _, err := runFracd(t, append([]string{"--db", db, "model"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v; want %q", err, tc.want)
			}
			if after := dbSnapshot(t, db); after != before {
				t.Fatalf("a refused command changed the database:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
}

func TestModelLifecyclePromoteRollbackRetire(t *testing.T) {
	db := seedLifecycleDB(t, lifecycleModels, "old")
	steps := []struct {
		args    []string
		wantOut []string
		states  string
	}{
		{[]string{"promote", "good"}, []string{"promoted good", "old, active until now, is a candidate again", "ROC-AUC 0.8500 vs 0.8000"},
			"ret=retired noeval=candidate other=candidate bad=candidate good=active old=candidate"},
		{[]string{"promote", "bad", "--force", "--reason", "clinical lead accepts the lower AUC"}, []string{"promoted bad", "forced past: bad is worse"},
			"ret=retired noeval=candidate other=candidate bad=active good=candidate old=candidate"},
		{[]string{"rollback"}, []string{"rolled back the promotion of bad", "good is the active model again", "bad is now a candidate"},
			"ret=retired noeval=candidate other=candidate bad=candidate good=active old=candidate"},
		{[]string{"rollback", "--reason", "back to the shipped one"}, []string{"good is now a candidate", "old is the active model again"},
			"ret=retired noeval=candidate other=candidate bad=candidate good=candidate old=active"},
		{[]string{"retire", "bad", "--reason", "worse on val"}, []string{"retired bad (was candidate)"},
			"ret=retired noeval=candidate other=candidate bad=retired good=candidate old=active"},
		{[]string{"activate", "other"}, []string{"promoted other"},
			"ret=retired noeval=candidate other=active bad=retired good=candidate old=candidate"},
	}
	for _, s := range steps {
		out, _, err := runFracd(t, append([]string{"--db", db, "model"}, s.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", s.args, err)
		}
		for _, w := range s.wantOut {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", s.args, w, out)
			}
		}
		if got := modelStatesCLI(t, db); got != s.states {
			t.Fatalf("%v: states %q; want %q", s.args, got, s.states)
		}
	}

	// The audit rows say who did what, and why when forced.
	rdb, err := store.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	rows, err := rdb.ListAudit(context.Background(), store.AuditFilter{Action: "model."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		if r.Actor != actor() {
			continue // the seed's rows
		}
		var d struct {
			Previous string `json:"previous"`
			Forced   bool   `json:"forced"`
			Reason   string `json:"reason"`
		}
		if err := json.Unmarshal(r.Detail, &d); err != nil {
			t.Fatalf("audit row %d detail: %v", r.ID, err)
		}
		got = append(got, fmt.Sprintf("%s %s prev=%s forced=%v reason=%q", r.Action, r.Subject, d.Previous, d.Forced, d.Reason))
	}
	want := []string{
		`model.promoted good prev=old forced=false reason=""`,
		`model.promoted bad prev=good forced=true reason="clinical lead accepts the lower AUC"`,
		`model.rolled_back good prev=bad forced=false reason=""`,
		`model.rolled_back old prev=good forced=false reason="back to the shipped one"`,
		`model.retired bad prev= forced=false reason="worse on val"`,
		`model.promoted other prev=old forced=true reason="model activate (deprecated alias of promote --force)"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, _, err := runFracd(t, "--db", db, "audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v", err)
	}

	// show: the model, its evaluations, activations and audit rows.
	out, _, err := runFracd(t, "--db", db, "model", "show", "good")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\nstate ") || strings.Fields(out[strings.Index(out, "\nstate "):])[1] != "candidate" {
		t.Errorf("model show: state is not candidate:\n%s", out)
	}
	for _, w := range []string{"evaluations (2, newest first)", "0.9000", "activations (4)", "model.promoted", "model.rolled_back", "model.evaluated"} {
		if !strings.Contains(out, w) {
			t.Errorf("model show lacks %q:\n%s", w, out)
		}
	}
	out, _, err = runFracd(t, "--db", db, "model", "show", "good", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var r modelReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("model show json: %v\n%s", err, out)
	}
	if r.Model.State != "candidate" || len(r.Evaluations) != 2 || len(r.Activations) != 4 || len(r.Audit) < 6 {
		t.Fatalf("model show json: state %s, %d evaluations, %d activations, %d audit rows", r.Model.State, len(r.Evaluations), len(r.Activations), len(r.Audit))
	}
}

func TestModelPromoteWithoutActiveModel(t *testing.T) {
	db := seedLifecycleDB(t, []seedModel{{"x", map[string]float64{"a": 0.6}}, {"y", nil}}, "")
	cases := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"promote", "y"}, "y has no stored evaluation"},
		{[]string{"promote", "x"}, ""}, // its own evaluation is enough: nothing to compare with
		{[]string{"promote", "y"}, "y has no stored evaluation"},
		{[]string{"promote", "y", "--force", "--reason", "demo site"}, ""},
	}
	for _, tc := range cases {
		_, _, err := runFracd(t, append([]string{"--db", db, "model"}, tc.args...)...)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Fatalf("%v: err %v; want %q", tc.args, err, tc.wantErr)
		}
	}
}

func TestCheckPromotion(t *testing.T) {
	ev := func(id int64, data string, metrics string) store.Evaluation {
		return store.Evaluation{ID: id, ModelID: "m", DataSHA256: strings.Repeat(data, 64), N: 10, Metrics: json.RawMessage(metrics)}
	}
	cases := []struct {
		name        string
		active      string
		cand, act   []store.Evaluation
		wantErr     string
		wantSets    int
		wantCandAUC float64
	}{
		{"no active, evaluated", "", []store.Evaluation{ev(2, "a", `{"roc_auc":0.7}`)}, nil, "", 1, 0.7},
		{"no active, metrics without auc", "", []store.Evaluation{ev(2, "a", `{}`)}, nil, "no stored evaluation", 0, 0},
		{"equal is enough", "act", []store.Evaluation{ev(2, "a", `{"roc_auc":0.8}`)}, []store.Evaluation{ev(1, "a", `{"roc_auc":0.8}`)}, "", 1, 0.8},
		{"the newest evaluation per set counts", "act",
			[]store.Evaluation{ev(5, "a", `{"roc_auc":0.9}`), ev(3, "a", `{"roc_auc":0.1}`)},
			[]store.Evaluation{ev(4, "a", `{"roc_auc":0.85}`)}, "", 1, 0.9},
		{"worse on one of two sets", "act",
			[]store.Evaluation{ev(5, "a", `{"roc_auc":0.9}`), ev(6, "b", `{"roc_auc":0.7}`)},
			[]store.Evaluation{ev(1, "a", `{"roc_auc":0.8}`), ev(2, "b", `{"roc_auc":0.71}`)}, "0.7000 < 0.7100", 2, 0.7},
		{"disjoint sets", "act", []store.Evaluation{ev(2, "a", `{"roc_auc":0.9}`)}, []store.Evaluation{ev(1, "b", `{"roc_auc":0.5}`)}, "never evaluated on the same", 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkPromotion("cand", tc.active, tc.cand, tc.act)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v; want %q", err, tc.wantErr)
			}
			if len(got) != tc.wantSets || (len(got) > 0 && got[0].CandidateROCAUC != tc.wantCandAUC) {
				t.Fatalf("evidence %+v", got)
			}
		})
	}
}
