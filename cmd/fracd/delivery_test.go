package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fracd/fracd/delivery"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
	"github.com/suyashkumar/dicom/pkg/tag"
)

func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Skipf("%s not installed (dcmtk / dicom3tools, see scripts/install-deps.sh): %v", n, err)
		}
	}
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, port int, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs := ""
	if p != nil {
		logs = p.logs()
	}
	t.Fatalf("nothing listens on 127.0.0.1:%d\n%s", port, logs)
}

// startProc runs a command in the background, killed at the end of the test.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan error, 1)}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
	})
	return p
}

// pacs is a storescp acting as the hospital's PACS: every object received
// is kept under a unique name, so a second copy of one would show.
type pacs struct {
	port int
	dir  string
	p    *proc
}

func startPACS(t *testing.T, port int, dir string) *pacs {
	t.Helper()
	p := startProc(t, "storescp", "-aet", "PACS", "-od", dir, "+uf", fmt.Sprint(port))
	waitListening(t, port, p)
	return &pacs{port: port, dir: dir, p: p}
}

func (pc *pacs) stop() {
	pc.p.cmd.Process.Kill()
	err := <-pc.p.done
	pc.p.done <- err
}

// received maps SOP Instance UID -> how many times it arrived, and SOP class.
func (pc *pacs) received(t *testing.T) (map[string]int, map[string]string) {
	t.Helper()
	counts, classes := map[string]int{}, map[string]string{}
	ents, _ := os.ReadDir(pc.dir)
	for _, e := range ents {
		f, err := dicomio.ParseFile(filepath.Join(pc.dir, e.Name()))
		if err != nil {
			continue // still being written
		}
		sop, class := dsString(f, tag.SOPInstanceUID), dsString(f, tag.SOPClassUID)
		counts[sop]++
		classes[sop] = class
	}
	return counts, classes
}

func dsString(f *dicomio.File, tg tag.Tag) string {
	e, err := f.Dataset.FindElementByTag(tg)
	if err != nil {
		return ""
	}
	v, _ := e.Value.GetValue().([]string)
	if len(v) == 0 {
		return ""
	}
	return strings.Trim(v[0], " \x00")
}

