package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

var testSecret = []byte("delivery-test-secret-0123456789abcdef")

func testBuilder() *Builder {
	return &Builder{UID: func(k string) string { return anonymize.PseudonymUID(testSecret, "fracd/"+k) },
		Manufacturer: "fracd", SoftwareVersion: "test"}
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (dcmtk / dicom3tools: see scripts/install-deps.sh): %v", name, err)
	}
	return p
}

func makeOriginal(t *testing.T, seed int) (testdicom.Spec, []byte) {
	t.Helper()
	spec := testdicom.Spec{Seed: seed, Rows: 120, Cols: 100}
	data, err := spec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return spec, data
}

func testResult(t *testing.T, seed int, p float64, th fracd.Thresholds, boxes []Box) (Result, testdicom.Spec) {
	spec, data := makeOriginal(t, seed)
	return Result{InstanceSHA256: strings.Repeat(fmt.Sprint(seed%10), 64), SOPInstanceUID: anonymize.PseudonymUID(testSecret, fmt.Sprint(seed)),
		ModelID: "tiny-test", ModelArch: "resnet18", ModelSHA256: strings.Repeat("ab", 32), PreprocessVersion: "pp1",
		Probability: p, Thresholds: th, Boxes: boxes, Original: data}, spec
}

func strOf(t *testing.T, ds dicom.Dataset, tg tag.Tag) string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	if err != nil {
		t.Fatalf("missing (%04X,%04X)", tg.Group, tg.Element)
	}
	v, _ := e.Value.GetValue().([]string)
	if len(v) == 0 {
		return ""
	}
	return strings.Trim(v[0], " \x00")
}

// TestObjectsValidate builds SR and SC for each category, with and without
// boxes, and checks them with dciodvfy (no Error line) and dsrdump, and that
// each references the original instance and study.
func TestObjectsValidate(t *testing.T) {
	boxes := []Box{{X0: 10, Y0: 60, X1: 40, Y1: 90, Score: 0.81}, {X0: 50.5, Y0: 20.25, X1: 90, Y1: 44, Score: 0.4}}
	cases := []struct {
		name     string
		p        float64
		th       fracd.Thresholds
		boxes    []Box
		category string
		presence string
	}{
		{"fracture with boxes", 0.91, fracd.Thresholds{Suspected: 0.3, Definite: 0.7}, boxes, "fracture", "52101004"},
		{"doubt", 0.5, fracd.Thresholds{Suspected: 0.3, Definite: 0.7}, boxes[:1], "doubt", "42425007"},
		{"no fracture, one threshold", 0.2, fracd.Single(0.5), nil, "no_fracture", "2667000"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, spec := testResult(t, i+1, c.p, c.th, c.boxes)
			sr, sc, err := testBuilder().Build(r)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for kind, ds := range map[string]dicom.Dataset{"sr": sr, "sc": sc} {
				path := filepath.Join(dir, kind+".dcm")
				if err := dicomio.WriteFile(path, ds); err != nil {
					t.Fatal(err)
				}
				data, _ := os.ReadFile(path)
				f, err := dicomio.Parse(data)
				if err != nil {
					t.Fatalf("%s does not parse back: %v", kind, err)
				}
				if got := strOf(t, f.Dataset, tag.StudyInstanceUID); got != spec.PHI()[7] {
					t.Errorf("%s: study UID %q, want the original study", kind, got)
				}
				if !bytes.Contains(data, []byte(spec.PHI()[6])) {
					t.Errorf("%s does not reference the original SOP instance", kind)
				}
				if got := strOf(t, f.Dataset, tag.PatientID); got != testdicom.DefaultPatientID {
					t.Errorf("%s: patient ID %q, want the original", kind, got)
				}
				if got := strOf(t, f.Dataset, tag.AccessionNumber); got != testdicom.Accession {
					t.Errorf("%s: accession %q, want the original", kind, got)
				}
				validate(t, path)
			}
			dump := dsrdump(t, filepath.Join(dir, "sr.dcm"))
			for _, want := range []string{"Imaging Measurement Report", "125605004,SCT,\"Fracture of bone\"", c.presence,
				"(" + c.category + ",99FRACD", "Certainty of Finding", "Algorithm Name", "Algorithm Version", "tiny-test"} {
				if !strings.Contains(dump, want) {
					t.Errorf("dsrdump output lacks %q\n%s", want, dump)
				}
			}
			if n := strings.Count(dump, "SCOORD"); n != len(c.boxes) {
				t.Errorf("%d SCOORDs, want %d", n, len(c.boxes))
			}
			if len(c.boxes) > 0 && !strings.Contains(dump, "POLYLINE") {
				t.Error("no POLYLINE")
			}
			if got := strOf(t, sc, tag.BurnedInAnnotation); got != "YES" {
				t.Errorf("SC Burned In Annotation %q", got)
			}
			if got := strOf(t, sc, tag.SeriesInstanceUID); got == strOf(t, sr, tag.SeriesInstanceUID) || got == "" {
				t.Error("SC and SR must be in their own new series")
			}
		})
	}
}

