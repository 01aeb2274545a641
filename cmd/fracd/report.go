package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

// Metadata keys (models.metadata) holding the model's own validation
// figures, the baseline that drift is measured against.
const (
	metaValAUC             = "val_auc"
	metaValFlaggedRate     = "val_flagged_rate"
	metaValMeanProbability = "val_mean_probability"
)

// monitorReport is fracd report's content; JSON as is, Markdown and CSV
// rendered from it.
type monitorReport struct {
	GeneratedAt    time.Time            `json:"generated_at"`
	Since          string               `json:"since,omitempty"`
	Until          string               `json:"until,omitempty"`
	Outcomes       []store.OutcomeCount `json:"outcomes"`
	Files          int64                `json:"files"`
	Rejections     []store.OutcomeCount `json:"rejections"`
	Results        windowFigures        `json:"results"` // every model's
	Model          *modelMonitor        `json:"model"`   // nil without an active model
	DriftTolerance float64              `json:"drift_tolerance"`
	Notes          []string             `json:"notes"`
}

// windowFigures are counts and rates over some predictions; rates are nil
// where there is nothing to divide by.
type windowFigures struct {
	Results         int64    `json:"results"`
	Flagged         int64    `json:"flagged"`
	FlaggedRate     *float64 `json:"flagged_rate"`
	MeanProbability *float64 `json:"mean_probability"`
}

func figures(results, flagged int64, sumP float64) windowFigures {
	f := windowFigures{Results: results, Flagged: flagged}
	if results > 0 {
		f.FlaggedRate = ptr(float64(flagged) / float64(results))
		f.MeanProbability = ptr(sumP / float64(results))
	}
	return f
}

func ptr(v float64) *float64 { return &v }

func ratio(a, b int64) *float64 {
	if b == 0 {
		return nil
	}
	return ptr(float64(a) / float64(b))
}

type modelMonitor struct {
	ID            string        `json:"id"`
	State         string        `json:"state"`
	WeightsSHA256 string        `json:"weights_sha256"`
	Threshold     float64       `json:"threshold"`
	Baseline      baseline      `json:"baseline"`
	Window        windowFigures `json:"window"`
	Weeks         []weekFigures `json:"weeks"`
	Drift         []driftAlert  `json:"drift"`
}

// baseline is what the model's metadata records of its validation.
type baseline struct {
	ValAUC          *float64 `json:"val_auc"`
	FlaggedRate     *float64 `json:"val_flagged_rate"`
	MeanProbability *float64 `json:"val_mean_probability"`
}

type weekFigures struct {
	ISOWeek   string `json:"iso_week"`
	WeekStart string `json:"week_start"`
	windowFigures
	Labelled    int64    `json:"labelled"`
	TP          int64    `json:"tp"`
	FN          int64    `json:"fn"`
	TN          int64    `json:"tn"`
	FP          int64    `json:"fp"`
	Sensitivity *float64 `json:"sensitivity"` // nil without labelled positives
	Specificity *float64 `json:"specificity"` // nil without labelled negatives
}

// driftAlert is a figure that moved more than the tolerance from its
// validation value, for one week or the whole window ("window").
type driftAlert struct {
	Period   string  `json:"period"`
	Figure   string  `json:"figure"` // flagged_rate or mean_probability
	Observed float64 `json:"observed"`
	Baseline float64 `json:"baseline"`
	Change   float64 `json:"change"`
}

