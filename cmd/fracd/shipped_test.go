package main

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"image"
	_ "image/jpeg"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/models"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
)

// serveShipped starts serve on a two-worker site with no model
// configured, so the model compiled into the binary is activated on first
// start, and returns that model.
func serveShipped(t *testing.T) (models.Shipped, site, *proc) {
	t.Helper()
	sh, err := models.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := newSite(t, "", 2)
	p := startServe(t, s)
	p.addr(t)
	return sh, s, p
}

// TestServeShippedModel: a fresh site with no model configured registers
// and activates the model compiled into the binary on first start (audited),
// and the 24 hospital-like DICOM files get predictions from it that are not
// all one class and agree within 0.02 with the same images scored from
// their FracAtlas JPEGs, so what the model card measured on images holds
// for DICOM input.
func TestServeShippedModel(t *testing.T) {
	dir := sharedDir(t, "xray-dicom")
	atlas := sharedDir(t, "fracatlas")
	sh, s, p := serveShipped(t)

	// Which FracAtlas JPEG each file was made from, by the file's hash.
	f, err := os.Open(filepath.Join(dir, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 25 {
		t.Fatalf("labels.csv: %d rows, %v", len(rows), err)
	}
	type source struct{ jpeg, fractured string }
	bySHA := map[string]source{}
	for _, r := range rows[1:] {
		b, err := os.ReadFile(filepath.Join(dir, "files", r[0]))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		bySHA[hex.EncodeToString(sum[:])] = source{r[1], r[2]}
		dropAtomic(t, s.inbox, r[0], b)
	}
	counts := waitTerminal(t, s, 24, 5*time.Minute, p)
	if counts[store.StateDone] != 24 {
		t.Fatalf("terminal states %v; want 24 done\n%s", counts, p.logs())
	}
	p.stop(t)

	out, _, err := runFracd(t, "--config", s.config, "model", "list", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ms []store.Model
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("model list: %v\n%s", err, out)
	}
	if len(ms) != 1 || ms[0].ID != sh.Card.ID || !ms[0].Active || ms[0].WeightsSHA256 != sh.SHA256 {
		t.Fatalf("registry after first start: %+v; want the shipped %s active", ms, sh.Card.ID)
	}
	out, _, err = runFracd(t, "--db", s.db, "audit", "list", "--action", store.ActionModelAdded, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var es []store.AuditEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil || len(es) != 1 || es[0].Actor != shippedActor || es[0].Subject != sh.Card.ID {
		t.Fatalf("model.registered audit rows %+v (%v)", es, err)
	}

	db := openReadOnly(t, s.db)
	rs, err := db.Results(context.Background(), store.ResultFilter{})
	db.Close()
	if err != nil || len(rs) != 24 {
		t.Fatalf("%d results, %v", len(rs), err)
	}
	m, err := classifier.Load(ms[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	info := m.Info()
	flagged, worst := 0, 0.0
	for _, r := range rs {
		if r.ModelID != sh.Card.ID {
			t.Errorf("result by model %q; want the shipped %q", r.ModelID, sh.Card.ID)
		}
		if r.Flagged {
			flagged++
		}
		src, ok := bySHA[r.InstanceSHA256]
		if !ok {
			t.Fatalf("result for an instance that was not dropped (%s)", r.InstanceSHA256)
		}
		sub := map[string]string{"1": "Fractured", "0": "Non_fractured"}[src.fractured]
		jf, err := os.Open(filepath.Join(atlas, "images", sub, src.jpeg))
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(jf)
		jf.Close()
		if err != nil {
			t.Fatalf("%s: %v", src.jpeg, err)
		}
		plane, err := preprocess.Plane(img)
		if err != nil {
			t.Fatal(err)
		}
		pj, err := m.Predict(context.Background(), preprocess.ToTensor(plane, info.Mean, info.Std, nil), 1)
		if err != nil {
			t.Fatal(err)
		}
		d := math.Abs(r.Probability - float64(pj[0]))
		worst = math.Max(worst, d)
		if d > 0.02 {
			t.Errorf("%s (%s): DICOM probability %.4f, JPEG %.4f: differ by %.4f > 0.02", src.jpeg, strings.ToLower(sub), r.Probability, pj[0], d)
		}
	}
	if flagged == 0 || flagged == 24 {
		t.Errorf("%d of 24 flagged: the shipped model gives one class for everything", flagged)
	}
	t.Logf("shipped %s: %d of 24 flagged; worst DICOM-vs-JPEG difference %.4f", sh.Card.ID, flagged, worst)
}
