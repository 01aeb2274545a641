// Package evaluate measures a binary classifier on a set of labelled
// predictions: ROC-AUC with a bootstrap interval, average precision, the
// figures at a decision threshold, operating points, calibration and a
// per-group breakdown, written as Markdown, JSON and PNG plots.
//
// It knows nothing of DICOM, models or databases: a prediction is a key (an
// image path or a de-identified UID), a label, a probability and an
// optional group. The figures follow scikit-learn's definitions
// (roc_auc_score, average_precision_score, brier_score_loss,
// calibration_curve), and the tests hold them to it.
package evaluate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Defaults of Options.
const (
	DefaultBootstrap = 2000
	DefaultLevel     = 0.95
	// Bins is the number of equal-width calibration bins.
	Bins = 10
)

// TargetSensitivities are the operating points reported.
var TargetSensitivities = []float64{0.80, 0.90, 0.95}

// TargetSpecificities are the high-specificity operating points reported
// (a model's "definite" threshold is chosen from them).
var TargetSpecificities = []float64{0.90, 0.95}

// ErrInvalid marks bad input: a caller can tell it from a failure to write.
var ErrInvalid = errors.New("invalid input")

// Prediction is one labelled prediction.
type Prediction struct {
	Key         string  `json:"key"`   // image path or de-identified UID; never a patient identifier
	Label       int     `json:"label"` // 1 positive (fractured), 0 negative
	Probability float64 `json:"probability"`
	Group       string  `json:"group,omitempty"` // e.g. body part; "" for none
}

// Options configure Evaluate.
type Options struct {
	Threshold float64 // flagged = probability >= Threshold
	// Bootstrap is the number of resamples for the ROC-AUC interval: 0
	// takes DefaultBootstrap, a negative number skips the interval.
	Bootstrap int
	Seed      int64
	Level     float64 // interval level, 0 takes DefaultLevel
	// Model and Dataset are free text for the report's header.
	Model, Dataset string
}

// Report holds every figure of one evaluation. Undefined figures (PPV with
// nothing flagged, a group's AUC with one class) are nil, null in JSON.
type Report struct {
	Model            string           `json:"model,omitempty"`
	Dataset          string           `json:"dataset,omitempty"`
	DataSHA256       string           `json:"data_sha256"`
	N                int              `json:"n"`
	Positives        int              `json:"positives"`
	Negatives        int              `json:"negatives"`
	ROCAUC           float64          `json:"roc_auc"`
	ROCAUCCI         *Interval        `json:"roc_auc_ci,omitempty"`
	AveragePrecision float64          `json:"average_precision"`
	AtThreshold      ThresholdMetrics `json:"at_threshold"`
	OperatingPoints  []OperatingPoint `json:"operating_points"`
	// SpecificityPoints are the lowest thresholds keeping each target
	// specificity (the most sensitive such cut).
	SpecificityPoints []SpecificityPoint `json:"specificity_points"`
	// FlaggedRate is the share of cases at or above the threshold: the
	// baseline fracd report compares the daemon's flagged rate with.
	FlaggedRate float64     `json:"flagged_rate"`
	Calibration Calibration `json:"calibration"`
	Groups      []Group     `json:"groups,omitempty"`
	Curves      *Curves     `json:"curves,omitempty"`
}

// Interval is a bootstrap confidence interval.
type Interval struct {
	Level     float64 `json:"level"`
	Lower     float64 `json:"lower"`
	Upper     float64 `json:"upper"`
	Method    string  `json:"method"`
	Resamples int     `json:"resamples"`
	Redrawn   int     `json:"redrawn"` // resamples drawn again because they lacked a class
	Seed      int64   `json:"seed"`
}

// ThresholdMetrics are the figures at one decision threshold.
type ThresholdMetrics struct {
	Threshold   float64  `json:"threshold"`
	TP          int      `json:"tp"`
	FP          int      `json:"fp"`
	TN          int      `json:"tn"`
	FN          int      `json:"fn"`
	Accuracy    float64  `json:"accuracy"`
	Sensitivity float64  `json:"sensitivity"`
	Specificity float64  `json:"specificity"`
	PPV         *float64 `json:"ppv"` // nil when nothing is flagged
	NPV         *float64 `json:"npv"` // nil when everything is flagged
	F1          float64  `json:"f1"`
}