func TestClosedPolyline(t *testing.T) {
	pts := closedPolyline(Box{X0: 1, Y0: 2, X1: 3, Y1: 4})
	if len(pts) != 10 || pts[0] != pts[8] || pts[1] != pts[9] {
		t.Fatalf("polyline %v is not closed", pts)
	}
}

func validate(t *testing.T, path string) {
	t.Helper()
	bin := needTool(t, "dciodvfy")
	out, _ := exec.Command(bin, path).CombinedOutput()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Error") {
			t.Errorf("dciodvfy %s: %s", filepath.Base(path), l)
		}
	}
}

func dsrdump(t *testing.T, path string) string {
	t.Helper()
	bin := needTool(t, "dsrdump")
	out, err := exec.Command(bin, "-Ec", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "E: ") {
		t.Fatalf("dsrdump: %v\n%s", err, out)
	}
	return string(out)
}

// fakeSender fails with the listed errors in turn, then succeeds.
type fakeSender struct {
	mu    sync.Mutex
	errs  []error
	sent  []string
	calls int
}

func (f *fakeSender) Send(ctx context.Context, d Destination, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return err
	}
	f.sent = append(f.sent, filepath.Base(path))
	return nil
}

func newOutbox(t *testing.T, send Sender, maxAttempts int) (*Outbox, *store.DB) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "fracd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	o, err := New(Config{Dir: filepath.Join(t.TempDir(), "outbox"), Destination: Destination{AET: "PACS", Host: "127.0.0.1", Port: 1},
		MaxAttempts: maxAttempts, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}, db, testBuilder(), send, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o, db
}

