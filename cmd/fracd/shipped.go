package main

import (
	"context"
	"errors"
	"fmt"

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
	info, dst, err := m.storeModelBytes(sh.Data, sh.SHA256)
	if err != nil {
		return store.Model{}, fmt.Errorf("shipped model: %w", err)
	}
	reg := registryEntry(info.ID, info, dst, map[string]any{"tta": info.TTA, "shipped": sh.Name, "val_auc": sh.Card.ValAUC,
		"val_flagged_rate": sh.Card.ValFlaggedRate, "val_mean_probability": sh.Card.ValMeanProb,
		"threshold_suspected": info.Suspected, "threshold_definite": info.Definite})
	known, kerr := db.Model(ctx, info.ID)
	err = db.Update(ctx, func(tx *store.Tx) error {
		switch {
		case errors.Is(kerr, store.ErrNotFound):
			if err := tx.AddModel(ctx, shippedActor, reg, map[string]any{"shipped": sh.Name}); err != nil {
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