// OperatingPoint is the highest threshold whose sensitivity on this set
// reaches the target.
type OperatingPoint struct {
	TargetSensitivity float64  `json:"target_sensitivity"`
	Threshold         float64  `json:"threshold"`
	Sensitivity       float64  `json:"sensitivity"`
	Specificity       float64  `json:"specificity"`
	PPV               *float64 `json:"ppv"`
}

// SpecificityPoint is the lowest threshold whose specificity on this set
// still reaches the target.
type SpecificityPoint struct {
	TargetSpecificity float64  `json:"target_specificity"`
	Threshold         float64  `json:"threshold"`
	Sensitivity       float64  `json:"sensitivity"`
	Specificity       float64  `json:"specificity"`
	PPV               *float64 `json:"ppv"`
}

// Calibration holds the Brier score, the expected calibration error and
// the reliability table.
type Calibration struct {
	Brier float64 `json:"brier"`
	// ECE is sum over bins of n_bin/N * |mean predicted - observed rate|.
	ECE  float64 `json:"ece"`
	Bins []Bin   `json:"bins"`
}

// Bin is one calibration bin. As in scikit-learn's calibration_curve, the
// first bin is [Lo, Hi] and the others (Lo, Hi]: a probability on an edge
// counts in the lower bin.
type Bin struct {
	Lo            float64  `json:"lo"`
	Hi            float64  `json:"hi"`
	Count         int      `json:"count"`
	MeanPredicted *float64 `json:"mean_predicted"` // nil for an empty bin
	ObservedRate  *float64 `json:"observed_rate"`
}

// Group is the breakdown for one group at the report's threshold.
type Group struct {
	Group       string   `json:"group"`
	N           int      `json:"n"`
	Positives   int      `json:"positives"`
	ROCAUC      *float64 `json:"roc_auc"`     // nil unless both classes are present
	Sensitivity *float64 `json:"sensitivity"` // nil without positives
	Specificity *float64 `json:"specificity"` // nil without negatives
}

// NoGroup names predictions without a group in a breakdown.
const NoGroup = "(none)"

// Curves are the plotted curves.
type Curves struct {
	ROC []Point `json:"roc"` // (FPR, TPR) from (0,0) to (1,1), one vertex per distinct probability
	// ROCBand is the pointwise bootstrap interval of the TPR on a grid of
	// FPR values (X), Lo and Hi.
	ROCBand []BandPoint `json:"roc_band,omitempty"`
	PR      []Point     `json:"pr"` // (recall, precision) from (0,1), one vertex per distinct probability
}

