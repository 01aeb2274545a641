package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/store"
)

// storeWeights puts weights (whose sha256 is want) into
// paths.models/<sha256>.safetensors, durably, and returns that path. The
// name is the content's hash, so it cannot change under the registry: an
// existing file with that content is kept, other content is an error, and
// stored weights are never overwritten.
func (m *Main) storeWeights(want string, r io.Reader) (string, error) {
	dir := m.Config.Paths.Models
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("paths.models: %w", err)
	}
	dst := filepath.Join(dir, want+".safetensors")
	if _, err := os.Stat(dst); err == nil {
		got, err := fsutil.HashFile(dst)
		if err != nil {
			return "", err
		}
		if got != want {
			return "", fmt.Errorf("%s exists with other content (sha256 %s); stored weights are never overwritten", dst, got)
		}
		return dst, nil
	}
	t, err := fsutil.CreateTemp(dir, ".weights-*.tmp")
	if err != nil {
		return "", err
	}
	defer t.Abort()
	got, _, err := fsutil.HashReader(io.TeeReader(r, t))
	if err != nil {
		return "", fmt.Errorf("copy weights: %w", err)
	}
	if got != want {
		return "", fmt.Errorf("weights changed while being stored (sha256 %s, loaded %s)", got, want)
	}
	if err := t.CommitNew(dst, 0o640); err != nil {
		return "", err
	}
	return dst, nil
}

// storeModelFile checks the weights at src (every tensor name and shape)
// and stores them with storeWeights.
func (m *Main) storeModelFile(src string) (classifier.ModelInfo, string, error) {
	cm, err := classifier.Load(src)
	if err != nil {
		return classifier.ModelInfo{}, "", err
	}
	info := cm.Info()
	f, err := os.Open(src)
	if err != nil {
		return info, "", err
	}
	defer f.Close()
	dst, err := m.storeWeights(info.WeightsSHA256, f)
	return info, dst, err
}

// storeModelBytes is storeModelFile for weights in memory (the shipped model).
func (m *Main) storeModelBytes(data []byte, sha string) (classifier.ModelInfo, string, error) {
	dst, err := m.storeWeights(sha, bytes.NewReader(data))
	if err != nil {
		return classifier.ModelInfo{}, "", err
	}
	cm, err := classifier.Load(dst)
	if err != nil {
		return classifier.ModelInfo{}, "", err
	}
	return cm.Info(), dst, nil
}

// registryEntry is the registry row of weights stored at path; meta adds
// to the metadata every entry has (input size, normalisation, training run).
func registryEntry(id string, info classifier.ModelInfo, path string, meta map[string]any) store.Model {
	all := map[string]any{"input_size": info.InputSize, "mean": info.Mean, "std": info.Std, "training_run": info.TrainingRun}
	for k, v := range meta {
		all[k] = v
	}
	b, _ := json.Marshal(all) // numbers, strings and arrays of them
	return store.Model{ID: id, Arch: info.Arch, WeightsSHA256: info.WeightsSHA256, Path: path,
		PreprocessVersion: info.PreprocessVersion, Threshold: info.Threshold, Metadata: b}
}

// registerModel registers reg with its audit row (store's AddModel) and,
// with activate, promotes it, in one transaction; it prints what it did.
func (m *Main) registerModel(ctx context.Context, db *store.DB, reg store.Model, extra map[string]any, activate bool) error {
	err := db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.AddModel(ctx, actor(), reg, extra); err != nil {
			return err
		}
		if !activate {
			return nil
		}
		return activateModel(ctx, tx, reg.ID)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "registered %s (%s, weights %s)%s\n", reg.ID, reg.Arch, reg.WeightsSHA256, map[bool]string{true: ", active"}[activate])
	return nil
}
