package evaluate

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// loadPredictions reads testdata/predictions.csv (key,label,probability,group).
func loadPredictions(t *testing.T) []Prediction {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "predictions.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []Prediction
	for _, r := range recs[1:] {
		y, err1 := strconv.Atoi(r[1])
		p, err2 := strconv.ParseFloat(r[2], 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad row %v", r)
		}
		out = append(out, Prediction{Key: r[0], Label: y, Probability: p, Group: r[3]})
	}
	return out
}

// golden is testdata/golden.json, written by make_golden.py with
// scikit-learn.
type golden struct {
	MadeBy           string  `json:"made_by"`
	N                int     `json:"n"`
	Positives        int     `json:"positives"`
	TiedAcross       int     `json:"probabilities_tied_across_classes"`
	ROCAUC           float64 `json:"roc_auc"`
	AveragePrecision float64 `json:"average_precision"`
	AtThreshold      []struct {
		Threshold                                    float64
		TP, FP, TN, FN                               int
		Accuracy, Sensitivity, Specificity, PPV, NPV float64
		F1                                           float64
	} `json:"at_threshold"`
	OperatingPoints []struct {
		Target      float64 `json:"target_sensitivity"`
		Threshold   float64 `json:"threshold"`
		Sensitivity float64 `json:"sensitivity"`
		Specificity float64 `json:"specificity"`
	} `json:"operating_points"`
	Calibration struct {
		Brier float64 `json:"brier"`
		ECE   float64 `json:"ece"`
		Bins  []struct {
			Lo, Hi        float64
			Count         int
			MeanPredicted *float64 `json:"mean_predicted"`
			ObservedRate  *float64 `json:"observed_rate"`
		} `json:"bins"`
	} `json:"calibration"`
	Groups []struct {
		Group       string
		N           int
		Positives   int
		ROCAUC      *float64 `json:"roc_auc"`
		Sensitivity *float64
		Specificity *float64
	} `json:"groups_at_0.5"`
	Curves struct {
		ROCFPR      []float64 `json:"roc_fpr"`
		ROCTPR      []float64 `json:"roc_tpr"`
		PRRecall    []float64 `json:"pr_recall"`
		PRPrecision []float64 `json:"pr_precision"`
	} `json:"curves"`
}

func loadGolden(t *testing.T) golden {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// diffs records the largest |ours - sklearn| per kind of figure.
type diffs map[string]float64

func (d diffs) near(t *testing.T, kind, what string, got, want, tol float64) {
	t.Helper()
	e := math.Abs(got - want)
	if !(e <= tol) {
		t.Errorf("%s: %.17g, scikit-learn %.17g (|diff| %.3g > %.0g)", what, got, want, e, tol)
	}
	d[kind] = math.Max(d[kind], e)
}

func (d diffs) nearOpt(t *testing.T, kind, what string, got, want *float64, tol float64) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Errorf("%s: defined %v, scikit-learn %v", what, got != nil, want != nil)
		return
	}
	if got != nil {
		d.near(t, kind, what, *got, *want, tol)
	}
}