// Point is one curve vertex.
type Point struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// BandPoint is one point of an interval band.
type BandPoint struct {
	X  float64 `json:"x"`
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

// Summary is the report without its curves: what a database row keeps.
func (r *Report) Summary() *Report {
	s := *r
	s.Curves = nil
	return &s
}

// Validate checks predictions: non-empty, unique keys without line breaks,
// labels 0 or 1, probabilities finite in [0, 1], and both classes present.
// Errors name predictions by their 1-based position, never by key.
func Validate(preds []Prediction) error {
	if len(preds) == 0 {
		return fmt.Errorf("evaluate: no predictions: %w", ErrInvalid)
	}
	seen := make(map[string]int, len(preds))
	var pos int
	for i, p := range preds {
		n := i + 1
		switch {
		case p.Key == "":
			return fmt.Errorf("evaluate: prediction %d: empty key: %w", n, ErrInvalid)
		case strings.ContainsAny(p.Key, "\r\n"):
			return fmt.Errorf("evaluate: prediction %d: key holds a line break: %w", n, ErrInvalid)
		case p.Label != 0 && p.Label != 1:
			return fmt.Errorf("evaluate: prediction %d: label %d, want 0 or 1: %w", n, p.Label, ErrInvalid)
		case math.IsNaN(p.Probability) || p.Probability < 0 || p.Probability > 1:
			return fmt.Errorf("evaluate: prediction %d: probability %v is not a number in [0, 1]: %w", n, p.Probability, ErrInvalid)
		}
		if first, dup := seen[p.Key]; dup {
			return fmt.Errorf("evaluate: prediction %d: same key as prediction %d: %w", n, first, ErrInvalid)
		}
		seen[p.Key] = n
		pos += p.Label
	}
	if pos == 0 || pos == len(preds) {
		return fmt.Errorf("evaluate: all %d predictions are labelled %d: ROC-AUC and sensitivity/specificity need both classes: %w",
			len(preds), preds[0].Label, ErrInvalid)
	}
	return nil
}

// DataHash is the sha256 (hex) of the sorted "key,label\n" lines: the same
// images with the same labels give the same hash, whatever their order and
// whatever the model predicted.
func DataHash(preds []Prediction) string {
	lines := make([]string, len(preds))
	for i, p := range preds {
		lines[i] = p.Key + "," + strconv.Itoa(p.Label) + "\n"
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Evaluate computes the report for preds at opt.Threshold.
func Evaluate(preds []Prediction, opt Options) (*Report, error) {
	if err := Validate(preds); err != nil {
		return nil, err
	}
	if math.IsNaN(opt.Threshold) || opt.Threshold < 0 || opt.Threshold > 1 {
		return nil, fmt.Errorf("evaluate: threshold %v is not in [0, 1]: %w", opt.Threshold, ErrInvalid)
	}
	if opt.Level == 0 {
		opt.Level = DefaultLevel
	}
	if !(opt.Level > 0 && opt.Level < 1) {
		return nil, fmt.Errorf("evaluate: interval level %v is not in (0, 1): %w", opt.Level, ErrInvalid)
	}
	if opt.Bootstrap == 0 {
		opt.Bootstrap = DefaultBootstrap
	}
	t := newTies(preds)
	r := &Report{Model: opt.Model, Dataset: opt.Dataset, DataSHA256: DataHash(preds), N: len(preds),
		Positives: t.pos, Negatives: t.neg}
	r.ROCAUC = t.auc(t.gpos, t.gneg)
	r.AveragePrecision = t.averagePrecision()
	r.AtThreshold = atThreshold(preds, opt.Threshold)
	r.OperatingPoints = t.operatingPoints()
	r.SpecificityPoints = t.specificityPoints()
	if r.N > 0 {
		m := r.AtThreshold
		r.FlaggedRate = float64(m.TP+m.FP) / float64(r.N)
	}
	r.Calibration = calibration(preds)
	r.Groups = groups(preds, opt.Threshold)
	r.Curves = &Curves{ROC: t.roc(t.gpos, t.gneg), PR: t.pr()}
	if opt.Bootstrap > 0 {
		ci, band, err := t.bootstrap(opt.Bootstrap, opt.Seed, opt.Level)
		if err != nil {
			return nil, err
		}
		r.ROCAUCCI, r.Curves.ROCBand = ci, band
	}
	return r, nil
}

// ties is the predictions grouped by distinct probability, in ascending
// order: every figure that depends only on the ranking works on the counts
// per distinct value, so tied probabilities are handled once, the same way
// everywhere, and a bootstrap resample is just new counts.
type ties struct {
	values     []float64 // distinct probabilities, ascending
	gpos, gneg []int     // positives and negatives per distinct value
	item       []int     // distinct-value index of each prediction
	label      []int
	pos, neg   int
}

func newTies(preds []Prediction) *ties {
	idx := make([]int, len(preds))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return preds[idx[a]].Probability < preds[idx[b]].Probability })
	t := &ties{item: make([]int, len(preds)), label: make([]int, len(preds))}
	for _, i := range idx {
		p := preds[i]
		if len(t.values) == 0 || t.values[len(t.values)-1] != p.Probability {
			t.values = append(t.values, p.Probability)
			t.gpos, t.gneg = append(t.gpos, 0), append(t.gneg, 0)
		}
		g := len(t.values) - 1
		t.item[i], t.label[i] = g, p.Label
		if p.Label == 1 {
			t.gpos[g]++
			t.pos++
		} else {
			t.gneg[g]++
			t.neg++
		}
	}
	return t
}

// auc is the Mann-Whitney statistic: the share of (positive, negative)
// pairs ranked correctly, ties counting half. It is summed in integers
// (twice the count, so the halves stay whole) and divided once, so the
// only rounding is that division.
func (t *ties) auc(gpos, gneg []int) float64 {
	var twice, negBelow, pos, neg int64
	for g := range gpos {
		p, n := int64(gpos[g]), int64(gneg[g])
		twice += p * (2*negBelow + n)
		negBelow += n
		pos += p
		neg += n
	}
	return float64(twice) / float64(2*pos*neg)
}

// averagePrecision is scikit-learn's: sum over the distinct thresholds,
// descending, of (recall gained) * precision at that threshold.
func (t *ties) averagePrecision() float64 {
	var ap float64
	tp, fp := 0, 0
	for g := len(t.values) - 1; g >= 0; g-- {
		tp += t.gpos[g]
		fp += t.gneg[g]
		if t.gpos[g] > 0 {
			ap += float64(t.gpos[g]) / float64(t.pos) * float64(tp) / float64(tp+fp)
		}
	}
	return ap
}

// roc returns the ROC vertices for the given counts, from (0,0).
func (t *ties) roc(gpos, gneg []int) []Point {
	var pos, neg int
	for g := range gpos {
		pos += gpos[g]
		neg += gneg[g]
	}
	pts := make([]Point, 0, len(gpos)+1)
	pts = append(pts, Point{0, 0})
	tp, fp := 0, 0
	for g := len(gpos) - 1; g >= 0; g-- {
		if gpos[g] == 0 && gneg[g] == 0 {
			continue // value absent from a bootstrap resample
		}
		tp += gpos[g]
		fp += gneg[g]
		pts = append(pts, Point{float64(fp) / float64(neg), float64(tp) / float64(pos)})
	}
	return pts
}

// pr returns the precision-recall vertices, from (recall 0, precision 1)
// as scikit-learn's precision_recall_curve ends.
func (t *ties) pr() []Point {
	pts := []Point{{0, 1}}
	tp, fp := 0, 0
	for g := len(t.values) - 1; g >= 0; g-- {
		tp += t.gpos[g]
		fp += t.gneg[g]
		pts = append(pts, Point{float64(tp) / float64(t.pos), float64(tp) / float64(tp+fp)})
	}
	return pts
}

// operatingPoints walks the distinct probabilities downwards; the first
// cut whose sensitivity reaches a target is the highest such threshold.
// The lowest cut flags everything, so every target is reached.
func (t *ties) operatingPoints() []OperatingPoint {
	out := make([]OperatingPoint, 0, len(TargetSensitivities))
	for _, target := range TargetSensitivities {
		tp, fp := 0, 0
		for g := len(t.values) - 1; g >= 0; g-- {
			tp += t.gpos[g]
			fp += t.gneg[g]
			// Compared as a float ratio, as scikit-learn's roc_curve gives it.
			if sens := float64(tp) / float64(t.pos); sens >= target {
				out = append(out, OperatingPoint{TargetSensitivity: target, Threshold: t.values[g], Sensitivity: sens,
					Specificity: float64(t.neg-fp) / float64(t.neg), PPV: ratio(tp, tp+fp)})
				break
			}
		}
	}
	return out
}

// specificityPoints walks the distinct probabilities downwards and keeps,
// per target, the last cut whose specificity still reaches it. The
// highest cut flags only the top value; if even that breaks a target, the
// target gets no point.
func (t *ties) specificityPoints() []SpecificityPoint {
	var out []SpecificityPoint
	for _, target := range TargetSpecificities {
		var best *SpecificityPoint
		tp, fp := 0, 0
		for g := len(t.values) - 1; g >= 0; g-- {
			tp += t.gpos[g]
			fp += t.gneg[g]
			spec := float64(t.neg-fp) / float64(t.neg)
			if spec < target {
				break
			}
			best = &SpecificityPoint{TargetSpecificity: target, Threshold: t.values[g], Sensitivity: float64(tp) / float64(t.pos),
				Specificity: spec, PPV: ratio(tp, tp+fp)}
		}
		if best != nil {
			out = append(out, *best)
		}
	}
	return out
}

// ratio is a/b, or nil when b is 0.
func ratio(a, b int) *float64 {
	if b == 0 {
		return nil
	}
	v := float64(a) / float64(b)
	return &v
}

func atThreshold(preds []Prediction, thr float64) ThresholdMetrics {
	m := ThresholdMetrics{Threshold: thr}
	for _, p := range preds {
		flag := p.Probability >= thr
		switch {
		case p.Label == 1 && flag:
			m.TP++
		case p.Label == 1:
			m.FN++
		case flag:
			m.FP++
		default:
			m.TN++
		}
	}
	n := m.TP + m.FP + m.TN + m.FN
	m.Accuracy = float64(m.TP+m.TN) / float64(n)
	m.Sensitivity = float64(m.TP) / float64(m.TP+m.FN)
	m.Specificity = float64(m.TN) / float64(m.TN+m.FP)
	m.PPV, m.NPV = ratio(m.TP, m.TP+m.FP), ratio(m.TN, m.TN+m.FN)
	m.F1 = float64(2*m.TP) / float64(2*m.TP+m.FP+m.FN) // > 0: both classes are present
	return m
}

// binEdge is edge i of Bins equal-width bins, computed as numpy's
// linspace(0, 1, Bins+1) does (i*step, the last exactly 1), so that a
// probability on an edge lands in the same bin as in scikit-learn.
func binEdge(i int) float64 {
	if i == Bins {
		return 1
	}
	return float64(i) * (1.0 / Bins)
}

// binOf is np.searchsorted(edges[1:-1], p) (side left): the number of
// inner edges strictly below p.
func binOf(p float64) int {
	b := 0
	for b < Bins-1 && binEdge(b+1) < p {
		b++
	}
	return b
}

func calibration(preds []Prediction) Calibration {
	var c Calibration
	var sumP, sumY [Bins]float64
	var count [Bins]int
	var sq float64
	for _, p := range preds {
		d := p.Probability - float64(p.Label)
		sq += d * d
		b := binOf(p.Probability)
		count[b]++
		sumP[b] += p.Probability
		sumY[b] += float64(p.Label)
	}
	n := float64(len(preds))
	c.Brier = sq / n
	for b := 0; b < Bins; b++ {
		bin := Bin{Lo: binEdge(b), Hi: binEdge(b + 1), Count: count[b]}
		if count[b] > 0 {
			mp, obs := sumP[b]/float64(count[b]), sumY[b]/float64(count[b])
			bin.MeanPredicted, bin.ObservedRate = &mp, &obs
			c.ECE += float64(count[b]) / n * math.Abs(mp-obs)
		}
		c.Bins = append(c.Bins, bin)
	}
	return c
}

// groups breaks the predictions down by group; nil when no prediction has
// one.
func groups(preds []Prediction, thr float64) []Group {
	by := map[string][]Prediction{}
	grouped := false
	for _, p := range preds {
		g := p.Group
		if g == "" {
			g = NoGroup
		} else {
			grouped = true
		}
		by[g] = append(by[g], p)
	}
	if !grouped {
		return nil
	}
	names := make([]string, 0, len(by))
	for g := range by {
		names = append(names, g)
	}
	sort.Strings(names)
	out := make([]Group, 0, len(names))
	for _, name := range names {
		ps := by[name]
		g := Group{Group: name, N: len(ps)}
		var tp, tn int
		for _, p := range ps {
			flag := p.Probability >= thr
			if p.Label == 1 {
				g.Positives++
				if flag {
					tp++
				}
			} else if !flag {
				tn++
			}
		}
		neg := g.N - g.Positives
		g.Sensitivity, g.Specificity = ratio(tp, g.Positives), ratio(tn, neg)
		if g.Positives > 0 && neg > 0 {
			t := newTies(ps)
			a := t.auc(t.gpos, t.gneg)
			g.ROCAUC = &a
		}
		out = append(out, g)
	}
	return out
}
