package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
)

var (
	tinyOnce  sync.Once
	tinyModel *classifier.Model
	tinyErr   error
)

// testModel is a small, randomly initialised ResNet saved and loaded through
// safetensors, so predictions carry a real weights hash.
func testModel(t *testing.T) Model {
	t.Helper()
	tinyOnce.Do(func() {
		m, err := classifier.New("basic[1,1,1,1]", 7)
		if err != nil {
			tinyErr = err
			return
		}
		dir, err := os.MkdirTemp("", "fracd-model")
		if err != nil {
			tinyErr = err
			return
		}
		path := filepath.Join(dir, "tiny.safetensors")
		info := m.Info()
		info.ID, info.PreprocessVersion = "tiny-test", preprocess.Version
		if tinyErr = m.Save(path, info); tinyErr != nil {
			return
		}
		tinyModel, tinyErr = classifier.Load(path)
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyAdapter{tinyModel}
}

// tinyAdapter is the test's Model and Localiser over a classifier model
// (cmd/fracd has the production adapter; the pipeline knows no classifier).
type tinyAdapter struct{ m *classifier.Model }

func (a tinyAdapter) Info() ModelInfo {
	ci := a.m.Info()
	return ModelInfo{ID: ci.ID, Arch: ci.Arch, WeightsSHA256: ci.WeightsSHA256, PreprocessVersion: ci.PreprocessVersion,
		InputSize: ci.InputSize, Mean: ci.Mean, Std: ci.Std, Threshold: ci.Threshold, Path: "tiny.safetensors"}
}

func (a tinyAdapter) Predict(ctx context.Context, in []float32, n int) ([]float32, error) {
	return a.m.Predict(ctx, in, n)
}

func (a tinyAdapter) Localise(ctx context.Context, in []float32) (float32, []fracd.Box, error) {
	probs, maps, err := a.m.HeatMaps(ctx, in, 1)
	if err != nil {
		return 0, nil, err
	}
	var out []fracd.Box
	for _, b := range maps[0].Boxes(3, float64(probs[0])) {
		out = append(out, fracd.Box{X0: b.X0, Y0: b.Y0, X1: b.X1, Y1: b.Y1, Score: b.Score})
	}
	return probs[0], out, nil
}

type env struct {
	p     *Pipeline
	db    *store.DB
	root  string
	inbox string
	logs  *bytes.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	db, err := store.Open(ctx, filepath.Join(root, "fracd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	anon, err := anonymize.New(anonymize.Options{}, []byte("pipeline test secret 0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(Config{Spool: filepath.Join(root, "spool"), Archive: filepath.Join(root, "archive"), MaxPixelBytes: 64 << 20}, db, anon, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetModel(ctx, testModel(t), "test"); err != nil {
		t.Fatal(err)
	}
	inbox := filepath.Join(root, "inbox")
	os.MkdirAll(inbox, 0o755)
	return &env{p: p, db: db, root: root, inbox: inbox, logs: logs}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (e *env) drop(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(e.inbox, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *env) claimAndProcess(t *testing.T, path string) Outcome {
	t.Helper()
	ctx := context.Background()
	job, err := e.p.Claim(ctx, path)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	out, err := e.p.Process(ctx, job)
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("original still in the inbox after %s", out.State)
	}
	return out
}

func mustBytes(t *testing.T, s testdicom.Spec) []byte {
	t.Helper()
	b, err := s.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allBytes returns everything fracd wrote: archive, database (with WAL) and logs.
func (e *env) allOutputs(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{"logs": e.logs.Bytes()}
	for _, dir := range []string{filepath.Join(e.root, "archive")} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Errorf("read archive file for the identifier scan: %v", err)
				}
				out[p] = b
			}
			return nil
		})
	}
	for _, f := range []string{"fracd.db", "fracd.db-wal"} {
		if b, err := os.ReadFile(filepath.Join(e.root, f)); err == nil {
			out[f] = b
		}
	}
	return out
}

func assertNoPHI(t *testing.T, outputs map[string][]byte, phi []string) {
	t.Helper()
	for name, b := range outputs {
		lower := bytes.ToLower(b)
		for _, s := range phi {
			for _, form := range []string{s, strings.ReplaceAll(s, "^", " ")} {
				if testdicom.ContainsIdentifier(lower, strings.ToLower(form)) {
					t.Errorf("identifier %q found in %s", form, name)
				}
			}
		}
	}
}

func TestProcessGoodFile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spec := testdicom.Spec{Seed: 1}
	data := mustBytes(t, spec)
	out := e.claimAndProcess(t, e.drop(t, "Fakename_Testpatient.dcm", data))
	if out.State != store.StateDone {
		t.Fatalf("state %s (%s); want done", out.State, out.Reason)
	}
	if out.Probability <= 0 || out.Probability >= 1 || out.ModelID != "tiny-test" {
		t.Fatalf("outcome %+v", out)
	}
	if !strings.HasPrefix(out.SOPInstanceUID, "2.25.") || !strings.HasPrefix(out.StudyUID, "2.25.") {
		t.Fatalf("UIDs not de-identified: %+v", out)
	}
	// The archive holds the de-identified file with the original pixels.
	f, err := dicomio.ParseFile(out.ArchivePath)
	if err != nil {
		t.Fatalf("archive does not parse: %v", err)
	}
	fr, err := f.DecodeFrame(0)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range spec.Pixels() {
		if fr.Data[i] != int32(v) {
			t.Fatalf("archived pixel %d = %d; want %d", i, fr.Data[i], v)
		}
	}
	rs, err := e.db.Results(ctx, store.ResultFilter{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("results %v, %v", rs, err)
	}
	r := rs[0]
	if r.SOPInstanceUID != out.SOPInstanceUID || r.ModelSHA256 == "" || r.PreprocessVersion != preprocess.Version || r.Flagged != (r.Probability >= r.Threshold) {
		t.Fatalf("result row %+v", r)
	}
	if entries, _ := os.ReadDir(e.p.WorkDir()); len(entries) != 0 {
		t.Fatalf("spool/work not empty: %v", entries)
	}
	if _, err := e.db.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	es, _ := e.db.ListAudit(ctx, store.AuditFilter{Subject: out.SHA256})
	for _, a := range es {
		actions[a.Action]++
	}
	for _, a := range []string{store.ActionClaimed, store.ActionArchived, store.ActionPredicted} {
		if actions[a] != 1 {
			t.Errorf("audit %s rows = %d; want 1 (%v)", a, actions[a], actions)
		}
	}
	assertNoPHI(t, e.allOutputs(t), append(spec.PHI(), "Fakename_Testpatient"))
}

func TestProcessRejectsBadInput(t *testing.T) {
	good := testdicom.Spec{Seed: 2}
	goodBytes := mustBytes(t, good)
	cases := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"text file", []byte("this is not a DICOM file, just a note\n"), dicomio.ReasonNotDICOM},
		{"empty file", nil, dicomio.ReasonNotDICOM},
		{"truncated", goodBytes[:len(goodBytes)-1000], dicomio.ReasonTruncated},
		{"no pixel data", mustBytes(t, testdicom.Spec{Seed: 3, NoPixelData: true}), dicomio.ReasonNoPixelData},
		{"unsupported transfer syntax", mustBytes(t, testdicom.Spec{Seed: 4, TransferSyntax: "1.2.840.10008.1.2.4.201"}), dicomio.ReasonUnsupportedTS},
		{"private transfer syntax", mustBytes(t, testdicom.Spec{Seed: 5, TransferSyntax: "1.3.46.670589.33.1.4.1"}), dicomio.ReasonUnsupportedTS},
		{"huge dimensions", mustBytes(t, testdicom.Spec{Seed: 6, DeclaredRows: 65535, DeclaredCols: 65535}), dicomio.ReasonTooLarge},
		{"burned-in annotation", mustBytes(t, testdicom.Spec{Seed: 7, BurnedIn: "YES"}), ReasonBurnedIn},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			out := e.claimAndProcess(t, e.drop(t, "Fakename_Testpatient.dcm", tc.data))
			if out.State != store.StateRejected || !strings.HasPrefix(out.Reason, tc.reason+":") {
				t.Fatalf("outcome %s %q; want rejected %s", out.State, out.Reason, tc.reason)
			}
			// `fracd inspect` promises the reason the daemon records.
			if tc.reason != ReasonBurnedIn {
				if got := dicomio.Inspect(ctx, tc.data, e.p.cfg.DICOMOptions()...).Reason; got != tc.reason {
					t.Errorf("inspect says %q, the daemon recorded %q", got, tc.reason)
				}
			}
			kept := filepath.Join(e.p.RejectedDir(), out.SHA256+".dcm")
			st, err := os.Stat(kept)
			if err != nil {
				t.Fatalf("rejected original missing: %v", err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("rejected file mode %v; want 0600", st.Mode().Perm())
			}
			if got, _ := os.ReadFile(kept); !bytes.Equal(got, tc.data) {
				t.Fatal("rejected file differs from the original")
			}
			reason, err := os.ReadFile(filepath.Join(e.p.RejectedDir(), out.SHA256+".reason.txt"))
			if err != nil || !strings.HasPrefix(string(reason), tc.reason) {
				t.Fatalf("reason file %q, %v", reason, err)
			}
			in, err := e.db.Instance(ctx, out.SHA256)
			if err != nil || in.State != store.StateRejected || in.Reason != out.Reason {
				t.Fatalf("instance row %+v, %v", in, err)
			}
			if es, _ := e.db.ListAudit(ctx, store.AuditFilter{Action: store.ActionRejected}); len(es) != 1 {
				t.Fatalf("rejected audit rows = %d", len(es))
			}
			assertNoPHI(t, e.allOutputs(t), good.PHI())
		})
	}
}

