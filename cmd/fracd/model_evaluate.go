package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/spf13/cobra"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/evaluate"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
	"github.com/fracd/fracd/training"
)

// evalFlags are model evaluate's flags.
type evalFlags struct {
	images, labels, split, groups string
	labelled, archive             bool
	archiveSplit                  string // with --archive: only this stored patient split
	out, predictions              string
	bootstrap                     int
	seed, splitSeed               int64
	precision                     string
}

// splitAll evaluates every row of the label file.
const splitAll = "all"

// evalBatch is the inference batch: the classifier runs at most 8 images
// per graph anyway.
const evalBatch = 8

func newModelEvaluateCmd(m *Main) *cobra.Command {
	var f evalFlags
	cmd := &cobra.Command{
		Use:   "evaluate [MODEL] (--split val|test | --archive | --labelled | --images DIR --labels CSV [--split val|test|train|all])",
		Short: "Measure a registered model (default: the active one) on labelled images or on the labelled results in the database",
		Long: `Runs the model on labelled images (--images/--labels, the label files of
fracd train; default split val, and for FracAtlas the body part of each
image from dataset.csv beside the label file or --groups), or takes the
model's stored predictions that have labels (--labelled; groups are the
instances' body parts), or re-scores the labelled de-identified archive
(--archive; with --split, or --split alone, only the patients fracd train
--from-db stored in that split), and reports ROC-AUC with a bootstrap interval,
average precision, the figures at the model's threshold, operating points,
calibration and a per-group breakdown.

The Markdown summary goes to stdout; --out DIR also writes report.md,
report.json, roc.png, pr.png and reliability.png, and --predictions FILE the
per-image key,label,probability rows (key: the image path relative to
--images, or the de-identified SOP Instance UID). Each evaluation is stored
in the database with an audit row. Bad input (a row of the chosen split
without its image, a duplicate row, a label that is not 0/1 - or, as for
fracd train, true/false or yes/no -, a set with one class only) is refused
with the row number, and then nothing is written or stored. Images that
exist but cannot be decoded are skipped and counted, as in training.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runModelEvaluate(cmd.Context(), m, cmd, args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.images, "images", "", "image directory (with --labels)")
	fl.StringVar(&f.labels, "labels", "", "label CSV: FracAtlas split.csv or path,fractured[,split] (with --images)")
	fl.StringVar(&f.split, "split", training.SplitVal, "which rows of the label file, or alone (or with --archive) which patients of the labelled archive as fracd train --from-db split them: train, val, test or all")
	fl.StringVar(&f.groups, "groups", "", "CSV giving each image's group: image_id or path, and group/body_part or FracAtlas's hand,leg,hip,shoulder,mixed (default: dataset.csv beside --labels, if present)")
	fl.BoolVar(&f.labelled, "labelled", false, "evaluate the model's stored predictions that have labels")
	fl.BoolVar(&f.archive, "archive", false, "run the model on every labelled de-identified archive instance (the same cases for any model: what promote compares)")
	fl.StringVar(&f.out, "out", "", "directory for report.md, report.json, roc.png, pr.png, reliability.png")
	fl.StringVar(&f.predictions, "predictions", "", "write the evaluated key,label,probability rows to this CSV")
	fl.IntVar(&f.bootstrap, "bootstrap", evaluate.DefaultBootstrap, "bootstrap resamples for the ROC-AUC interval (0: none)")
	fl.Int64Var(&f.seed, "seed", 1, "bootstrap seed")
	fl.StringVar(&f.precision, "precision", "", "inference precision, f32 or bf16 (default: model.precision); a bf16 evaluation names it in its dataset")
	fl.Int64Var(&f.splitSeed, "split-seed", 1, "for a label file without a split column: the seed of its 70/20/10 split (default: the model's training run seed, else 1)")
	return cmd
}

func (f *evalFlags) check(cmd *cobra.Command) error {
	fromFiles := f.images != "" || f.labels != ""
	if !f.archive && !f.labelled && !fromFiles && cmd.Flags().Changed("split") {
		f.archive = true // --split alone: the archive's stored patient split
	}
	if !f.archive || !cmd.Flags().Changed("split") {
		f.archiveSplit = ""
	} else {
		f.archiveSplit = f.split
	}
	if f.archive {
		if f.labelled || fromFiles || f.groups != "" || cmd.Flags().Changed("split-seed") {
			return errors.New("model evaluate: --archive takes no --labelled, --images, --labels, --split-seed or --groups")
		}
		f.labelled = true // the same checks as --labelled from here on
		defer func() { f.labelled = false }()
	}
	switch {
	case f.labelled && (fromFiles || (cmd.Flags().Changed("split") && !f.archive) || f.groups != "" || cmd.Flags().Changed("split-seed")):
		return errors.New("model evaluate: --labelled takes no --images, --labels, --split, --split-seed or --groups")
	case !f.labelled && !fromFiles:
		return errors.New("model evaluate: give --images DIR --labels CSV, --split val|test (the archive's patient splits), --archive or --labelled")
	case !f.labelled && (f.images == "" || f.labels == ""):
		return errors.New("model evaluate: --images and --labels go together")
	case f.bootstrap < 0:
		return fmt.Errorf("model evaluate: --bootstrap %d: want 0 (none) or more", f.bootstrap)
	}
	switch f.split {
	case training.SplitTrain, training.SplitVal, training.SplitTest, splitAll:
	default:
		return fmt.Errorf("model evaluate: --split %q: want train, val, test or all", f.split)
	}
	return nil
}

func runModelEvaluate(ctx context.Context, m *Main, cmd *cobra.Command, args []string, f evalFlags) error {
	if err := f.check(cmd); err != nil {
		return err
	}
	// Everything is read through a read-only handle: a refused command
	// must not even create or migrate the database.
	rdb, err := store.OpenReadOnly(ctx, m.Config.Paths.DB)
	if err != nil {
		return err
	}
	defer rdb.Close()
	var model store.Model
	if len(args) == 1 {
		model, err = rdb.Model(ctx, args[0])
	} else if model, err = rdb.ActiveModel(ctx); errors.Is(err, store.ErrNotFound) {
		err = errors.New("model evaluate: no model is active: name one (fracd model list)")
	}
	if err != nil {
		return err
	}

	if f.precision == "" {
		f.precision = m.Config.Model.Precision
	}
	if _, err := classifier.ParsePrecision(f.precision); err != nil {
		return fmt.Errorf("model evaluate: --precision: %w", err)
	}
	var preds []evaluate.Prediction
	var dataset string
	if f.archive {
		preds, dataset, err = archivePredictions(ctx, rdb, model, f.archiveSplit, f.precision, m.trainingProgress(progressLogEvery))
	} else if f.labelled {
		preds, dataset, err = labelledPredictions(ctx, rdb, model)
	} else {
		if !cmd.Flags().Changed("split-seed") {
			f.splitSeed = trainingSeed(ctx, m, rdb, model)
		}
		preds, dataset, err = imagePredictions(ctx, m, model, f)
	}
	if err != nil {
		return err
	}
	if !f.labelled && f.precision == string(classifier.PrecisionBF16) {
		dataset += " precision=bf16" // not the same measurement as f32's
	}
	n := f.bootstrap
	if n == 0 {
		n = -1 // evaluate's "none"
	}
	rep, err := evaluate.Evaluate(preds, evaluate.Options{Threshold: model.Threshold, Bootstrap: n, Seed: f.seed,
		Model: model.ID, Dataset: dataset})
	if err != nil {
		return fmt.Errorf("model evaluate: %w", err)
	}

	// Render everything before recording anything: a failure here leaves
	// no trace. After the row is stored, a failed file write is reported
	// but the (audited) evaluation stands; a report file without its audit
	// row would be the worse half.
	var files map[string][]byte
	if f.out != "" {
		if files, err = evaluate.Render(rep); err != nil {
			return fmt.Errorf("model evaluate: %w", err)
		}
	}
	var md bytes.Buffer
	if err := evaluate.WriteMarkdown(&md, rep); err != nil {
		return fmt.Errorf("model evaluate: %w", err)
	}
	metrics, err := json.Marshal(rep.Summary())
	if err != nil {
		return fmt.Errorf("model evaluate: encode metrics: %w", err)
	}
	// Destinations that cannot work are refused before the row is stored.
	if st, err := os.Stat(f.out); f.out != "" && err == nil && !st.IsDir() {
		return errors.New("model evaluate: --out names a file, not a directory")
	}
	if st, err := os.Stat(f.predictions); f.predictions != "" && err == nil && st.IsDir() {
		return errors.New("model evaluate: --predictions names a directory, not a file")
	}
	rdb.Close()
	db, err := m.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	ev := &store.Evaluation{ModelID: model.ID, Dataset: dataset, DataSHA256: rep.DataSHA256, N: rep.N, Metrics: metrics}
	if err := db.InsertEvaluation(ctx, actor(), ev); err != nil {
		return fmt.Errorf("model evaluate: %w", err)
	}
	m.Logger.Info("model evaluate: stored", "evaluation_id", ev.ID, "model", model.ID, "n", rep.N,
		"roc_auc", rep.ROCAUC, "data_sha256", rep.DataSHA256)

	if files != nil {
		if err := evaluate.WriteFiles(f.out, files); err != nil {
			return fmt.Errorf("model evaluate: evaluation %d stored, but: %w", ev.ID, err)
		}
	}
	if f.predictions != "" {
		if err := writePredictionsCSV(f.predictions, preds); err != nil {
			return fmt.Errorf("model evaluate: evaluation %d stored, but: %w", ev.ID, err)
		}
	}
	_, err = m.Stdout.Write(md.Bytes())
	return err
}

// trainingSeed is the seed the model's training run split its label file
// with, so that evaluating "val" of a file without a split column gets the
// run's validation images and not images it trained on; 1 (fracd train's
// default) when the model has no recorded run.
func trainingSeed(ctx context.Context, m *Main, db *store.DB, model store.Model) int64 {
	if model.TrainingRunID == "" {
		return 1
	}
	raw, err := db.TrainingRunParams(ctx, model.TrainingRunID)
	var p struct {
		Seed *int64 `json:"seed"`
	}
	if err != nil || json.Unmarshal(raw, &p) != nil || p.Seed == nil {
		m.Logger.Warn("model evaluate: the model's training run has no recorded seed; an assigned split uses seed 1",
			"training_run", model.TrainingRunID)
		return 1
	}
	return *p.Seed
}

// imagePredictions runs the model on the chosen split of a label file.
func imagePredictions(ctx context.Context, m *Main, model store.Model, f evalFlags) ([]evaluate.Prediction, string, error) {
	ls, err := training.LoadLabels(f.labels, f.images, f.splitSeed)
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	// Every row of the file must be a distinct image: a duplicate anywhere
	// would weigh an image twice, or put it on both sides of a split.
	first := map[string]int{}
	for _, e := range ls.Examples {
		if e.Path == "" {
			continue
		}
		if r, dup := first[e.Path]; dup {
			return nil, "", fmt.Errorf("model evaluate: labels row %d: the same image as row %d", e.Row, r)
		}
		first[e.Path] = e.Row
	}
	var sel []training.Example
	for _, e := range ls.Examples {
		if f.split != splitAll && e.Split != f.split {
			continue
		}
		if e.Path == "" {
			return nil, "", fmt.Errorf("model evaluate: labels row %d: no such image under --images", e.Row)
		}
		sel = append(sel, e)
	}
	if len(sel) == 0 {
		return nil, "", fmt.Errorf("model evaluate: no rows in split %s (%s)", f.split, ls.Counts())
	}
	groups, groupsFile, err := loadGroups(f)
	if err != nil {
		return nil, "", err
	}

	cm, err := loadClassifier(model.Path, f.precision)
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	info := cm.Info()
	if info.WeightsSHA256 != model.WeightsSHA256 {
		return nil, "", fmt.Errorf("model evaluate: %s: the weights file no longer matches the registry (sha256 %s, registered %s)",
			model.ID, info.WeightsSHA256, model.WeightsSHA256)
	}
	if err := preprocess.CheckPlaneSize(info.InputSize); err != nil {
		return nil, "", fmt.Errorf("model evaluate: %s: %w", model.ID, err)
	}

	m.Logger.Info("model evaluate: preprocessing images", "rows", len(sel), "split", f.split)
	sub := &training.LabelSet{Layout: ls.Layout, Examples: sel, SHA256: ls.SHA256}
	prep := m.newProgress("model evaluate: preprocessing", "images", int64(len(sel)))
	caches, skipped, err := training.BuildCachesWith(ctx, sub, training.CacheOptions{Size: info.InputSize, Progress: prep})
	prep.Finish()
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	for _, s := range skipped {
		// By row and content hash only: file names can carry identifiers.
		m.Logger.Debug("model evaluate: skipped image", "row", s.Row, "sha256", s.SHA256, "reason", s.Reason, "error", s.Err)
	}
	byRow := make(map[int]training.Example, len(sel))
	for _, e := range sel {
		byRow[e.Row] = e
	}
	names := make([]string, 0, len(caches))
	for name := range caches {
		names = append(names, name)
	}
	sort.Strings(names) // a fixed order, so --predictions files compare
	var preds []evaluate.Prediction
	total := 0
	for _, c := range caches {
		total += c.Len()
	}
	scoring := m.newProgress("model evaluate: scoring", "images", int64(total))
	defer scoring.Finish()
	for _, name := range names {
		c := caches[name]
		ds := training.WithProgress(&training.Dataset{Cache: c, Mean: info.Mean, Std: info.Std}, scoring)
		probs, err := training.PredictAll(ctx, cm, ds, evalBatch)
		if err != nil {
			return nil, "", fmt.Errorf("model evaluate: predict: %w", err)
		}
		for i, p := range probs {
			e := byRow[c.Rows[i]]
			key, err := filepath.Rel(f.images, e.Path)
			if err != nil {
				return nil, "", fmt.Errorf("model evaluate: labels row %d: %w", e.Row, err)
			}
			key = filepath.ToSlash(key)
			label := 0
			if e.Fractured {
				label = 1
			}
			g := groups[key]
			if g == "" {
				g = groups[filepath.Base(key)]
			}
			preds = append(preds, evaluate.Prediction{Key: key, Label: label, Probability: float64(p), Group: g})
		}
	}
	if len(preds) == 0 {
		return nil, "", fmt.Errorf("model evaluate: none of the %d images could be read (%d skipped)", len(sel), len(skipped))
	}
	// The description names the label file by base name and hash only.
	desc := fmt.Sprintf("%s (sha256 %s), split %s: %d images", filepath.Base(f.labels), ls.SHA256[:16], f.split, len(preds))
	if len(skipped) > 0 {
		desc += fmt.Sprintf(", %d undecodable skipped", len(skipped))
	}
	if ls.SplitAssigned && f.split != splitAll {
		desc += fmt.Sprintf(", split assigned 70/20/10 with seed %d", f.splitSeed)
	}
	if groupsFile != "" {
		desc += ", groups from " + filepath.Base(groupsFile)
	}
	return preds, desc, nil
}

// labelledPredictions takes the model's stored predictions that have a
// label; an instance whose labels disagree is refused, since no figure
// would mean anything for it.
func labelledPredictions(ctx context.Context, db *store.DB, model store.Model) ([]evaluate.Prediction, string, error) {
	lps, err := db.LabelledPredictions(ctx, model.ID)
	if err != nil {
		return nil, "", err
	}
	if len(lps) == 0 {
		return nil, "", fmt.Errorf("model evaluate: %s has no stored predictions with labels (fracd label import)", model.ID)
	}
	var preds []evaluate.Prediction
	at := map[string]int{}
	sources := map[string]bool{}
	for _, lp := range lps {
		label := 0
		if lp.Fractured {
			label = 1
		}
		sources[lp.LabelSource] = true
		if i, seen := at[lp.SOPInstanceUID]; seen {
			if preds[i].Label != label {
				return nil, "", fmt.Errorf("model evaluate: instance %s has disagreeing labels: settle them first", lp.SOPInstanceUID)
			}
			continue
		}
		at[lp.SOPInstanceUID] = len(preds)
		preds = append(preds, evaluate.Prediction{Key: lp.SOPInstanceUID, Label: label, Probability: lp.Probability,
			Group: lp.BodyPart})
	}
	src := make([]string, 0, len(sources))
	for s := range sources {
		src = append(src, strconv.Quote(s))
	}
	sort.Strings(src)
	return preds, fmt.Sprintf("labelled results in the database: %d instances, label sources %s", len(preds), strings.Join(src, ", ")), nil
}

// fracAtlasParts are dataset.csv's body-part tags; an image tagged mixed
// (several parts in one film) is its own group.
var fracAtlasParts = []string{"hand", "leg", "hip", "shoulder"}

// loadGroups reads --groups, or dataset.csv beside the label file when
// present: image (image_id or path) -> group. It returns the file used.
func loadGroups(f evalFlags) (map[string]string, string, error) {
	path := f.groups
	if path == "" {
		auto := filepath.Join(filepath.Dir(f.labels), "dataset.csv")
		if _, err := os.Stat(auto); err != nil {
			return nil, "", nil
		}
		path = auto
	}
	g, err := readGroups(path)
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: groups %s: %w", filepath.Base(path), err)
	}
	return g, path, nil
}

func readGroups(path string) (map[string]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	r := csv.NewReader(fh)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	keyCol := -1
	for _, name := range []string{"image_id", "path", "file", "filename", "image"} {
		if c, ok := col[name]; ok {
			keyCol = c
			break
		}
	}
	if keyCol < 0 {
		return nil, errors.New("no image_id or path column in the header")
	}
	groupCol, direct := col["group"]
	if !direct {
		groupCol, direct = col["body_part"]
	}
	if !direct {
		for _, p := range append(fracAtlasParts, "mixed") {
			if _, ok := col[p]; !ok {
				return nil, errors.New("no group or body_part column, nor FracAtlas's hand,leg,hip,shoulder,mixed")
			}
		}
	}
	out := map[string]string{}
	for row := 1; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("row %d: %w", row, err)
		}
		get := func(c int) string {
			if c < len(rec) {
				return strings.TrimSpace(rec[c])
			}
			return ""
		}
		key := filepath.ToSlash(get(keyCol))
		if key == "" {
			continue
		}
		if direct {
			out[key] = get(groupCol)
			continue
		}
		out[key] = fracAtlasGroup(func(tag string) bool { return get(col[tag]) == "1" })
	}
}

// fracAtlasGroup is the body part of a FracAtlas image from its tags.
func fracAtlasGroup(tagged func(string) bool) string {
	if tagged("mixed") {
		return "mixed"
	}
	var parts []string
	for _, p := range fracAtlasParts {
		if tagged(p) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	if len(parts) > 1 {
		return "mixed"
	}
	return ""
}

// writePredictionsCSV writes key,label,probability rows (probabilities
// exact, so another tool recomputes the same figures), atomically.
func writePredictionsCSV(path string, preds []evaluate.Prediction) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write([]string{"key", "label", "probability"})
	for _, p := range preds {
		w.Write([]string{p.Key, strconv.Itoa(p.Label), strconv.FormatFloat(p.Probability, 'g', -1, 64)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("predictions CSV: %w", err)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("predictions CSV: %w", err)
		}
	}
	if err := fsutil.WriteFileAtomic(path, b.Bytes(), 0o640); err != nil {
		return fmt.Errorf("predictions CSV: %w", err)
	}
	return nil
}
