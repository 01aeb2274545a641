package training

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func tinyConfig(images, labels, runDir string) Config {
	return Config{Images: images, Labels: labels, RunDir: runDir, Arch: tinyArch, Epochs: 2, Batch: 4,
		LR: 0.01, Momentum: 0.9, WeightDecay: 1e-4, Gamma: 2, Alpha: -1, Seed: 1, Logger: quiet()}
}

// byThirds puts rows 0,3,6,… in val and the rest in train.
func byThirds(i int, _ bool) string {
	if i%3 == 0 {
		return "val"
	}
	return "train"
}

func TestLoadLabelsLayouts(t *testing.T) {
	dir := t.TempDir()
	img := synthImage(rand.New(rand.NewSource(7)), 40, 30, false)
	for _, p := range []string{"Fractured/a.jpg", "Non_fractured/b.jpg", "c.png", "sub/d.png"} {
		writePNG(t, filepath.Join(dir, "images", p), img)
	}
	cases := []struct {
		name, csv, layout string
		paths             []string // resolved, relative to images ("" missing)
		splits            []string
		wantErr           string
	}{
		{name: "fracatlas", csv: "image_id,split,fractured,resized_from\na.jpg,train,1,\nb.jpg,val,0,\nc.png,train,0,\nzz.jpg,val,1,\n",
			layout: LayoutFracAtlas, paths: []string{"Fractured/a.jpg", "Non_fractured/b.jpg", "c.png", ""}, splits: []string{"train", "val", "train", "val"}},
		{name: "fracatlas relabelled", csv: "image_id,split,fractured\nb.jpg,train,1\n",
			layout: LayoutFracAtlas, paths: []string{"Non_fractured/b.jpg"}, splits: []string{"train"}},
		{name: "generic with split", csv: "path,fractured,split\nsub/d.png,yes,validation\nc.png,false,test\n",
			layout: LayoutGeneric, paths: []string{"sub/d.png", "c.png"}, splits: []string{"val", "test"}},
		{name: "bom and label column", csv: "\ufeffFile,Label\nc.png,1\n", layout: LayoutGeneric, paths: []string{"c.png"}},
		{name: "escaping path", csv: "path,fractured\n../x.png,1\n", wantErr: "relative and inside"},
		{name: "absolute path", csv: "path,fractured\n/etc/passwd,1\n", wantErr: "relative and inside"},
		{name: "bad label", csv: "path,fractured\nc.png,maybe\n", wantErr: "row 1"},
		{name: "bad split", csv: "path,fractured,split\nc.png,1,holdout\n", wantErr: "split"},
		{name: "no label column", csv: "path,x\nc.png,1\n", wantErr: "fractured"},
		{name: "empty", csv: "path,fractured\n", wantErr: "no rows"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "labels.csv")
			if err := os.WriteFile(p, []byte(tc.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			ls, err := LoadLabels(p, filepath.Join(dir, "images"), 1)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ls.Layout != tc.layout {
				t.Errorf("layout %q, want %q", ls.Layout, tc.layout)
			}
			missing := 0
			for i, e := range ls.Examples {
				want := ""
				if tc.paths[i] != "" {
					want = filepath.Join(dir, "images", filepath.FromSlash(tc.paths[i]))
				} else {
					missing++
				}
				if e.Path != want {
					t.Errorf("row %d: path %q, want %q", e.Row, e.Path, want)
				}
				if tc.splits != nil && e.Split != tc.splits[i] {
					t.Errorf("row %d: split %q, want %q", e.Row, e.Split, tc.splits[i])
				}
			}
			if ls.Missing != missing {
				t.Errorf("missing %d, want %d", ls.Missing, missing)
			}
			if ls.SplitAssigned != (tc.splits == nil) {
				t.Errorf("SplitAssigned %v", ls.SplitAssigned)
			}
		})
	}
}

