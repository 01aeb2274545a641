package classifier

import (
	"math"
	"testing"
)

func TestEvaluate(t *testing.T) {
	for _, tc := range []struct {
		name           string
		probs, labels  []float32
		thr            float64
		acc, f1, auc   float64
		aucDefined     bool
		tp, fp, tn, fn int
	}{
		// scikit-learn's roc_auc_score docstring example: 0.75
		{"sklearn example", []float32{0.1, 0.4, 0.35, 0.8}, []float32{0, 0, 1, 1}, 0.5, 0.75, 2.0 / 3, 0.75, true, 1, 0, 2, 1},
		{"perfect", []float32{0.9, 0.8, 0.2, 0.1}, []float32{1, 1, 0, 0}, 0.5, 1, 1, 1, true, 2, 0, 2, 0},
		{"ties count half", []float32{0.5, 0.5, 0.5, 0.5}, []float32{1, 0, 1, 0}, 0.5, 0.5, 2.0 / 3, 0.5, true, 2, 2, 0, 0},
		{"one class", []float32{0.7, 0.2}, []float32{1, 1}, 0.5, 0.5, 2.0 / 3, 0, false, 1, 0, 0, 1},
		{"threshold inclusive", []float32{0.3, 0.29}, []float32{1, 0}, 0.3, 1, 1, 1, true, 1, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Evaluate(tc.probs, tc.labels, tc.thr)
			if err != nil {
				t.Fatal(err)
			}
			if m.TP != tc.tp || m.FP != tc.fp || m.TN != tc.tn || m.FN != tc.fn {
				t.Errorf("confusion tp%d fp%d tn%d fn%d", m.TP, m.FP, m.TN, m.FN)
			}
			for _, c := range []struct {
				what      string
				got, want float64
			}{{"accuracy", m.Accuracy, tc.acc}, {"f1", m.F1, tc.f1}, {"auc", m.AUC, tc.auc}} {
				if math.Abs(c.got-c.want) > 1e-12 {
					t.Errorf("%s %g, want %g", c.what, c.got, c.want)
				}
			}
			if m.AUCDefined != tc.aucDefined {
				t.Errorf("AUCDefined %v", m.AUCDefined)
			}
		})
	}
	if _, err := Evaluate([]float32{1}, nil, 0.5); err == nil {
		t.Error("length mismatch accepted")
	}
}
