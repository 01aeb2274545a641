// Package training retrains the fracture classifier from labelled images:
// label files (FracAtlas split.csv or a generic path,fractured CSV), a
// bounded in-memory cache of preprocessed planes, epochs of
// classifier.Trainer with validation metrics, atomic per-epoch checkpoints
// that resume bit for bit, the best model by validation ROC-AUC, and a
// training_runs row with its audit trail.
package training

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
)

// Files in a run directory.
const (
	StateFile = "state.json"       // the commit point of each completed epoch
	BestFile  = "best.safetensors" // best model by validation ROC-AUC
	ckptGlob  = "ckpt-epoch-*.safetensors"
)

// ErrInterrupted is returned (wrapped) when the context is cancelled: the
// last completed epoch is saved and --resume continues from it.
var ErrInterrupted = errors.New("training interrupted")

// Config configures Run. Zero values take the defaults noted.
type Config struct {
	Images, Labels string // image directory and label CSV
	// Archive, when Images is empty, is the database whose labelled,
	// de-identified archive instances are the training data (LoadArchive).
	Archive      *store.DB
	Arch         string // default resnet18
	Epochs       int    // default 10
	Batch        int    // default 16
	LR           float64
	Momentum     float64
	WeightDecay  float64
	Gamma        float64 // focal loss gamma
	Alpha        float64 // focal loss alpha; < 0 disables class balancing
	Seed         int64   // initialisation, split (when assigned) and shuffling
	Augment      Augment // zero: no augmentation
	Schedule     string  // ScheduleConstant (or "") or ScheduleCosine
	WarmupEpochs float64 // cosine schedule: linear warm-up length
	EMA          float64 // weight EMA decay per step; 0 off
	TTA          bool    // evaluate (and ship) with flip test-time augmentation
	Patience     int     // stop after this many epochs without a better val ROC-AUC; 0 never
	// InputSize is the plane side the model is trained at (0: the seed's
	// preprocess.Size); the model metadata carries it to inference.
	InputSize int
	// Init, when set, is a model file whose weights the run starts from
	// instead of a fresh initialisation (same architecture; e.g. a model
	// trained at 224 fine-tuned at a higher InputSize).
	Init string
	// Annotations is a FracAtlas-style annotations.json of fracture
	// outlines; with CAMWeight > 0 the class activation map is trained
	// towards them (classifier.TrainConfig.CAMWeight).
	Annotations string
	CAMWeight   float64
	RunDir      string
	Resume      bool
	CacheBytes  int64 // plane cache bound, DefaultCacheBytes if 0
	Logger      *slog.Logger
	// Progress, when set, reports preprocessing, each epoch and each
	// validation pass (a bar on a terminal); nil: epoch progress is logged.
	Progress ProgressFunc
	Recorder Recorder // nil: nothing recorded outside RunDir
	// Now is the clock for recorded timestamps (time.Now if nil).
	Now func() time.Time
}

// Params are the settings a run is bound to; a resumed run must match them
// (except Epochs, which may grow). They are stored as training_runs.params.
type Params struct {
	Arch              string  `json:"arch"`
	Epochs            int     `json:"epochs"`
	Batch             int     `json:"batch"`
	LR                float64 `json:"lr"`
	Momentum          float64 `json:"momentum"`
	WeightDecay       float64 `json:"weight_decay"`
	Gamma             float64 `json:"gamma"`
	Alpha             float64 `json:"alpha"`
	Seed              int64   `json:"seed"`
	Augment           Augment `json:"augment,omitzero"`
	Schedule          string  `json:"schedule,omitempty"` // "" is constant
	WarmupEpochs      float64 `json:"warmup_epochs,omitempty"`
	EMA               float64 `json:"ema,omitempty"`
	TTA               bool    `json:"tta,omitempty"`
	Patience          int     `json:"patience,omitempty"` // may change on resume
	LabelsSHA256      string  `json:"labels_sha256"`
	Layout            string  `json:"layout"`
	SplitAssigned     bool    `json:"split_assigned"`
	PreprocessVersion string  `json:"preprocess_version"`
	InputSize         int     `json:"input_size,omitempty"`  // 0: preprocess.Size
	InitSHA256        string  `json:"init_sha256,omitempty"` // weights the run started from
	CAMWeight         float64 `json:"cam_weight,omitempty"`
	AnnotationsSHA256 string  `json:"annotations_sha256,omitempty"`
}

