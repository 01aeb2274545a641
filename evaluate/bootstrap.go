package evaluate

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
)

// BandPoints is the number of FPR grid points of the ROC band.
const BandPoints = 101

// bootstrap draws n resamples of the predictions (with replacement, the
// same size as the set) from a generator seeded by seed and returns the
// percentile interval of their ROC-AUCs and the pointwise percentile band
// of their ROC curves.
//
// A resample that lacks a class has no AUC. Such resamples are drawn again
// (and counted in Redrawn), not skipped, so the interval always rests on n
// resamples; the interval is then conditional on both classes being
// present, which is what a set that can be evaluated at all looks like.
// With both classes in the set a draw lacks one with probability at most
// 1/2, so the cap on redraws only guards against a broken generator.
func (t *ties) bootstrap(n int, seed int64, level float64) (*Interval, []BandPoint, error) {
	rng := rand.New(rand.NewSource(seed)) // math/rand's seeded source is stable across Go releases
	size := len(t.item)
	gpos, gneg := make([]int, len(t.values)), make([]int, len(t.values))
	aucs := make([]float64, 0, n)
	tprs := make([][]float64, BandPoints) // [grid point][resample]
	for k := range tprs {
		tprs[k] = make([]float64, 0, n)
	}
	grid := make([]float64, BandPoints)
	for k := range grid {
		grid[k] = float64(k) / (BandPoints - 1)
	}
	ci := &Interval{Level: level, Method: "percentile", Resamples: n, Seed: seed}
	maxDraws := 100*n + 1000
	for draws := 0; len(aucs) < n; draws++ {
		if draws == maxDraws {
			return nil, nil, fmt.Errorf("evaluate: bootstrap: %d of %d draws lacked a class", ci.Redrawn, draws)
		}
		clear(gpos)
		clear(gneg)
		var pos int
		for j := 0; j < size; j++ {
			i := rng.Intn(size)
			if t.label[i] == 1 {
				gpos[t.item[i]]++
				pos++
			} else {
				gneg[t.item[i]]++
			}
		}
		if pos == 0 || pos == size {
			ci.Redrawn++
			continue
		}
		aucs = append(aucs, t.auc(gpos, gneg))
		curve := t.roc(gpos, gneg)
		for k, x := range grid {
			tprs[k] = append(tprs[k], interpTPR(curve, x))
		}
	}
	alpha := (1 - level) / 2
	ci.Lower, ci.Upper = percentile(aucs, alpha), percentile(aucs, 1-alpha)
	band := make([]BandPoint, BandPoints)
	for k, x := range grid {
		band[k] = BandPoint{X: x, Lo: percentile(tprs[k], alpha), Hi: percentile(tprs[k], 1-alpha)}
	}
	return ci, band, nil
}

// interpTPR is the ROC curve's TPR at FPR x: at a vertical segment (several
// vertices at x) its top, between vertices linear, as the curve is drawn.
func interpTPR(curve []Point, x float64) float64 {
	k := sort.Search(len(curve), func(i int) bool { return curve[i].X > x }) - 1
	if k < 0 {
		return 0
	}
	if k == len(curve)-1 || curve[k].X == x {
		return curve[k].Y
	}
	a, b := curve[k], curve[k+1]
	return a.Y + (b.Y-a.Y)*(x-a.X)/(b.X-a.X)
}

// percentile is numpy's default (linear) percentile, q in [0, 1]. It sorts
// v in place.
func percentile(v []float64, q float64) float64 {
	sort.Float64s(v)
	h := q * float64(len(v)-1)
	lo := math.Floor(h)
	i := int(lo)
	if i+1 >= len(v) {
		return v[len(v)-1]
	}
	return v[i] + (h-lo)*(v[i+1]-v[i])
}
