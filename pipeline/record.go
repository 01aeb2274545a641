package pipeline

import (
	"context"
	"fmt"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/store"
)

// recordStage is the commit point of a done file: the instance, its
// archive and prediction audit rows and the prediction, in one transaction.
func (p *Pipeline) recordStage(ctx context.Context, f *file) error {
	out, info := f.out, f.model.info
	f.instance.State = store.StateDone
	err := p.db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertInstance(ctx, f.instance); err != nil {
			return err
		}
		// The audit rows carry the stored values, for audit verify to compare.
		if _, err := tx.AppendAudit(ctx, p.cfg.Actor, store.ActionArchived, f.job.SHA256, store.ArchivedDetail(f.instance, anonymize.MethodDescription)); err != nil {
			return err
		}
		pred := store.Prediction{
			InstanceSHA256: f.job.SHA256, ModelID: info.ID, ModelSHA256: info.WeightsSHA256,
			PreprocessVersion: out.PreprocessVersion, Probability: out.Probability, Threshold: out.Threshold,
			Flagged: out.Flagged, Latency: out.Stages["classify"], Category: string(out.Category), Boxes: out.Boxes,
		}
		if _, err := tx.InsertPrediction(ctx, pred); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, p.cfg.Actor, store.ActionPredicted, f.job.SHA256, store.PredictedDetail(out.SOPInstanceUID, pred))
		return err
	})
	if err != nil {
		return fmt.Errorf("pipeline: record %s: %w", f.job.SHA256, err)
	}
	return nil
}
