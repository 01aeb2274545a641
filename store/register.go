package store

import "context"

// AddModel registers m (inactive) and appends its model.registered audit
// row in tx: the one place a model enters the registry (model add, train
// --register, the shipped model on first start, and weights the daemon
// meets unregistered). The row names the weights, arch, threshold and
// preprocessing; extra adds the caller's context (training run, shipped).
func (tx *Tx) AddModel(ctx context.Context, actor string, m Model, extra map[string]any) error {
	if err := tx.RegisterModel(ctx, m); err != nil {
		return err
	}
	detail := map[string]any{
		"weights_sha256": m.WeightsSHA256, "arch": m.Arch, "threshold": m.Threshold,
		"preprocess_version": m.PreprocessVersion,
	}
	for k, v := range extra {
		detail[k] = v
	}
	_, err := tx.AppendAudit(ctx, actor, ActionModelAdded, m.ID, detail)
	return err
}
