package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/models"
	"github.com/fracd/fracd/store"
)

// shippedActor is the audit actor of what fracd does by itself on first start.
const shippedActor = "fracd:first-start"

// installShippedModel writes the model compiled into the binary into
// paths.models (named by its sha256, as model add does), then registers and
// activates it with audit rows, all in one transaction. It is called only
// when the registry has no active model, so an admin's choice is never
// overridden; a registered but inactive shipped model is activated again.
func installShippedModel(ctx context.Context, m *Main, db *store.DB) (store.Model, error) {
	sh, err := models.Default()
	if err != nil {
		return store.Model{}, err
	}
	if err := os.MkdirAll(m.Config.Paths.Models, 0o750); err != nil {
		return store.Model{}, fmt.Errorf("shipped model: paths.models: %w", err)
	}
	dst := filepath.Join(m.Config.Paths.Models, sh.SHA256+".safetensors")
	if err := writeFileSync(dst, sh.Data); err != nil {
		return store.Model{}, fmt.Errorf("shipped model: %w", err)
	}
	cm, err := classifier.Load(dst)
	if err != nil {
		return store.Model{}, fmt.Errorf("shipped model: %w", err)
	}
	info := cm.Info()
	meta, _ := json.Marshal(map[string]any{"input_size": info.InputSize, "mean": info.Mean, "std": info.Std,
		"training_run": info.TrainingRun, "tta": info.TTA, "shipped": sh.Name, "val_auc": sh.Card.ValAUC,
		"val_flagged_rate": sh.Card.ValFlaggedRate, "val_mean_probability": sh.Card.ValMeanProb,
		"threshold_suspected": info.Suspected, "threshold_definite": info.Definite})
	reg := store.Model{ID: info.ID, Arch: info.Arch, WeightsSHA256: info.WeightsSHA256, Path: dst,
		PreprocessVersion: info.PreprocessVersion, Threshold: info.Threshold, Metadata: meta}
	known, kerr := db.Model(ctx, info.ID)
	err = db.Update(ctx, func(tx *store.Tx) error {
		switch {
		case errors.Is(kerr, store.ErrNotFound):
			if err := tx.RegisterModel(ctx, reg); err != nil {
				return err
			}
			if _, err := tx.AppendAudit(ctx, shippedActor, store.ActionModelAdded, info.ID, map[string]any{
				"weights_sha256": info.WeightsSHA256, "arch": info.Arch, "threshold": info.Threshold,
				"preprocess_version": info.PreprocessVersion, "shipped": sh.Name,
			}); err != nil {
				return err
			}
		case kerr != nil:
			return kerr
		case known.WeightsSHA256 != info.WeightsSHA256:
			return fmt.Errorf("registry already holds a model %q with other weights (%s)", info.ID, known.WeightsSHA256)
		}
		if err := tx.ActivateModel(ctx, info.ID); err != nil {
			return err
		}
		_, err = tx.AppendAudit(ctx, shippedActor, store.ActionModelPromoted, info.ID, map[string]any{"reason": "no active model on start: the shipped model"})
		return err
	})
	if err != nil {
		return store.Model{}, fmt.Errorf("shipped model: register: %w", err)
	}
	m.Logger.Info("registered and activated the shipped model", "model_id", info.ID, "weights_sha256", info.WeightsSHA256,
		"val_roc_auc", sh.Card.ValAUC)
	reg.Active = true
	return reg, nil
}

// writeFileSync writes data to path durably, unless path already holds a
// file of that size (content-addressed names: same name, same bytes).
func writeFileSync(path string, data []byte) error {
	if st, err := os.Stat(path); err == nil && st.Size() == int64(len(data)) {
		return nil
	}
	return fsutil.WriteFileAtomic(path, data, 0o640)
}