func TestAssignSplitsStratifiedSeeded(t *testing.T) {
	cases := []struct{ neg, pos int }{{10, 10}, {100, 30}, {7, 3}, {1, 0}}
	for _, tc := range cases {
		mk := func() []Example {
			var ex []Example
			for i := 0; i < tc.neg+tc.pos; i++ {
				ex = append(ex, Example{Row: i + 1, Fractured: i >= tc.neg})
			}
			return ex
		}
		a, b, c := mk(), mk(), mk()
		AssignSplits(a, 5)
		AssignSplits(b, 5)
		AssignSplits(c, 6)
		same, diff := true, false
		for i := range a {
			same = same && a[i].Split == b[i].Split
			diff = diff || a[i].Split != c[i].Split
		}
		if !same {
			t.Errorf("%d/%d: the same seed gave different splits", tc.neg, tc.pos)
		}
		if !diff && tc.neg+tc.pos > 5 {
			t.Errorf("%d/%d: another seed gave the same split", tc.neg, tc.pos)
		}
		ls := &LabelSet{Examples: a}
		for i := range ls.Examples {
			ls.Examples[i].Path = "x"
		}
		got := ls.Counts()
		for class, n := range [2]int{tc.neg, tc.pos} {
			tr, va := int(float64(n)*0.7+0.5), int(float64(n)*0.2+0.5)
			if tr+va > n {
				va = n - tr
			}
			want := map[string]int{SplitTrain: tr, SplitVal: va, SplitTest: n - tr - va}
			for s, w := range want {
				if got[s][class] != w {
					t.Errorf("%d/%d: %s class %d: %d, want %d", tc.neg, tc.pos, s, class, got[s][class], w)
				}
			}
		}
	}
}

func TestChooseThreshold(t *testing.T) {
	cases := []struct {
		name   string
		probs  []float32
		labels []float32
		want   float64
	}{
		{"separable", []float32{0.1, 0.2, 0.7, 0.9}, []float32{0, 0, 1, 1}, 0.45},
		{"one class", []float32{0.1, 0.9}, []float32{1, 1}, 0.5},
		// J is 0.5 at t=0.8 (1 TP of 2, no FP) and at t=0.3 (all TP, 1 FP
		// of 2): the tie goes to the more sensitive, lower threshold.
		{"tie goes lower", []float32{0.8, 0.6, 0.3, 0.1}, []float32{1, 0, 1, 0}, 0.2},
		{"ties in probability", []float32{0.5, 0.5, 0.5, 0.2}, []float32{1, 0, 1, 0}, 0.35},
		{"lowest cut", []float32{0.2, 0.4}, []float32{1, 0}, 0.2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ChooseThreshold(tc.probs, tc.labels)
			if math.Abs(got-tc.want) > 1e-6 {
				t.Errorf("threshold %v, want %v", got, tc.want)
			}
		})
	}
}

// cancelAfter is a Recorder that records events and cancels training once
// a given epoch is committed, as Ctrl-C would.
type cancelAfter struct {
	epoch  int
	cancel context.CancelFunc
	events []string
	last   RunRecord
}

func (c *cancelAfter) RecordRun(_ context.Context, event string, r RunRecord) error {
	c.events = append(c.events, event+":"+r.Status)
	c.last = r
	if event == "epoch" && len(r.Metrics.Epochs) == c.epoch && c.cancel != nil {
		c.cancel()
	}
	return nil
}

// TestRunResumeEqualsUninterrupted covers the seed's plain recipe and the
// full one (augmentation, cosine schedule, weight EMA, flip TTA): with each,
// a run stopped after epoch 1 and resumed gives the uninterrupted weights.
func TestRunResumeEqualsUninterrupted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		recipe func(*Config)
	}{
		{"seed", func(*Config) {}},
		{"recipe", func(c *Config) {
			c.Augment, c.Schedule, c.WarmupEpochs, c.EMA, c.TTA, c.Patience = DefaultAugment, ScheduleCosine, 0.5, 0.9, true, 5
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { testResumeEqualsUninterrupted(t, tc.recipe) })
	}
}