// DataSummary says what the label file gave and what was used.
type DataSummary struct {
	Listed  int            `json:"listed"`
	Used    int            `json:"used"`
	Counts  Counts         `json:"counts"`  // used images per split: [neg, pos]
	Skipped map[string]int `json:"skipped"` // per reason
	CacheMB float64        `json:"cache_mib"`
}

// EpochMetrics are the figures of one completed epoch.
type EpochMetrics struct {
	Epoch     int     `json:"epoch"`
	Steps     int64   `json:"steps"`
	TrainLoss float64 `json:"train_loss"`
	TrainAcc  float64 `json:"train_accuracy"` // train-mode predictions at 0.5 during the epoch
	ValAUC    float64 `json:"val_auc"`
	// ValAUCPlain is the ROC-AUC without test-time augmentation (equal to
	// ValAUC when TTA is off).
	ValAUCPlain float64 `json:"val_auc_plain"`
	LR          float64 `json:"lr"`        // at the epoch's last step
	Threshold   float64 `json:"threshold"` // chosen on validation (ChooseThreshold)
	ValAcc      float64 `json:"val_accuracy"`
	ValF1       float64 `json:"val_f1"`
	ValPrec     float64 `json:"val_precision"`
	ValRecall   float64 `json:"val_recall"`
	ValAcc05    float64 `json:"val_accuracy_at_0.5"`
	ValF105     float64 `json:"val_f1_at_0.5"`
	Seconds     float64 `json:"seconds"`
	Best        bool    `json:"best"`
}

// state is state.json: written atomically after each completed epoch.
type state struct {
	RunID      string         `json:"run_id"`
	ModelID    string         `json:"model_id"`
	Params     Params         `json:"params"`
	StartedAt  time.Time      `json:"started_at"`
	EpochsDone int            `json:"epochs_done"`
	Checkpoint string         `json:"checkpoint,omitempty"` // file name in the run dir
	BestEpoch  int            `json:"best_epoch"`
	History    []EpochMetrics `json:"history"`
	Data       DataSummary    `json:"data"`
	Finished   bool           `json:"finished"`
	// EarlyStopped is set when Patience ended the run before Epochs.
	EarlyStopped bool `json:"early_stopped,omitempty"`
}

// Result reports a completed (or interrupted) run.
type Result struct {
	RunID     string
	ModelID   string // the id written into best.safetensors
	BestPath  string // "" if no epoch completed
	BestEpoch int
	Epochs    []EpochMetrics
	Data      DataSummary
	Skipped   []Skipped
	Params    Params
}

