package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
)

// buildFracd builds the daemon once per test run: the crash tests need a
// real process to kill.
var buildFracd = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "fracd-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "fracd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// saveTinyModel saves, once per test run, a small randomly initialised
// ResNet: real weights and a real hash, but fast enough for end-to-end
// tests on two cores.
var saveTinyModel = sync.OnceValues(func() (string, error) {
	m, err := classifier.New("basic[1,1,1,1]", 3)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "fracd-model")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "tiny.safetensors")
	info := m.Info()
	info.ID, info.PreprocessVersion = "tiny-e2e", preprocess.Version
	return path, m.Save(path, info)
})

func fracdBinary(t *testing.T) string {
	t.Helper()
	return onceFile(t, buildFracd)
}

func tinyModelFile(t *testing.T) string {
	t.Helper()
	return onceFile(t, saveTinyModel)
}

// onceFile is the file a sync.OnceValues makes, or the test's end.
func onceFile(t *testing.T, once func() (string, error)) string {
	t.Helper()
	path, err := once()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

type site struct {
	root, inbox, db, archive, work, rejected, config string
}

func newSite(t *testing.T, modelPath string, workers int) site {
	t.Helper()
	root := t.TempDir()
	s := site{root: root, inbox: filepath.Join(root, "inbox"), db: filepath.Join(root, "fracd.db"),
		archive: filepath.Join(root, "archive"), work: filepath.Join(root, "spool", "work"),
		rejected: filepath.Join(root, "spool", "rejected"), config: filepath.Join(root, "fracd.yaml")}
	cfg := fmt.Sprintf(`paths:
  inbox: %s
  spool: %s
  archive: %s
  db: %s
  models: %s
workers: %d
settle: 400ms
rescan: 2s
min_free_mb: 1
shutdown_timeout: 10s
anonymize:
  secret_file: %s
model:
  path: %q
log:
  level: debug
  format: json
http:
  listen: 127.0.0.1:0
`, s.inbox, filepath.Join(root, "spool"), s.archive, s.db, filepath.Join(root, "models"), workers, filepath.Join(root, "secret.key"), modelPath)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(s.inbox, 0o755)
	return s
}

type proc struct {
	cmd *exec.Cmd
	syncBuffer
	done chan error
}

func (p *proc) logs() string { return p.String() }

func startServe(t *testing.T, s site) *proc {
	t.Helper()
	return startProc(t, fracdBinary(t), "--config", s.config, "serve")
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.stopWithin(t, "serve", 20*time.Second)
}

// stopWithin ends p (name, in the messages) with SIGTERM: it must exit
// cleanly within timeout.
func (p *proc) stopWithin(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	exited, err := p.terminate(timeout)
	if !exited {
		t.Fatalf("%s did not stop within %v of SIGTERM", name, timeout)
	}
	if err != nil {
		t.Fatalf("%s exited with %v after SIGTERM\n%s", name, err, p.logs())
	}
}

// terminate sends SIGTERM and waits up to timeout: whether p exited, and
// its exit error (left in done for later waits).
func (p *proc) terminate(timeout time.Duration) (exited bool, err error) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	case <-time.After(timeout):
		return false, nil
	}
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	p.done <- err
}

var addrRe = regexp.MustCompile(`"http":"(127\.0\.0\.1:\d+)"`)

func (p *proc) addr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := addrRe.FindStringSubmatch(p.logs()); m != nil {
			return m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve never logged its address\n%s", p.logs())
	return ""
}