func (pc *pacs) waitObjects(t *testing.T, n int, timeout time.Duration, serve *proc) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var counts map[string]int
	for time.Now().Before(deadline) {
		counts, _ = pc.received(t)
		if len(counts) >= n {
			return counts
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs := serve.logs()
	if len(logs) > 6000 {
		logs = logs[len(logs)-6000:]
	}
	t.Fatalf("PACS holds %d distinct objects after %v; want %d\n%s", len(counts), timeout, n, logs)
	return nil
}

// withDelivery appends a delivery section for a PACS on port to the site's
// config: quick retries, so the fault tests run in seconds.
func withDelivery(t *testing.T, s site, port int) {
	t.Helper()
	f, err := os.OpenFile(s.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, `delivery:
  aet: PACS
  host: 127.0.0.1
  port: %d
  calling_aet: FRACD
  max_attempts: 1000
  backoff: 100ms
  max_backoff: 500ms
  timeout: 5s
`, port)
}

type sent struct {
	sop, study, accession string
	phi                   []string
}

// testFiles makes n synthetic originals with fake identifiers.
func testFiles(t *testing.T, dir string, n, seed0 int) []sent {
	t.Helper()
	var out []sent
	for i := 0; i < n; i++ {
		spec := testdicom.Spec{Seed: seed0 + i, Rows: 96, Cols: 80, PatientName: fmt.Sprintf("Deliverytest%02d^Fakepatient", seed0+i)}
		data, err := spec.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.dcm", i)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		phi := spec.PHI()
		out = append(out, sent{sop: phi[6], study: phi[7], accession: testdicom.Accession, phi: phi})
	}
	return out
}

func deliveriesByState(t *testing.T, dbPath string) map[string]int {
	t.Helper()
	db, err := store.OpenReadOnly(context.Background(), dbPath)
	if err != nil {
		return nil
	}
	defer db.Close()
	ds, err := db.Deliveries(context.Background())
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, d := range ds {
		out[d.State]++
	}
	return out
}

// TestDeliveryEndToEnd: files sent with storescu to `fracd receive` reach
// the inbox, are classified, and their SR and SC reach a second storescp
// (the PACS); dciodvfy finds no error, dsrdump reads each SR, each object
// names its original instance and study; `fracd results --study-uid` and
// `--accession` find them; no identifier reaches the database, archive or
// logs, and nothing is left in the outbox.
func TestDeliveryEndToEnd(t *testing.T) {
	needTools(t, "storescp", "storescu", "dciodvfy", "dsrdump")
	s := newSite(t, tinyModelFile(t), 1)
	pacsPort, rxPort := freeLoopbackPort(t), freeLoopbackPort(t)
	withDelivery(t, s, pacsPort)
	pc := startPACS(t, pacsPort, t.TempDir())

	srcDir := t.TempDir()
	files := testFiles(t, srcDir, 3, 70)
	var phi []string
	for _, f := range files {
		phi = append(phi, f.phi...)
	}
	// Hospital-like files from the reference corpus, when present.
	if dir := filepath.Join("..", "..", "..", "shared", "xray-dicom"); dirExists(dir) {
		phiByFile, _ := corpusPHI(t, dir)
		for _, name := range []string{"xr00000.dcm", "xr00001.dcm", "xr00002.dcm", "xr00003.dcm"} {
			data, err := os.ReadFile(filepath.Join(dir, "files", name))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(srcDir, name), data, 0o600)
			f, err := dicomio.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			x := sent{sop: dsString(f, tag.SOPInstanceUID), study: dsString(f, tag.StudyInstanceUID), accession: dsString(f, tag.AccessionNumber)}
			for _, v := range phiByFile[name] {
				x.phi = append(x.phi, v)
			}
			x.phi = append(x.phi, x.sop, x.study)
			phi = append(phi, x.phi...)
			files = append(files, x)
		}
	} else {
		t.Log("../shared/xray-dicom absent: synthetic files only")
	}

	rx := startProc(t, fracdBinary(t), "--config", s.config, "receive", "--aet", "FRACD", "--port", fmt.Sprint(rxPort))
	waitListening(t, rxPort, rx)
	serve := startServe(t, s)
	// As a modality does: one association per file, proposing the file's own
	// transfer syntax (storescu proposes one family per option).
	propose := map[string]string{"1.2.840.10008.1.2.4.70": "-xs", "1.2.840.10008.1.2.4.51": "-xx", "1.2.840.10008.1.2.4.80": "-xt",
		"1.2.840.10008.1.2.5": "-xr", "1.2.840.10008.1.2.4.90": "-xv", "1.2.840.10008.1.2.1.99": "-xd"}
	srcEnts, _ := os.ReadDir(srcDir)
	for _, e := range srcEnts {
		path := filepath.Join(srcDir, e.Name())
		f, err := dicomio.ParseFile(path)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"-aet", "MODALITY", "-aec", "FRACD"}
		if opt := propose[f.TransferSyntaxUID]; opt != "" {
			args = append(args, opt)
		}
		args = append(args, "127.0.0.1", fmt.Sprint(rxPort), path)
		if out, err := exec.Command("storescu", args...).CombinedOutput(); err != nil {
			t.Fatalf("storescu to fracd receive: %v\n%s\n%s", err, out, rx.logs())
		}
	}
	counts := waitTerminal(t, s, int64(len(files)), 3*time.Minute, serve)
	if counts[store.StateDone] != int64(len(files)) {
		t.Fatalf("terminal states %v; want %d done\n%s", counts, len(files), serve.logs())
	}
	got := pc.waitObjects(t, 2*len(files), 2*time.Minute, serve)

	// Each original has exactly one SR and one SC, each once.
	refs := map[string]int{}
	for sop, n := range got {
		if n != 1 {
			t.Errorf("object %s received %d times", sop, n)
		}
	}
	ents, _ := os.ReadDir(pc.dir)
	for _, e := range ents {
		path := filepath.Join(pc.dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := dicomio.Parse(data)
		if err != nil {
			t.Fatalf("PACS object does not parse: %v", err)
		}
		class := dsString(f, tag.SOPClassUID)
		out, _ := exec.Command("dciodvfy", path).CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Error") {
				t.Errorf("dciodvfy (%s): %s", class, l)
			}
		}
		if class == delivery.ComprehensiveSRClass {
			if out, err := exec.Command("dsrdump", path).CombinedOutput(); err != nil || bytes.Contains(out, []byte("E: ")) {
				t.Errorf("dsrdump: %v\n%s", err, out)
			}
		}
		matched := false
		for _, x := range files {
			if bytes.Contains(data, []byte(x.sop)) && dsString(f, tag.StudyInstanceUID) == x.study {
				refs[x.sop+"/"+class]++
				matched = true
			}
		}
		if !matched {
			t.Errorf("a %s object references no original instance and study", class)
		}
	}
	for i, x := range files {
		for _, class := range []string{delivery.ComprehensiveSRClass, delivery.SecondaryCaptureClass} {
			if refs[x.sop+"/"+class] != 1 {
				t.Errorf("original %d: %d objects of class %s", i, refs[x.sop+"/"+class], class)
			}
		}
	}
	waitFor(t, 30*time.Second, func() bool { return deliveriesByState(t, s.db)[store.DeliveryDelivered] == 2*len(files) })
	if n := countFiles(t, filepath.Join(s.root, "spool", "outbox"), ".dcm"); n != 0 {
		t.Errorf("%d files left in the outbox after delivery", n)
	}
	if n := countFiles(t, s.inbox, ""); n != 0 {
		t.Errorf("%d files left in the inbox", n)
	}
	if n := countFiles(t, filepath.Join(s.root, "spool", "incoming"), ""); n != 0 {
		t.Errorf("%d files left in spool/incoming", n)
	}
	serve.stop(t)
	if exited, err := rx.terminate(15 * time.Second); !exited {
		t.Error("receive did not stop within 15s of SIGTERM")
	} else if err != nil {
		t.Errorf("receive exited with %v after SIGTERM\n%s", err, rx.logs())
	}

	// Results by the hospital's identifiers, which are mapped, not stored.
	for _, flag := range []string{"--study-uid", "--accession"} {
		x := files[len(files)-1]
		val := x.study
		if flag == "--accession" {
			val = x.accession
		}
		out, _, err := runFracd(t, "--config", s.config, "results", flag, val, "--format", "json")
		if err != nil {
			t.Fatalf("results %s: %v", flag, err)
		}
		var rs []store.Result
		if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) == 0 {
			t.Fatalf("results %s: %d results (%v)\n%s", flag, len(rs), err, out)
		}
		if strings.Contains(out, val) {
			t.Errorf("results %s prints the original identifier", flag)
		}
	}
	if _, _, err := runFracd(t, "--db", s.db, "audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v", err)
	}
	assertNoPHIInOutputs(t, s, serve.logs()+rx.logs(), phi)
	assertNoPHIInDeliveries(t, s, phi)
}

