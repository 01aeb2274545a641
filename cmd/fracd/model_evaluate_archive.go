package main

import (
	"context"
	"fmt"

	"github.com/fracd/fracd/evaluate"
	"github.com/fracd/fracd/store"
	"github.com/fracd/fracd/training"
)

// archivePredictions scores every labelled, de-identified archive instance
// with the model, rendering and preprocessing each archive file as
// inference does. Unlike --labelled (the model's stored results) this gives
// any model, a candidate included, the same cases, so promote can compare
// a candidate with the active model on one data hash.
//
// split, when not empty, keeps the instances of the patients stored in that
// split (train, val or test, as fracd train --from-db assigned them), so a
// model is judged on patients it was not trained on.
func archivePredictions(ctx context.Context, db *store.DB, model store.Model, split, precision string, progress training.ProgressFunc) ([]evaluate.Prediction, string, error) {
	rows, err := db.LabelledArchive(ctx)
	if err != nil {
		return nil, "", err
	}
	if len(rows) == 0 {
		return nil, "", fmt.Errorf("model evaluate: no archived instance has a label (fracd label import)")
	}
	all := len(rows)
	if split != "" && split != splitAll {
		splits, err := training.StoredArchiveSplits(ctx, db, rows)
		if err != nil {
			return nil, "", fmt.Errorf("model evaluate: %w", err)
		}
		var kept []store.ArchivedLabel
		for i, r := range rows {
			if splits[i] == split {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			return nil, "", fmt.Errorf("model evaluate: none of the %d labelled archive instances belongs to a patient in split %q (fracd train --from-db assigns patients to splits)", all, split)
		}
		rows = kept
	}
	ls := &training.LabelSet{Layout: training.LayoutArchive}
	for i, r := range rows {
		ls.Examples = append(ls.Examples, training.Example{Row: i + 1, Path: r.ArchivePath, Fractured: r.Fractured,
			Split: training.SplitVal, DICOM: true})
	}
	cm, err := loadClassifier(model.Path, precision)
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	info := cm.Info()
	prep := progress("model evaluate: rendering archive", "images", int64(len(ls.Examples)))
	caches, skipped, err := training.BuildCachesWith(ctx, ls, training.CacheOptions{Size: info.InputSize, Progress: prep})
	prep.Finish()
	if err != nil {
		return nil, "", fmt.Errorf("model evaluate: %w", err)
	}
	c := caches[training.SplitVal]
	if c == nil {
		return nil, "", fmt.Errorf("model evaluate: none of the %d labelled archive files could be read (%d skipped)", len(rows), len(skipped))
	}
	scoring := progress("model evaluate: scoring", "images", int64(c.Len()))
	probs, err := training.PredictAll(ctx, cm, training.WithProgress(&training.Dataset{Cache: c, Mean: info.Mean, Std: info.Std}, scoring), evalBatch)
	scoring.Finish()
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
	what := "labelled archive instances re-scored"
	if split != "" && split != splitAll {
		what = fmt.Sprintf("labelled archive instances of the patients in split %s (of %d labelled) re-scored", split, all)
	}
	return preds, fmt.Sprintf("%s: %d of %d (%d archive files unreadable)", what, len(preds), len(rows), len(skipped)), nil
}
