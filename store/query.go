package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// querier is what both *sql.DB and *sql.Tx offer, so reads can run inside
// a write transaction (a decision and the change it allows see one state).
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryEach runs a read and calls row with each result row's Scan. The
// errors of the query, of row and of the iteration come back wrapped with
// what, so each read names itself once.
func queryEach(ctx context.Context, q querier, what string, row func(scan func(...any) error) error, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

// queryAll lists a read's rows, each made by scan (nil when there are none).
func queryAll[T any](ctx context.Context, q querier, what string, scan func(func(...any) error) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := queryEach(ctx, q, what, func(s func(...any) error) error {
		v, err := scan(s)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}, query, args...)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// queryOne scans a single-row read; no row is ErrNotFound, unwrapped, as
// callers add what they looked for.
func queryOne[T any](row *sql.Row, what string, scan func(func(...any) error) (T, error)) (T, error) {
	v, err := scan(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	if err != nil {
		return v, fmt.Errorf("store: %s: %w", what, err)
	}
	return v, nil
}

// filter gathers a read's conditions and their arguments.
type filter struct {
	where []string
	args  []any
}

func (f *filter) add(cond string, args ...any) {
	f.where = append(f.where, cond)
	f.args = append(f.args, args...)
}

// window keeps the rows whose col lies in [since, until); a zero time is
// no bound.
func (f *filter) window(col string, since, until time.Time) {
	if !since.IsZero() {
		f.add(col+" >= ?", fmtTime(since))
	}
	if !until.IsZero() {
		f.add(col+" < ?", fmtTime(until))
	}
}

// clause is the conditions joined for a WHERE ("1" when there are none).
func (f *filter) clause() string {
	if len(f.where) == 0 {
		return "1"
	}
	return strings.Join(f.where, " AND ")
}

// query is sel with the conditions, in order, at most limit rows (all when
// limit <= 0).
func (f *filter) query(sel, order string, limit int) string {
	q := sel
	if len(f.where) > 0 {
		q += " WHERE " + f.clause()
	}
	q += " ORDER BY " + order
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	return q
}