func dirExists(d string) bool {
	st, err := os.Stat(d)
	return err == nil && st.IsDir()
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("condition not met within %v", timeout)
}

func assertNoPHIInDeliveries(t *testing.T, s site, phi []string) {
	t.Helper()
	db := openReadOnly(t, s.db)
	defer db.Close()
	lower := strings.ToLower(dumpTables(t, db, "deliveries", "study_accessions"))
	for _, f := range phiForms(phi) {
		if strings.Contains(lower, f) {
			t.Errorf("identifier %q found in the deliveries tables", f)
		}
	}
}

// TestDeliveryKilledWithPending: the PACS is down while results are made, so
// their deliveries wait in the outbox; the daemon is killed (kill -9), the
// PACS comes up, the daemon restarts: every object arrives exactly once.
// Then the daemon is killed repeatedly while it sends: nothing is lost, an
// object acknowledged and recorded is never sent again, and a kill can cost
// at most one duplicate (the send in flight; see package delivery).
func TestDeliveryKilledWithPending(t *testing.T) {
	needTools(t, "storescp", "storescu")
	s := newSite(t, tinyModelFile(t), 1)
	pacsPort := freeLoopbackPort(t)
	withDelivery(t, s, pacsPort)
	src := t.TempDir()
	files := testFiles(t, src, 4, 80)

	serve := startServe(t, s)
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(src, e.Name()))
		dropAtomic(t, s.inbox, e.Name(), data)
	}
	waitTerminal(t, s, int64(len(files)), 2*time.Minute, serve)
	// Destination down: every delivery pending, some attempts spent.
	waitFor(t, 30*time.Second, func() bool {
		db, err := store.OpenReadOnly(context.Background(), s.db)
		if err != nil {
			return false
		}
		defer db.Close()
		ds, _ := db.Deliveries(context.Background())
		retried := 0
		for _, d := range ds {
			if d.Attempts >= 2 && d.LastError == delivery.ReasonUnreachable {
				retried++
			}
		}
		return len(ds) == 2*len(files) && retried == len(ds)
	})
	serve.kill()
	outbox := filepath.Join(s.root, "spool", "outbox")
	if st, err := os.Stat(outbox); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("outbox: %v %v", err, st)
	}
	outEnts, _ := os.ReadDir(outbox)
	n := 0
	for _, e := range outEnts {
		if st, _ := e.Info(); strings.HasSuffix(e.Name(), ".dcm") {
			n++
			if st.Mode().Perm() != 0o600 {
				t.Errorf("outbox file mode %v", st.Mode().Perm())
			}
		}
	}
	if n != 2*len(files) {
		t.Fatalf("%d files in the outbox after the kill; want %d", n, 2*len(files))
	}

	pc := startPACS(t, pacsPort, t.TempDir())
	serve = startServe(t, s)
	got := pc.waitObjects(t, 2*len(files), time.Minute, serve)
	waitFor(t, 30*time.Second, func() bool { return deliveriesByState(t, s.db)[store.DeliveryDelivered] == 2*len(files) })
	for sop, c := range got {
		if c != 1 {
			t.Errorf("object %s received %d times", sop, c)
		}
	}

	// Kill while sending. Objects recorded delivered before a kill must
	// arrive exactly once; a kill may leave one send unrecorded.
	phase1 := got
	moreDir := t.TempDir()
	more := testFiles(t, moreDir, 6, 90)
	ents, _ = os.ReadDir(moreDir)
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(moreDir, e.Name()))
		dropAtomic(t, s.inbox, e.Name(), data)
	}
	total := 2 * (len(files) + len(more))
	kills := 0
	for kills < 4 {
		time.Sleep(time.Duration(300+kills*170) * time.Millisecond)
		st := deliveriesByState(t, s.db)
		if st[store.DeliveryDelivered] == total {
			break
		}
		serve.kill()
		kills++
		serve = startServe(t, s)
	}
	got = pc.waitObjects(t, total, 3*time.Minute, serve)
	waitFor(t, time.Minute, func() bool { return deliveriesByState(t, s.db)[store.DeliveryDelivered] == total })
	dups := 0
	var names []string
	for sop, c := range got {
		dups += c - 1
		if c > 1 {
			names = append(names, sop)
		}
	}
	sort.Strings(names)
	t.Logf("%d kills, %d duplicate receptions %v", kills, dups, names)
	for sop := range phase1 {
		if got[sop] != 1 {
			t.Errorf("object %s, recorded delivered before the kills, received %d times", sop, got[sop])
		}
	}
	if dups > kills {
		t.Errorf("%d duplicates after %d kills: more than one per kill", dups, kills)
	}
	if n := countFiles(t, outbox, ".dcm"); n != 0 {
		t.Errorf("%d files left in the outbox", n)
	}
	serve.stop(t)
}

