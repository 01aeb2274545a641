// Package models carries the model fracd ships, compiled into the binary so
// that a fresh install classifies from its first file, whatever directory
// it runs in. On first start, when the registry has no active model, the
// daemon writes these weights into paths.models and registers and
// activates them with audit rows (cmd/fracd). docs/model-card.md says how
// the model was trained and what it measured.
package models

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// files holds the shipped weights (safetensors, F16) and card.json, the
// figures the model card and the tests quote.
//
//go:embed *.safetensors card.json
var files embed.FS

// Shipped is the model compiled into this binary.
type Shipped struct {
	Name   string // file name, e.g. fracd-resnet18-v1.safetensors
	Data   []byte // the safetensors file
	SHA256 string // of Data, as the registry records it
	Card   Card
}

// Card is the machine-readable part of the model card: what the shipped
// model measured on FracAtlas's validation split (fracd model evaluate).
type Card struct {
	ID        string  `json:"id"`
	File      string  `json:"file"`
	ValAUC    float64 `json:"val_roc_auc"`
	ValAUCLo  float64 `json:"val_roc_auc_lo"`
	ValAUCHi  float64 `json:"val_roc_auc_hi"`
	Threshold float64 `json:"threshold"`
	ValSens   float64 `json:"val_sensitivity"`
	ValSpec   float64 `json:"val_specificity"`
	ValN      int     `json:"val_images"`
	// The validation flagged rate and mean probability, against which
	// fracd report warns about drift.
	ValFlaggedRate float64 `json:"val_flagged_rate"`
	ValMeanProb    float64 `json:"val_mean_probability"`
}

// Default returns the shipped model: the one card.json names.
func Default() (Shipped, error) {
	raw, err := files.ReadFile("card.json")
	if err != nil {
		return Shipped{}, fmt.Errorf("models: card: %w", err)
	}
	var c Card
	if err := json.Unmarshal(raw, &c); err != nil {
		return Shipped{}, fmt.Errorf("models: card.json: %w", err)
	}
	data, err := files.ReadFile(c.File)
	if err != nil {
		return Shipped{}, fmt.Errorf("models: card.json names %q: %w (shipped: %v)", c.File, err, Names())
	}
	sum := sha256.Sum256(data)
	return Shipped{Name: c.File, Data: data, SHA256: hex.EncodeToString(sum[:]), Card: c}, nil
}

// Names lists the weight files compiled in.
func Names() []string {
	var out []string
	fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".safetensors") {
			out = append(out, path.Base(p))
		}
		return nil
	})
	sort.Strings(out)
	return out
}
