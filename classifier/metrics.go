package classifier

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Metrics summarises binary predictions against labels.
type Metrics struct {
	N                     int
	TP, FP, TN, FN        int
	Accuracy              float64
	Precision, Recall, F1 float64
	AUC                   float64 // ROC-AUC; NaN-free: 0 when only one class is present
	Threshold             float64
	Positives, Negatives  int
	AUCDefined            bool
}

// Evaluate computes accuracy, precision, recall and F1 at threshold
// (flagged = prob >= threshold) and the ROC-AUC of probs against labels
// (label >= 0.5 is positive). Ties in probability count half, as in the
// Mann-Whitney statistic (and scikit-learn's roc_auc_score).
func Evaluate(probs, labels []float32, threshold float64) (Metrics, error) {
	if len(probs) != len(labels) {
		return Metrics{}, fmt.Errorf("classifier: metrics: %d probabilities, %d labels", len(probs), len(labels))
	}
	if len(probs) == 0 {
		return Metrics{}, errors.New("classifier: metrics: no samples")
	}
	m := Metrics{N: len(probs), Threshold: threshold}
	for i, p := range probs {
		pos := labels[i] >= 0.5
		flag := float64(p) >= threshold
		switch {
		case pos && flag:
			m.TP++
		case pos:
			m.FN++
		case flag:
			m.FP++
		default:
			m.TN++
		}
	}
	m.Positives, m.Negatives = m.TP+m.FN, m.TN+m.FP
	m.Accuracy = float64(m.TP+m.TN) / float64(m.N)
	if m.TP+m.FP > 0 {
		m.Precision = float64(m.TP) / float64(m.TP+m.FP)
	}
	if m.TP+m.FN > 0 {
		m.Recall = float64(m.TP) / float64(m.TP+m.FN)
	}
	if m.Precision+m.Recall > 0 {
		m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
	}
	m.AUC, m.AUCDefined = rocAUC(probs, labels)
	return m, nil
}

// rocAUC is the probability that a random positive scores above a random
// negative, computed from average ranks (ties get the mean rank).
func rocAUC(probs, labels []float32) (float64, bool) {
	idx := make([]int, len(probs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return probs[idx[a]] < probs[idx[b]] })
	var rankSumPos float64
	var nPos, nNeg int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && probs[idx[j]] == probs[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // mean of 1-based ranks i+1..j
		for k := i; k < j; k++ {
			if labels[idx[k]] >= 0.5 {
				rankSumPos += avg
				nPos++
			} else {
				nNeg++
			}
		}
		i = j
	}
	if nPos == 0 || nNeg == 0 {
		return 0, false
	}
	return (rankSumPos - float64(nPos)*float64(nPos+1)/2) / (float64(nPos) * float64(nNeg)), true
}

// EvaluateDataset predicts every example of ds in batches and scores the
// probabilities against its labels at threshold.
func (m *Model) EvaluateDataset(ctx context.Context, ds Dataset, batch int, threshold float64) (Metrics, []float32, error) {
	if batch <= 0 {
		return Metrics{}, nil, errors.New("classifier: evaluate: batch must be positive")
	}
	size := m.Info().InputSize
	per := 3 * size * size
	n := ds.Len()
	buf := make([]float32, batch*per)
	labels := make([]float32, n)
	probs := make([]float32, 0, n)
	for i := 0; i < n; i += batch {
		b := min(batch, n-i)
		for j := 0; j < b; j++ {
			y, err := ds.Example(i+j, buf[j*per:(j+1)*per])
			if err != nil {
				return Metrics{}, nil, fmt.Errorf("classifier: evaluate: example %d: %w", i+j, err)
			}
			labels[i+j] = y
		}
		p, err := m.Predict(ctx, buf[:b*per], b)
		if err != nil {
			return Metrics{}, nil, err
		}
		probs = append(probs, p...)
	}
	met, err := Evaluate(probs, labels, threshold)
	return met, probs, err
}