// waitTerminal waits until n files have a terminal state in the database.
func waitTerminal(t *testing.T, s site, n int64, timeout time.Duration, p *proc) map[string]int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var counts map[string]int64
	for time.Now().Before(deadline) {
		if db, err := store.OpenReadOnly(context.Background(), s.db); err == nil {
			counts, _ = db.Counts(context.Background())
			db.Close()
			var total int64
			for _, c := range counts {
				total += c
			}
			if total >= n {
				return counts
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs := ""
	if p != nil {
		logs = p.logs()
		if len(logs) > 4000 {
			logs = logs[len(logs)-4000:]
		}
	}
	t.Fatalf("only %v of %d files reached a terminal state in %v\n%s", counts, n, timeout, logs)
	return nil
}

// dropAtomic writes a file under a temporary name the watcher ignores, then
// renames it into place, as a well-behaved sender does.
func dropAtomic(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, name+".part")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// dropSlowly writes a file in place in chunks with pauses shorter than the
// settle time, as a slow network copy does.
func dropSlowly(t *testing.T, dir, name string, data []byte, chunks int, pause time.Duration) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	step := (len(data) + chunks - 1) / chunks
	for i := 0; i < len(data); i += step {
		end := min(i+step, len(data))
		if _, err := f.Write(data[i:end]); err != nil {
			t.Error(err)
			return
		}
		time.Sleep(pause)
	}
}

func countFiles(t *testing.T, dir, suffix string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, suffix) {
			n++
		}
		return nil
	})
	return n
}

func sharedDir(t *testing.T, sub string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "..", "shared", sub)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference data %s not present (../shared is only in the development checkout): %v", sub, err)
	}
	return dir
}