func TestDeliveryConfigValidation(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"off by default", "", ""},
		{"on", "delivery:\n  host: 127.0.0.1\n  port: 11112\n", ""},
		{"bad port", "delivery:\n  host: 127.0.0.1\n  port: 70000\n", "delivery.port"},
		{"long AE", "delivery:\n  host: 127.0.0.1\n  aet: THIS_AE_TITLE_IS_TOO_LONG\n", "delivery.aet"},
		{"AE with backslash", "delivery:\n  host: 127.0.0.1\n  calling_aet: 'A\\B'\n", "delivery.calling_aet"},
		{"bad host", "delivery:\n  host: '-oProxy'\n", "delivery.host"},
		{"no attempts", "delivery:\n  host: pacs\n  max_attempts: 0\n", "delivery.max_attempts"},
		{"backoff above max", "delivery:\n  host: pacs\n  backoff: 2h\n  max_backoff: 1h\n", "delivery.max_backoff"},
		{"unknown key", "delivery:\n  hots: pacs\n", "delivery.hots"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "fracd.yaml")
			if err := os.WriteFile(file, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := runFracd(t, "--config", file, "config")
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v; want one naming %s", err, c.wantErr)
			}
		})
	}
}

// TestReceiveLeftoversAndFlags: a file left in spool/incoming by an earlier
// stop reaches the inbox at start; SIGTERM stops receive with status 0; bad
// flags are refused before anything starts.
func TestReceiveLeftoversAndFlags(t *testing.T) {
	needTools(t, "storescp")
	s := newSite(t, tinyModelFile(t), 1)
	for _, c := range []struct{ args, want string }{
		{"--aet=", "--aet"}, {"--aet=WAY_TOO_LONG_AE_TITLE", "--aet"}, {"--port=0", "--port"}, {"--port=70000", "--port"},
	} {
		if _, _, err := runFracd(t, "--config", s.config, "receive", c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("receive %s: %v; want an error naming %s", c.args, err, c.want)
		}
	}
	incoming := filepath.Join(s.root, "spool", "incoming")
	os.MkdirAll(incoming, 0o700)
	data, err := testdicom.Spec{Seed: 99}.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(incoming, "DX.X.2.25.1"), data, 0o600)
	port := freeLoopbackPort(t)
	rx := startProc(t, fracdBinary(t), "--config", s.config, "receive", "--port", fmt.Sprint(port))
	waitListening(t, port, rx)
	if b, err := os.ReadFile(filepath.Join(s.inbox, "DX.X.2.25.1")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("leftover not in the inbox: %v", err)
	}
	rx.stopWithin(t, "receive", 15*time.Second)
}
