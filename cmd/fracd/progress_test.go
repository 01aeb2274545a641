package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProgressLogsWhenNotATerminal(t *testing.T) {
	cases := []struct {
		name      string
		total     int64
		steps     []time.Duration // time of each Add(10) since the start
		wantLines int
		want      []string
	}{
		{"short run stays quiet", 30, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, 0, nil},
		{"long run: periodic lines and a last one", 40, []time.Duration{6 * time.Second, 7 * time.Second, 12 * time.Second, 13 * time.Second}, 3,
			[]string{`msg="rows: progress"`, "done=10", "total=40", "percent=25.0", "eta=18s", "rate_per_s=1.7", `msg="rows: done" done=40`}},
		{"unknown total: no percent or eta", 0, []time.Duration{6 * time.Second}, 2, []string{"done=10", "rate_per_s=1.7"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			now := start
			p := newProgressTo(nil, log, func() time.Time { return now }, "rows", "rows", tc.total)
			for _, d := range tc.steps {
				now = start.Add(d)
				p.Add(10)
			}
			p.Finish()
			p.Finish() // idempotent
			out := buf.String()
			if n := strings.Count(out, "\n"); n != tc.wantLines {
				t.Fatalf("%d lines; want %d:\n%s", n, tc.wantLines, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("log lacks %q:\n%s", w, out)
				}
			}
			if tc.total == 0 && (strings.Contains(out, "eta=") || strings.Contains(out, "percent=")) {
				t.Errorf("eta or percent without a total:\n%s", out)
			}
		})
	}
}

func TestProgressBarShowsCountRateAndETA(t *testing.T) {
	var buf bytes.Buffer
	p := newProgressTo(&buf, nil, time.Now, "label import: storing", "labels", 3)
	for i := 0; i < 3; i++ {
		p.Add(1)
	}
	p.Finish()
	out := buf.String()
	for _, w := range []string{"label import: storing", "3/3", "labels/s", "["} {
		if !strings.Contains(out, w) {
			t.Errorf("bar lacks %q: %q", w, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("finished bar does not end its line: %q", out)
	}
}

// TestLabelImportProgressNotOnTerminal: a test's stdout is a buffer, so the
// import logs (nothing, being short) and prints only its result.
func TestLabelImportProgressNotOnTerminal(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "labels.csv")
	if err := os.WriteFile(csvPath, []byte("sop_instance_uid,fractured\n2.25.1,1\n2.25.2,0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := runFracd(t, "--db", filepath.Join(dir, "fracd.db"), "label", "import", "--deidentified", csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if out != "imported 2 labels\n" || strings.Contains(stderr, "label import:") {
		t.Fatalf("stdout %q, stderr %q", out, stderr)
	}
}