func newReportCmd(m *Main) *cobra.Command {
	var since, until, format, modelID string
	cmd := &cobra.Command{
		Use:   "report [--since T] [--until T] [--format md|json|csv]",
		Short: "Monitoring for auditors: outcomes, rejections, flagged rate, weekly sensitivity/specificity, drift (read-only)",
		Long: `Summarises a time window (default: everything): files by outcome and
rejection reason (by completion time), results and the flagged rate (by
prediction time), and for the active model (or --model) per ISO week its
results, flagged rate and mean probability and, on labelled results, its
sensitivity and specificity. It warns when the flagged rate or the mean
probability of the window or of a week is more than report.drift_tolerance
(absolute, default 0.10) from the model's validation figures, read from its
metadata (val_flagged_rate, val_mean_probability); a model that records
none is named in the notes instead. The database views weekly_outcomes,
weekly_model_stats and weekly_labelled_performance hold the same figures.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "md", "json", "csv":
			default:
				return fmt.Errorf("report: --format %q is not one of md, json, csv", format)
			}
			now := time.Now().UTC()
			from, err := parseTimeFlag("since", since, now)
			if err != nil {
				return fmt.Errorf("report: %w", err)
			}
			to, err := parseTimeFlag("until", until, now)
			if err != nil {
				return fmt.Errorf("report: %w", err)
			}
			if !from.IsZero() && !to.IsZero() && !from.Before(to) {
				return errors.New("report: --since must be before --until")
			}
			ctx := cmd.Context()
			db, err := store.OpenReadOnly(ctx, m.Config.Paths.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			r := monitorReport{GeneratedAt: now, DriftTolerance: m.Config.Report.DriftTolerance, Notes: []string{}}
			if !from.IsZero() {
				r.Since = fmtTS(from)
			}
			if !to.IsZero() {
				r.Until = fmtTS(to)
			}
			counts, err := db.OutcomeCounts(ctx, from, to)
			if err != nil {
				return fmt.Errorf("report: %w", err)
			}
			r.Outcomes, r.Rejections = []store.OutcomeCount{}, []store.OutcomeCount{}
			byState := map[string]int{}
			for _, c := range counts {
				r.Files += c.Files
				if c.Outcome == store.StateRejected {
					r.Rejections = append(r.Rejections, c)
				}
				if i, ok := byState[c.Outcome]; ok {
					r.Outcomes[i].Files += c.Files
					continue
				}
				byState[c.Outcome] = len(r.Outcomes)
				r.Outcomes = append(r.Outcomes, store.OutcomeCount{Outcome: c.Outcome, Files: c.Files})
			}
			tot, err := db.ResultTotals(ctx, "", from, to)
			if err != nil {
				return fmt.Errorf("report: %w", err)
			}
			r.Results = figures(tot.Results, tot.Flagged, tot.SumProbability)

			var model store.Model
			if modelID != "" {
				model, err = db.Model(ctx, modelID)
			} else {
				model, err = db.ActiveModel(ctx)
			}
			switch {
			case errors.Is(err, store.ErrNotFound) && modelID != "":
				return fmt.Errorf("report: no model %q is registered (see fracd model list)", modelID)
			case errors.Is(err, store.ErrNotFound):
				r.Notes = append(r.Notes, "no active model: no per-model figures")
			case err != nil:
				return fmt.Errorf("report: %w", err)
			default:
				if r.Model, err = monitorModel(cmd, db, model, from, to, r.DriftTolerance, &r.Notes); err != nil {
					return fmt.Errorf("report: %w", err)
				}
			}
			switch format {
			case "json":
				return table{records: r}.write(m.Stdout, "json")
			case "csv":
				return writeReportCSV(m.Stdout, r)
			}
			return writeReportMarkdown(m.Stdout, r)
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, YYYY-MM-DD, or a duration ago such as 168h)")
	cmd.Flags().StringVar(&until, "until", "", "before this time (same forms as --since)")
	cmd.Flags().StringVar(&format, "format", "md", "md, json or csv")
	cmd.Flags().StringVar(&modelID, "model", "", "the model to monitor (default: the active one)")
	return cmd
}

func monitorModel(cmd *cobra.Command, db *store.DB, model store.Model, from, to time.Time, tol float64, notes *[]string) (*modelMonitor, error) {
	ctx := cmd.Context()
	mm := &modelMonitor{ID: model.ID, State: model.State, WeightsSHA256: model.WeightsSHA256, Threshold: model.Threshold,
		Weeks: []weekFigures{}, Drift: []driftAlert{}}
	var meta map[string]any
	if len(model.Metadata) > 0 {
		if err := json.Unmarshal(model.Metadata, &meta); err != nil {
			return nil, fmt.Errorf("model %s: metadata: %w", model.ID, err)
		}
	}
	num := func(key string) *float64 {
		if v, ok := meta[key].(float64); ok && !math.IsNaN(v) {
			return &v
		}
		return nil
	}
	mm.Baseline = baseline{ValAUC: num(metaValAUC), FlaggedRate: num(metaValFlaggedRate), MeanProbability: num(metaValMeanProbability)}
	tot, err := db.ResultTotals(ctx, model.ID, from, to)
	if err != nil {
		return nil, err
	}
	mm.Window = figures(tot.Results, tot.Flagged, tot.SumProbability)
	weeks, err := db.WeeklyStats(ctx, model.ID, from, to)
	if err != nil {
		return nil, err
	}
	labelled := int64(0)
	for _, w := range weeks {
		mm.Weeks = append(mm.Weeks, weekFigures{ISOWeek: w.ISOWeek, WeekStart: w.WeekStart,
			windowFigures: figures(w.Results, w.Flagged, w.SumProbability),
			Labelled:      w.Labelled, TP: w.TP, FN: w.FN, TN: w.TN, FP: w.FP,
			Sensitivity: ratio(w.TP, w.TP+w.FN), Specificity: ratio(w.TN, w.TN+w.FP)})
		labelled += w.Labelled
	}
	if labelled == 0 && tot.Results > 0 {
		*notes = append(*notes, fmt.Sprintf("no labelled results of %s in the window: no sensitivity or specificity", model.ID))
	}
	check := func(figure string, base *float64, get func(windowFigures) *float64) {
		if base == nil {
			*notes = append(*notes, fmt.Sprintf("%s records no validation %s (metadata %s): its drift is not checked",
				model.ID, strings.ReplaceAll(figure, "_", " "), "val_"+figure))
			return
		}
		type period struct {
			name string
			f    windowFigures
		}
		periods := []period{{"window", mm.Window}}
		for _, w := range mm.Weeks {
			periods = append(periods, period{w.ISOWeek, w.windowFigures})
		}
		for _, p := range periods {
			v := get(p.f)
			// A small epsilon keeps a change of exactly the tolerance quiet.
			if v != nil && math.Abs(*v-*base) > tol+1e-12 {
				mm.Drift = append(mm.Drift, driftAlert{Period: p.name, Figure: figure, Observed: *v, Baseline: *base, Change: *v - *base})
			}
		}
	}
	check("flagged_rate", mm.Baseline.FlaggedRate, func(f windowFigures) *float64 { return f.FlaggedRate })
	check("mean_probability", mm.Baseline.MeanProbability, func(f windowFigures) *float64 { return f.MeanProbability })
	return mm, nil
}

func fmtRate(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', 4, 64)
}

// mdCell keeps a value inside its Markdown table cell.
func mdCell(s string) string { return strings.ReplaceAll(escapeControls(s), "|", `\|`) }

func writeReportMarkdown(w io.Writer, r monitorReport) error {
	var b strings.Builder
	b.WriteString("# fracd monitoring report\n\n")
	fmt.Fprintf(&b, "Generated %s. Window: %s to %s.\n\n", fmtTS(r.GeneratedAt), orDash(r.Since, "the first record"), orDash(r.Until, "now"))
	fmt.Fprintf(&b, "## Files by outcome\n\n| outcome | files |\n|---|---:|\n")
	for _, o := range r.Outcomes {
		fmt.Fprintf(&b, "| %s | %d |\n", mdCell(o.Outcome), o.Files)
	}
	fmt.Fprintf(&b, "| total | %d |\n\n## Rejections by reason\n\n| reason | files |\n|---|---:|\n", r.Files)
	for _, o := range r.Rejections {
		fmt.Fprintf(&b, "| %s | %d |\n", mdCell(orDash(o.Reason, "(none given)")), o.Files)
	}
	fmt.Fprintf(&b, "\n## Results (all models)\n\n%d results, %d flagged: flagged rate %s, mean probability %s.\n\n",
		r.Results.Results, r.Results.Flagged, fmtRate(r.Results.FlaggedRate), fmtRate(r.Results.MeanProbability))
	if mm := r.Model; mm != nil {
		fmt.Fprintf(&b, "## Model %s (%s)\n\nWeights sha256 %s, threshold %.4f. In the window: %d results, %d flagged, flagged rate %s, mean probability %s.\n\n",
			mdCell(mm.ID), mm.State, mm.WeightsSHA256, mm.Threshold, mm.Window.Results, mm.Window.Flagged, fmtRate(mm.Window.FlaggedRate), fmtRate(mm.Window.MeanProbability))
		fmt.Fprintf(&b, "Validation (model metadata): ROC-AUC %s, flagged rate %s, mean probability %s.\n\n",
			fmtRate(mm.Baseline.ValAUC), fmtRate(mm.Baseline.FlaggedRate), fmtRate(mm.Baseline.MeanProbability))
		b.WriteString("| ISO week | from | results | flagged | flagged rate | mean p | labelled | TP | FN | TN | FP | sensitivity | specificity |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, wk := range mm.Weeks {
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s | %d | %d | %d | %d | %d | %s | %s |\n", wk.ISOWeek, wk.WeekStart, wk.Results, wk.Flagged,
				fmtRate(wk.FlaggedRate), fmtRate(wk.MeanProbability), wk.Labelled, wk.TP, wk.FN, wk.TN, wk.FP, fmtRate(wk.Sensitivity), fmtRate(wk.Specificity))
		}
		fmt.Fprintf(&b, "\n## Drift (tolerance %.2f)\n\n", r.DriftTolerance)
		if len(mm.Drift) == 0 {
			b.WriteString("No warning.\n")
		}
		for _, d := range mm.Drift {
			fmt.Fprintf(&b, "- **WARNING** %s: %s %.4f, validation %.4f (change %+.4f)\n", d.Period, strings.ReplaceAll(d.Figure, "_", " "), d.Observed, d.Baseline, d.Change)
		}
		b.WriteString("\n")
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", escapeControls(n))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s, dash string) string {
	if s == "" {
		return dash
	}
	return s
}

// writeReportCSV writes one figure a row (section, period, model, name,
// value), so that a spreadsheet can filter and pivot it.
func writeReportCSV(w io.Writer, r monitorReport) error {
	cw := csv.NewWriter(w)
	row := func(section, period, model, name, value string) {
		cw.Write([]string{section, period, neutraliseFormula(model), neutraliseFormula(name), value})
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	row("section", "period", "model_id", "name", "value")
	for _, o := range r.Outcomes {
		row("outcome", "window", "", o.Outcome, i(o.Files))
	}
	row("outcome", "window", "", "total", i(r.Files))
	for _, o := range r.Rejections {
		row("rejection", "window", "", o.Reason, i(o.Files))
	}
	figs := func(section, period, model string, f windowFigures) {
		row(section, period, model, "results", i(f.Results))
		row(section, period, model, "flagged", i(f.Flagged))
		row(section, period, model, "flagged_rate", fmtRate(f.FlaggedRate))
		row(section, period, model, "mean_probability", fmtRate(f.MeanProbability))
	}
	figs("results", "window", "", r.Results)
	if mm := r.Model; mm != nil {
		figs("model", "window", mm.ID, mm.Window)
		row("baseline", "validation", mm.ID, "val_auc", fmtRate(mm.Baseline.ValAUC))
		row("baseline", "validation", mm.ID, "val_flagged_rate", fmtRate(mm.Baseline.FlaggedRate))
		row("baseline", "validation", mm.ID, "val_mean_probability", fmtRate(mm.Baseline.MeanProbability))
		for _, wk := range mm.Weeks {
			figs("week", wk.ISOWeek, mm.ID, wk.windowFigures)
			for _, kv := range []struct {
				k string
				v int64
			}{{"labelled", wk.Labelled}, {"tp", wk.TP}, {"fn", wk.FN}, {"tn", wk.TN}, {"fp", wk.FP}} {
				row("week", wk.ISOWeek, mm.ID, kv.k, i(kv.v))
			}
			row("week", wk.ISOWeek, mm.ID, "sensitivity", fmtRate(wk.Sensitivity))
			row("week", wk.ISOWeek, mm.ID, "specificity", fmtRate(wk.Specificity))
		}
		for _, d := range mm.Drift {
			row("drift_warning", d.Period, mm.ID, d.Figure, strconv.FormatFloat(d.Change, 'f', 4, 64))
		}
	}
	for _, n := range r.Notes {
		row("note", "", "", "", neutraliseFormula(n))
	}
	cw.Flush()
	return cw.Error()
}
