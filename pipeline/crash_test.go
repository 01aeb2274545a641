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

func (e *env) claim(t *testing.T, name string, seed int) Job {
	t.Helper()
	job, err := e.p.Claim(context.Background(), e.drop(t, name, mustBytes(t, testdicom.Spec{Seed: seed})))
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// stopWhileDecoding leaves job as a run that stopped while decoding it
// does (its mark), and starts the next run, which recovers.
func (e *env) stopWhileDecoding(t *testing.T, job Job) {
	t.Helper()
	if err := e.p.markInProgress(&job); err != nil {
		t.Fatal(err)
	}
	e.restart(t)
	if err := e.p.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// names lists what the folders hold.
func names(t *testing.T, dirs ...string) (all []string) {
	t.Helper()
	for _, d := range dirs {
		m, err := filepath.Glob(filepath.Join(d, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			all = append(all, filepath.Base(p))
		}
	}
	return all
}

// TestFileThatCrashedTheDaemonIsQuarantined simulates a file that kills
// the daemon while it is decoded (a bomb under a memory limit): its mark is
// left in spool/work. At the next start it is quarantined with an audit
// row, so the file behind it is processed first; its one more try, alone,
// stops the daemon again, and it is rejected as crashed_daemon without
// being decoded a third time.
func TestFileThatCrashedTheDaemonIsQuarantined(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bomb := e.claim(t, "bomb.dcm", 41)
	good := e.claim(t, "good.dcm", 42)
	e.stopWhileDecoding(t, bomb)
	if got := names(t, e.p.QuarantineDir()); len(got) != 1 || got[0] != bomb.SHA256+".dcm" {
		t.Fatalf("spool/quarantine holds %v; want the file that was being decoded", got)
	}
	rows, err := e.db.ListAudit(ctx, store.AuditFilter{Action: ActionQuarantined, Subject: bomb.SHA256})
	if err != nil || len(rows) != 1 || !strings.Contains(string(rows[0].Detail), ReasonCrashedDaemon) {
		t.Fatalf("quarantine audit rows %+v, %v", rows, err)
	}
	pending, err := e.p.Pending()
	if err != nil || len(pending) != 1 || pending[0].SHA256 != good.SHA256 {
		t.Fatalf("pending after the stop = %+v, %v; want only the good file", pending, err)
	}
	if out, err := e.p.Process(ctx, pending[0]); err != nil || out.State != store.StateDone {
		t.Fatalf("good file: %+v, %v", out, err)
	}

	// Its one more try; the run stops during it too.
	retry, ok := e.p.retryQuarantined()
	if !ok || retry.SHA256 != bomb.SHA256 {
		t.Fatalf("retryQuarantined = %+v, %v", retry, ok)
	}
	e.restart(t)
	if err := e.p.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	pending, err = e.p.Pending()
	if err != nil || len(pending) != 1 || pending[0].Crashes != quarantineAfter {
		t.Fatalf("pending after the second stop = %+v, %v", pending, err)
	}
	out, err := e.p.Process(ctx, pending[0])
	if err != nil {
		t.Fatal(err)
	}
	// The file decodes fine: only the quarantine rule, not a decode, rejects it.
	if out.State != store.StateRejected || !strings.HasPrefix(out.Reason, ReasonCrashedDaemon+":") {
		t.Fatalf("outcome %s %q; want rejected %s", out.State, out.Reason, ReasonCrashedDaemon)
	}
	if _, err := os.Stat(filepath.Join(e.p.RejectedDir(), bomb.SHA256+".dcm")); err != nil {
		t.Fatalf("file not in spool/rejected: %v", err)
	}
	rows, err = e.db.ListAudit(ctx, store.AuditFilter{Action: store.ActionRejected, Subject: bomb.SHA256})
	if err != nil || len(rows) != 1 || !strings.Contains(string(rows[0].Detail), ReasonCrashedDaemon) {
		t.Fatalf("rejection audit rows %+v, %v", rows, err)
	}
	if got := names(t, e.p.WorkDir(), e.p.QuarantineDir()); len(got) != 0 {
		t.Fatalf("spool/work and spool/quarantine hold %v; want nothing, marks included", got)
	}
}

// TestQuarantinedFileThatDecodesIsDone: a file quarantined after an outside
// kill -9 (which looks like a crash) ends done at its one more try.
func TestQuarantinedFileThatDecodesIsDone(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.stopWhileDecoding(t, e.claim(t, "a.dcm", 44))
	retry, ok := e.p.retryQuarantined()
	if !ok {
		t.Fatal("nothing in quarantine")
	}
	if out, err := e.p.Process(ctx, retry); err != nil || out.State != store.StateDone {
		t.Fatalf("%+v, %v", out, err)
	}
	if got := names(t, e.p.WorkDir(), e.p.QuarantineDir()); len(got) != 0 {
		t.Fatalf("left %v", got)
	}
}

// TestInProgressMarkOfThisRunIsNoCrash: a file being processed by this run
// is neither quarantined nor counted as a stop.
func TestInProgressMarkOfThisRunIsNoCrash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	job := e.claim(t, "a.dcm", 43)
	if err := e.p.markInProgress(&job); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Recover(ctx); err != nil {
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
