// Package fracd holds the few domain types that several packages share and
// that belong to none of them. It imports nothing of the project, so any
// package may use it.
package fracd

import "fmt"

// Category is what a result tells the reader: fracture, doubt or no fracture.
type Category string

// The categories, as stored and as written into results for the PACS.
const (
	CategoryFracture   Category = "fracture"
	CategoryDoubt      Category = "doubt"
	CategoryNoFracture Category = "no_fracture"
)

// Thresholds are a model's two operating points, Suspected <= Definite. A
// probability at or above Definite is a fracture, at or above Suspected a
// doubt, below it no fracture. A model with a single threshold has both equal
// and so never gives doubt.
type Thresholds struct {
	Suspected float64 `json:"suspected"`
	Definite  float64 `json:"definite"`
}

// Single is the pair for a model with one decision threshold.
func Single(t float64) Thresholds { return Thresholds{Suspected: t, Definite: t} }

// Validate checks 0 <= Suspected <= Definite <= 1.
func (t Thresholds) Validate() error {
	if !(t.Suspected >= 0 && t.Suspected <= t.Definite && t.Definite <= 1) {
		return fmt.Errorf("thresholds: need 0 <= suspected (%g) <= definite (%g) <= 1", t.Suspected, t.Definite)
	}
	return nil
}

// Categorize maps a probability to its category.
func (t Thresholds) Categorize(p float64) Category {
	switch {
	case p >= t.Definite:
		return CategoryFracture
	case p >= t.Suspected:
		return CategoryDoubt
	default:
		return CategoryNoFracture
	}
}

// Box is a localisation of a finding in the original image's pixel
// coordinates (column X, row Y; the top-left corner of the top-left pixel is
// 0,0), with its score in [0, 1].
type Box struct {
	X0, Y0, X1, Y1 float64
	Score          float64
}
