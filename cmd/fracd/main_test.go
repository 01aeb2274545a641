package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/store"
)

// runFracd runs one command line in-process, as the binary would.
func runFracd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := NewMain()
	m.Stdin, m.Stdout, m.Stderr = strings.NewReader(""), &stdout, &stderr
	err := m.Run(context.Background(), args)
	return stdout.String(), stderr.String(), err
}

// seedDB makes a database with one model, three results (two flagged) and
// their audit rows, as the pipeline and the model commands write them.
func seedDB(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	db, path := newTestDB(t)
	defer db.Close()
	base := time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return base }
	sha := func(c byte) string { return strings.Repeat(string(c), 64) }
	err := db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.RegisterModel(ctx, store.Model{ID: "resnet18-test", Arch: "resnet18", WeightsSHA256: sha('f'), Path: "w.safetensors", PreprocessVersion: "pp-test", Threshold: 0.5}); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, "admin", store.ActionModelAdded, "resnet18-test", map[string]any{
			"weights_sha256": sha('f'), "arch": "resnet18", "threshold": 0.5, "preprocess_version": "pp-test"}); err != nil {
			return err
		}
		if err := tx.ActivateModel(ctx, "resnet18-test"); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, "admin", store.ActionModelPromoted, "resnet18-test", map[string]any{"forced": true, "reason": "test"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []float64{0.1, 0.6, 0.95} {
		db.Now = func() time.Time { return base.Add(time.Duration(i) * 24 * time.Hour) }
		err := db.Update(ctx, func(tx *store.Tx) error {
			s := sha(byte('a' + i))
			uid := fmt.Sprintf("2.25.10%d", i)
			in := store.Instance{SHA256: s, State: store.StateDone, StudyUID: "2.25.1", SOPInstanceUID: uid, Modality: "DX", BodyPart: "HAND"}
			if err := tx.InsertInstance(ctx, in); err != nil {
				return err
			}
			if _, err := tx.AppendAudit(ctx, "fracd", store.ActionArchived, s, store.ArchivedDetail(in, "test")); err != nil {
				return err
			}
			pr := store.Prediction{InstanceSHA256: s, ModelID: "resnet18-test", ModelSHA256: sha('f'), PreprocessVersion: "pp-test", Probability: p, Threshold: 0.5, Flagged: p >= 0.5}
			if _, err := tx.InsertPrediction(ctx, pr); err != nil {
				return err
			}
			_, err := tx.AppendAudit(ctx, "fracd", store.ActionPredicted, s, store.PredictedDetail(uid, pr))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestResultsEndToEnd(t *testing.T) {
	db := seedDB(t)
	cases := []struct {
		name string
		args []string
		want []string // SOP instance UIDs in order
	}{
		{"all", nil, []string{"2.25.100", "2.25.101", "2.25.102"}},
		{"flagged", []string{"--flagged"}, []string{"2.25.101", "2.25.102"}},
		{"since", []string{"--since", "2026-11-02"}, []string{"2.25.101", "2.25.102"}},
		{"until", []string{"--until", "2026-11-02T00:00:00Z"}, []string{"2.25.100"}},
		{"model", []string{"--model", "resnet18-test", "--limit", "2"}, []string{"2.25.100", "2.25.101"}},
		{"unknown model", []string{"--model", "nope"}, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := runFracd(t, append([]string{"--db", db, "results", "--format", "json"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var rs []store.Result
			if err := json.Unmarshal([]byte(out), &rs); err != nil {
				t.Fatalf("json output does not parse: %v\n%s", err, out)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.SOPInstanceUID)
				if r.ModelSHA256 == "" || r.PreprocessVersion != "pp-test" || r.ModelArch != "resnet18" {
					t.Errorf("result lacks its model: %+v", r)
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v; want %v", got, tc.want)
			}
		})
	}

	out, _, err := runFracd(t, "--db", db, "results", "--format", "csv", "--flagged")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 3 || recs[0][0] != "predicted_at" {
		t.Fatalf("csv = %q, %v", out, err)
	}
	out, _, err = runFracd(t, "--db", db, "results")
	if err != nil || !strings.Contains(out, "2.25.102") || !strings.Contains(out, "0.9500") {
		t.Fatalf("table = %q, %v", out, err)
	}
	for _, bad := range [][]string{{"--format", "xml"}, {"--since", "yesterday"}, {"--limit", "-1"}} {
		if _, _, err := runFracd(t, append([]string{"--db", db, "results"}, bad...)...); err == nil {
			t.Errorf("results %v: no error", bad)
		}
	}
	if _, _, err := runFracd(t, "--db", filepath.Join(t.TempDir(), "none.db"), "results"); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Fatalf("missing db: %v", err)
	}
}

func TestAuditListAndVerifyEndToEnd(t *testing.T) {
	db := seedDB(t)
	out, _, err := runFracd(t, "--db", db, "audit", "list", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var es []store.AuditEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil || len(es) != 8 {
		t.Fatalf("audit list json: %d rows, %v\n%s", len(es), err, out)
	}
	out, _, err = runFracd(t, "--db", db, "audit", "list", "--format", "json", "--action", "instance.", "--since", "2026-11-02")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &es); err != nil || len(es) != 4 {
		t.Fatalf("filtered audit list: %d rows, %v", len(es), err)
	}

	out, _, err = runFracd(t, "--db", db, "audit", "verify")
	if err != nil || !strings.Contains(out, "audit chain OK: 8 rows") || !strings.Contains(out, "predictions 3 checked; instances 3 checked") {
		t.Fatalf("verify = %q, %v", out, err)
	}
	first := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	headHash := first[len(first)-1]
	if _, _, err := runFracd(t, "--db", db, "audit", "verify", "--anchor", "8:"+headHash); err != nil {
		t.Fatalf("verify with a good anchor: %v", err)
	}
	if _, _, err := runFracd(t, "--db", db, "audit", "verify", "--anchor", "9:"+headHash); exitCode(err) != 2 {
		t.Fatalf("verify with an anchor past the end: %v", err)
	}

	// Tamper as someone with file access would, then verify must fail with
	// exit status 2 and name the row.
	raw, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.SQL().Exec(`DROP TRIGGER audit_no_update; UPDATE audit SET detail = '{"probability":0.01,"sop_instance_uid":"2.25.102"}' WHERE id = 8`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, _, err = runFracd(t, "--db", db, "audit", "verify")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "row 8") {
		t.Fatalf("verify after tampering: %v (exit %d); want exit 2 naming row 8", err, exitCode(err))
	}
}

// TestAuditVerifyAnchors checks --anchor against every row, not only the
// head, and refuses ids before the first row without panicking.
func TestAuditVerifyAnchors(t *testing.T) {
	db := seedDB(t)
	out, _, err := runFracd(t, "--db", db, "audit", "list", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var es []store.AuditEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil || len(es) != 8 {
		t.Fatalf("audit list: %d rows, %v", len(es), err)
	}
	other := strings.Repeat("0", 64)
	cases := []struct {
		anchor string
		exit   int // 0 OK, 1 bad flag, 2 chain does not match
	}{
		{"1:" + es[0].Hash, 0},
		{"2:" + es[1].Hash, 0},
		{"2:" + strings.ToUpper(es[1].Hash), 0},
		{"2:" + es[2].Hash, 2},
		{"3:" + other, 2},
		{"5:" + es[3].Hash, 2},
		{"9:" + es[7].Hash, 2},
		{"0:" + es[0].Hash, 1},
		{"-1:" + es[0].Hash, 1},
		{"x:" + es[0].Hash, 1},
		{"1:" + strings.Repeat("z", 64), 1},
		{"1", 1},
	}
	for _, tc := range cases {
		t.Run(tc.anchor, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("audit verify --anchor %s panicked: %v", tc.anchor, r)
					}
				}()
				_, _, err = runFracd(t, "--db", db, "audit", "verify", "--anchor", tc.anchor)
			}()
			got := 0
			if err != nil {
				got = exitCode(err)
			}
			if got != tc.exit {
				t.Fatalf("exit %d (%v); want %d", got, err, tc.exit)
			}
		})
	}
}

func TestQueryCommandsDoNotWrite(t *testing.T) {
	db := seedDB(t)
	before, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"results"}, {"audit", "list"}, {"audit", "verify"}, {"report"}, {"model", "list"}, {"model", "show", "resnet18-test"}} {
		if _, _, err := runFracd(t, append([]string{"--db", db}, args...)...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a query command changed the database file")
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // substring; "" means success
		check   func(Config) error
	}{
		{name: "defaults without a file", args: []string{"-c", ""}, check: func(c Config) error {
			if !reflect.DeepEqual(c, defaultConfig()) {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		}},
		{name: "repository config.yaml equals the defaults", args: []string{"-c", "../../config.yaml"}, check: func(c Config) error {
			if !reflect.DeepEqual(c, defaultConfig()) {
				return fmt.Errorf("config.yaml drifted from defaultConfig: %+v", c)
			}
			return nil
		}},
		{name: "file value", args: []string{"-c", write("a.yaml", "workers: 3\nsettle: 500ms\npaths:\n  inbox: /srv/inbox\n")}, check: func(c Config) error {
			if c.Workers != 3 || c.Settle != 500*time.Millisecond || c.Paths.Inbox != "/srv/inbox" || c.Paths.DB != "data/fracd.db" {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		}},
		{name: "env overrides file", args: []string{"-c", write("b.yaml", "workers: 3\n")}, env: map[string]string{"FRACD_WORKERS": "5", "FRACD_PATHS_ARCHIVE": "/a"}, check: func(c Config) error {
			if c.Workers != 5 || c.Paths.Archive != "/a" {
				return fmt.Errorf("got %+v", c)
			}
			return nil
		}},
		{name: "flag overrides env", args: []string{"-c", "", "--log-level", "debug"}, env: map[string]string{"FRACD_LOG_LEVEL": "warn"}, check: func(c Config) error {
			if c.Log.Level != "debug" {
				return fmt.Errorf("got %+v", c.Log)
			}
			return nil
		}},
		{name: "inflation bounds reach the pipeline", args: []string{"-c", write("i.yaml", "dicom:\n  max_inflate_ratio: 4\n  max_file_bytes: 1000000\n")}, check: func(c Config) error {
			pc := (&Main{Config: c}).pipelineConfig()
			if c.DICOM.MaxInflateRatio != 4 || pc.MaxInflateRatio != 4 || pc.MaxFileBytes != 1000000 {
				return fmt.Errorf("got %+v, pipeline %+v", c.DICOM, pc)
			}
			return nil
		}},
		{name: "inflate ratio below 1 names key", args: []string{"-c", write("j.yaml", "dicom:\n  max_inflate_ratio: 0.5\n")}, wantErr: "dicom.max_inflate_ratio"},
		{name: "unknown key names key and file", args: []string{"-c", write("c.yaml", "paths:\n  inbx: x\n")}, wantErr: "c.yaml: unknown key paths.inbx"},
		{name: "invalid duration names key", args: []string{"-c", write("d.yaml", "settle: soon\n")}, wantErr: "settle"},
		{name: "invalid value names key", args: []string{"-c", write("e.yaml", "workers: -2\nlog:\n  format: xml\n")}, wantErr: "workers: must be >= 0"},
		{name: "invalid enum names key", args: []string{"-c", write("f.yaml", "log:\n  format: xml\n")}, wantErr: "log.format"},
		{name: "unknown precision names key", args: []string{"-c", write("p.yaml", "model:\n  precision: fp8\n")}, wantErr: "model.precision"},
		{name: "missing explicit file", args: []string{"-c", filepath.Join(dir, "absent.yaml")}, wantErr: "absent.yaml"},
		{name: "safe private list", args: []string{"-c", write("h.yaml", "anonymize:\n  retain_safe_private: true\n  safe_private:\n    - {creator: ACME 1.0, group: 0x0011, element: 0x10}\n  clean_vocabulary: [wrist, scaphoid]\n")}, check: func(c Config) error {
			if len(c.Anonymize.SafePrivate) != 1 || c.Anonymize.SafePrivate[0] != (anonymize.PrivateAttr{Creator: "ACME 1.0", Group: 0x11, Element: 0x10}) || len(c.Anonymize.CleanVocabulary) != 2 {
				return fmt.Errorf("got %+v", c.Anonymize)
			}
			return nil
		}},
		{name: "not yaml", args: []string{"-c", write("g.yaml", "workers: [\n")}, wantErr: "g.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			m := NewMain()
			m.Stdout, m.Stderr = &stdout, &stderr
			err := m.Run(context.Background(), append(tc.args, "config", "--format", "json"))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var tree map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &tree); err != nil {
				t.Fatalf("config --format json does not parse: %v", err)
			}
			if err := tc.check(m.Config); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tree := map[string]any{"anonymize": map[string]any{"secret_file": "data/secret.key", "secret": "hunter2"}, "http": map[string]any{"token": "abc"}}
	redact(tree)
	if tree["anonymize"].(map[string]any)["secret"] != "<redacted>" || tree["http"].(map[string]any)["token"] != "<redacted>" {
		t.Fatalf("secret not redacted: %v", tree)
	}
	if tree["anonymize"].(map[string]any)["secret_file"] != "data/secret.key" {
		t.Fatal("a path to a secret was redacted")
	}
}

func TestVersionNeedsNoConfig(t *testing.T) {
	t.Setenv("FRACD_CONFIG", filepath.Join(t.TempDir(), "absent.yaml"))
	out, _, err := runFracd(t, "version")
	if err != nil || !strings.HasPrefix(out, "fracd ") {
		t.Fatalf("version = %q, %v", out, err)
	}
}

func TestLabelsEndToEnd(t *testing.T) {
	db := seedDB(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("paths:\n  db: %s\nanonymize:\n  secret_file: %s\n", db, filepath.Join(dir, "secret.key"))), 0o600)
	if _, _, err := runFracd(t, "-c", cfg, "label", "add", "2.25.101", "--deidentified", "--fractured"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runFracd(t, "-c", cfg, "label", "add", "2.25.101", "--deidentified", "--fractured"); err == nil {
		t.Fatal("a second label from the same source was accepted")
	}
	if _, _, err := runFracd(t, "-c", cfg, "label", "add", "2.25.101"); err == nil {
		t.Fatal("label without --fractured/--not-fractured accepted")
	}
	csvPath := filepath.Join(dir, "labels.csv")
	os.WriteFile(csvPath, []byte("file,sop_instance_uid,fractured\na,2.25.100,1\nb,2.25.102,1\n"), 0o600)
	out, _, err := runFracd(t, "-c", cfg, "label", "import", "--deidentified", csvPath)
	if err != nil || !strings.Contains(out, "imported 2") {
		t.Fatalf("import: %q %v", out, err)
	}
	os.WriteFile(csvPath, []byte("sop_instance_uid,fractured\n2.25.100,maybe\n"), 0o600)
	if _, _, err := runFracd(t, "-c", cfg, "label", "import", "--deidentified", "--source", "x", csvPath); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad csv: %v", err)
	}
	out, _, err = runFracd(t, "-c", cfg, "label", "list", "--format", "json")
	var ls []store.Label
	if err != nil || json.Unmarshal([]byte(out), &ls) != nil || len(ls) != 3 {
		t.Fatalf("label list: %q %v", out, err)
	}
	ro, err := store.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var n, agree int
	ro.SQL().QueryRow(`SELECT count(*), sum(flagged = label) FROM labelled_results`).Scan(&n, &agree)
	if n != 3 || agree != 2 {
		t.Fatalf("labelled_results: %d rows, %d agree; want 3 and 2", n, agree)
	}
	if es, _ := ro.ListAudit(context.Background(), store.AuditFilter{Action: store.ActionLabelAdded}); len(es) != 3 {
		t.Fatalf("%d label.added audit rows; want 3", len(es))
	}
	// The labels were audited with the key fracd made next to the database.
	if out, _, err := runFracd(t, "-c", cfg, "audit", "verify"); err != nil || !strings.Contains(out, "labels 3 checked") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}
