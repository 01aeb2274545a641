package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/fracd/fracd/store"
	"github.com/fracd/fracd/training"
)

func newTrainCmd(m *Main) *cobra.Command {
	var (
		cfg                training.Config
		cacheMB            int64
		register, activate bool
		augment, fromDB    bool
		recipe             string
	)
	cmd := &cobra.Command{
		Use:   "train [--from-db | --images DIR --labels CSV] --run-dir DIR",
		Short: "Train the fracture classifier from labelled images, with resumable checkpoints",
		Long: `Trains a ResNet (focal loss, SGD with momentum) on labelled images.

From the database (--from-db, the default without --images): every archived,
de-identified instance with a current label (fracd label import/add), its
archive file rendered and preprocessed exactly as inference does; no
original is read. Train/val/test are assigned per de-identified patient
(pseudonymous Patient ID, else Study Instance UID), stratified and seeded,
and stored, so a later retrain keeps the same patients in val and test. The
run records the exact instance/label list (hash, class counts, the list).
Missing or undecodable archive files are skipped and counted by reason.

Labels: FracAtlas's split.csv (image_id, split, fractured; images in
DIR/Fractured/, DIR/Non_fractured/ or DIR/) or a CSV with a path column
(relative to DIR), fractured and an optional split column. Without a split
column the rows get a stratified 70/20/10 train/val/test split seeded by --seed.
Images that cannot be decoded are skipped and counted. Every image is
preprocessed once, as inference does it, into an in-memory cache of 224x224
planes (50 KiB each, bounded by --cache-mb).

After each epoch the model is evaluated on the validation split, a checkpoint
is written atomically into --run-dir and the best model by validation ROC-AUC
is kept as best.safetensors, with the threshold that maximises Youden's J on
validation. Ctrl-C stops after the last completed epoch; --resume continues
from it and gives the same weights as an uninterrupted run. The run is
recorded in training_runs with audit rows; --register adds best.safetensors
to the model registry, --activate also makes it the active model.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if activate && !register {
				return errors.New("train: --activate needs --register")
			}
			switch {
			case fromDB && (cfg.Images != "" || cfg.Labels != ""):
				return errors.New("train: --from-db trains on the archive; it takes no --images or --labels")
			case (cfg.Images == "") != (cfg.Labels == ""):
				return errors.New("train: --images and --labels go together (or neither, to train from the database)")
			}
			if !cmd.Flags().Changed("alpha") {
				cfg.Alpha = -1 // class balancing off unless asked for
			}
			if err := applyRecipe(cmd, &cfg, recipe); err != nil {
				return err
			}
			if !augment {
				cfg.Augment = training.Augment{}
			}
			cfg.CacheBytes = cacheMB << 20
			cfg.Logger = m.Logger
			cfg.Progress = m.trainingProgress(30 * time.Second)
			db, err := m.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			cfg.Recorder = &training.StoreRecorder{DB: db, Actor: actor()}
			if cfg.Images == "" {
				cfg.Archive = db
			}
			res, err := training.Run(ctx, cfg)
			if res != nil && len(res.Skipped) > 0 {
				fmt.Fprintf(m.Stdout, "skipped %d of %d images: %v (rows and sha256 in the debug log)\n",
					len(res.Skipped), res.Data.Listed, res.Data.Skipped)
			}
			if err != nil {
				return err
			}
			if res.BestEpoch == 0 {
				return errors.New("train: no epoch completed")
			}
			best := res.Epochs[res.BestEpoch-1]
			fmt.Fprintf(m.Stdout, "run %s: %d epochs; best epoch %d: val ROC-AUC %.4f, accuracy %.4f, F1 %.4f at threshold %.4f\nbest model: %s\n",
				res.RunID, len(res.Epochs), best.Epoch, best.ValAUC, best.ValAcc, best.ValF1, best.Threshold, res.BestPath)
			if !register {
				return nil
			}
			return registerTrained(ctx, m, db, res, activate)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Images, "images", "", "image directory (with --labels; without both, train from the database)")
	f.StringVar(&cfg.Labels, "labels", "", "label CSV (with --images)")
	f.BoolVar(&fromDB, "from-db", false, "train on the labelled de-identified archive instances in the database (the default without --images)")
	f.StringVar(&cfg.RunDir, "run-dir", "", "directory for checkpoints, state and best.safetensors (required)")
	f.StringVar(&cfg.Arch, "arch", "resnet18", "resnet18, resnet34, resnet50, resnet101, resnet152 (or basic[a,b,c,d] for tests)")
	f.IntVar(&cfg.Epochs, "epochs", 12, "epochs in total (with --resume: may be raised)")
	f.IntVar(&cfg.Batch, "batch", 16, "batch size")
	f.Float64Var(&cfg.LR, "lr", 0.02, "learning rate (the peak of the cosine schedule)")
	f.Float64Var(&cfg.Momentum, "momentum", 0.9, "SGD momentum")
	f.Float64Var(&cfg.WeightDecay, "weight-decay", 5e-4, "SGD weight decay")
	f.Float64Var(&cfg.Gamma, "gamma", 2, "focal loss gamma")
	f.Float64Var(&cfg.Alpha, "alpha", -1, "focal loss alpha (weight of positives); off when not given")
	f.Int64Var(&cfg.Seed, "seed", 1, "seed for initialisation, shuffling, augmentation and an assigned split")
	f.StringVar(&recipe, "recipe", "default", "default (the shipped model's recipe) or seed (the seed study's: no augmentation, constant lr, no EMA/TTA, 10 epochs); explicit flags override it")
	f.BoolVar(&augment, "augment", true, "augment training images (each kind below; --augment=false switches all off)")
	f.BoolVar(&cfg.Augment.Flip, "flip", training.DefaultAugment.Flip, "augment: mirror left-right with probability 1/2")
	f.Float64Var(&cfg.Augment.Rotate, "rotate", training.DefaultAugment.Rotate, "augment: max rotation in degrees")
	f.Float64Var(&cfg.Augment.Scale, "scale", training.DefaultAugment.Scale, "augment: max zoom in or out (fraction)")
	f.Float64Var(&cfg.Augment.Translate, "translate", training.DefaultAugment.Translate, "augment: max shift (fraction of the side)")
	f.Float64Var(&cfg.Augment.Brightness, "brightness", training.DefaultAugment.Brightness, "augment: max brightness change (fraction)")
	f.Float64Var(&cfg.Augment.Contrast, "contrast", training.DefaultAugment.Contrast, "augment: max contrast change (fraction)")
	f.StringVar(&cfg.Schedule, "schedule", training.ScheduleCosine, "learning-rate schedule: cosine (linear warm-up, cosine decay) or constant")
	f.Float64Var(&cfg.WarmupEpochs, "warmup-epochs", 1, "cosine schedule: warm-up length in epochs")
	f.Float64Var(&cfg.EMA, "ema", 0.998, "decay of the weight moving average that is evaluated and kept (0: off)")
	f.BoolVar(&cfg.TTA, "tta", true, "evaluate with flip test-time augmentation and record it in the model, so inference applies it too")
	f.IntVar(&cfg.Patience, "patience", 6, "stop after this many epochs without a better validation ROC-AUC (0: never)")
	f.BoolVar(&cfg.Resume, "resume", false, "continue the run in --run-dir from its last completed epoch")
	f.IntVar(&cfg.InputSize, "input-size", 224, "side of the model's input plane in pixels (224: the seed's preprocessing, bit for bit)")
	f.StringVar(&cfg.Annotations, "annotations", "", "fracture outlines (FracAtlas annotations.json) to supervise the class activation map with (with --cam-weight)")
	f.Float64Var(&cfg.CAMWeight, "cam-weight", 0, "weight of the CAM supervision loss added to the focal loss (with --annotations; 0: off)")
	f.StringVar(&cfg.Init, "init", "", "start from this model file's weights (same --arch) instead of a fresh initialisation")
	f.Int64Var(&cacheMB, "cache-mb", training.DefaultCacheBytes>>20, "bound on the preprocessed-image cache in MiB")
	f.BoolVar(&register, "register", false, "register best.safetensors in the model registry")
	f.BoolVar(&activate, "activate", false, "with --register: make it the active model")
	cmd.MarkFlagRequired("run-dir")
	return cmd
}

// registerTrained copies the run's best model into paths.models and
// registers it (as model add does), tied to its training run.
func registerTrained(ctx context.Context, m *Main, db *store.DB, res *training.Result, activate bool) error {
	info, dst, err := m.storeModelFile(res.BestPath)
	if err != nil {
		return fmt.Errorf("train: register: %w", err)
	}
	best := res.Epochs[res.BestEpoch-1]
	reg := registryEntry(info.ID, info, dst, map[string]any{"training_run": res.RunID, "best_epoch": best.Epoch,
		"val_auc": best.ValAUC, "threshold_rule": "youden-j-on-validation"})
	reg.TrainingRunID = res.RunID
	if err := m.registerModel(ctx, db, reg, map[string]any{"training_run": res.RunID}, activate); err != nil {
		return fmt.Errorf("train: register: %w", err)
	}
	return nil
}

// applyRecipe sets the seed study's settings for --recipe seed, leaving
// every flag given explicitly as it is.
func applyRecipe(cmd *cobra.Command, cfg *training.Config, recipe string) error {
	switch recipe {
	case "default":
		return nil
	case "seed":
	default:
		return fmt.Errorf("train: --recipe %q: want default or seed", recipe)
	}
	set := func(name string, apply func()) {
		if !cmd.Flags().Changed(name) {
			apply()
		}
	}
	set("augment", func() { cfg.Augment = training.Augment{} })
	set("schedule", func() { cfg.Schedule = training.ScheduleConstant })
	set("ema", func() { cfg.EMA = 0 })
	set("tta", func() { cfg.TTA = false })
	set("patience", func() { cfg.Patience = 0 })
	set("epochs", func() { cfg.Epochs = 10 })
	set("lr", func() { cfg.LR = 0.01 })
	set("weight-decay", func() { cfg.WeightDecay = 1e-4 })
	return nil
}
