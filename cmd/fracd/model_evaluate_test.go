package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/evaluate"
	"github.com/fracd/fracd/store"
)

// evalSetup makes a config with its own database and registry, registers
// an untrained tiny model as the active one, and writes the image set of
// the train test (12 usable PNGs, one truncated).
func evalSetup(t *testing.T) (dir, conf, images, labels, modelID string) {
	t.Helper()
	dir = t.TempDir()
	images, labels = writeTrainSet(t, dir, 12)
	conf = filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("paths:\n  db: %s\n  models: %s\n", filepath.Join(dir, "fracd.db"), filepath.Join(dir, "models"))
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	weights := filepath.Join(dir, "tiny.safetensors")
	if _, _, err := runFracd(t, "-c", conf, "model", "init", "--untrained", "--arch", "basic[1,1,1,1]", "-o", weights); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runFracd(t, "-c", conf, "model", "add", weights, "--activate"); err != nil {
		t.Fatal(err)
	}
	return dir, conf, images, labels, "untrained-basic[1,1,1,1]-seed1"
}

func openDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.OpenReadOnly(context.Background(), filepath.Join(dir, "fracd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dbState is what a refused command must leave as it was.
func dbState(t *testing.T, dir string) (evaluations, auditRows int) {
	t.Helper()
	db := openDB(t, dir)
	es, err := db.Evaluations(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := db.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(es), len(audit)
}

func TestModelEvaluateImages(t *testing.T) {
	dir, conf, images, labels, modelID := evalSetup(t)
	groups := filepath.Join(dir, "groups.csv")
	var g strings.Builder
	g.WriteString("path,body_part\n")
	for i := 0; i <= 12; i++ {
		fmt.Fprintf(&g, "x%02d.png,%s\n", i, map[bool]string{true: "hand", false: "leg"}[i < 6])
	}
	if err := os.WriteFile(groups, []byte(g.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, preds := filepath.Join(dir, "report"), filepath.Join(dir, "preds.csv")
	args := []string{"-c", conf, "model", "evaluate", "--images", images, "--labels", labels, "--split", "all",
		"--groups", groups, "--out", out, "--predictions", preds, "--bootstrap", "300", "--seed", "5"}
	stdout, _, err := runFracd(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Evaluation of " + modelID, "labels.csv (sha256 ", "split all: 12 images, 1 undecodable skipped",
		"| ROC-AUC | ", "300 bootstrap resamples", "## Operating points", "## Calibration", "| hand | 6 | 3 |", "| leg | 6 | 3 |"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}

	// The report files.
	md, err := os.ReadFile(filepath.Join(out, evaluate.MarkdownFile))
	if err != nil || string(md) != stdout {
		t.Errorf("report.md differs from stdout (%v)", err)
	}
	raw, err := os.ReadFile(filepath.Join(out, evaluate.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep evaluate.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.N != 12 || rep.Positives != 6 || rep.Model != modelID || rep.ROCAUCCI == nil || rep.ROCAUCCI.Resamples != 300 ||
		rep.ROCAUCCI.Seed != 5 || len(rep.Groups) != 2 || rep.AtThreshold.Threshold != 0.5 {
		t.Errorf("report.json: %+v", rep)
	}
	for _, name := range []string{evaluate.ROCFile, evaluate.PRFile, evaluate.ReliabilityFile} {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if cfg, format, err := image.DecodeConfig(bytes.NewReader(b)); err != nil || format != "png" || cfg.Width < 300 {
			t.Errorf("%s: %s %dx%d %v", name, format, cfg.Width, cfg.Height, err)
		}
	}

	// The predictions file: one row per evaluated image, keyed by path.
	f, err := os.Open(preds)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != 13 || strings.Join(recs[0], ",") != "key,label,probability" {
		t.Fatalf("predictions CSV %v, %v", recs, err)
	}
	var ps []evaluate.Prediction
	for _, r := range recs[1:] {
		var p evaluate.Prediction
		p.Key = r[0]
		fmt.Sscan(r[1], &p.Label)
		fmt.Sscan(r[2], &p.Probability)
		ps = append(ps, p)
		if !strings.HasPrefix(p.Key, "x") || strings.Contains(p.Key, "/") {
			t.Errorf("key %q is not the path relative to --images", p.Key)
		}
	}
	if h := evaluate.DataHash(ps); h != rep.DataSHA256 {
		t.Errorf("data hash of the predictions file %s, report %s", h, rep.DataSHA256)
	}

	// The stored row and its audit row.
	db := openDB(t, dir)
	es, err := db.Evaluations(context.Background(), modelID, 0)
	if err != nil || len(es) != 1 {
		t.Fatalf("evaluations %+v, %v", es, err)
	}
	e := es[0]
	if e.N != 12 || e.DataSHA256 != rep.DataSHA256 || !strings.Contains(e.Dataset, "split all") {
		t.Errorf("stored evaluation %+v", e)
	}
	var stored evaluate.Report
	if err := json.Unmarshal(e.Metrics, &stored); err != nil || stored.ROCAUC != rep.ROCAUC || stored.Curves != nil {
		t.Errorf("stored metrics: %v, AUC %v vs %v, curves %v", err, stored.ROCAUC, rep.ROCAUC, stored.Curves != nil)
	}
	audit, err := db.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	last := audit[len(audit)-1]
	var detail struct {
		ID   int64  `json:"evaluation_id"`
		Hash string `json:"data_sha256"`
	}
	if last.Action != store.ActionModelEvaluated || last.Subject != modelID || json.Unmarshal(last.Detail, &detail) != nil ||
		detail.ID != e.ID || detail.Hash != e.DataSHA256 {
		t.Errorf("last audit row %+v", last)
	}
	if out, _, err := runFracd(t, "-c", conf, "audit", "verify"); err != nil {
		t.Errorf("audit verify: %v\n%s", err, out)
	}

	// The default split (val) is a subset: another data hash, a second row.
	// A FracAtlas-style dataset.csv beside the label file gives the groups.
	tags := "image_id,hand,leg,hip,shoulder,mixed\nx00.png,1,0,0,0,0\nx03.png,0,0,1,0,0\nx06.png,1,0,0,0,0\nx09.png,0,1,1,0,1\n"
	if err := os.WriteFile(filepath.Join(filepath.Dir(labels), "dataset.csv"), []byte(tags), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = runFracd(t, "-c", conf, "model", "evaluate", modelID, "--images", images, "--labels", labels, "--bootstrap", "0")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"split val: 4 images, 1 undecodable skipped, groups from dataset.csv", "| hand | 2 | 0 |", "| hip | 1 | 1 |", "| mixed | 1 | 1 |"} {
		if !strings.Contains(stdout, want) || strings.Contains(stdout, "bootstrap") {
			t.Errorf("val evaluation lacks %q (or has an interval):\n%s", want, stdout)
		}
	}
	if es, _ := db.Evaluations(context.Background(), modelID, 0); len(es) != 2 || es[0].DataSHA256 == rep.DataSHA256 || es[0].N != 4 {
		t.Errorf("after the val evaluation: %+v", es)
	}
}

func TestModelEvaluateRefusesBadInput(t *testing.T) {
	dir, conf, images, labels, _ := evalSetup(t)
	csvFile := func(body string) string {
		p := filepath.Join(t.TempDir(), "eval.csv")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := func(l string) []string { return []string{"--images", images, "--labels", l, "--split", "all"} }
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown image", files(csvFile("path,fractured\nx00.png,0\nnope.png,1\nx01.png,1\n")), "labels row 2: no such image"},
		{"duplicate row", files(csvFile("path,fractured\nx00.png,0\nx01.png,1\nx00.png,0\n")), "labels row 3: the same image as row 1"},
		{"label 2", files(csvFile("path,fractured\nx00.png,0\nx01.png,2\n")), "row 2: fractured value \"2\""},
		{"one class", files(csvFile("path,fractured\nx00.png,0\nx02.png,0\n")), "need both classes"},
		{"empty split", []string{"--images", images, "--labels", csvFile("path,fractured,split\nx00.png,0,train\nx01.png,1,train\n")}, "no rows in split val"},
		{"bad split flag", append(files(labels), "--split", "holdout"), "--split \"holdout\""},
		{"images without labels", []string{"--images", images}, "go together"},
		{"nothing to evaluate", nil, "--labelled"},
		{"labelled with images", append(files(labels), "--labelled"), "--labelled takes no"},
		{"negative bootstrap", append(files(labels), "--bootstrap", "-1"), "--bootstrap -1"},
		{"unknown model", append([]string{"no-such-model"}, files(labels)...), "no-such-model"},
		{"bad groups", append(files(labels), "--groups", csvFile("path,colour\nx00.png,red\n")), "no group or body_part column"},
		{"out is a file", append(files(labels), "--out", labels), "--out names a file"},
		{"predictions is a directory", append(files(labels), "--predictions", images), "--predictions names a directory"},
	}
	evBefore, auBefore := dbState(t, dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report")
			preds := filepath.Join(t.TempDir(), "preds.csv")
			// The case's own flags come last, so they win over these.
			args := []string{"-c", conf, "model", "evaluate", "--out", out, "--predictions", preds, "--bootstrap", "50"}
			args = append(args, tc.args...)
			stdout, _, err := runFracd(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want containing %q\n%s", err, tc.want, stdout)
			}
			if strings.Contains(err.Error(), "nope.png") {
				t.Errorf("the error names the image file: %v", err)
			}
			for _, p := range []string{out, preds} {
				if _, err := os.Stat(p); !os.IsNotExist(err) {
					t.Errorf("%s written by a refused command", filepath.Base(p))
				}
			}
			if ev, au := dbState(t, dir); ev != evBefore || au != auBefore {
				t.Errorf("evaluations %d -> %d, audit rows %d -> %d", evBefore, ev, auBefore, au)
			}
		})
	}
}

func TestModelEvaluateLabelled(t *testing.T) {
	db := seedDB(t) // model resnet18-test, three HAND results (0.1, 0.6, 0.95), UIDs 2.25.100-102
	dir := t.TempDir()
	label := func(uid string, fractured bool, source string) {
		t.Helper()
		flag := map[bool]string{true: "--fractured", false: "--not-fractured"}[fractured]
		if _, _, err := runFracd(t, "--db", db, "label", "add", "--deidentified", uid, flag, "--source", source); err != nil {
			t.Fatal(err)
		}
	}
	// No labels yet: refused.
	if _, _, err := runFracd(t, "--db", db, "model", "evaluate", "--labelled"); err == nil || !strings.Contains(err.Error(), "no stored predictions with labels") {
		t.Fatalf("without labels: %v", err)
	}
	label("2.25.100", false, "a")
	label("2.25.101", true, "a")
	label("2.25.102", true, "a")
	label("2.25.102", true, "b") // agrees: counted once
	out := filepath.Join(dir, "report")
	stdout, _, err := runFracd(t, "--db", db, "model", "evaluate", "--labelled", "--out", out, "--bootstrap", "100")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Evaluation of resnet18-test", "labelled results in the database: 3 instances", "| ROC-AUC | 1.0000",
		"| HAND | 3 | 2 | 1.0000 | 1.0000 | 1.0000 |"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(out, evaluate.ROCFile)); err != nil {
		t.Error(err)
	}
	sdb, err := store.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	es, err := sdb.Evaluations(context.Background(), "resnet18-test", 0)
	if err != nil || len(es) != 1 || es[0].N != 3 {
		t.Fatalf("evaluations %+v, %v", es, err)
	}
	want := evaluate.DataHash([]evaluate.Prediction{{Key: "2.25.100", Label: 0}, {Key: "2.25.101", Label: 1}, {Key: "2.25.102", Label: 1}})
	if es[0].DataSHA256 != want {
		t.Errorf("data hash %s, want %s", es[0].DataSHA256, want)
	}

	// A disagreeing label is refused and changes nothing.
	label("2.25.101", false, "b")
	audit, _ := sdb.ListAudit(context.Background(), store.AuditFilter{})
	if _, _, err := runFracd(t, "--db", db, "model", "evaluate", "--labelled"); err == nil || !strings.Contains(err.Error(), "2.25.101 has disagreeing labels") {
		t.Fatalf("disagreeing labels: %v", err)
	}
	if after, _ := sdb.ListAudit(context.Background(), store.AuditFilter{}); len(after) != len(audit) {
		t.Errorf("audit rows %d -> %d after a refusal", len(audit), len(after))
	}
}

func TestReadGroupsFracAtlasTags(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dataset.csv")
	body := "image_id,hand,leg,hip,shoulder,mixed,hardware\n" +
		"a.jpg,1,0,0,0,0,0\nb.jpg,0,1,0,0,0,1\nc.jpg,1,0,0,1,1,0\nd.jpg,0,0,0,0,0,0\ne.jpg,0,1,1,0,0,0\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := readGroups(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.jpg": "hand", "b.jpg": "leg", "c.jpg": "mixed", "d.jpg": "", "e.jpg": "mixed"}
	for k, v := range want {
		if g[k] != v {
			t.Errorf("%s: group %q, want %q", k, g[k], v)
		}
	}
}

// TestReadGroupsFracAtlas reads the real dataset.csv: every image of
// split.csv gets a body part.
func TestReadGroupsFracAtlas(t *testing.T) {
	root := filepath.Join("..", "..", "..", "shared", "fracatlas")
	if _, err := os.Stat(filepath.Join(root, "dataset.csv")); err != nil {
		t.Skipf("FracAtlas not present at %s (reference data lives outside the repository): %v", root, err)
	}
	g, err := readGroups(filepath.Join(root, "dataset.csv"))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, v := range g {
		count[v]++
	}
	t.Logf("FracAtlas body parts: %v", count)
	if len(g) != 3674 || count[""] != 0 || count["hand"] == 0 || count["mixed"] == 0 {
		t.Errorf("%d images, groups %v", len(g), count)
	}
}