func TestAgreesWithScikitLearn(t *testing.T) {
	preds, g := loadPredictions(t), loadGolden(t)
	t.Logf("golden: %s", g.MadeBy)
	if g.TiedAcross == 0 {
		t.Fatal("the golden set must have probabilities tied across classes")
	}
	d := diffs{}
	for _, at := range g.AtThreshold {
		r, err := Evaluate(preds, Options{Threshold: at.Threshold, Bootstrap: -1})
		if err != nil {
			t.Fatal(err)
		}
		if r.N != g.N || r.Positives != g.Positives || r.Negatives != g.N-g.Positives {
			t.Errorf("counts n %d pos %d neg %d", r.N, r.Positives, r.Negatives)
		}
		d.near(t, "roc_auc", "ROC-AUC", r.ROCAUC, g.ROCAUC, 1e-9)
		d.near(t, "average_precision", "average precision", r.AveragePrecision, g.AveragePrecision, 1e-9)
		d.near(t, "brier", "Brier", r.Calibration.Brier, g.Calibration.Brier, 1e-12)

		m := r.AtThreshold
		if m.TP != at.TP || m.FP != at.FP || m.TN != at.TN || m.FN != at.FN {
			t.Errorf("threshold %v: confusion tp %d fp %d tn %d fn %d, scikit-learn %d %d %d %d",
				at.Threshold, m.TP, m.FP, m.TN, m.FN, at.TP, at.FP, at.TN, at.FN)
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{{"accuracy", m.Accuracy, at.Accuracy}, {"sensitivity", m.Sensitivity, at.Sensitivity},
			{"specificity", m.Specificity, at.Specificity}, {"ppv", *m.PPV, at.PPV}, {"npv", *m.NPV, at.NPV}, {"f1", m.F1, at.F1}} {
			d.near(t, "rates", c.name+" at "+strconv.FormatFloat(at.Threshold, 'g', -1, 64), c.got, c.want, 1e-12)
		}

		if len(r.OperatingPoints) != len(g.OperatingPoints) {
			t.Fatalf("%d operating points, want %d", len(r.OperatingPoints), len(g.OperatingPoints))
		}
		for i, op := range r.OperatingPoints {
			w := g.OperatingPoints[i]
			if op.TargetSensitivity != w.Target || op.Threshold != w.Threshold {
				t.Errorf("operating point %v: threshold %v, scikit-learn %v", w.Target, op.Threshold, w.Threshold)
			}
			d.near(t, "rates", "operating point sensitivity", op.Sensitivity, w.Sensitivity, 1e-12)
			d.near(t, "rates", "operating point specificity", op.Specificity, w.Specificity, 1e-12)
		}

		d.near(t, "calibration", "ECE", r.Calibration.ECE, g.Calibration.ECE, 1e-12)
		if len(r.Calibration.Bins) != len(g.Calibration.Bins) {
			t.Fatalf("%d bins, want %d", len(r.Calibration.Bins), len(g.Calibration.Bins))
		}
		for i, b := range r.Calibration.Bins {
			w := g.Calibration.Bins[i]
			// Edges compare exactly: they decide where 0.3 or 0.7 goes.
			if b.Lo != w.Lo || b.Hi != w.Hi || b.Count != w.Count {
				t.Errorf("bin %d: [%v, %v] n %d, scikit-learn [%v, %v] n %d", i, b.Lo, b.Hi, b.Count, w.Lo, w.Hi, w.Count)
			}
			d.nearOpt(t, "calibration", "bin mean predicted", b.MeanPredicted, w.MeanPredicted, 1e-12)
			d.nearOpt(t, "calibration", "bin observed rate", b.ObservedRate, w.ObservedRate, 1e-12)
		}

		// The plotted curves: scikit-learn's roc_curve(drop_intermediate=False)
		// and precision_recall_curve, vertex for vertex.
		for _, c := range []struct {
			name   string
			pts    []Point
			xs, ys []float64
		}{{"ROC", r.Curves.ROC, g.Curves.ROCFPR, g.Curves.ROCTPR}, {"PR", r.Curves.PR, g.Curves.PRRecall, g.Curves.PRPrecision}} {
			if len(c.pts) != len(c.xs) {
				t.Fatalf("%s curve: %d vertices, scikit-learn %d", c.name, len(c.pts), len(c.xs))
			}
			for i, pt := range c.pts {
				d.near(t, "curves", c.name+" x", pt.X, c.xs[i], 1e-12)
				d.near(t, "curves", c.name+" y", pt.Y, c.ys[i], 1e-12)
			}
		}

		if at.Threshold != 0.5 {
			continue
		}
		if len(r.Groups) != len(g.Groups) {
			t.Fatalf("%d groups, want %d", len(r.Groups), len(g.Groups))
		}
		for i, gr := range r.Groups {
			w := g.Groups[i]
			if gr.Group != w.Group || gr.N != w.N || gr.Positives != w.Positives {
				t.Errorf("group %d: %s n %d pos %d, want %s %d %d", i, gr.Group, gr.N, gr.Positives, w.Group, w.N, w.Positives)
			}
			d.nearOpt(t, "roc_auc", "group "+w.Group+" ROC-AUC", gr.ROCAUC, w.ROCAUC, 1e-9)
			d.nearOpt(t, "rates", "group "+w.Group+" sensitivity", gr.Sensitivity, w.Sensitivity, 1e-12)
			d.nearOpt(t, "rates", "group "+w.Group+" specificity", gr.Specificity, w.Specificity, 1e-12)
		}
	}
	t.Logf("largest |difference| from scikit-learn: %v", map[string]float64(d))
}

func TestBootstrapReproducibleAndCovers(t *testing.T) {
	preds := loadPredictions(t)
	run := func(seed int64) *Report {
		r, err := Evaluate(preds, Options{Threshold: 0.5, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, c := run(7), run(7), run(8)
	ci := a.ROCAUCCI
	if ci == nil || ci.Resamples != DefaultBootstrap || ci.Level != DefaultLevel || ci.Method != "percentile" || ci.Seed != 7 {
		t.Fatalf("interval %+v", ci)
	}
	if *a.ROCAUCCI != *b.ROCAUCCI {
		t.Errorf("same seed, different intervals: %+v %+v", a.ROCAUCCI, b.ROCAUCCI)
	}
	for i := range a.Curves.ROCBand {
		if a.Curves.ROCBand[i] != b.Curves.ROCBand[i] {
			t.Fatalf("same seed, different band at %d", i)
		}
	}
	if c.ROCAUCCI.Lower == ci.Lower && c.ROCAUCCI.Upper == ci.Upper {
		t.Errorf("seeds 7 and 8 gave the same interval %+v", ci)
	}
	for _, r := range []*Report{a, c} {
		ci := r.ROCAUCCI
		if !(ci.Lower < r.ROCAUC && r.ROCAUC < ci.Upper) || ci.Upper-ci.Lower > 0.4 || ci.Lower < 0 || ci.Upper > 1 {
			t.Errorf("interval [%v, %v] around AUC %v", ci.Lower, ci.Upper, r.ROCAUC)
		}
	}
	// The band holds the curve's own TPR nearly everywhere and is ordered.
	inside := 0
	for _, bp := range a.Curves.ROCBand {
		if bp.Lo > bp.Hi || bp.Lo < 0 || bp.Hi > 1 {
			t.Fatalf("band point %+v", bp)
		}
		if y := interpTPR(a.Curves.ROC, bp.X); bp.Lo <= y && y <= bp.Hi {
			inside++
		}
	}
	if inside < len(a.Curves.ROCBand)*9/10 {
		t.Errorf("the ROC curve lies inside its band at %d of %d points", inside, len(a.Curves.ROCBand))
	}
	t.Logf("ROC-AUC %.4f, 95%% CI [%.4f, %.4f] (seed 7), [%.4f, %.4f] (seed 8)", a.ROCAUC, ci.Lower, ci.Upper, c.ROCAUCCI.Lower, c.ROCAUCCI.Upper)
}

func TestBootstrapRedrawsOneClassResamples(t *testing.T) {
	// Four predictions: a quarter of the resamples lack a class.
	preds := []Prediction{{"a", 0, 0.1, ""}, {"b", 1, 0.4, ""}, {"c", 0, 0.35, ""}, {"d", 1, 0.8, ""}}
	r, err := Evaluate(preds, Options{Threshold: 0.5, Bootstrap: 500, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if ci := r.ROCAUCCI; ci.Resamples != 500 || ci.Redrawn == 0 || ci.Lower > r.ROCAUC || ci.Upper < r.ROCAUC {
		t.Errorf("interval %+v for AUC %v", ci, r.ROCAUC)
	}
	if r, _ := Evaluate(preds, Options{Threshold: 0.5, Bootstrap: -1}); r.ROCAUCCI != nil || r.Curves.ROCBand != nil {
		t.Error("Bootstrap < 0 still gave an interval")
	}
}

func TestSmallCases(t *testing.T) {
	p := func(ps ...float64) []Prediction {
		out := make([]Prediction, len(ps))
		for i, v := range ps {
			out[i] = Prediction{Key: strconv.Itoa(i), Label: i % 2, Probability: v} // odd positions positive
		}
		return out
	}
	cases := []struct {
		name    string
		preds   []Prediction
		thr     float64
		auc, ap float64
		ppvNil  bool
		npvNil  bool
	}{
		{"all tied", p(0.5, 0.5, 0.5, 0.5), 0.5, 0.5, 0.5, false, true},
		{"perfect", p(0.1, 0.9, 0.2, 0.8), 0.5, 1, 1, false, false},
		{"reversed", p(0.9, 0.1, 0.8, 0.2), 0.5, 0, 0.5/3 + 0.25, false, false},
		{"one tie across classes", p(0.3, 0.3, 0.1, 0.9), 0.95, 0.875, 0.5 + 0.5*2/3, true, false},
		{"nothing flagged", p(0.1, 0.9, 0.2, 0.8), 1, 1, 1, true, false},
		{"everything flagged", p(0.1, 0.9, 0.2, 0.8), 0, 1, 1, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Evaluate(tc.preds, Options{Threshold: tc.thr, Bootstrap: -1})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(r.ROCAUC-tc.auc) > 1e-15 {
				t.Errorf("AUC %v, want %v", r.ROCAUC, tc.auc)
			}
			if math.Abs(r.AveragePrecision-tc.ap) > 1e-15 {
				t.Errorf("AP %v, want %v", r.AveragePrecision, tc.ap)
			}
			if (r.AtThreshold.PPV == nil) != tc.ppvNil || (r.AtThreshold.NPV == nil) != tc.npvNil {
				t.Errorf("PPV %v NPV %v", r.AtThreshold.PPV, r.AtThreshold.NPV)
			}
			var b bytes.Buffer
			if err := WriteJSON(&b, r); err != nil {
				t.Fatalf("JSON with undefined figures: %v", err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	ok := []Prediction{{"a", 0, 0.2, ""}, {"b", 1, 0.7, ""}}
	with := func(i int, f func(*Prediction)) []Prediction {
		out := append([]Prediction(nil), ok...)
		f(&out[i])
		return out
	}
	cases := []struct {
		name  string
		preds []Prediction
		opt   Options
		want  string
	}{
		{"empty", nil, Options{}, "no predictions"},
		{"label 2", with(1, func(p *Prediction) { p.Label = 2 }), Options{}, "prediction 2: label 2, want 0 or 1"},
		{"label -1", with(0, func(p *Prediction) { p.Label = -1 }), Options{}, "prediction 1: label -1"},
		{"NaN", with(1, func(p *Prediction) { p.Probability = math.NaN() }), Options{}, "prediction 2: probability NaN"},
		{"+Inf", with(1, func(p *Prediction) { p.Probability = math.Inf(1) }), Options{}, "probability +Inf"},
		{"above 1", with(0, func(p *Prediction) { p.Probability = 1.5 }), Options{}, "not a number in [0, 1]"},
		{"below 0", with(0, func(p *Prediction) { p.Probability = -0.01 }), Options{}, "not a number in [0, 1]"},
		{"one class", with(1, func(p *Prediction) { p.Label = 0 }), Options{}, "all 2 predictions are labelled 0"},
		{"only positives", with(0, func(p *Prediction) { p.Label = 1 }), Options{}, "labelled 1"},
		{"duplicate key", with(1, func(p *Prediction) { p.Key = "a" }), Options{}, "prediction 2: same key as prediction 1"},
		{"empty key", with(0, func(p *Prediction) { p.Key = "" }), Options{}, "prediction 1: empty key"},
		{"key with newline", with(0, func(p *Prediction) { p.Key = "a\nb" }), Options{}, "line break"},
		{"NaN threshold", ok, Options{Threshold: math.NaN()}, "threshold NaN"},
		{"threshold above 1", ok, Options{Threshold: 1.2}, "threshold 1.2"},
		{"level 1", ok, Options{Level: 1}, "interval level"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Evaluate(tc.preds, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err %v, want one containing %q and wrapping ErrInvalid", err, tc.want)
			}
			if strings.Contains(tc.name, "key") && strings.Contains(err.Error(), "\"a") {
				t.Errorf("error names a key: %v", err)
			}
		})
	}
}

func TestDataHash(t *testing.T) {
	a := []Prediction{{"x/1.png", 1, 0.9, "hand"}, {"x/2.png", 0, 0.1, ""}}
	b := []Prediction{{"x/2.png", 0, 0.7, "leg"}, {"x/1.png", 1, 0.2, ""}}
	c := []Prediction{{"x/1.png", 0, 0.9, ""}, {"x/2.png", 0, 0.1, ""}}
	if DataHash(a) != DataHash(b) {
		t.Error("order, probabilities or groups changed the data hash")
	}
	if DataHash(a) == DataHash(c) {
		t.Error("a changed label kept the data hash")
	}
	// The format is fixed: stored hashes must stay comparable.
	if got, want := DataHash(a), sha256Hex("x/1.png,1\nx/2.png,0\n"); got != want {
		t.Errorf("data hash %s, want %s", got, want)
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestMarkdownAndJSON(t *testing.T) {
	r, err := Evaluate(loadPredictions(t), Options{Threshold: 0.5, Seed: 1, Model: "m-1", Dataset: "test set | v1"})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Evaluation of m-1", `test set \| v1`, "| ROC-AUC | 0.7993 (95% CI ", "2000 bootstrap resamples",
		"| PR-AUC (average precision) | 0.7142 |", "| 0.7375 | 0.7000 | 0.7600 | 0.6364 | 0.8085 | 0.6667 |",
		"| positive | 21 (TP) | 9 (FN) |", "| 0.90 | 0.3000 | 0.9000 | 0.4400 |", "Brier score 0.1835",
		"| [0.0, 0.1] | 6 |", "| (0.9, 1.0] | 1 | 1.0000 | 1.0000 |", "| shoulder | 8 | 0 | — | — | 0.6250 |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.ROCAUC != r.ROCAUC || *back.ROCAUCCI != *r.ROCAUCCI || len(back.Curves.ROC) != len(r.Curves.ROC) || back.DataSHA256 != r.DataSHA256 {
		t.Errorf("JSON round trip lost figures")
	}
	if s := r.Summary(); s.Curves != nil || r.Curves == nil {
		t.Error("Summary must drop the curves of a copy only")
	}
}

// TestSpecificityPointsBruteForce: each specificity point is the lowest
// distinct probability whose cut keeps the target specificity, found by
// trying every cut; the flagged rate is the share at or above the
// threshold.
func TestSpecificityPointsBruteForce(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	for trial := 0; trial < 20; trial++ {
		n := 30 + r.Intn(200)
		preds := make([]Prediction, n)
		for i := range preds {
			y := 0
			if r.Float64() < 0.3 {
				y = 1
			}
			// Rounded so that ties occur, within and across classes.
			p := math.Round((r.Float64()*0.6+0.3*float64(y))*50) / 50
			preds[i] = Prediction{Key: strconv.Itoa(i), Label: y, Probability: p}
		}
		preds[0].Label, preds[1].Label = 0, 1
		rep, err := Evaluate(preds, Options{Threshold: 0.5, Bootstrap: -1})
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range TargetSpecificities {
			best := math.Inf(1)
			var sens float64
			for _, c := range preds {
				tp, fp, pos, neg := 0, 0, 0, 0
				for _, q := range preds {
					flagged := q.Probability >= c.Probability
					switch {
					case q.Label == 1:
						pos++
						if flagged {
							tp++
						}
					default:
						neg++
						if flagged {
							fp++
						}
					}
				}
				if float64(neg-fp)/float64(neg) >= target && c.Probability < best {
					best, sens = c.Probability, float64(tp)/float64(pos)
				}
			}
			var got *SpecificityPoint
			for i := range rep.SpecificityPoints {
				if rep.SpecificityPoints[i].TargetSpecificity == target {
					got = &rep.SpecificityPoints[i]
				}
			}
			switch {
			case math.IsInf(best, 1) && got != nil:
				t.Errorf("trial %d target %.2f: point %+v where no cut keeps it", trial, target, *got)
			case !math.IsInf(best, 1) && (got == nil || got.Threshold != best || math.Abs(got.Sensitivity-sens) > 1e-12 || got.Specificity < target):
				t.Errorf("trial %d target %.2f: got %+v, want threshold %v sensitivity %v", trial, target, got, best, sens)
			}
		}
		flagged := 0
		for _, p := range preds {
			if p.Probability >= 0.5 {
				flagged++
			}
		}
		if want := float64(flagged) / float64(n); math.Abs(rep.FlaggedRate-want) > 1e-12 {
			t.Errorf("trial %d: flagged rate %v, want %v", trial, rep.FlaggedRate, want)
		}
	}
}