func (c *Config) defaults() {
	if c.Arch == "" {
		c.Arch = "resnet18"
	}
	if c.Epochs == 0 {
		c.Epochs = 10
	}
	if c.Batch == 0 {
		c.Batch = 16
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Run trains (or, with Resume, continues training) a model as configured.
// On cancellation it returns an error wrapping ErrInterrupted after the run
// directory and the record reflect the last completed epoch.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	fromDB := cfg.Images == "" && cfg.Labels == "" && cfg.Archive != nil
	if cfg.RunDir == "" || (!fromDB && (cfg.Images == "" || cfg.Labels == "")) {
		return nil, errors.New("training: a run directory and either images and labels or the database are required")
	}
	if cfg.Epochs < 1 || cfg.Batch < 2 {
		return nil, fmt.Errorf("training: epochs %d must be >= 1 and batch %d >= 2 (train-mode BatchNorm)", cfg.Epochs, cfg.Batch)
	}
	if cfg.LR <= 0 || math.IsNaN(cfg.LR) {
		return nil, fmt.Errorf("training: learning rate %v must be positive", cfg.LR)
	}
	arch, err := classifier.ParseArch(cfg.Arch)
	if err != nil {
		return nil, fmt.Errorf("training: %w", err)
	}
	if err := cfg.Augment.validate(); err != nil {
		return nil, err
	}
	switch cfg.Schedule {
	case "", ScheduleConstant:
		cfg.Schedule = ""
	case ScheduleCosine:
	default:
		return nil, fmt.Errorf("training: schedule %q: want %s or %s", cfg.Schedule, ScheduleConstant, ScheduleCosine)
	}
	if cfg.Schedule == "" {
		cfg.WarmupEpochs = 0
	}
	if !(cfg.EMA >= 0 && cfg.EMA < 1) || !(cfg.WarmupEpochs >= 0) || cfg.Patience < 0 {
		return nil, fmt.Errorf("training: ema %v must be in [0,1), warm-up %v and patience %d >= 0", cfg.EMA, cfg.WarmupEpochs, cfg.Patience)
	}
	size := cfg.InputSize
	if size == 0 {
		size = preprocess.Size
	}
	if err := preprocess.CheckPlaneSize(size); err != nil {
		return nil, fmt.Errorf("training: input size: %w", err)
	}
	var initSHA string
	if cfg.Init != "" {
		im, err := classifier.Load(cfg.Init)
		if err != nil {
			return nil, fmt.Errorf("training: init model: %w", err)
		}
		if im.Arch().Name != arch.Name {
			return nil, fmt.Errorf("training: init model is %s, the run trains %s", im.Arch().Name, arch.Name)
		}
		initSHA = im.Info().WeightsSHA256
	}
	log := cfg.Logger

	var ls *LabelSet
	var archive *ArchiveData
	if fromDB {
		ls, archive, err = LoadArchive(ctx, cfg.Archive, cfg.Seed)
		if archive != nil && archive.NewPatients > 0 {
			log.Info("training: patients assigned to splits", "new_patients", archive.NewPatients)
		}
	} else {
		ls, err = LoadLabels(cfg.Labels, cfg.Images, cfg.Seed)
	}
	if err != nil {
		return nil, err
	}
	var annSHA string
	if (cfg.CAMWeight > 0) != (cfg.Annotations != "") || cfg.CAMWeight < 0 {
		return nil, fmt.Errorf("training: CAM supervision needs both annotations and a positive weight (got %q, %v)", cfg.Annotations, cfg.CAMWeight)
	}
	if cfg.Annotations != "" {
		outs, err := LoadOutlines(cfg.Annotations)
		if err != nil {
			return nil, err
		}
		annSHA = outs.SHA256
		log.Info("training: fracture outlines", "fractured_images_with_outlines", outs.Attach(ls), "cam_weight", cfg.CAMWeight)
	}
	params := Params{Arch: arch.Name, Epochs: cfg.Epochs, Batch: cfg.Batch, LR: cfg.LR, Momentum: cfg.Momentum,
		WeightDecay: cfg.WeightDecay, Gamma: cfg.Gamma, Alpha: cfg.Alpha, Seed: cfg.Seed, Augment: cfg.Augment,
		Schedule: cfg.Schedule, WarmupEpochs: cfg.WarmupEpochs, EMA: cfg.EMA, TTA: cfg.TTA, Patience: cfg.Patience, LabelsSHA256: ls.SHA256,
		Layout: ls.Layout, SplitAssigned: ls.SplitAssigned, PreprocessVersion: preprocess.VersionFor(size), InitSHA256: initSHA,
		CAMWeight: cfg.CAMWeight, AnnotationsSHA256: annSHA}
	if size != preprocess.Size {
		params.InputSize = size // omitted at 224, so runs from before the field resume
	}

	st, err := openRunDir(cfg, params)
	if err != nil {
		return nil, err
	}
	log.Info("training: preprocessing images", "rows", len(ls.Examples), "layout", ls.Layout,
		"split", map[bool]string{true: "assigned 70/20/10 stratified, seed " + fmt.Sprint(cfg.Seed), false: "from file"}[ls.SplitAssigned],
		"cache_bound_mib", boundOr(cfg.CacheBytes)>>20)
	copt := CacheOptions{MaxBytes: cfg.CacheBytes, Size: size}
	if cfg.Progress != nil {
		copt.Progress = cfg.Progress("training: preprocessing", "images", int64(len(ls.Examples)))
	}
	caches, skipped, err := BuildCachesWith(ctx, ls, copt)
	if copt.Progress != nil {
		copt.Progress.Finish()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		return nil, err
	}
	data := summarise(ls, caches, skipped)
	log.Info("training: images", "listed", data.Listed, "used", data.Used, "skipped", data.Listed-data.Used,
		"skipped_by_reason", data.Skipped, "per_split", data.Counts.String(), "cache_mib", fmt.Sprintf("%.1f", data.CacheMB))
	for _, s := range skipped {
		log.Debug("training: skipped image", "row", s.Row, "sha256", s.SHA256, "reason", s.Reason, "error", s.Err)
	}
	train, val := caches[SplitTrain], caches[SplitVal]
	if train == nil || train.Len() < 2 || val == nil || val.Len() == 0 {
		return nil, fmt.Errorf("training: need at least 2 usable train and 1 validation image (%s)", data.Counts)
	}
	if st.EpochsDone > 0 && !sameData(st.Data, data) {
		return nil, fmt.Errorf("training: resume: the usable images differ from the interrupted run's (%s now, %s then)", data.Counts, st.Data.Counts)
	}
	st.Data = data
	if archive != nil {
		for _, s := range skipped {
			archive.Items[s.Row-1].Skipped = s.Reason
		}
		if err := recordArchiveData(ctx, cfg.Archive, st.RunID, archive); err != nil {
			return nil, err
		}
	}
	res := &Result{RunID: st.RunID, ModelID: st.ModelID, Data: data, Skipped: skipped, Params: params}

	event := "started"
	if cfg.Resume {
		event = "resumed"
	}
	if err := writeState(cfg.RunDir, st); err != nil {
		return nil, err
	}
	if err := record(ctx, cfg, st, event, StatusRunning, ""); err != nil {
		return nil, err
	}
	err = runEpochs(ctx, cfg, arch, st, train, val)
	res.Epochs, res.BestEpoch = st.History, st.BestEpoch
	if st.BestEpoch > 0 {
		res.BestPath = filepath.Join(cfg.RunDir, BestFile)
	}
	if err != nil {
		status, reason := StatusFailed, err.Error()
		if ctx.Err() != nil {
			reason = "interrupted after epoch " + fmt.Sprint(st.EpochsDone)
			err = fmt.Errorf("%w after epoch %d of %d: resume with the same run directory and --resume: %w", ErrInterrupted, st.EpochsDone, cfg.Epochs, err)
		}
		// Record the end even though ctx is cancelled: that is the clean stop.
		if rerr := record(context.WithoutCancel(ctx), cfg, st, "stopped", status, reason); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return res, err
	}
	st.Finished = true
	if err := writeState(cfg.RunDir, st); err != nil {
		return res, err
	}
	if err := record(ctx, cfg, st, "finished", StatusFinished, ""); err != nil {
		return res, err
	}
	return res, nil
}

func boundOr(b int64) int64 {
	if b <= 0 {
		return DefaultCacheBytes
	}
	return b
}

func summarise(ls *LabelSet, caches map[string]*Cache, skipped []Skipped) DataSummary {
	d := DataSummary{Listed: len(ls.Examples), Counts: Counts{}, Skipped: map[string]int{}}
	for name, c := range caches {
		var v [2]int
		for _, y := range c.Labels {
			v[int(y)]++
		}
		d.Counts[name] = v
		d.Used += c.Len()
		d.CacheMB += float64(len(c.Planes)) / (1 << 20)
	}
	for _, s := range skipped {
		d.Skipped[s.Reason]++
	}
	return d
}

func sameData(a, b DataSummary) bool {
	if a.Used != b.Used || len(a.Counts) != len(b.Counts) {
		return false
	}
	for k, v := range a.Counts {
		if b.Counts[k] != v {
			return false
		}
	}
	return true
}

// openRunDir starts a new run directory or, with Resume, reads the state of
// the run in it and checks that the settings match.
func openRunDir(cfg Config, p Params) (*state, error) {
	if err := os.MkdirAll(cfg.RunDir, 0o750); err != nil {
		return nil, fmt.Errorf("training: run directory: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(cfg.RunDir, StateFile))
	switch {
	case err == nil && !cfg.Resume:
		return nil, fmt.Errorf("training: %s already holds a run: pass --resume to continue it, or choose another run directory", cfg.RunDir)
	case errors.Is(err, os.ErrNotExist) && cfg.Resume:
		return nil, fmt.Errorf("training: nothing to resume in %s (no %s)", cfg.RunDir, StateFile)
	case errors.Is(err, os.ErrNotExist):
		id, err := newRunID(cfg.Now())
		if err != nil {
			return nil, err
		}
		return &state{RunID: id, ModelID: "fracd-" + id, Params: p, StartedAt: cfg.Now().UTC()}, nil
	case err != nil:
		return nil, fmt.Errorf("training: run state: %w", err)
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("training: run state %s: %w", StateFile, err)
	}
	was, now := st.Params, p
	was.Epochs, now.Epochs = 0, 0
	was.Patience, now.Patience = 0, 0
	if was != now {
		a, _ := json.Marshal(st.Params)
		b, _ := json.Marshal(p)
		return nil, fmt.Errorf("training: resume: settings differ from the run's: was %s, now %s", a, b)
	}
	st.Params.Epochs, st.Params.Patience = cfg.Epochs, cfg.Patience
	if cfg.Epochs < st.EpochsDone {
		return nil, fmt.Errorf("training: resume: %d epochs already done, --epochs %d", st.EpochsDone, cfg.Epochs)
	}
	st.Finished, st.EarlyStopped = false, false
	return &st, nil
}

func newRunID(now time.Time) (string, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("training: run id: %w", err)
	}
	return "run-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:]), nil
}

// epochSeed gives each epoch its own shuffling seed, so that the order of
// epoch e depends only on (seed, e) and not on how many epochs this
// process ran before: that is what makes a resumed run equal an
// uninterrupted one.
func epochSeed(seed int64, epoch int) int64 {
	x := uint64(seed)*0x9E3779B97F4A7C15 + uint64(epoch)*0xBF58476D1CE4E5B9
	x ^= x >> 31
	return int64(x)
}

func ckptName(epoch int) string { return fmt.Sprintf("ckpt-epoch-%04d.safetensors", epoch) }

func runEpochs(ctx context.Context, cfg Config, arch classifier.Arch, st *state, train, val *Cache) error {
	var m *classifier.Model
	var err error
	if cfg.Init != "" {
		m, err = classifier.Load(cfg.Init)
		if err == nil && m.Info().WeightsSHA256 != st.Params.InitSHA256 {
			err = fmt.Errorf("init model %s changed since the run started", cfg.Init)
		}
	} else {
		m, err = classifier.New(arch.Name, cfg.Seed)
	}
	if err != nil {
		return fmt.Errorf("training: %w", err)
	}
	if err := m.SetInputSize(train.Side()); err != nil {
		return fmt.Errorf("training: %w", err)
	}
	info := m.Info()
	trainDS := &Dataset{Cache: train, Mean: info.Mean, Std: info.Std}
	valDS := &Dataset{Cache: val, Mean: info.Mean, Std: info.Std}
	var best float64 = math.Inf(-1)
	if st.BestEpoch > 0 {
		best = st.History[st.BestEpoch-1].ValAUC
	}
	spe := stepsPerEpoch(train.Len(), cfg.Batch)
	schedule := lrSchedule(cfg.Schedule, cfg.LR, int64(math.Round(cfg.WarmupEpochs*float64(spe))), spe*int64(cfg.Epochs))
	tta := ""
	if cfg.TTA {
		tta = classifier.TTAFlip
	}
	for e := st.EpochsDone + 1; e <= cfg.Epochs; e++ {
		if earlyStop(e-1, st.BestEpoch, cfg.Patience) {
			cfg.Logger.Info("training: early stop", "epoch", e-1, "best_epoch", st.BestEpoch, "patience", cfg.Patience)
			st.EarlyStopped = true
			return nil
		}
		t0 := time.Now()
		tc := classifier.TrainConfig{LR: cfg.LR, Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay,
			Loss: classifier.FocalLoss{Gamma: cfg.Gamma, Alpha: cfg.Alpha}, Seed: epochSeed(cfg.Seed, e),
			Schedule: schedule, EMADecay: cfg.EMA, CAMWeight: cfg.CAMWeight}
		// Every epoch after the first starts from the previous checkpoint,
		// in an uninterrupted run too: one code path, so resuming cannot
		// differ from not stopping.
		var tr *classifier.Trainer
		if e == 1 {
			tr, err = classifier.NewTrainer(m, tc)
		} else {
			tr, err = classifier.ResumeTrainer(filepath.Join(cfg.RunDir, st.Checkpoint), m, tc)
		}
		if err != nil {
			return fmt.Errorf("training: epoch %d: %w", e, err)
		}
		var ds classifier.Dataset = trainDS
		if cfg.Augment.On() {
			ds = &augmentedDataset{Dataset: trainDS, aug: cfg.Augment, seed: cfg.Seed, epoch: e}
		}
		var bar Progress
		if cfg.Progress != nil {
			n := train.Len()
			if n%cfg.Batch == 1 && n > 1 {
				n-- // Epoch drops a last batch of one (train-mode BatchNorm)
			}
			bar = cfg.Progress(fmt.Sprintf("training: epoch %d/%d", e, cfg.Epochs), "images", int64(n))
			ds = WithProgress(ds, bar)
		} else {
			// Progress every tenth of the epoch, in whole batches.
			every := max(1, train.Len()/10/cfg.Batch) * cfg.Batch
			ds = &progress{Dataset: ds, log: cfg.Logger, epoch: e, every: every}
		}
		loss, err := tr.Epoch(ctx, ds, cfg.Batch)
		if bar != nil {
			bar.Finish()
		}
		if err != nil {
			return fmt.Errorf("training: epoch %d: %w", e, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return fmt.Errorf("training: epoch %d: training loss is %v (learning rate too high?)", e, loss)
		}
		// The model that is evaluated and kept: the weight average when
		// EMA is on.
		evalModel := m
		if em, err := tr.EMAModel(); err != nil {
			return fmt.Errorf("training: epoch %d: %w", e, err)
		} else if em != nil {
			evalModel = em
		}
		var vds classifier.Dataset = valDS
		if cfg.Progress != nil {
			bar = cfg.Progress(fmt.Sprintf("training: validating epoch %d", e), "images", int64(val.Len()))
			vds = WithProgress(valDS, bar)
		}
		plain, probs, err := predictWithTTA(ctx, evalModel, vds, cfg.Batch, cfg.TTA)
		if bar != nil {
			bar.Finish()
		}
		if err != nil {
			return fmt.Errorf("training: epoch %d: validation: %w", e, err)
		}
		thr := ChooseThreshold(probs, val.Labels)
		met, err := classifier.Evaluate(probs, val.Labels, thr)
		if err != nil {
			return fmt.Errorf("training: epoch %d: validation: %w", e, err)
		}
		at05, err := classifier.Evaluate(probs, val.Labels, 0.5)
		if err != nil {
			return fmt.Errorf("training: epoch %d: validation: %w", e, err)
		}
		aucPlain := met.AUC
		if cfg.TTA {
			if mp, err := classifier.Evaluate(plain, val.Labels, 0.5); err == nil {
				aucPlain = mp.AUC
			}
		}
		lr := cfg.LR
		if schedule != nil {
			lr = schedule(tr.Steps() - 1)
		}
		em := EpochMetrics{Epoch: e, Steps: tr.Steps(), TrainLoss: loss, TrainAcc: tr.LastEpochAccuracy(), ValAUC: met.AUC, ValAUCPlain: aucPlain, LR: lr, Threshold: thr,
			ValAcc: met.Accuracy, ValF1: met.F1, ValPrec: met.Precision, ValRecall: met.Recall, ValAcc05: at05.Accuracy, ValF105: at05.F1}

		// Checkpoint first, then best, then state.json, whose atomic rename
		// commits the epoch: a crash before it redoes the epoch, which
		// gives the same files again.
		ck := ckptName(e)
		ckInfo := classifier.ModelInfo{ID: st.ModelID, InputSize: info.InputSize, TrainingRun: st.RunID}
		if err := fsutil.WriteAtomicPath(filepath.Join(cfg.RunDir, ck), 0o640, func(tmp string) error { return tr.SaveCheckpoint(tmp, ckInfo) }); err != nil {
			return fmt.Errorf("training: epoch %d: checkpoint: %w", e, err)
		}
		if met.AUC > best {
			best, em.Best = met.AUC, true
			bi := classifier.ModelInfo{ID: st.ModelID, InputSize: info.InputSize, Mean: info.Mean, Std: info.Std,
				PreprocessVersion: preprocess.VersionFor(info.InputSize), Threshold: thr, TrainingRun: st.RunID, TTA: tta}
			if err := fsutil.WriteAtomicPath(filepath.Join(cfg.RunDir, BestFile), 0o640, func(tmp string) error { return evalModel.Save(tmp, bi) }); err != nil {
				return fmt.Errorf("training: epoch %d: best model: %w", e, err)
			}
			st.BestEpoch = e
		}
		em.Seconds = time.Since(t0).Seconds()
		prev := st.Checkpoint
		st.EpochsDone, st.Checkpoint = e, ck
		st.History = append(st.History[:e-1], em)
		if err := writeState(cfg.RunDir, st); err != nil {
			return err
		}
		if prev != "" && prev != ck {
			os.Remove(filepath.Join(cfg.RunDir, prev)) // superseded; keeping it is harmless
		}
		cfg.Logger.Info("training: epoch", "epoch", e, "of", cfg.Epochs, "steps", em.Steps, "lr", round(lr),
			"train_loss", round(loss), "train_acc", round(em.TrainAcc), "val_auc", round(met.AUC), "val_auc_plain", round(aucPlain), "val_acc", round(met.Accuracy), "val_f1", round(met.F1),
			"threshold", round(thr), "val_acc@0.5", round(at05.Accuracy), "best", em.Best, "seconds", round(em.Seconds))
		if err := record(ctx, cfg, st, "epoch", StatusRunning, ""); err != nil {
			return err
		}
	}
	return nil
}

// predictWithTTA returns the plain probabilities of every image of ds and,
// with tta, their average with the mirrored images' (else the plain ones
// again). m's own TTA setting is not used.
func predictWithTTA(ctx context.Context, m *classifier.Model, ds classifier.Dataset, batch int, tta bool) (plain, final []float32, err error) {
	n, size := ds.Len(), m.Info().InputSize
	plain, final = make([]float32, 0, n), make([]float32, 0, n)
	per := 3 * size * size
	buf := make([]float32, batch*per)
	for i := 0; i < n; i += batch {
		b := min(batch, n-i)
		for j := 0; j < b; j++ {
			if _, err := ds.Example(i+j, buf[j*per:(j+1)*per]); err != nil {
				return nil, nil, err
			}
		}
		p, err := m.PredictPlain(ctx, buf[:b*per], b, size)
		if err != nil {
			return nil, nil, err
		}
		plain = append(plain, p...)
		if !tta {
			final = append(final, p...)
			continue
		}
		pf, err := m.PredictPlain(ctx, classifier.FlipInputs(buf[:b*per], b, size), b, size)
		if err != nil {
			return nil, nil, err
		}
		for j := range p {
			final = append(final, (p[j]+pf[j])/2)
		}
	}
	return plain, final, nil
}

// earlyStop reports whether a run with done epochs, the best at epoch
// best, has gone patience epochs without improving (patience 0: never).
func earlyStop(done, best, patience int) bool {
	return patience > 0 && best > 0 && done-best >= patience
}

func round(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// PredictAll returns the probability of every image of ds, in batches.
func PredictAll(ctx context.Context, m *classifier.Model, ds classifier.Dataset, batch int) ([]float32, error) {
	n := ds.Len()
	out := make([]float32, 0, n)
	per := preprocess.TensorLenFor(m.Info().InputSize)
	buf := make([]float32, batch*per)
	for i := 0; i < n; i += batch {
		b := min(batch, n-i)
		for j := 0; j < b; j++ {
			if _, err := ds.Example(i+j, buf[j*per:(j+1)*per]); err != nil {
				return nil, err
			}
		}
		p, err := m.Predict(ctx, buf[:b*per], b)
		if err != nil {
			return nil, err
		}
		out = append(out, p...)
	}
	return out, nil
}

// ChooseThreshold picks the decision threshold on validation predictions:
// the one maximising Youden's J = sensitivity + specificity - 1 over the
// cut points p >= t at each distinct predicted probability. Ties go to the
// lower threshold (more sensitive: a missed fracture costs more than a
// second look). The returned value lies halfway between the chosen
// probability and the next lower one, so tiny numeric differences on
// another machine do not flip validation images across it. With only one
// class present J is undefined and 0.5 is returned.
func ChooseThreshold(probs, labels []float32) float64 {
	var pos, neg int
	type pl struct {
		p float64
		y bool
	}
	v := make([]pl, len(probs))
	for i, p := range probs {
		v[i] = pl{float64(p), labels[i] >= 0.5}
		if v[i].y {
			pos++
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return 0.5
	}
	sort.Slice(v, func(i, j int) bool { return v[i].p > v[j].p })
	bestJ, bestK := math.Inf(-1), -1
	tp, fp := 0, 0
	for k := 0; k < len(v); k++ {
		if v[k].y {
			tp++
		} else {
			fp++
		}
		if k+1 < len(v) && v[k+1].p == v[k].p {
			continue // a cut point flags every image with this probability
		}
		j := float64(tp)/float64(pos) - float64(fp)/float64(neg)
		if j >= bestJ {
			bestJ, bestK = j, k
		}
	}
	if bestK+1 < len(v) {
		return (v[bestK].p + v[bestK+1].p) / 2
	}
	return v[bestK].p
}

func writeState(dir string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("training: state: %w", err)
	}
	err = fsutil.WriteFileAtomic(filepath.Join(dir, StateFile), b, 0o640)
	if err != nil {
		return fmt.Errorf("training: state: %w", err)
	}
	return nil
}
