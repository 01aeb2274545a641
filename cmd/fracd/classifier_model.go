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
	info pipeline.ModelInfo
}

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

// fromClassifier wraps a loaded classifier model. id overrides the model's
// own id when not empty (the registry's id). workers is how many files the
// caller keeps in flight. With more than one, each file's inference runs on
// one thread, beside the other files', instead of on every core in turn: a
// call spread over all cores waits at each layer for its slowest thread,
// and with the other workers decoding, archiving and fsyncing on the same
// cores one thread is always late (README, Speed).
func fromClassifier(m *classifier.Model, id, path string, workers int) (pipeline.Model, error) {
	if workers > 1 {
		if err := m.SetThreads(1); err != nil {
			return nil, err
		}
	}
	ci := m.Info()
	if id == "" {
		id = ci.ID
	}
	return &classifierModel{m: m, info: pipeline.ModelInfo{
		ID: id, Arch: ci.Arch, WeightsSHA256: ci.WeightsSHA256, PreprocessVersion: ci.PreprocessVersion,
		InputSize: ci.InputSize, Mean: ci.Mean, Std: ci.Std, Threshold: ci.Threshold, Path: path,
		Suspected: ci.Suspected, Definite: ci.Definite, Precision: string(m.Precision()),
	}}, nil
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
	probs, maps, err := c.m.HeatMaps(ctx, input, 1)
	if err != nil {
		return 0, nil, err
	}
	prob := probs[0]
	var out []fracd.Box
	for _, b := range maps[0].Boxes(maxBoxes, float64(prob)) {
		out = append(out, fracd.Box{X0: b.X0, Y0: b.Y0, X1: b.X1, Y1: b.Y1, Score: b.Score})
	}
	return prob, out, nil
}
