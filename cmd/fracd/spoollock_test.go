package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/internal/testdicom"
)

// TestProcessRefusesWhileServeRuns: `fracd process` and `fracd serve` both
// treat spool/work as theirs; while one holds the spool, the other is
// refused before it touches spool/work or the database, and once the lock
// is released process runs.
func TestProcessRefusesWhileServeRuns(t *testing.T) {
	s := newSite(t, tinyModelFile(t), 1)
	spool := filepath.Dir(s.work)
	release, err := lockSpool(spool) // what serve holds while it runs
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockSpool(spool); !errors.Is(err, errSpoolBusy) {
		t.Fatalf("second lock: %v; want errSpoolBusy", err)
	}
	in := filepath.Join(t.TempDir(), "x.dcm")
	b, _ := testdicom.Spec{Seed: 43}.Bytes()
	os.WriteFile(in, b, 0o600)
	_, _, err = runFracd(t, "--config", s.config, "process", in)
	if err == nil || !strings.Contains(err.Error(), "another fracd") {
		t.Fatalf("process while the spool is held: %v; want refused", err)
	}
	if _, err := os.Stat(s.db); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused process opened the database: %v", err)
	}
	if es, _ := os.ReadDir(s.work); len(es) != 0 {
		t.Fatalf("the refused process left %d entries in spool/work", len(es))
	}
	release()
	if out, _, err := runFracd(t, "--config", s.config, "process", in); err != nil {
		t.Fatalf("process after serve stopped: %v\n%s", err, out)
	}
}
