package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
)

// restart is a new run of the pipeline on e's spool and database, as after
// the daemon stopped: what the old run had in memory is gone.
func (e *env) restart(t *testing.T) {
	t.Helper()
	p, err := New(e.p.cfg, e.db, e.p.anon, e.p.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetModel(context.Background(), testModel(t), "test"); err != nil {
		t.Fatal(err)
	}
	e.p = p
}

// TestFileThatCrashedTheDaemonIsQuarantined simulates a file that kills
// the daemon while it is decoded (a bomb under a memory limit): its mark is
// left in spool/work. After one such stop the file goes behind the other
// pending files instead of first; after a second it is rejected as
// crashed_daemon, with an audit row, without being decoded again.
func TestFileThatCrashedTheDaemonIsQuarantined(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	claim := func(name string, seed int) Job {
		t.Helper()
		job, err := e.p.Claim(ctx, e.drop(t, name, mustBytes(t, testdicom.Spec{Seed: seed})))
		if err != nil {
			t.Fatal(err)
		}
		return job
	}
	bomb := claim("bomb.dcm", 41)
	good := claim("good.dcm", 42) // claimed later: without the mark it would come second
	// The run stops while decoding bomb: marked, never finished.
	if err := e.p.markInProgress(&bomb); err != nil {
		t.Fatal(err)
	}
	e.restart(t)
	pending, err := e.p.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].SHA256 != good.SHA256 || pending[1].SHA256 != bomb.SHA256 || pending[1].Crashes != 1 {
		t.Fatalf("pending after one stop = %+v; want the good file first and the suspect (1 stop) last", pending)
	}
	if out, err := e.p.Process(ctx, pending[0]); err != nil || out.State != store.StateDone {
		t.Fatalf("good file: %+v, %v", out, err)
	}

	// Retried, and the run stops while decoding it again.
	if err := e.p.markInProgress(&pending[1]); err != nil {
		t.Fatal(err)
	}
	e.restart(t)
	pending, err = e.p.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Crashes != 2 {
		t.Fatalf("pending after two stops = %+v", pending)
	}
	out, err := e.p.Process(ctx, pending[0])
	if err != nil {
		t.Fatal(err)
	}
	// The file decodes fine: only quarantine, not a decode, rejects it.
	if out.State != store.StateRejected || !strings.HasPrefix(out.Reason, ReasonCrashedDaemon+":") {
		t.Fatalf("outcome %s %q; want rejected %s", out.State, out.Reason, ReasonCrashedDaemon)
	}
	if _, err := os.Stat(filepath.Join(e.p.RejectedDir(), bomb.SHA256+".dcm")); err != nil {
		t.Fatalf("quarantined file not in spool/rejected: %v", err)
	}
	rows, err := e.db.ListAudit(ctx, store.AuditFilter{Action: store.ActionRejected, Subject: bomb.SHA256})
	if err != nil || len(rows) != 1 || !strings.Contains(string(rows[0].Detail), ReasonCrashedDaemon) {
		t.Fatalf("rejection audit rows %+v, %v", rows, err)
	}
	ents, err := os.ReadDir(e.p.WorkDir())
	if err != nil || len(ents) != 0 {
		t.Fatalf("spool/work holds %v (%v); want nothing, marks included", ents, err)
	}
}

// TestInProgressMarkOfThisRunIsNoCrash: a file being processed now, or one
// whose processing ended, leaves no mark that a later Pending of the same
// run counts as a stop.
func TestInProgressMarkOfThisRunIsNoCrash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	job, err := e.p.Claim(ctx, e.drop(t, "a.dcm", mustBytes(t, testdicom.Spec{Seed: 43})))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.markInProgress(&job); err != nil {
		t.Fatal(err)
	}
	pending, err := e.p.Pending()
	if err != nil || len(pending) != 1 || pending[0].Crashes != 0 {
		t.Fatalf("pending = %+v, %v; want the file with no stop counted", pending, err)
	}
	if out, err := e.p.Process(ctx, pending[0]); err != nil || out.State != store.StateDone {
		t.Fatalf("%+v, %v", out, err)
	}
	if _, err := os.Stat(e.p.markPath(job.SHA256)); !os.IsNotExist(err) {
		t.Fatalf("mark left after processing: %v", err)
	}
}
