package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
)

// TestSetModelAgainWritesNoRow: activating the model already active (every
// `fracd process`, every restart) adds no model.activated row; another
// model or threshold does.
func TestSetModelAgainWritesNoRow(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t) // activates the test model once
	count := func() int {
		rows, err := e.db.ListAudit(ctx, store.AuditFilter{Action: store.ActionModelActivated})
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d model.activated rows after the first activation; want 1", n)
	}
	for i := 0; i < 3; i++ {
		if err := e.p.SetModel(ctx, testModel(t), "process"); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(); n != 1 {
		t.Fatalf("%d model.activated rows after activating the same model again; want 1", n)
	}
	e.p.cfg.ThresholdOverride = 0.9
	if err := e.p.SetModel(ctx, testModel(t), "threshold override"); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("%d model.activated rows after a new threshold; want 2", n)
	}
}

// TestFinishedWorkFileIsNotRetried: a file the retry scan listed but that
// finished meanwhile (its work file is gone) is not logged as an error to
// retry.
func TestFinishedWorkFileIsNotRetried(t *testing.T) {
	e := newEnv(t)
	sha := strings.Repeat("a", 64)
	e.p.runJob(context.Background(), RunConfig{}, Job{SHA256: sha, Path: filepath.Join(e.p.WorkDir(), sha+".dcm")})
	if strings.Contains(e.logs.String(), "will retry") {
		t.Fatalf("a finished file was logged for retry:\n%s", e.logs.String())
	}
}

// gateModel blocks in Predict until released, as a hung model would.
type gateModel struct {
	Model
	entered, release chan struct{}
}

func (g *gateModel) Predict(ctx context.Context, in []float32, n int) ([]float32, error) {
	close(g.entered)
	<-g.release
	return g.Model.Predict(ctx, in, n)
}

// TestRunningShowsAFileInAWorker: while a worker is stuck on a file,
// Running reports when it started; once done, nothing.
func TestRunningShowsAFileInAWorker(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	g := &gateModel{Model: testModel(t), entered: make(chan struct{}), release: make(chan struct{})}
	if err := e.p.SetModel(ctx, g, "test"); err != nil {
		t.Fatal(err)
	}
	b, _ := testdicom.Spec{Seed: 5}.Bytes()
	job, err := e.p.CopyIn(ctx, e.drop(t, "a.dcm", b))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.p.Running()); n != 0 {
		t.Fatalf("%d running before any job", n)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.p.runJob(ctx, RunConfig{}, job)
	}()
	<-g.entered
	if n := len(e.p.Running()); n != 1 {
		t.Fatalf("%d running while a worker is in Predict; want 1", n)
	}
	close(g.release)
	<-done
	if n := len(e.p.Running()); n != 0 {
		t.Fatalf("%d running after the job ended; want 0", n)
	}
}

// TestClaimFailureWarnsOnce: a file the watcher keeps offering but that
// cannot be claimed (unreadable, or not the file that settled) is warned
// about once, not at every offer.
func TestClaimFailureWarnsOnce(t *testing.T) {
	e := newEnv(t)
	b, _ := testdicom.Spec{Seed: 6}.Bytes()
	path := e.drop(t, "a.dcm", b)
	const offers = 4
	inbox := make(chan string)
	released := make(chan string)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- e.p.Run(ctx, RunConfig{
			Workers: 1,
			// Never the file at the path: every claim is refused.
			SettledID: func(string) (uint64, uint64, bool) { return 1, 1, true },
			Release:   func(p string) { released <- p },
		}, inbox)
	}()
	for i := 0; i < offers; i++ {
		inbox <- path
		<-released
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(e.logs.String(), "level=WARN msg=\"claim failed"); n != 1 {
		t.Fatalf("%d claim warnings for %d offers of one file; want 1:\n%s", n, offers, e.logs.String())
	}
}
