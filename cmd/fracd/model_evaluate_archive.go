package main

import (
	"context"
	"fmt"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/evaluate"
	"github.com/fracd/fracd/store"
	"github.com/fracd/fracd/training"
)

// archivePredictions scores every labelled, de-identified archive instance
// with the model, rendering and preprocessing each archive file as
// inference does. Unlike --labelled (the model's stored results) this gives
// any model, a candidate included, the same cases, so promote can compare
// a candidate with the active model on one data hash.
func archivePredictions(ctx context.Context, db *store.DB, model store.Model) ([]evaluate.Prediction, string, error) {
	rows, err := db.LabelledArchive(ctx)
	if err != nil {
		return nil, "", err
	}
	if len(rows) == 0 {
		return nil, "", fmt.Errorf("model evaluate: no archived instance has a label (fracd label import)")
	}
	ls := &training.LabelSet{Layout: training.LayoutArchive}
	for i, r := range rows {
		ls.Examples = append(ls.Examples, training.Example{Row: i + 1, Path: r.ArchivePath, Fractured: r.Fractured,
			Split: training.SplitVal, DICOM: true})
	}
	cm, err := classifier.Load(model.Path)
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	info := cm.Info()
	caches, skipped, err := training.BuildCachesSized(ctx, ls, 0, info.InputSize)
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	c := caches[training.SplitVal]
	if c == nil {
		return nil, "", fmt.Errorf("model evaluate: none of the %d labelled archive files could be read (%d skipped)", len(rows), len(skipped))
	}
	probs, err := training.PredictAll(ctx, cm, &training.Dataset{Cache: c, Mean: info.Mean, Std: info.Std}, evalBatch)
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	preds := make([]evaluate.Prediction, c.Len())
	for i := range preds {
		r := rows[c.Rows[i]-1]
		label := 0
		if r.Fractured {
			label = 1
		}
		preds[i] = evaluate.Prediction{Key: r.SOPInstanceUID, Label: label, Probability: float64(probs[i]), Group: r.BodyPart}
	}
	return preds, fmt.Sprintf("labelled archive instances re-scored: %d of %d (%d archive files unreadable)", len(preds), len(rows), len(skipped)), nil
}