// seedInstance adds the instance row a delivery references.
func seedInstance(t *testing.T, db *store.DB, r Result) {
	t.Helper()
	ctx := context.Background()
	err := db.Update(ctx, func(tx *store.Tx) error {
		return tx.InsertInstance(ctx, store.Instance{SHA256: r.InstanceSHA256, State: store.StateDone, SOPInstanceUID: r.SOPInstanceUID})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func auditActions(t *testing.T, db *store.DB) map[string]int {
	t.Helper()
	rows, err := db.SQL().Query(`SELECT action, detail FROM audit`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var a, d string
		if err := rows.Scan(&a, &d); err != nil {
			t.Fatal(err)
		}
		out[a]++
		var detail struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(d), &detail); err != nil {
			t.Fatalf("audit detail %q: %v", d, err)
		}
		if detail.Reason != "" {
			out[a+":"+detail.Reason]++
		}
	}
	return out
}

func TestOutboxStates(t *testing.T) {
	down := &SendError{ReasonUnreachable, errors.New("down")}
	cases := []struct {
		name        string
		errs        []error
		maxAttempts int
		wantState   string
		wantReason  string
		wantCalls   int
		fileKept    bool
	}{
		{"first try", nil, 3, store.DeliveryDelivered, "", 2, false},
		{"after two failures", []error{down, down}, 3, store.DeliveryDelivered, "", 4, false},
		{"attempts spent", []error{down, down, down, down, down, down}, 3, store.DeliveryFailed, ReasonUnreachable, 6, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			send := &fakeSender{errs: c.errs}
			o, db := newOutbox(t, send, c.maxAttempts)
			r, _ := testResult(t, 10+i, 0.9, fracd.Single(0.5), nil)
			seedInstance(t, db, r)
			if err := o.Enqueue(ctx, r); err != nil {
				t.Fatal(err)
			}
			// Enqueue is idempotent.
			if err := o.Enqueue(ctx, r); err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(o.cfg.Dir)
			if st.Mode().Perm() != 0o700 {
				t.Errorf("outbox mode %v", st.Mode().Perm())
			}
			for _, k := range []string{KindSR, KindSC} {
				st, err := os.Stat(o.path(r.SOPInstanceUID, k))
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("%s file: %v %v", k, err, st)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := o.sendDue(ctx); err != nil {
					t.Fatal(err)
				}
				ds, _ := db.Deliveries(ctx, store.DeliveryPending)
				if len(ds) == 0 {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			for _, k := range []string{KindSR, KindSC} {
				d, err := db.Delivery(ctx, r.SOPInstanceUID, k)
				if err != nil {
					t.Fatal(err)
				}
				if d.State != c.wantState || d.LastError != c.wantReason {
					t.Errorf("%s: state %s reason %q, want %s %q", k, d.State, d.LastError, c.wantState, c.wantReason)
				}
				_, err = os.Stat(o.path(r.SOPInstanceUID, k))
				if kept := err == nil; kept != c.fileKept {
					t.Errorf("%s: file kept %v, want %v", k, kept, c.fileKept)
				}
			}
			if send.calls != c.wantCalls {
				t.Errorf("%d sends, want %d", send.calls, c.wantCalls)
			}
			a := auditActions(t, db)
			if a[store.ActionDeliveryQueued] != 2 {
				t.Errorf("audit %v: want 2 queued rows", a)
			}
			if c.wantState == store.DeliveryFailed && a[store.ActionDeliveryFailed+":"+c.wantReason] != 2 {
				t.Errorf("audit %v: want 2 failed rows with reason %s", a, c.wantReason)
			}
			if c.wantState == store.DeliveryDelivered && a[store.ActionDeliveryDelivered] != 2 {
				t.Errorf("audit %v: want 2 delivered rows", a)
			}
		})
	}
}

// TestOutboxRecover: a crash while sending leaves the row "sending": it is
// sent again; a crash after the delivered commit leaves the file: it is
// removed and never sent again.
func TestOutboxRecover(t *testing.T) {
	ctx := context.Background()
	send := &fakeSender{}
	o, db := newOutbox(t, send, 3)
	r, _ := testResult(t, 30, 0.9, fracd.Single(0.5), nil)
	seedInstance(t, db, r)
	if err := o.Enqueue(ctx, r); err != nil {
		t.Fatal(err)
	}
	sr, _ := db.Delivery(ctx, r.SOPInstanceUID, KindSR)
	sr.State, sr.Attempts = store.DeliverySending, 1
	sc, _ := db.Delivery(ctx, r.SOPInstanceUID, KindSC)
	sc.State, sc.DeliveredAt = store.DeliveryDelivered, time.Now()
	if err := o.update(ctx, sr); err != nil {
		t.Fatal(err)
	}
	if err := o.update(ctx, sc); err != nil {
		t.Fatal(err)
	}
	if err := o.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(o.path(r.SOPInstanceUID, KindSC)); !os.IsNotExist(err) {
		t.Errorf("delivered SC file still there: %v", err)
	}
	if _, err := o.sendDue(ctx); err != nil {
		t.Fatal(err)
	}
	if len(send.sent) != 1 || !strings.HasSuffix(send.sent[0], ".sr.dcm") {
		t.Errorf("sent %v, want only the interrupted SR", send.sent)
	}
}

// storescp runs dcmtk's storescp on a free loopback port with extra flags.
func storescp(t *testing.T, aet string, flags ...string) (port int, dir string) {
	t.Helper()
	bin := needTool(t, "storescp")
	dir = t.TempDir()
	port = freePort(t)
	args := append([]string{"-aet", aet, "-od", dir, "+uf"}, flags...)
	cmd := exec.Command(bin, append(args, fmt.Sprint(port))...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitPort(t, port)
	return port, dir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}

// TestStoreSCUFaults sends a real SR with storescu to destinations that are
// down, refuse the association, or die mid-transfer, and to a working one.
func TestStoreSCUFaults(t *testing.T) {
	needTool(t, "storescu")
	r, _ := testResult(t, 40, 0.9, fracd.Single(0.5), nil)
	sr, _, err := testBuilder().Build(r)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "x.sr.dcm")
	if err := dicomio.WriteFile(file, sr); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		flags  []string // nil: nothing listens
		down   bool
		reason string
	}{
		{"destination down", nil, true, ReasonUnreachable},
		{"association refused", []string{"--refuse"}, false, ReasonAssociationRejected},
		{"dies mid-transfer", []string{"--abort-during"}, false, ReasonAssociationAborted},
		{"dies before responding", []string{"--abort-after"}, false, ReasonAssociationAborted},
		{"accepts", []string{}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			port, dir := 0, ""
			if c.down {
				port = freePort(t)
			} else {
				port, dir = storescp(t, "PACS", c.flags...)
			}
			err := StoreSCU{Timeout: 5 * time.Second}.Send(context.Background(), Destination{AET: "PACS", Host: "127.0.0.1", Port: port, CallingAET: "FRACD"}, file)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				if ents, _ := os.ReadDir(dir); len(ents) != 1 {
					t.Fatalf("destination holds %d files, want 1", len(ents))
				}
				return
			}
			if got := ReasonOf(err); got != c.reason {
				t.Errorf("reason %q (%v), want %q", got, err, c.reason)
			}
		})
	}
	t.Run("wrong called AE", func(t *testing.T) {
		// dcmqrscp, unlike storescp, checks the called AE title.
		bin := needTool(t, "dcmqrscp")
		dir, port := t.TempDir(), freePort(t)
		cfg := filepath.Join(dir, "qr.cfg")
		os.MkdirAll(filepath.Join(dir, "db"), 0o700)
		os.WriteFile(cfg, []byte(fmt.Sprintf("NetworkTCPPort = %d\nMaxPDUSize = 16384\nMaxAssociations = 4\n"+
			"HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"+
			"AETable BEGIN\nPACS %s RW (100, 64mb) ANY\nAETable END\n", port, filepath.Join(dir, "db"))), 0o600)
		cmd := exec.Command(bin, "-c", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		waitPort(t, port)
		for aet, want := range map[string]string{"NOTPACS": ReasonAssociationRejected, "PACS": ""} {
			err := StoreSCU{Timeout: 5 * time.Second}.Send(context.Background(), Destination{AET: aet, Host: "127.0.0.1", Port: port}, file)
			if got := ReasonOf(err); (want == "" && err != nil) || (want != "" && got != want) {
				t.Errorf("called AE %s: %v, want reason %q", aet, err, want)
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		port := freePort(t)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)) // accepts, never answers
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = StoreSCU{Timeout: 30 * time.Second}.Send(ctx, Destination{AET: "PACS", Host: "127.0.0.1", Port: port}, file)
		if ReasonOf(err) != ReasonInterrupted && ReasonOf(err) != ReasonTimeout {
			t.Errorf("reason %q (%v)", ReasonOf(err), err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("cancellation took %v", time.Since(start))
		}
	})
}

// TestObjectsFromXrayCorpus builds SR and SC for every hospital-like file of
// the reference corpus (8 encodings, MONOCHROME1 and 2) and validates them.
func TestObjectsFromXrayCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "shared", "xray-dicom", "files", "*.dcm"))
	if len(files) == 0 {
		t.Skip("../shared/xray-dicom not present (only in the development checkout)")
	}
	needTool(t, "dciodvfy")
	for i, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r := Result{InstanceSHA256: strings.Repeat("c", 64), SOPInstanceUID: "2.25.7", ModelID: "m", ModelArch: "resnet18",
				Probability: float64(i) / float64(len(files)), Thresholds: fracd.Thresholds{Suspected: 0.3, Definite: 0.6},
				Boxes: []Box{{X0: 100, Y0: 120, X1: 300, Y1: 330, Score: 0.7}}, Original: data}
			sr, sc, err := testBuilder().Build(r)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			for kind, ds := range map[string]dicom.Dataset{"sr": sr, "sc": sc} {
				p := filepath.Join(dir, kind+".dcm")
				if err := dicomio.WriteFile(p, ds); err != nil {
					t.Fatal(err)
				}
				validate(t, p)
			}
			dsrdump(t, filepath.Join(dir, "sr.dcm"))
		})
	}
}
