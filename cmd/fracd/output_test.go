package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/store"
)

// TestCSVNeutralisesFormulas: a cell that a spreadsheet would run as a
// formula is prefixed with a single quote (OWASP CSV injection).
func TestCSVNeutralisesFormulas(t *testing.T) {
	cases := []struct{ in, want string }{
		{"=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"},
		{"+1+1", "'+1+1"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tcmd", "'\tcmd"},
		{"\rcmd", "'\rcmd"},
		{"2.25.101", "2.25.101"},
		{"0.9500", "0.9500"},
		{"a=b", "a=b"},
		{" =1", " =1"},
	}
	tb := table{header: []string{"cell"}}
	for _, c := range cases {
		tb.rows = append(tb.rows, []string{c.in})
	}
	var b bytes.Buffer
	if err := tb.write(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) != len(cases)+1 {
		t.Fatalf("csv: %d records, %v", len(recs), err)
	}
	for i, c := range cases {
		if got := recs[i+1][0]; got != c.want {
			t.Errorf("cell %q written as %q; want %q", c.in, got, c.want)
		}
	}
}

// TestTableEscapesControlCharacters: what a sender put into a DICOM field
// cannot move the cursor, recolour or retitle the auditor's terminal, or
// forge rows.
func TestTableEscapesControlCharacters(t *testing.T) {
	cases := []struct{ in, want string }{
		{"HAND\n2026-11-01  2.25.999  forged row", `HAND\n2026-11-01  2.25.999  forged row`},
		{"x\r\x1b[2Ky", `x\r\x1b[2Ky`},
		{"\x1b]0;owned\x07", `\x1b]0;owned\x07`},
		{"a\tb", `a\tb`},
		{"csi\u009b31m", `csi\u009b31m`},
		{"rtl\u202eexe.txt", `rtl\u202eexe.txt`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"Ünïcödé ok", "Ünïcödé ok"},
	}
	for _, c := range cases {
		tb := table{header: []string{"cell"}, rows: [][]string{{c.in}}}
		var b bytes.Buffer
		if err := tb.write(&b, "table"); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != 2 || strings.TrimRight(lines[1], " ") != c.want {
			t.Errorf("cell %q printed as %q; want %q", c.in, lines[1:], c.want)
		}
	}
}

// TestResultsOutputEscapesEndToEnd puts hostile values where a sender
// controls them (body part, modality) and reads them back through
// `fracd results`.
func TestResultsOutputEscapesEndToEnd(t *testing.T) {
	ctx := context.Background()
	db, path := newTestDB(t)
	sha := strings.Repeat("a", 64)
	err := db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.RegisterModel(ctx, store.Model{ID: "m", Arch: "resnet18", WeightsSHA256: strings.Repeat("f", 64), Path: "w", PreprocessVersion: "pp", Threshold: 0.5}); err != nil {
			return err
		}
		if err := tx.InsertInstance(ctx, store.Instance{SHA256: sha, State: store.StateDone, StudyUID: "2.25.1", SOPInstanceUID: "2.25.2",
			Modality: "=cmd|' /C calc'!A0", BodyPart: "HAND\x1b]0;pwned\x07\nforged"}); err != nil {
			return err
		}
		_, err := tx.InsertPrediction(ctx, store.Prediction{InstanceSHA256: sha, ModelID: "m", ModelSHA256: strings.Repeat("f", 64), PreprocessVersion: "pp", Probability: 0.7, Threshold: 0.5, Flagged: true})
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := runFracd(t, "--db", path, "results", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][2] != "'=cmd|' /C calc'!A0" {
		t.Fatalf("csv %q, %v", out, err)
	}
	out, _, err = runFracd(t, "--db", path, "results")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out, "\x1b\x07") || strings.Count(out, "\n") != 2 || !strings.Contains(out, `HAND\x1b]0;pwned\x07\nforged`) {
		t.Fatalf("table output %q", out)
	}
}

