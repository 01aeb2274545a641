package main

import (
	"context"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/pipeline"
)

// classifierModel adapts a classifier.Model to the pipeline's Model (and
// Localiser): the wiring between the two packages lives here, so neither
// knows the other.
type classifierModel struct {
	m    *classifier.Model
	b    *classifier.Batcher
	info pipeline.ModelInfo
}

// batchFiles is how many files in flight share one classifier batch at
// most: the workers' concurrent files run as one batch rather than side
// by side (BenchmarkConcurrentHeatMaps: about a fifth less CPU per image
// on 2 cores, since side by side each call's threads compete for both).
const batchFiles = 4

// fromClassifier wraps a loaded classifier model. id overrides the model's
// own id when not empty (the registry's id).
// loadClassifier reads a weights file and sets its inference precision
// (model.precision, or a command's --precision).
func loadClassifier(path, precision string) (*classifier.Model, error) {
	prec, err := classifier.ParsePrecision(precision)
	if err != nil {
		return nil, err
	}
	cm, err := classifier.Load(path)
	if err != nil {
		return nil, err
	}
	if err := cm.SetPrecision(prec); err != nil {
		return nil, err
	}
	return cm, nil
}

func fromClassifier(m *classifier.Model, id, path string) pipeline.Model {
	ci := m.Info()
	if id == "" {
		id = ci.ID
	}
	return &classifierModel{m: m, b: classifier.NewBatcher(m, batchFiles), info: pipeline.ModelInfo{
		ID: id, Arch: ci.Arch, WeightsSHA256: ci.WeightsSHA256, PreprocessVersion: ci.PreprocessVersion,
		InputSize: ci.InputSize, Mean: ci.Mean, Std: ci.Std, Threshold: ci.Threshold, Path: path,
		Suspected: ci.Suspected, Definite: ci.Definite, Precision: string(m.Precision()),
	}}
}

func (c *classifierModel) Info() pipeline.ModelInfo { return c.info }

func (c *classifierModel) Predict(ctx context.Context, inputs []float32, n int) ([]float32, error) {
	return c.m.Predict(ctx, inputs, n)
}

// maxBoxes is how many suspected regions a result names at most.
const maxBoxes = 3

// Localise returns the probability (as Predict does) and the model's boxes
// on the input plane, from its class activation map in the same pass.
func (c *classifierModel) Localise(ctx context.Context, input []float32) (float32, []fracd.Box, error) {
	prob, hm, err := c.b.HeatMap(ctx, input)
	if err != nil {
		return 0, nil, err
	}
	var out []fracd.Box
	for _, b := range hm.Boxes(maxBoxes, float64(prob)) {
		out = append(out, fracd.Box{X0: b.X0, Y0: b.Y0, X1: b.X1, Y1: b.Y1, Score: b.Score})
	}
	return prob, out, nil
}
