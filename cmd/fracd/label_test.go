package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLabelImportReportsUnknownUIDs: labels for instances fracd has not
// received are kept (the study may come later) but reported by count, never
// by UID; importing the same file again is refused with the line.
func TestLabelImportReportsUnknownUIDs(t *testing.T) {
	db := seedDB(t) // instances 2.25.100 .. 2.25.102
	csvPath := filepath.Join(t.TempDir(), "labels.csv")
	os.WriteFile(csvPath, []byte("sop_instance_uid,fractured\n2.25.100,1\n2.25.998,0\n2.25.999,1\n"), 0o600)
	out, stderr, err := runFracd(t, "--db", db, "label", "import", "--deidentified", csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "imported 3 labels") || !strings.Contains(stderr, "2 of them name no instance fracd has received") {
		t.Fatalf("import output %q, stderr %q; want the count of unknown UIDs", out, stderr)
	}
	if strings.Contains(out+stderr, "2.25.99") {
		t.Fatalf("unknown UIDs named in the output: %q %q", out, stderr)
	}
	_, _, err = runFracd(t, "--db", db, "label", "import", "--deidentified", csvPath)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "nothing was added") {
		t.Fatalf("second import: %v; want a clear error naming line 2", err)
	}

	_, stderr, err = runFracd(t, "--db", db, "label", "add", "--deidentified", "--not-fractured", "2.25.997")
	if err != nil || !strings.Contains(stderr, "no instance with this UID") {
		t.Fatalf("label add of an unknown UID: %v, stderr %q; want a note", err, stderr)
	}
	_, stderr, err = runFracd(t, "--db", db, "label", "add", "--deidentified", "--not-fractured", "2.25.101")
	if err != nil || strings.Contains(stderr, "no instance") {
		t.Fatalf("label add of a known UID: %v, stderr %q; want no note", err, stderr)
	}
}
