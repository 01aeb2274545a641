package store

import (
	"context"
	"fmt"
	"time"
)

// isoWeekSQL turns the monday column (a date) into its ISO 8601 week,
// 2026-W45: the week-numbering year and week of its Thursday. The views of
// migration 0005 use the same expressions, so the report and an auditor's
// sqlite3 queries agree.
const isoWeekSQL = `strftime('%Y', monday, '+3 days') || '-W' || printf('%02d', (CAST(strftime('%j', monday, '+3 days') AS INTEGER) - 1) / 7 + 1)`

// mondaySQL is the Monday of a timestamp column's ISO week.
func mondaySQL(col string) string {
	return `date(substr(` + col + `, 1, 10), 'weekday 0', '-6 days')`
}

// window adds [since, until) on col; zero times are no bound.
func window(col string, since, until time.Time) (string, []any) {
	var f filter
	f.window(col, since, until)
	return f.clause(), f.args
}

// OutcomeCount is how many files ended in one state for one reason.
type OutcomeCount struct {
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"` // rejections only
	Files   int64  `json:"files"`
}

// OutcomeCounts counts the files completed in [since, until) by state and
// rejection reason.
func (db *DB) OutcomeCounts(ctx context.Context, since, until time.Time) ([]OutcomeCount, error) {
	where, args := window("completed_at", since, until)
	return queryAll(ctx, db.sql, "count outcomes", func(scan func(...any) error) (OutcomeCount, error) {
		var c OutcomeCount
		err := scan(&c.Outcome, &c.Reason, &c.Files)
		return c, err
	}, `SELECT state, reason, count(*) FROM instances WHERE `+where+` GROUP BY state, reason ORDER BY state, count(*) DESC, reason`, args...)
}

// ResultTotals are the predictions of a window.
type ResultTotals struct {
	Results        int64   `json:"results"`
	Flagged        int64   `json:"flagged"`
	SumProbability float64 `json:"-"`
}

// ResultTotals sums the predictions made in [since, until), of modelID
// (all models when "").
func (db *DB) ResultTotals(ctx context.Context, modelID string, since, until time.Time) (ResultTotals, error) {
	where, args := window("created_at", since, until)
	if modelID != "" {
		where += " AND model_id = ?"
		args = append(args, modelID)
	}
	var t ResultTotals
	err := db.sql.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(flagged), 0), coalesce(sum(probability), 0) FROM predictions WHERE `+where, args...).
		Scan(&t.Results, &t.Flagged, &t.SumProbability)
	if err != nil {
		return t, fmt.Errorf("store: result totals: %w", err)
	}
	return t, nil
}

// WeekStats are one model's figures for one ISO week: all its results, and
// those with a label (one row per label, as in labelled_results).
type WeekStats struct {
	ISOWeek        string  `json:"iso_week"`
	WeekStart      string  `json:"week_start"`
	Results        int64   `json:"results"`
	Flagged        int64   `json:"flagged"`
	SumProbability float64 `json:"-"`
	Labelled       int64   `json:"labelled"`
	TP             int64   `json:"tp"`
	FN             int64   `json:"fn"`
	TN             int64   `json:"tn"`
	FP             int64   `json:"fp"`
}

// WeeklyStats returns modelID's figures per ISO week of the predictions made
// in [since, until), oldest week first: what the weekly_model_stats and
// weekly_labelled_performance views give, restricted to the window.
func (db *DB) WeeklyStats(ctx context.Context, modelID string, since, until time.Time) ([]WeekStats, error) {
	where, args := window("predicted_at", since, until)
	args = append(args, modelID)
	q := func(sel, from string) string {
		return `SELECT ` + isoWeekSQL + `, monday, ` + sel + ` FROM (SELECT *, ` + mondaySQL("predicted_at") + ` AS monday FROM ` + from +
			` WHERE ` + where + ` AND model_id = ?) GROUP BY monday ORDER BY monday`
	}
	weeks := map[string]*WeekStats{}
	var order []string
	get := func(iso, monday string) *WeekStats {
		w, ok := weeks[monday]
		if !ok {
			w = &WeekStats{ISOWeek: iso, WeekStart: monday}
			weeks[monday] = w
			order = append(order, monday)
		}
		return w
	}
	err := queryEach(ctx, db.sql, "weekly stats of "+modelID, func(scan func(...any) error) error {
		var iso, monday string
		var r, f int64
		var p float64
		if err := scan(&iso, &monday, &r, &f, &p); err != nil {
			return err
		}
		w := get(iso, monday)
		w.Results, w.Flagged, w.SumProbability = r, f, p
		return nil
	}, q(`count(*), sum(flagged), sum(probability)`, `results`), args...)
	if err != nil {
		return nil, err
	}
	err = queryEach(ctx, db.sql, "weekly labelled stats of "+modelID, func(scan func(...any) error) error {
		var iso, monday string
		var n, tp, fn, tn, fp int64
		if err := scan(&iso, &monday, &n, &tp, &fn, &tn, &fp); err != nil {
			return err
		}
		w := get(iso, monday)
		w.Labelled, w.TP, w.FN, w.TN, w.FP = n, tp, fn, tn, fp
		return nil
	}, q(`count(*), sum(flagged = 1 AND label = 1), sum(flagged = 0 AND label = 1),
		sum(flagged = 0 AND label = 0), sum(flagged = 1 AND label = 0)`, `labelled_results`), args...)
	if err != nil {
		return nil, err
	}
	// Labelled rows are a subset of results, so the order is the results'.
	out := make([]WeekStats, 0, len(order))
	for _, m := range order {
		out = append(out, *weeks[m])
	}
	return out, nil
}