// TestLabelImportValidatesStoredUIDs: UIDs stored as given (--deidentified)
// must be DICOM UIDs; the error names the line.
func TestLabelImportValidatesStoredUIDs(t *testing.T) {
	db := seedDB(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("paths:\n  db: %s\nanonymize:\n  secret_file: %s\n", db, filepath.Join(dir, "secret.key"))), 0o600)
	cases := []struct {
		uid string
		ok  bool
	}{
		{"2.25.101", true},
		{"1.2.840.10008.0", true},
		{"../../x", false},
		{"=HYPERLINK(\"x\")", false},
		{"1.2." + strings.Repeat("9", 61), false}, // 65 characters
		{"1..2", false},
		{"1.2.", false},
		{".1.2", false},
		{"1.02.3", false}, // leading zero in a component
		{"1.2.3\x1b[2K", false},
	}
	for i, c := range cases {
		t.Run(c.uid, func(t *testing.T) {
			csvPath := filepath.Join(dir, fmt.Sprintf("labels%d.csv", i))
			os.WriteFile(csvPath, []byte("sop_instance_uid,fractured\n"+csvQuote(c.uid)+",1\n"), 0o600)
			_, _, err := runFracd(t, "-c", cfg, "label", "import", "--deidentified", "--source", fmt.Sprintf("s%d", i), csvPath)
			if c.ok && err != nil {
				t.Fatalf("valid UID refused: %v", err)
			}
			if !c.ok && (err == nil || !strings.Contains(err.Error(), "line 2")) {
				t.Fatalf("err = %v; want a refusal naming line 2", err)
			}
			_, _, err = runFracd(t, "-c", cfg, "label", "add", "--deidentified", "--fractured", "--source", fmt.Sprintf("a%d", i), c.uid)
			if c.ok != (err == nil) {
				t.Fatalf("label add: %v; want ok=%v", err, c.ok)
			}
		})
	}
}

func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// TestLabelImportTwice: importing the same export again, or a row that an
// earlier row or a stored label already covers (same instance and source),
// is refused with a clear error naming the line, and adds nothing.
func TestLabelImportTwice(t *testing.T) {
	db := seedDB(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("paths:\n  db: %s\nanonymize:\n  secret_file: %s\n", db, filepath.Join(dir, "secret.key"))), 0o600)
	write := func(body string) string {
		p := filepath.Join(dir, "labels.csv")
		os.WriteFile(p, []byte("sop_instance_uid,fractured\n"+body), 0o600)
		return p
	}
	labels := func() int {
		out, _, err := runFracd(t, "-c", cfg, "label", "list", "--format", "csv")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(out, "\n") - 1
	}
	if out, _, err := runFracd(t, "-c", cfg, "label", "import", "--deidentified", write("2.25.100,1\n2.25.101,0\n")); err != nil || !strings.Contains(out, "imported 2 labels") {
		t.Fatalf("first import: %q, %v", out, err)
	}
	cases := []struct{ name, body, want string }{
		{"same file again", "2.25.100,1\n2.25.101,0\n", "line 2"},
		{"one stored row", "2.25.102,1\n2.25.101,1\n", "line 3"},
		{"twice in the file", "2.25.102,1\n2.25.102,1\n", "line 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := runFracd(t, "-c", cfg, "label", "import", "--deidentified", write(c.body))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "already") || strings.Contains(err.Error(), "UNIQUE") {
				t.Fatalf("err = %v; want a clear error naming %s", err, c.want)
			}
			if n := labels(); n != 2 {
				t.Fatalf("%d labels after a refused import; want 2", n)
			}
		})
	}
	_, _, err := runFracd(t, "-c", cfg, "label", "add", "--deidentified", "--not-fractured", "--source", "import", "2.25.100")
	if err == nil || !strings.Contains(err.Error(), "already") || strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("label add over a stored label: %v; want a clear error", err)
	}
}

// TestWriteList: the list commands' writer keeps the table's protections
// (formula cells neutralised in CSV, control characters escaped in table
// output) and prints [] for no records in JSON.
func TestWriteList(t *testing.T) {
	type rec struct{ A, B string }
	cols := []column[rec]{{"a", func(r rec) string { return r.A }}, {"b", func(r rec) string { return r.B }}}
	recs := []rec{{"=1+2", "x\ny"}}
	var b bytes.Buffer
	if err := writeList(&b, "csv", recs, cols); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != "a,b\n'=1+2,\"x\ny\"\n" {
		t.Errorf("csv = %q", got)
	}
	b.Reset()
	if err := writeList(&b, "table", recs, cols); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, `x\ny`) {
		t.Errorf("table = %q: want 2 lines, the newline escaped", got)
	}
	b.Reset()
	if err := writeList[rec](&b, "json", nil, cols); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(b.String()); got != "[]" {
		t.Errorf("json of no records = %q, want []", got)
	}
	if err := writeList(&b, "xml", recs, cols); err == nil {
		t.Error("unknown --format accepted")
	}
}
