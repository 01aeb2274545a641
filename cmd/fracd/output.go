package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

// table is what query commands print: a header, rows of strings for table
// and CSV output, and the typed records for JSON.
type table struct {
	header  []string
	rows    [][]string
	records any
}

func (t table) write(w io.Writer, format string) error {
	switch format {
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		writeTabRow(tw, t.header)
		for _, r := range t.rows {
			writeTabRow(tw, r)
		}
		return tw.Flush()
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(t.header)
		for _, r := range t.rows {
			cells := make([]string, len(r))
			for i, c := range r {
				cells[i] = neutraliseFormula(c)
			}
			cw.Write(cells)
		}
		cw.Flush()
		return cw.Error()
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(t.records)
	default:
		return fmt.Errorf("--format: %q is not one of table, csv, json", format)
	}
}

// column is one column of a list command: its header and how a record
// fills it.
type column[T any] struct {
	name string
	cell func(T) string
}

// writeList is what every list command prints (results, audit list, label
// list, model list, process): records as a table (control characters
// escaped), CSV (formula cells neutralised) or JSON (the typed records, []
// rather than null when there are none).
func writeList[T any](w io.Writer, format string, records []T, cols []column[T]) error {
	if records == nil {
		records = []T{}
	}
	t := table{records: records}
	for _, c := range cols {
		t.header = append(t.header, c.name)
	}
	for _, r := range records {
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = c.cell(r)
		}
		t.rows = append(t.rows, row)
	}
	return t.write(w, format)
}

// newListCmd is a read-only list command with no filters (label list,
// model list): query the database, print with writeList.
func newListCmd[T any](m *Main, short string, query func(*store.DB, context.Context) ([]T, error), cols []column[T]) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printList(cmd.Context(), m, format, func(db *store.DB) ([]T, error) {
				return query(db, cmd.Context()) // a method expression such as (*store.DB).Labels
			}, cols)
		},
	}
	addFormatFlag(cmd, &format)
	return cmd
}

// printList opens the database read-only, runs query and prints its rows
// with writeList: the body of every list command.
func printList[T any](ctx context.Context, m *Main, format string, query func(*store.DB) ([]T, error), cols []column[T]) error {
	db, err := store.OpenReadOnly(ctx, m.Config.Paths.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	records, err := query(db)
	if err != nil {
		return err
	}
	return writeList(m.Stdout, format, records, cols)
}

// printQuery is printList for the commands with queryFlags: query gets the
// window --since/--until resolve to.
func printQuery[T any](ctx context.Context, m *Main, q queryFlags, query func(db *store.DB, since, until time.Time) ([]T, error), cols []column[T]) error {
	since, until, err := q.window(time.Now())
	if err != nil {
		return err
	}
	return printList(ctx, m, q.format, func(db *store.DB) ([]T, error) { return query(db, since, until) }, cols)
}

// addFormatFlag is the --format flag of the list commands.
func addFormatFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVar(format, "format", "table", "table, csv or json")
}

// fmt4 prints a probability or threshold as the list commands do.
func fmt4(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }

func writeTabRow(w io.Writer, cells []string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(w, "\t")
		}
		io.WriteString(w, escapeControls(c))
	}
	io.WriteString(w, "\n")
}

// neutraliseFormula prefixes a single quote to a CSV cell that a spreadsheet
// would evaluate (OWASP CSV injection): values such as body part or
// modality come from the sender's DICOM files.
func neutraliseFormula(c string) string {
	if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
		return "'" + c
	}
	return c
}

// escapeControls writes control characters (C0, DEL, C1), bidirectional
// overrides and invalid UTF-8 as Go escapes, so that a value cannot forge
// rows, break columns or send escape sequences to the auditor's terminal.
func escapeControls(c string) string {
	clean := true
	for _, r := range c {
		if r == utf8.RuneError || unicode.IsControl(r) || isBidiControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return c
	}
	var b strings.Builder
	for i := 0; i < len(c); {
		r, n := utf8.DecodeRuneInString(c[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, c[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || isBidiControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(c[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isBidiControl reports the embedding, override and isolate controls that
// reorder what a terminal shows.
func isBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}

// parseTimeFlag accepts RFC 3339, a date, or a duration meaning "ago".
func parseTimeFlag(name, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--%s: %q is not a time (use RFC 3339, YYYY-MM-DD, or a duration such as 24h)", name, s)
}

func fmtTS(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// queryFlags are the flags every query command shares.
type queryFlags struct {
	since, until, format string
	limit                int
}

func (q *queryFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&q.since, "since", "", "from this time (RFC 3339, YYYY-MM-DD, or a duration ago such as 24h)")
	cmd.Flags().StringVar(&q.until, "until", "", "before this time (same forms as --since)")
	cmd.Flags().IntVar(&q.limit, "limit", 0, "at most this many rows (0: all)")
	addFormatFlag(cmd, &q.format)
}

// window validates the flags and resolves --since/--until.
func (q *queryFlags) window(now time.Time) (since, until time.Time, err error) {
	if q.limit < 0 {
		return since, until, fmt.Errorf("--limit: must be >= 0")
	}
	if since, err = parseTimeFlag("since", q.since, now); err != nil {
		return since, until, err
	}
	until, err = parseTimeFlag("until", q.until, now)
	return since, until, err
}