// newTestDB makes an empty database in a fresh directory, for a test to
// seed through the store's API; the caller closes it before running fracd
// on path.
func newTestDB(t *testing.T) (*store.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fracd.db")
	db, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

// openReadOnly opens a database as the query commands do; the caller
// closes it.
func openReadOnly(t *testing.T, path string) *store.DB {
	t.Helper()
	db, err := store.OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// dumpTables prints every row of the tables, so an identifier scan sees
// the values however SQLite stores them (compressed, split over pages).
func dumpTables(t *testing.T, db *store.DB, tables ...string) string {
	t.Helper()
	var dump strings.Builder
	for _, table := range tables {
		rows, err := db.SQL().Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			rows.Scan(ptrs...)
			fmt.Fprintln(&dump, vals...)
		}
		rows.Close()
	}
	return dump.String()
}

// corpusPHI reads the reference corpus's phi.json: the identifiers of each
// file by attribute, and all of them in one list.
func corpusPHI(t *testing.T, dir string) (map[string]map[string]string, []string) {
	t.Helper()
	var phiByFile map[string]map[string]string
	b, err := os.ReadFile(filepath.Join(dir, "phi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &phiByFile); err != nil {
		t.Fatalf("phi.json: %v", err)
	}
	var phi []string
	for _, m := range phiByFile {
		for _, v := range m {
			phi = append(phi, v)
		}
	}
	return phiByFile, phi
}

// phiForms expands identifiers into the forms that must not appear: as
// written, with ^ as a space, and dates in the DICOM and ISO spellings.
func phiForms(values []string) []string {
	var out []string
	dateRe := regexp.MustCompile(`^(\d{4})(\d{2})(\d{2})$`)
	for _, v := range values {
		if len(v) < 4 {
			continue
		}
		out = append(out, strings.ToLower(v), strings.ToLower(strings.ReplaceAll(v, "^", " ")))
		if m := dateRe.FindStringSubmatch(v); m != nil {
			for _, sep := range []string{"-", ".", "/"} {
				out = append(out, m[1]+sep+m[2]+sep+m[3])
			}
		}
	}
	return out
}

func assertNoPHIInOutputs(t *testing.T, s site, logs string, phi []string) {
	t.Helper()
	outputs := map[string][]byte{"logs": []byte(logs)}
	filepath.WalkDir(s.archive, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("read archive file for the identifier scan: %v", err)
			}
			outputs[p] = b
		}
		return nil
	})
	for _, f := range []string{s.db, s.db + "-wal"} {
		if b, err := os.ReadFile(f); err == nil {
			outputs[f] = b
		}
	}
	// A dump through SQL too, in case a value is stored compressed or split.
	if db, err := store.OpenReadOnly(context.Background(), s.db); err == nil {
		outputs["sql dump"] = []byte(dumpTables(t, db, "instances", "predictions", "models", "labels", "training_runs", "audit"))
		db.Close()
	}
	forms := phiForms(phi)
	for name, b := range outputs {
		lower := bytes.ToLower(b)
		for _, f := range forms {
			if testdicom.ContainsIdentifier(lower, f) {
				t.Errorf("identifier %q found in %s", f, name)
			}
		}
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeXrayCorpus(t *testing.T) {
	dir := sharedDir(t, "xray-dicom")
	phiByFile, phi := corpusPHI(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "files", "*.dcm"))
	if len(files) != 24 {
		t.Fatalf("found %d corpus files; want 24", len(files))
	}
	s := newSite(t, tinyModelFile(t), 2)
	p := startServe(t, s)
	addr := p.addr(t)

	// Half arrive by atomic rename, half as slow in-place copies, all under
	// names that carry the patient's name (as some exports do).
	var wg sync.WaitGroup
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.ReplaceAll(phiByFile[filepath.Base(f)]["PatientName"], "^", "_") + ".dcm"
		if i%2 == 0 {
			dropAtomic(t, s.inbox, name, data)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dropSlowly(t, s.inbox, name, data, 4, 150*time.Millisecond)
		}()
	}
	wg.Wait()
	counts := waitTerminal(t, s, 24, 3*time.Minute, p)
	if counts[store.StateDone] != 24 {
		t.Fatalf("terminal states %v; want 24 done\n%s", counts, p.logs())
	}

	db := openReadOnly(t, s.db)
	rs, err := db.Results(context.Background(), store.ResultFilter{})
	db.Close()
	if err != nil || len(rs) != 24 {
		t.Fatalf("%d results, %v; want 24", len(rs), err)
	}
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.InstanceSHA256] {
			t.Fatalf("instance %s predicted twice", r.InstanceSHA256)
		}
		seen[r.InstanceSHA256] = true
	}
	if n := countFiles(t, s.archive, ".dcm"); n != 24 {
		t.Fatalf("%d archive files; want 24", n)
	}
	if n := countFiles(t, s.inbox, ""); n != 0 {
		t.Fatalf("%d files left in the inbox", n)
	}
	if n := countFiles(t, s.work, ""); n != 0 {
		t.Fatalf("%d files left in spool/work", n)
	}

	code, body := httpGet(t, "http://"+addr+"/healthz")
	if code != 200 {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	code, body = httpGet(t, "http://"+addr+"/readyz")
	if code != 200 || !strings.Contains(body, "tiny-e2e") {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	code, body = httpGet(t, "http://"+addr+"/metrics")
	if code != 200 || !strings.Contains(body, `fracd_files_total{outcome="done",reason=""} 24`) ||
		!strings.Contains(body, `fracd_stage_seconds_count{stage="classify"} 24`) || !strings.Contains(body, `fracd_active_model{`) {
		t.Fatalf("/metrics lacks the expected series:\n%s", body)
	}
	p.stop(t)

	// The hospital's label export names instances by their ORIGINAL UIDs;
	// import maps them with the site secret onto the stored ones.
	out, _, err := runFracd(t, "--config", s.config, "label", "import", filepath.Join(dir, "labels.csv"))
	if err != nil || !strings.Contains(out, "imported 24 labels") {
		t.Fatalf("label import: %q, %v", out, err)
	}
	db, err = store.OpenReadOnly(context.Background(), s.db)
	if err != nil {
		t.Fatal(err)
	}
	var joined, positives int
	db.SQL().QueryRow(`SELECT count(*), coalesce(sum(label), 0) FROM labelled_results`).Scan(&joined, &positives)
	db.Close()
	if joined != 24 || positives != 12 {
		t.Fatalf("labelled_results: %d rows, %d fractured; want 24 and 12", joined, positives)
	}

	out, _, err = runFracd(t, "--db", s.db, "audit", "verify")
	if err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	t.Log(strings.TrimSpace(out))
	assertNoPHIInOutputs(t, s, p.logs(), phi)
}

func TestServeRejectsBadInputAndKeepsGoing(t *testing.T) {
	s := newSite(t, tinyModelFile(t), 2)
	p := startServe(t, s)
	p.addr(t)
	good := testdicom.Spec{Seed: 21}
	goodBytes, _ := good.Bytes()
	mk := func(spec testdicom.Spec) []byte {
		b, err := spec.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	inputs := []struct {
		name   string
		data   []byte
		reason string
	}{
		{"notes.dcm", []byte("Patient Fakename^Testpatient called about results\n"), "not_dicom"},
		{"empty.dcm", nil, "not_dicom"},
		{"truncated.dcm", goodBytes[:len(goodBytes)/2], "truncated"},
		{"sr.dcm", mk(testdicom.Spec{Seed: 22, NoPixelData: true, SOPClassUID: "1.2.840.10008.5.1.4.1.1.88.11"}), "no_pixel_data"}, // Basic Text SR
		{"htj2k.dcm", mk(testdicom.Spec{Seed: 23, TransferSyntax: "1.2.840.10008.1.2.4.201"}), "unsupported_transfer_syntax"},
		{"huge.dcm", mk(testdicom.Spec{Seed: 24, DeclaredRows: 65535, DeclaredCols: 65535}), "too_large"},
		{"good1.dcm", goodBytes, ""},
		{"good2.dcm", mk(testdicom.Spec{Seed: 25, Monochrome1: true}), ""},
	}
	for _, in := range inputs {
		dropAtomic(t, s.inbox, in.name, in.data)
	}
	// A DICOMDIR is skipped, not rejected.
	os.WriteFile(filepath.Join(s.inbox, "DICOMDIR"), []byte("DICOMDIR placeholder"), 0o644)
	counts := waitTerminal(t, s, int64(len(inputs)), time.Minute, p)
	if counts[store.StateDone] != 2 || counts[store.StateRejected] != 6 {
		t.Fatalf("states %v; want 2 done, 6 rejected", counts)
	}
	p.stop(t)
	for _, in := range inputs {
		if in.reason == "" {
			continue
		}
		sum := sha256.Sum256(in.data)
		sha := hex.EncodeToString(sum[:])
		reason, err := os.ReadFile(filepath.Join(s.rejected, sha+".reason.txt"))
		if err != nil || !strings.HasPrefix(string(reason), in.reason+":") {
			t.Errorf("%s: reason %q, %v; want %s", in.name, reason, err, in.reason)
		}
		st, err := os.Stat(filepath.Join(s.rejected, sha+".dcm"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: rejected copy %v, %v; want mode 0600", in.name, st, err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.inbox, "DICOMDIR")); err != nil {
		t.Errorf("DICOMDIR was taken from the inbox: %v", err)
	}
	if _, _, err := runFracd(t, "--db", s.db, "audit", "verify"); err != nil {
		t.Fatal(err)
	}
	assertNoPHIInOutputs(t, s, p.logs(), testdicom.Spec{Seed: 21}.PHI())
}

// TestServeCrashSafety kills the daemon with SIGKILL at random moments while
// 50 files are in flight, restarts it, and checks that every file ends in
// exactly one terminal state with nothing counted twice.
func TestServeCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: skipped in -short mode")
	}
	s := newSite(t, tinyModelFile(t), 2)
	const n = 50
	phi := []string{}
	for i := 0; i < n; i++ {
		spec := testdicom.Spec{Seed: 100 + i, Rows: 1024, Cols: 820}
		b, err := spec.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		phi = append(phi, spec.PHI()...)
		dropAtomic(t, s.inbox, fmt.Sprintf("study-%02d.dcm", i), b)
	}
	rng := rand.New(rand.NewSource(42))
	var allLogs strings.Builder
	// Kill while files are in flight: a kill only counts when some files
	// are still unfinished afterwards, and at least 5 must count.
	inFlightKills, rounds := 0, 0
	for inFlightKills < 5 {
		rounds++
		if rounds > 30 {
			t.Fatalf("only %d of 30 kills hit unfinished work", inFlightKills)
		}
		p := startServe(t, s)
		p.addr(t) // running: past start-up, claiming and processing
		wait := time.Duration(50+rng.Intn(500)) * time.Millisecond
		time.Sleep(wait)
		p.kill()
		allLogs.WriteString(p.logs())
		var c map[string]int64
		if db, err := store.OpenReadOnly(context.Background(), s.db); err == nil {
			c, _ = db.Counts(context.Background())
			db.Close()
		}
		t.Logf("kill %d after %v: %v", rounds, wait, c)
		if c[store.StateDone] < n {
			inFlightKills++
		}
	}
	p := startServe(t, s)
	p.addr(t)
	counts := waitTerminal(t, s, n, 3*time.Minute, p)
	p.stop(t)
	allLogs.WriteString(p.logs())
	if counts[store.StateDone] != n {
		t.Fatalf("states %v; want %d done", counts, n)
	}
	db, err := store.OpenReadOnly(context.Background(), s.db)
	if err != nil {
		t.Fatal(err)
	}
	var preds, distinct int
	db.SQL().QueryRow(`SELECT count(*), count(DISTINCT instance_sha256) FROM predictions`).Scan(&preds, &distinct)
	db.Close()
	if preds != n || distinct != n {
		t.Fatalf("%d predictions for %d instances; want %d each", preds, distinct, n)
	}
	if got := countFiles(t, s.archive, ".dcm"); got != n {
		t.Fatalf("%d archive files; want %d", got, n)
	}
	if got := countFiles(t, s.inbox, ""); got != 0 {
		t.Fatalf("%d files left in the inbox", got)
	}
	if got := countFiles(t, s.work, ""); got != 0 {
		t.Fatalf("%d files left in spool/work", got)
	}
	if _, _, err := runFracd(t, "--db", s.db, "audit", "verify"); err != nil {
		t.Fatalf("audit verify after %d kills: %v", rounds, err)
	}
	assertNoPHIInOutputs(t, s, allLogs.String(), phi)
}

// TestServeSwitchesModelFromRegistry registers a second model while the
// daemon runs; it must switch between files and say so in the audit trail.
func TestServeSwitchesModelFromRegistry(t *testing.T) {
	s := newSite(t, "", 1)
	first := tinyModelFile(t)
	if _, _, err := runFracd(t, "--config", s.config, "model", "add", first, "--id", "first", "--activate"); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, s)
	p.addr(t)
	b, _ := testdicom.Spec{Seed: 31}.Bytes()
	dropAtomic(t, s.inbox, "a.dcm", b)
	waitTerminal(t, s, 1, time.Minute, p)

	m, err := classifier.New("basic[1,1,1,1]", 99)
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "second.safetensors")
	info := m.Info()
	info.PreprocessVersion = preprocess.Version
	if err := m.Save(second, info); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runFracd(t, "--config", s.config, "model", "add", second, "--id", "second", "--activate"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.logs(), `"model_id":"second"`) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not switch to the second model\n%s", p.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ = testdicom.Spec{Seed: 32}.Bytes()
	dropAtomic(t, s.inbox, "b.dcm", b)
	waitTerminal(t, s, 2, time.Minute, p)
	p.stop(t)
	out, _, err := runFracd(t, "--db", s.db, "results", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rs []store.Result
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("results: %v", err)
	}
	if len(rs) != 2 || rs[0].ModelID != "first" || rs[1].ModelID != "second" {
		t.Fatalf("results %+v; want one by each model", rs)
	}
	out, _, _ = runFracd(t, "--db", s.db, "audit", "list", "--action", "model.activated", "--format", "json")
	var es []store.AuditEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("audit list: %v", err)
	}
	if len(es) != 2 || es[1].Subject != "second" {
		t.Fatalf("model.activated audit rows %+v", es)
	}
}

