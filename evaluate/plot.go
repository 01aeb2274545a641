package evaluate

import (
	"errors"
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotSize is the side of the square plots: 6 in at vgimg's 96 dpi is
// 576 px, legible in a report and small on disk.
const PlotSize = 6 * vg.Inch

var (
	curveColor = color.RGBA{R: 0x1f, G: 0x5f, B: 0xb4, A: 0xff}
	bandColor  = color.RGBA{R: 0x9e, G: 0xc3, B: 0xec, A: 0xff}
	chanceGray = color.Gray{Y: 0x99}
	dashes     = []vg.Length{vg.Points(5), vg.Points(4)}
)

func newUnitPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = x, y
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	return p
}

func xys(pts []Point) plotter.XYs {
	out := make(plotter.XYs, len(pts))
	for i, pt := range pts {
		out[i].X, out[i].Y = pt.X, pt.Y
	}
	return out
}

func dashedLine(pts plotter.XYs, c color.Color) (*plotter.Line, error) {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	l.Color, l.Dashes = c, dashes
	return l, nil
}

func solidLine(pts plotter.XYs, c color.Color) (*plotter.Line, error) {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	l.Color, l.Width = c, vg.Points(2)
	return l, nil
}

func writePNG(w io.Writer, p *plot.Plot, what string) error {
	c := vgimg.PngCanvas{Canvas: vgimg.New(PlotSize, PlotSize)}
	p.Draw(draw.New(c))
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("evaluate: write %s plot: %w", what, err)
	}
	return nil
}

var errNoCurves = errors.New("evaluate: the report has no curves (a summary cannot be plotted)")

// WriteROC draws the ROC curve, with the bootstrap band when the report
// has one, as PNG.
func WriteROC(w io.Writer, r *Report) error {
	if r.Curves == nil {
		return errNoCurves
	}
	p := newUnitPlot("ROC curve", "1 - specificity (false positive rate)", "sensitivity (true positive rate)")
	p.Legend.Left, p.Legend.Top = false, false
	p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), vg.Points(6)
	if band := r.Curves.ROCBand; len(band) > 0 {
		// Upper edge left to right, lower edge back: one closed outline.
		outline := make(plotter.XYs, 0, 2*len(band))
		for _, b := range band {
			outline = append(outline, plotter.XY{X: b.X, Y: b.Hi})
		}
		for i := len(band) - 1; i >= 0; i-- {
			outline = append(outline, plotter.XY{X: band[i].X, Y: band[i].Lo})
		}
		poly, err := plotter.NewPolygon(outline)
		if err != nil {
			return fmt.Errorf("evaluate: ROC band: %w", err)
		}
		poly.Color, poly.LineStyle.Width = bandColor, 0
		p.Add(poly)
		p.Legend.Add(fmt.Sprintf("%.0f%% bootstrap band (%d resamples)", r.ROCAUCCI.Level*100, r.ROCAUCCI.Resamples), poly)
	}
	chance, err := dashedLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, chanceGray)
	if err != nil {
		return fmt.Errorf("evaluate: ROC plot: %w", err)
	}
	curve, err := solidLine(xys(r.Curves.ROC), curveColor)
	if err != nil {
		return fmt.Errorf("evaluate: ROC plot: %w", err)
	}
	p.Add(chance, curve)
	label := fmt.Sprintf("ROC, AUC %.3f", r.ROCAUC)
	if ci := r.ROCAUCCI; ci != nil {
		label += fmt.Sprintf(" (%.3f-%.3f)", ci.Lower, ci.Upper)
	}
	p.Legend.Add(label, curve)
	p.Legend.Add("chance", chance)
	return writePNG(w, p, "ROC")
}

// WritePR draws the precision-recall curve as PNG, as the step function
// whose area is the average precision, with the prevalence as baseline.
func WritePR(w io.Writer, r *Report) error {
	if r.Curves == nil {
		return errNoCurves
	}
	p := newUnitPlot("Precision-recall curve", "recall (sensitivity)", "precision (PPV)")
	p.Legend.Left, p.Legend.Top = true, false
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), vg.Points(6)
	prev := float64(r.Positives) / float64(r.N)
	base, err := dashedLine(plotter.XYs{{X: 0, Y: prev}, {X: 1, Y: prev}}, chanceGray)
	if err != nil {
		return fmt.Errorf("evaluate: PR plot: %w", err)
	}
	curve, err := solidLine(xys(r.Curves.PR), curveColor)
	if err != nil {
		return fmt.Errorf("evaluate: PR plot: %w", err)
	}
	// Precision P_k holds over (R_k-1, R_k]: up or down first, then across.
	curve.StepStyle = plotter.PreStep
	p.Add(base, curve)
	p.Legend.Add(fmt.Sprintf("PR, average precision %.3f", r.AveragePrecision), curve)
	p.Legend.Add(fmt.Sprintf("prevalence %.3f", prev), base)
	return writePNG(w, p, "PR")
}

// WriteReliability draws the reliability diagram (observed rate against
// mean predicted probability per non-empty bin, each marked with its
// count) as PNG.
func WriteReliability(w io.Writer, r *Report) error {
	p := newUnitPlot(fmt.Sprintf("Reliability (%d bins; Brier %.3f, ECE %.3f)", len(r.Calibration.Bins), r.Calibration.Brier, r.Calibration.ECE),
		"mean predicted probability", "observed fraction positive")
	p.Legend.Left, p.Legend.Top = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(6), -vg.Points(6)
	var pts plotter.XYs
	var labels []string
	for _, b := range r.Calibration.Bins {
		if b.Count == 0 {
			continue
		}
		pts = append(pts, plotter.XY{X: *b.MeanPredicted, Y: *b.ObservedRate})
		labels = append(labels, fmt.Sprintf(" n=%d", b.Count))
	}
	ideal, err := dashedLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}}, chanceGray)
	if err != nil {
		return fmt.Errorf("evaluate: reliability plot: %w", err)
	}
	line, err := solidLine(pts, curveColor)
	if err != nil {
		return fmt.Errorf("evaluate: reliability plot: %w", err)
	}
	dots, err := plotter.NewScatter(pts)
	if err != nil {
		return fmt.Errorf("evaluate: reliability plot: %w", err)
	}
	dots.Color, dots.Shape, dots.Radius = curveColor, draw.CircleGlyph{}, vg.Points(3.5)
	counts, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
	if err != nil {
		return fmt.Errorf("evaluate: reliability plot: %w", err)
	}
	for i := range counts.TextStyle {
		counts.TextStyle[i].Font.Size = vg.Points(8)
	}
	p.Add(ideal, line, dots, counts)
	p.Legend.Add("model", line, dots)
	p.Legend.Add("perfectly calibrated", ideal)
	return writePNG(w, p, "reliability")
}