func TestDuplicates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spec := testdicom.Spec{Seed: 9}
	data := mustBytes(t, spec)
	first := e.claimAndProcess(t, e.drop(t, "a.dcm", data))
	if first.State != store.StateDone {
		t.Fatalf("first: %+v", first)
	}
	// The same bytes again.
	again := e.claimAndProcess(t, e.drop(t, "b.dcm", data))
	if again.State != store.StateDuplicate || again.DuplicateOf != first.SHA256 {
		t.Fatalf("same bytes again: %+v", again)
	}
	// The same instance re-encoded (different bytes, same SOP Instance UID).
	spec2 := spec
	spec2.Monochrome1 = true
	resent := e.claimAndProcess(t, e.drop(t, "c.dcm", mustBytes(t, spec2)))
	if resent.State != store.StateDuplicate || resent.DuplicateOf != first.SHA256 {
		t.Fatalf("re-encoded instance: %+v", resent)
	}
	rs, _ := e.db.Results(ctx, store.ResultFilter{})
	if len(rs) != 1 {
		t.Fatalf("%d results; the instance was counted more than once", len(rs))
	}
	counts, _ := e.db.Counts(ctx)
	if counts[store.StateDone] != 1 || counts[store.StateDuplicate] != 1 {
		t.Fatalf("counts %v", counts)
	}
	if es, _ := e.db.ListAudit(ctx, store.AuditFilter{Action: store.ActionDuplicate}); len(es) != 2 {
		t.Fatalf("duplicate audit rows = %d; want 2", len(es))
	}
}