// TestServeLoad drops 500 files at once on a daemon with 2 workers: all must
// be processed, with peak memory bounded. FRACD_LOAD_ARCH (e.g. resnet18) and
// FRACD_LOAD_SIZE (pixels per side) turn it into the load measurement quoted
// in the README; the figures are logged, never asserted.
func TestServeLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped in -short mode")
	}
	model := tinyModelFile(t)
	if arch := os.Getenv("FRACD_LOAD_ARCH"); arch != "" {
		m, err := classifier.New(arch, 1)
		if err != nil {
			t.Fatal(err)
		}
		model = filepath.Join(t.TempDir(), "load.safetensors")
		info := m.Info()
		info.ID, info.PreprocessVersion = "load-"+arch, preprocess.Version
		if err := m.Save(model, info); err != nil {
			t.Fatal(err)
		}
	}
	size := 128
	fmt.Sscan(os.Getenv("FRACD_LOAD_SIZE"), &size)
	s := newSite(t, model, 2)
	// Stage everything first, then move it all in at once.
	staging := filepath.Join(s.root, "staging")
	os.MkdirAll(staging, 0o755)
	const n = 500
	for i := 0; i < n; i++ {
		b, err := testdicom.Spec{Seed: 1000 + i, Rows: size, Cols: size * 4 / 5}.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(staging, fmt.Sprintf("f%03d.dcm", i)), b, 0o644)
	}
	p := startServe(t, s)
	p.addr(t)
	start := time.Now()
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%03d.dcm", i)
		if err := os.Rename(filepath.Join(staging, name), filepath.Join(s.inbox, name)); err != nil {
			t.Fatal(err)
		}
	}
	counts := waitTerminal(t, s, n, 15*time.Minute, p)
	elapsed := time.Since(start)
	hwm := peakRSS(t, p.cmd.Process.Pid)
	p.stop(t)
	if counts[store.StateDone] != n {
		t.Fatalf("states %v; want %d done", counts, n)
	}
	// Memory must not grow with the backlog: 500 queued files may not cost
	// more than a few in flight do.
	if hwm > 1<<30 {
		t.Fatalf("peak RSS %d MiB; want under 1 GiB", hwm>>20)
	}
	stages := map[string][]float64{}
	for _, line := range strings.Split(p.logs(), "\n") {
		var rec struct {
			Msg     string             `json:"msg"`
			StageMS map[string]float64 `json:"stage_ms"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "file done" {
			for k, v := range rec.StageMS {
				stages[k] = append(stages[k], v)
			}
		}
	}
	t.Logf("%d files (%dx%d px) in %v: %.1f files/s with 2 workers; peak RSS %d MiB", n, size*4/5, size, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), hwm>>20)
	for _, k := range []string{"read", "parse", "decode", "preprocess", "deidentify", "archive", "classify", "record"} {
		v := stages[k]
		if len(v) == 0 {
			continue
		}
		sort.Float64s(v)
		t.Logf("stage %-10s p50 %7.2f ms  p95 %7.2f ms", k, v[len(v)/2], v[len(v)*95/100])
	}
}

// peakRSS reads VmHWM (peak resident set) of a running process, in bytes.
// It fails the test when /proc cannot tell: a bound nobody measured must
// not pass.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("peak RSS: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb); err != nil || kb <= 0 {
				t.Fatalf("peak RSS: cannot read %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("peak RSS: no VmHWM line in /proc/%d/status", pid)
	return 0
}

func TestProcessCommand(t *testing.T) {
	s := newSite(t, tinyModelFile(t), 1)
	dir := t.TempDir()
	good := filepath.Join(dir, "Fakename_Testpatient.dcm")
	b, _ := testdicom.Spec{Seed: 41}.Bytes()
	os.WriteFile(good, b, 0o644)
	bad := filepath.Join(dir, "notes.txt")
	os.WriteFile(bad, []byte("not an image"), 0o644)

	out, _, err := runFracd(t, "--config", s.config, "process", "--format", "json", good)
	if err != nil {
		t.Fatal(err)
	}
	var outs []map[string]any
	if err := json.Unmarshal([]byte(out), &outs); err != nil || len(outs) != 1 || outs[0]["state"] != "done" {
		t.Fatalf("process output %q, %v", out, err)
	}
	if _, err := os.Stat(good); err != nil {
		t.Fatalf("process removed the original: %v", err)
	}
	// The same file again is a duplicate; a bad one is rejected with exit 1.
	out, _, err = runFracd(t, "--config", s.config, "process", "--format", "json", good, bad)
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v); want 1 for a rejected file", exitCode(err), err)
	}
	if err := json.Unmarshal([]byte(out), &outs); err != nil {
		t.Fatalf("process output: %v\n%s", err, out)
	}
	if len(outs) != 2 || outs[0]["state"] != "duplicate" || outs[1]["state"] != "rejected" || !strings.HasPrefix(outs[1]["reason"].(string), "not_dicom") {
		t.Fatalf("outcomes %v", outs)
	}
	if n := countFiles(t, s.archive, ".dcm"); n != 1 {
		t.Fatalf("%d archive files; want 1", n)
	}
	if _, _, err := runFracd(t, "--db", s.db, "audit", "verify"); err != nil {
		t.Fatal(err)
	}
}