func testResumeEqualsUninterrupted(t *testing.T, recipe func(*Config)) {
	dir := t.TempDir()
	truncated := writePNG(t, filepath.Join(dir, "scratch", "t.png"), synthImage(rand.New(rand.NewSource(7)), 64, 64, true))
	bad := map[string][]byte{
		"truncated.png": truncated[:len(truncated)/2],
		"notimage.png":  []byte("this is not an image"),
		"gone.png":      nil, // listed, never written
	}
	images, labels := synthSet(t, dir, 8, 7, byThirds, bad)

	// Uninterrupted: two epochs.
	full := tinyConfig(images, labels, filepath.Join(dir, "full"))
	recipe(&full)
	rec := &cancelAfter{}
	full.Recorder = rec
	res, err := Run(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Epochs) != 2 {
		t.Fatalf("%d epochs, want 2", len(res.Epochs))
	}
	for _, e := range res.Epochs {
		if math.IsNaN(e.TrainLoss) || math.IsInf(e.TrainLoss, 0) || e.TrainLoss <= 0 {
			t.Errorf("epoch %d: train loss %v", e.Epoch, e.TrainLoss)
		}
		if e.TrainAcc <= 0 || e.TrainAcc > 1 {
			t.Errorf("epoch %d: training accuracy %v", e.Epoch, e.TrainAcc)
		}
		if e.ValAUC < 0 || e.ValAUC > 1 || e.Threshold <= 0 || e.Threshold >= 1 {
			t.Errorf("epoch %d: auc %v threshold %v", e.Epoch, e.ValAUC, e.Threshold)
		}
	}
	if res.Epochs[1].Steps != 2*int64(res.Data.Counts[SplitTrain][0]+res.Data.Counts[SplitTrain][1]+3)/4 {
		t.Errorf("steps after 2 epochs: %d", res.Epochs[1].Steps)
	}
	wantEvents := "started:running epoch:running epoch:running finished:finished"
	if got := strings.Join(rec.events, " "); got != wantEvents {
		t.Errorf("events %q, want %q", got, wantEvents)
	}
	// Undecodable and missing images are skipped and counted by reason.
	wantSkip := map[string]int{SkipDecode: 2, SkipMissing: 1}
	if len(res.Data.Skipped) != len(wantSkip) || res.Data.Skipped[SkipDecode] != 2 || res.Data.Skipped[SkipMissing] != 1 {
		t.Errorf("skipped %v, want %v", res.Data.Skipped, wantSkip)
	}
	if res.Data.Listed != 18 || res.Data.Used != 15 {
		t.Errorf("listed %d used %d, want 18 and 15", res.Data.Listed, res.Data.Used)
	}
	for _, s := range res.Skipped {
		if s.Reason == SkipDecode && len(s.SHA256) != 64 {
			t.Errorf("skipped row %d not named by content hash", s.Row)
		}
	}

	// Interrupted after epoch 1 (cancel as SIGINT does), then resumed.
	part := tinyConfig(images, labels, filepath.Join(dir, "part"))
	recipe(&part)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prec := &cancelAfter{epoch: 1, cancel: cancel}
	part.Recorder = prec
	_, err = Run(ctx, part)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted run: err %v, want ErrInterrupted", err)
	}
	if prec.last.Status != StatusFailed || !strings.Contains(prec.last.Metrics.Reason, "interrupted after epoch 1") || len(prec.last.Metrics.Epochs) != 1 {
		t.Errorf("interrupted run recorded %+v", prec.last)
	}
	if _, err := Run(context.Background(), part); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("rerun without --resume: err %v", err)
	}
	part.Resume = true
	prec2 := &cancelAfter{}
	part.Recorder = prec2
	res2, err := Run(context.Background(), part)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(prec2.events, " "); got != "resumed:running epoch:running finished:finished" {
		t.Errorf("resumed events %q", got)
	}
	if res2.RunID != prec.last.ID {
		t.Errorf("resumed run id %q, want %q", res2.RunID, prec.last.ID)
	}
	for i := range res.Epochs {
		a, b := res.Epochs[i], res2.Epochs[i]
		a.Seconds, b.Seconds = 0, 0
		if a != b {
			t.Errorf("epoch %d: uninterrupted %+v, resumed %+v", i+1, a, b)
		}
	}
	for _, f := range []string{ckptName(2), BestFile} {
		if !bytes.Equal(tensorBytes(t, filepath.Join(full.RunDir, f)), tensorBytes(t, filepath.Join(part.RunDir, f))) {
			t.Errorf("%s: weights of the resumed run differ from the uninterrupted run's", f)
		}
	}
	// …and training did change them, so the comparison is not of two
	// untouched initialisations.
	init, err := classifier.New(tinyArch, 1)
	if err != nil {
		t.Fatal(err)
	}
	initPath := filepath.Join(dir, "init.safetensors")
	if err := init.Save(initPath, init.Info()); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(tensorBytes(t, initPath), tensorBytes(t, filepath.Join(full.RunDir, BestFile))) {
		t.Errorf("the best model still has its initial weights")
	}
	if _, err := os.Stat(filepath.Join(part.RunDir, ckptName(1))); !os.IsNotExist(err) {
		t.Errorf("superseded checkpoint kept: %v", err)
	}

	// best.safetensors loads and carries the contract inference checks.
	m, err := classifier.Load(res.BestPath)
	if err != nil {
		t.Fatal(err)
	}
	info := m.Info()
	be := res.Epochs[res.BestEpoch-1]
	if info.PreprocessVersion != preprocess.Version || info.TrainingRun != res.RunID || info.ID != res.ModelID ||
		math.Abs(info.Threshold-be.Threshold) > 1e-9 || info.InputSize != preprocess.Size || info.Arch != tinyArch ||
		(info.TTA == classifier.TTAFlip) != full.TTA {
		t.Errorf("best model info %+v (best epoch %+v)", info, be)
	}
	// Resuming with other settings is refused.
	part.LR = 0.02
	if _, err := Run(context.Background(), part); err == nil || !strings.Contains(err.Error(), "settings differ") {
		t.Errorf("resume with another lr: err %v", err)
	}
}