// TestRecoveryAfterCommit simulates a crash after the result was committed but
// before the work file was removed: reprocessing must not count it twice.
func TestRecoveryAfterCommit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	data := mustBytes(t, testdicom.Spec{Seed: 11})
	out := e.claimAndProcess(t, e.drop(t, "a.dcm", data))
	leftover := filepath.Join(e.p.WorkDir(), out.SHA256+".dcm")
	os.WriteFile(leftover, data, 0o600)

	// A rejected file whose move was interrupted.
	bad := []byte("not dicom")
	rout := e.claimAndProcess(t, e.drop(t, "b.txt", bad))
	os.Remove(filepath.Join(e.p.RejectedDir(), rout.SHA256+".dcm"))
	os.WriteFile(filepath.Join(e.p.WorkDir(), rout.SHA256+".dcm"), bad, 0o600)

	// And one never processed.
	fresh := mustBytes(t, testdicom.Spec{Seed: 12})
	sum := sha256.Sum256(fresh)
	fsha := hex.EncodeToString(sum[:])
	os.WriteFile(filepath.Join(e.p.WorkDir(), fsha+".dcm"), fresh, 0o600)

	jobs, err := e.p.Pending()
	if err != nil || len(jobs) != 3 {
		t.Fatalf("pending %d, %v", len(jobs), err)
	}
	for _, j := range jobs {
		if _, err := e.p.Process(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	rs, _ := e.db.Results(ctx, store.ResultFilter{})
	if len(rs) != 2 {
		t.Fatalf("%d results; want 2", len(rs))
	}
	if entries, _ := os.ReadDir(e.p.WorkDir()); len(entries) != 0 {
		t.Fatalf("spool/work not empty: %v", entries)
	}
	if b, err := os.ReadFile(filepath.Join(e.p.RejectedDir(), rout.SHA256+".dcm")); err != nil || !bytes.Equal(b, bad) {
		t.Fatalf("recovered rejected file not in rejected/: %v", err)
	}
	if _, err := e.db.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestNoModelLeavesFileInWork(t *testing.T) {
	e := newEnv(t)
	e.p.model.Store(nil)
	data := mustBytes(t, testdicom.Spec{Seed: 13})
	job, err := e.p.Claim(context.Background(), e.drop(t, "a.dcm", data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.Process(context.Background(), job); !errors.Is(err, ErrNoModel) {
		t.Fatalf("err = %v; want ErrNoModel", err)
	}
	if _, err := os.Stat(job.Path); err != nil {
		t.Fatalf("work file gone without a model: %v", err)
	}
}

// TestConcurrentEncodingsOfOneInstance sends two encodings of the same
// instance to two workers at once: one is done, the other a duplicate, and
// the archive holds the first one's file.
func TestConcurrentEncodingsOfOneInstance(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := mustBytes(t, testdicom.Spec{Seed: 51})
	b := mustBytes(t, testdicom.Spec{Seed: 51, Monochrome1: true})
	ja, err := e.p.Claim(ctx, e.drop(t, "a.dcm", a))
	if err != nil {
		t.Fatal(err)
	}
	jb, err := e.p.Claim(ctx, e.drop(t, "b.dcm", b))
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]Outcome, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, j := range []Job{ja, jb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = e.p.Process(ctx, j)
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	states := map[string]int{outs[0].State: 1}
	states[outs[1].State]++
	if states[store.StateDone] != 1 || states[store.StateDuplicate] != 1 {
		t.Fatalf("outcomes %s and %s; want one done, one duplicate", outs[0].State, outs[1].State)
	}
	done := outs[0]
	if done.State != store.StateDone {
		done = outs[1]
	}
	f, err := dicomio.ParseFile(done.ArchivePath)
	if err != nil {
		t.Fatal(err)
	}
	want := "MONOCHROME2"
	if done.SHA256 == jb.SHA256 {
		want = "MONOCHROME1"
	}
	if f.Photometric() != want {
		t.Fatalf("archive holds %s; the done instance was %s", f.Photometric(), want)
	}
}

func TestClaimErrorsNameNoPath(t *testing.T) {
	e := newEnv(t)
	missing := filepath.Join(e.inbox, "Fakename^Testpatient.dcm")
	_, err := e.p.Claim(context.Background(), missing)
	if err == nil || strings.Contains(err.Error(), "Fakename") || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("claim of a vanished file: %v; want ErrNotExist without the name", err)
	}
	_, err = e.p.CopyIn(context.Background(), missing)
	if err == nil || strings.Contains(err.Error(), "Fakename") {
		t.Fatalf("copy-in of a missing file: %v; want an error without the name", err)
	}
}

// TestContentChangedAfterClaimIsNotLeftInFlight changes a work file's bytes
// after its claim, so that readWork renames it to its new hash: that hash
// must not stay "in flight" once Process returns, or the retry scan skips it
// and new copies of those bytes become in-flight duplicates.
func TestContentChangedAfterClaimIsNotLeftInFlight(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	job, err := e.p.Claim(ctx, e.drop(t, "a.dcm", mustBytes(t, testdicom.Spec{Seed: 61})))
	if err != nil {
		t.Fatal(err)
	}
	changed := mustBytes(t, testdicom.Spec{Seed: 62})
	sum := sha256.Sum256(changed)
	newSHA := hex.EncodeToString(sum[:])
	if err := os.WriteFile(job.Path, changed, 0o600); err != nil {
		t.Fatal(err)
	}
	// A system error after the rename leaves the file for the retry scan.
	am := e.p.model.Load()
	e.p.model.Store(nil)
	if _, err := e.p.Process(ctx, job); !errors.Is(err, ErrNoModel) {
		t.Fatalf("err = %v; want ErrNoModel", err)
	}
	for _, sha := range []string{job.SHA256, newSHA} {
		if e.p.isInFlight(sha) {
			t.Fatalf("%s still in flight after Process returned", sha)
		}
	}
	pending, err := e.p.Pending()
	if err != nil || len(pending) != 1 || pending[0].SHA256 != newSHA {
		t.Fatalf("pending %+v, %v; want the renamed file", pending, err)
	}
	e.p.model.Store(am)
	out, err := e.p.Process(ctx, pending[0])
	if err != nil || out.State != store.StateDone || out.SHA256 != newSHA {
		t.Fatalf("retry: %+v, %v", out, err)
	}
	if e.p.isInFlight(newSHA) {
		t.Fatal("new hash still in flight after the retry finished")
	}
	// The same bytes again are a plain duplicate, not an in-flight one.
	again := e.claimAndProcess(t, e.drop(t, "b.dcm", changed))
	if again.State != store.StateDuplicate || again.DuplicateOf != newSHA {
		t.Fatalf("same bytes again: %+v", again)
	}
	if es, _ := e.db.ListAudit(ctx, store.AuditFilter{Action: store.ActionDuplicate}); len(es) != 1 || strings.Contains(string(es[0].Detail), "in_flight") {
		t.Fatalf("duplicate audit rows %+v; want one, not in flight", es)
	}
}

// TestContentChangedToBytesInFlight: when a work file's new content is
// already being processed by another job, the file is that job's duplicate;
// it must not be renamed over the other job's work file.
func TestContentChangedToBytesInFlight(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other := mustBytes(t, testdicom.Spec{Seed: 64})
	otherJob, err := e.p.Claim(ctx, e.drop(t, "b.dcm", other))
	if err != nil {
		t.Fatal(err)
	}
	job, err := e.p.Claim(ctx, e.drop(t, "a.dcm", mustBytes(t, testdicom.Spec{Seed: 63})))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(job.Path, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if !e.p.begin(otherJob.SHA256) {
		t.Fatal("begin")
	}
	out, err := e.p.Process(ctx, job)
	e.p.end(otherJob.SHA256)
	if err != nil || out.State != store.StateDuplicate || out.DuplicateOf != otherJob.SHA256 {
		t.Fatalf("outcome %+v, %v; want a duplicate of the in-flight job", out, err)
	}
	if _, err := os.Stat(job.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("changed work file left behind: %v", err)
	}
	if b, err := os.ReadFile(otherJob.Path); err != nil || !bytes.Equal(b, other) {
		t.Fatalf("other job's work file: %v", err)
	}
	if e.p.isInFlight(job.SHA256) || e.p.isInFlight(otherJob.SHA256) {
		t.Fatal("hash left in flight")
	}
	if res, err := e.p.Process(ctx, otherJob); err != nil || res.State != store.StateDone {
		t.Fatalf("other job: %+v, %v", res, err)
	}
}
