package pipeline

import (
	"context"

	"github.com/fracd/fracd/classifier"
)

// classifierModel adapts a classifier.Model to the pipeline's Model.
type classifierModel struct {
	m    *classifier.Model
	info ModelInfo
}

// FromClassifier wraps a loaded classifier model. id overrides the model's
// own id when not empty (the registry's id).
func FromClassifier(m *classifier.Model, id, path string) Model {
	ci := m.Info()
	if id == "" {
		id = ci.ID
	}
	return &classifierModel{m: m, info: ModelInfo{
		ID: id, Arch: ci.Arch, WeightsSHA256: ci.WeightsSHA256, PreprocessVersion: ci.PreprocessVersion,
		InputSize: ci.InputSize, Mean: ci.Mean, Std: ci.Std, Threshold: ci.Threshold, Path: path,
		Suspected: ci.Suspected, Definite: ci.Definite,
	}}
}

func (c *classifierModel) Info() ModelInfo { return c.info }

func (c *classifierModel) Predict(ctx context.Context, inputs []float32, n int) ([]float32, error) {
	return c.m.Predict(ctx, inputs, n)
}