func TestRunLearnsTheBar(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few epochs")
	}
	dir := t.TempDir()
	images, labels := synthSet(t, dir, 12, 12, byThirds, nil)
	cfg := tinyConfig(images, labels, filepath.Join(dir, "run"))
	cfg.Epochs = 3
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Chance is 0.5; a model that sees the bar ranks the validation
	// positives above the negatives.
	if best := res.Epochs[res.BestEpoch-1]; best.ValAUC < 0.75 {
		t.Errorf("best validation ROC-AUC %.3f after %d epochs: the bar was not learnt (%+v)", best.ValAUC, cfg.Epochs, res.Epochs)
	}
}

func TestStoreRecorder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	images, labels := synthSet(t, dir, 6, 6, nil, nil) // split assigned: 4+4 train, 1+1 val, 1+1 test
	db, err := store.Open(ctx, filepath.Join(dir, "fracd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := tinyConfig(images, labels, filepath.Join(dir, "run"))
	cfg.Recorder = &StoreRecorder{DB: db, Actor: "test"}
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Data.Counts; c[SplitTrain] != [2]int{4, 4} || c[SplitVal] != [2]int{1, 1} || c[SplitTest] != [2]int{1, 1} {
		t.Errorf("assigned split counts %v", c)
	}
	var status, params, metrics, fin string
	err = db.SQL().QueryRowContext(ctx, `SELECT status, params, metrics, finished_at FROM training_runs WHERE id = ?`, res.RunID).
		Scan(&status, &params, &metrics, &fin)
	if err != nil {
		t.Fatal(err)
	}
	var m RunMetrics
	if err := json.Unmarshal([]byte(metrics), &m); err != nil {
		t.Fatal(err)
	}
	var p Params
	if err := json.Unmarshal([]byte(params), &p); err != nil {
		t.Fatal(err)
	}
	if status != StatusFinished || fin == "" || len(m.Epochs) != 2 || m.BestEpoch < 1 || p != res.Params {
		t.Errorf("row: status %q finished %q metrics %+v params %+v", status, fin, m, p)
	}
	audit, err := db.ListAudit(ctx, store.AuditFilter{Action: store.ActionTrainingRun, Subject: res.RunID})
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, a := range audit {
		var d struct{ Event, Status string }
		if err := json.Unmarshal(a.Detail, &d); err != nil {
			t.Fatal(err)
		}
		events = append(events, d.Event+":"+d.Status)
	}
	if got := strings.Join(events, " "); got != "started:running epoch:running epoch:running finished:finished" {
		t.Errorf("audit events %q", got)
	}
	if _, err := db.VerifyAudit(ctx); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}

// TestFracAtlasLabels loads and splits the real label file (no training):
// the counts per split are the README's, every row finds its image, and
// the labels agree with the dataset's own tags.
func TestFracAtlasLabels(t *testing.T) {
	root := filepath.Join("..", "..", "shared", "fracatlas")
	if _, err := os.Stat(filepath.Join(root, "split.csv")); err != nil {
		t.Skipf("FracAtlas not present at %s (reference data lives outside the repository): %v", root, err)
	}
	ls, err := LoadLabels(filepath.Join(root, "split.csv"), filepath.Join(root, "images"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if ls.Layout != LayoutFracAtlas || ls.SplitAssigned || ls.Missing != 0 {
		t.Errorf("layout %q assigned %v missing %d", ls.Layout, ls.SplitAssigned, ls.Missing)
	}
	c := ls.Counts()
	t.Logf("FracAtlas: %s", c)
	if n := c[SplitTrain][0] + c[SplitTrain][1]; n != 2858 {
		t.Errorf("train %d images, README says 2858", n)
	}
	if n := c[SplitVal][0] + c[SplitVal][1]; n != 816 {
		t.Errorf("val %d images, README says 816", n)
	}
	if _, ok := c[SplitTest]; ok {
		t.Errorf("test split present; it is withheld")
	}
	// Stratified: the fractured share of train and val agree within 1 point.
	ft := float64(c[SplitTrain][1]) / 2858
	fv := float64(c[SplitVal][1]) / 816
	if math.Abs(ft-fv) > 0.01 {
		t.Errorf("fractured share train %.3f val %.3f: not stratified", ft, fv)
	}
	// Labels agree with dataset.csv and with the class folder.
	f, err := os.Open(filepath.Join(root, "dataset.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	tag := map[string]bool{}
	for _, r := range recs[1:] {
		tag[r[col["image_id"]]] = r[col["fractured"]] == "1"
	}
	for _, e := range ls.Examples {
		id := filepath.Base(e.Path)
		if y, ok := tag[id]; !ok || y != e.Fractured {
			t.Errorf("row %d: split.csv fractured=%v, dataset.csv %v (present %v)", e.Row, e.Fractured, y, ok)
		}
		if want := map[bool]string{true: "Fractured", false: "Non_fractured"}[e.Fractured]; filepath.Base(filepath.Dir(e.Path)) != want {
			t.Errorf("row %d: labelled %v but found in %s", e.Row, e.Fractured, filepath.Dir(e.Path))
		}
	}
}

// BenchmarkBuildCachesFracAtlas decodes and preprocesses the whole of
// FracAtlas into the plane cache and reports how many images were skipped.
// Run: go test ./training -run '^$' -bench BuildCachesFracAtlas -benchtime 1x
func BenchmarkBuildCachesFracAtlas(b *testing.B) {
	root := filepath.Join("..", "..", "shared", "fracatlas")
	ls, err := LoadLabels(filepath.Join(root, "split.csv"), filepath.Join(root, "images"), 1)
	if err != nil {
		b.Skipf("FracAtlas not present at %s: %v", root, err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		caches, skipped, err := BuildCaches(context.Background(), ls, 0)
		if err != nil {
			b.Fatal(err)
		}
		d := summarise(ls, caches, skipped)
		b.ReportMetric(float64(d.Used), "used")
		b.ReportMetric(float64(d.Skipped[SkipDecode]), "undecodable")
		b.ReportMetric(d.CacheMB, "cache-MiB")
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(len(ls.Examples))/float64(i+1), "ms/image")
		if i == 0 {
			b.Logf("%s; skipped %v", d.Counts, d.Skipped)
		}
	}
}

// TestRunInitAndInputSize fine-tunes a model trained at the seed's 224 px
// at another plane size: the run starts from the given weights (not a
// fresh init), the kept model carries the new size and its preprocessing
// version, and a resume refuses a changed init model.
func TestRunInitAndInputSize(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few epochs")
	}
	dir := t.TempDir()
	images, labels := synthSet(t, dir, 6, 6, byThirds, nil)
	base := tinyConfig(images, labels, filepath.Join(dir, "base"))
	base.Epochs = 1
	first, err := Run(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	initModel, err := classifier.Load(first.BestPath)
	if err != nil {
		t.Fatal(err)
	}

	cfg := tinyConfig(images, labels, filepath.Join(dir, "fine"))
	// Another seed: a fresh initialisation would differ from the init model.
	cfg.Epochs, cfg.Init, cfg.InputSize, cfg.LR, cfg.Seed = 1, first.BestPath, 96, 1e-9, 7
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Params.InputSize != 96 || res.Params.InitSHA256 != initModel.Info().WeightsSHA256 ||
		res.Params.PreprocessVersion != preprocess.VersionFor(96) {
		t.Errorf("params = %+v", res.Params)
	}
	fine, err := classifier.Load(res.BestPath)
	if err != nil {
		t.Fatal(err)
	}
	info := fine.Info()
	if info.InputSize != 96 || info.PreprocessVersion != preprocess.VersionFor(96) {
		t.Errorf("kept model: input %d, preprocessing %q", info.InputSize, info.PreprocessVersion)
	}
	// With a learning rate of 1e-9 one epoch barely moves the weights: the
	// fine-tuned model must still be the init model, not a fresh one.
	w0, w1 := safetensorF32(t, first.BestPath, "conv1.weight"), safetensorF32(t, res.BestPath, "conv1.weight")
	if len(w0) == 0 || len(w0) != len(w1) {
		t.Fatalf("conv1.weight: %d and %d values", len(w0), len(w1))
	}
	var maxDiff float64
	for i := range w0 {
		maxDiff = max(maxDiff, math.Abs(float64(w0[i]-w1[i])))
	}
	if maxDiff > 1e-3 {
		t.Errorf("fine-tuned weights moved by up to %g from the init model: not started from it", maxDiff)
	}

	// A changed init model is refused on resume.
	other := tinyConfig(images, labels, filepath.Join(dir, "other"))
	other.Epochs = 1
	second, err := Run(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resume, cfg.Epochs, cfg.Init = true, 2, second.BestPath
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "settings differ") {
		t.Errorf("resume with another init model: %v", err)
	}
}

// safetensorF32 reads one F32 tensor of a safetensors file (8-byte LE
// header length, JSON header, data).
func safetensorF32(t *testing.T, path, name string) []float32 {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &hdr); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	var ti struct {
		Dtype   string `json:"dtype"`
		Offsets [2]int `json:"data_offsets"`
	}
	if err := json.Unmarshal(hdr[name], &ti); err != nil || ti.Dtype != "F32" {
		t.Fatalf("%s: tensor %s: %v (dtype %q)", path, name, err, ti.Dtype)
	}
	data := raw[8+n+uint64(ti.Offsets[0]) : 8+n+uint64(ti.Offsets[1])]
	out := make([]float32, len(data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return out
}

type fakeBar struct {
	mu         sync.Mutex
	what       string
	total      int64
	done       int64
	finishedAt int64 // done when Finish was called; -1 before
}

func (b *fakeBar) Add(n int64) { b.mu.Lock(); b.done += n; b.mu.Unlock() }
func (b *fakeBar) Finish()     { b.mu.Lock(); b.finishedAt = b.done; b.mu.Unlock() }

// TestRunProgress: with Config.Progress, preprocessing, every epoch and
// every validation pass report one bar each, counted to its total and
// finished.
func TestRunProgress(t *testing.T) {
	dir := t.TempDir()
	images, labels := synthSet(t, dir, 5, 4, byThirds, map[string][]byte{"broken.png": []byte("not a png")})
	cfg := tinyConfig(images, labels, filepath.Join(dir, "run"))
	var bars []*fakeBar
	cfg.Progress = func(what, unit string, total int64) Progress {
		b := &fakeBar{what: what, total: total, finishedAt: -1}
		bars = append(bars, b)
		return b
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"training: preprocessing", "training: epoch 1/2", "training: validating epoch 1", "training: epoch 2/2", "training: validating epoch 2"}
	if len(bars) != len(want) {
		t.Fatalf("%d bars, want %d", len(bars), len(want))
	}
	for i, b := range bars {
		if b.what != want[i] {
			t.Errorf("bar %d is %q, want %q", i, b.what, want[i])
		}
		if b.total <= 0 || b.done != b.total || b.finishedAt != b.total {
			t.Errorf("%s: done %d of %d, finished at %d", b.what, b.done, b.total, b.finishedAt)
		}
	}
	if got := bars[0].total; got != int64(res.Data.Listed) {
		t.Errorf("preprocessing bar total %d, want every listed row (%d)", got, res.Data.Listed)
	}
}
