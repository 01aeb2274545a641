package store

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func modelStates(t *testing.T, db *DB) string {
	t.Helper()
	ms, err := db.Models(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, m := range ms {
		if m.Active != (m.State == ModelActive) {
			t.Fatalf("model %s: active %v but state %s", m.ID, m.Active, m.State)
		}
		parts = append(parts, m.ID+"="+m.State)
	}
	sort.Strings(parts) // Models lists newest first; ids give a stable order
	return strings.Join(parts, " ")
}

func TestModelLifecycleSteps(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for i, id := range []string{"a", "b", "c"} {
		registerTestModel(t, db, id, byte('a'+i))
	}
	type step struct {
		name    string
		do      func(*Tx) error
		wantErr error // nil: must succeed
		states  string
	}
	promote := func(id string) func(*Tx) error {
		return func(tx *Tx) error { _, err := tx.PromoteModel(ctx, id); return err }
	}
	retire := func(id string) func(*Tx) error {
		return func(tx *Tx) error { _, err := tx.RetireModel(ctx, id); return err }
	}
	rollback := func(tx *Tx) error { _, _, err := tx.RollbackModel(ctx); return err }
	steps := []step{
		{"fresh models are candidates", func(*Tx) error { return nil }, nil, "a=candidate b=candidate c=candidate"},
		{"rollback with no active model", rollback, ErrNoRollback, "a=candidate b=candidate c=candidate"},
		{"promote a", promote("a"), nil, "a=active b=candidate c=candidate"},
		{"rollback of the first activation", rollback, ErrNoRollback, "a=active b=candidate c=candidate"},
		{"retire the active model", retire("a"), ErrModelIsActive, "a=active b=candidate c=candidate"},
		{"promote b", promote("b"), nil, "a=candidate b=active c=candidate"},
		{"promote c", promote("c"), nil, "a=candidate b=candidate c=active"},
		{"promote the active one again", promote("c"), nil, "a=candidate b=candidate c=active"},
		{"rollback to b", rollback, nil, "a=candidate b=active c=candidate"},
		{"rollback to a", rollback, nil, "a=active b=candidate c=candidate"},
		{"rollback past the first", rollback, ErrNoRollback, "a=active b=candidate c=candidate"},
		{"promote c again", promote("c"), nil, "a=candidate b=candidate c=active"},
		{"retire a", retire("a"), nil, "a=retired b=candidate c=active"},
		{"retire a twice", retire("a"), ErrModelRetired, "a=retired b=candidate c=active"},
		{"rollback to a retired model", rollback, ErrNoRollback, "a=retired b=candidate c=active"},
		{"promote a retired model", promote("a"), ErrModelRetired, "a=retired b=candidate c=active"},
		{"promote an unknown model", promote("zz"), ErrNotFound, "a=retired b=candidate c=active"},
		{"raw write that breaks state/active", func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `UPDATE models SET active = 0 WHERE id = 'c'`)
			return err
		}, errAny, "a=retired b=candidate c=active"},
	}
	for _, s := range steps {
		err := db.Update(ctx, s.do)
		switch {
		case s.wantErr == nil && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case s.wantErr == errAny && err == nil, s.wantErr != nil && s.wantErr != errAny && !errors.Is(err, s.wantErr):
			t.Fatalf("%s: err %v; want %v", s.name, err, s.wantErr)
		}
		if got := modelStates(t, db); got != s.states {
			t.Fatalf("%s: states %q; want %q", s.name, got, s.states)
		}
	}
	acts, err := db.Activations(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, a := range acts {
		kinds = append(kinds, a.Kind+":"+a.PreviousID+">"+a.ModelID)
	}
	want := "promote:>a promote:a>b promote:b>c rollback:c>b rollback:b>a promote:a>c"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("activations %q; want %q", got, want)
	}
	if m, err := db.ActiveModel(ctx); err != nil || m.ID != "c" {
		t.Fatalf("active model %+v, %v", m, err)
	}
}

// errAny stands for "some error" in the step table.
var errAny = errors.New("any error")

// TestMigrationStateFromActive applies migrations up to 0004, writes models
// and promotions as older fracd did, then opens the database so that the
// lifecycle migration runs over them.
func TestMigrationStateFromActive(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := raw.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`)
	for _, m := range ms {
		if m.version > 4 {
			break
		}
		mustExec(m.sql)
		mustExec(`INSERT INTO schema_migrations VALUES (?, ?, '')`, m.version, m.name)
	}
	for i, id := range []string{"old", "cur", "new"} {
		mustExec(`INSERT INTO models(id, arch, weights_sha256, path, preprocess_version, threshold, registered_at, active)
			VALUES (?, 'resnet18', ?, 'w', 'pp', 0.5, '', ?)`, id, strings.Repeat(string(rune('a'+i)), 64), id == "cur")
	}
	// old activated, then cur (twice: a repeated activation is no change),
	// as rows of that schema (no keyed column yet).
	prev := GenesisHash
	for i, id := range []string{"old", "cur", "cur"} {
		ts := fmtTime(time.Now())
		h := entryHash(prev, int64(i+1), ts, "cli:admin", ActionModelPromoted, id, []byte("{}"))
		mustExec(`INSERT INTO audit(id, ts, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, 'cli:admin', ?, ?, '{}', ?, ?)`,
			i+1, ts, ActionModelPromoted, id, prev, h)
		prev = h
	}
	raw.Close()

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := modelStates(t, db); got != "cur=active new=candidate old=candidate" {
		t.Fatalf("migrated states %q", got)
	}
	if m, err := db.ActiveModel(ctx); err != nil || m.ID != "cur" || m.State != ModelActive {
		t.Fatalf("active model %+v, %v", m, err)
	}
	// The promotions found in the audit trail make rollback work at once.
	var plan RollbackPlan
	var act Activation
	if err := db.Update(ctx, func(tx *Tx) (err error) { plan, act, err = tx.RollbackModel(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	if plan.From != "cur" || plan.To != "old" || act.Kind != "rollback" || act.Undoes != plan.Undo.ID {
		t.Fatalf("rollback %+v %+v", plan, act)
	}
	if _, err := db.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestModelAuditNamesReplacedModel(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	registerTestModel(t, db, "a", 'a')
	registerTestModel(t, db, "b", 'b')
	for _, x := range []struct{ id, prev string }{{"a", ""}, {"b", "a"}} {
		err := db.Update(ctx, func(tx *Tx) error {
			if _, err := tx.PromoteModel(ctx, x.id); err != nil {
				return err
			}
			_, err := tx.AppendAudit(ctx, "cli:t", ActionModelPromoted, x.id, map[string]any{"previous": x.prev})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		model string
		want  int
	}{{"a", 2}, {"b", 1}, {"zz", 0}}
	for _, tc := range cases {
		rows, err := db.ModelAudit(ctx, tc.model)
		if err != nil || len(rows) != tc.want {
			t.Errorf("audit of %s: %d rows, %v; want %d", tc.model, len(rows), err, tc.want)
		}
	}
}
