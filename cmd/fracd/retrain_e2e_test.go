package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
)

// TestRetrainLoopEndToEnd is the admin's loop on the 24 hospital-like
// files: the daemon processes them (with the shipped model), the
// hospital's label export is imported by original UIDs, a small net is
// retrained from the database and registered as a candidate, both models
// are evaluated on the same labelled archive cases, the candidate is
// promoted (forced, with a reason, when its ROC-AUC is lower), the running
// daemon predicts the next file with it, rollback restores the shipped
// model, the audit chain verifies, and no identifier reaches the database,
// the run directory or the logs.
func TestRetrainLoopEndToEnd(t *testing.T) {
	dir := sharedDir(t, "xray-dicom")
	_, phi := corpusPHI(t, dir)
	sh, s, p := serveShipped(t)
	files, _ := filepath.Glob(filepath.Join(dir, "files", "*.dcm"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dropAtomic(t, s.inbox, filepath.Base(f), data)
	}
	if counts := waitTerminal(t, s, 24, 5*time.Minute, p); counts[store.StateDone] != 24 {
		t.Fatalf("terminal states %v\n%s", counts, p.logs())
	}
	fracd := func(args ...string) string {
		t.Helper()
		out, _, err := runFracd(t, append([]string{"--config", s.config}, args...)...)
		if err != nil {
			t.Fatalf("fracd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out := fracd("label", "import", filepath.Join(dir, "labels.csv")); !strings.Contains(out, "imported 24 labels") {
		t.Fatalf("label import: %q", out)
	}
	runDir := filepath.Join(s.root, "runs", "r1")
	out := fracd("train", "--run-dir", runDir, "--arch", "basic[1,1,1,1]", "--epochs", "2", "--batch", "4", "--register")
	mm := regexp.MustCompile(`registered (\S+) `).FindStringSubmatch(out)
	if mm == nil {
		t.Fatalf("train --register: %q", out)
	}
	candidate := mm[1]
	var ms []store.Model
	if err := json.Unmarshal([]byte(fracd("model", "list", "--format", "json")), &ms); err != nil {
		t.Fatalf("model list: %v", err)
	}
	states := map[string]string{}
	for _, m := range ms {
		states[m.ID] = stateOf(t, fracd, m.ID)
	}
	if states[candidate] != "candidate" || states[sh.Card.ID] != "active" {
		t.Fatalf("after retraining: states %v", states)
	}

	// The same labelled cases for both; promote compares them.
	fracd("model", "evaluate", candidate, "--archive", "--bootstrap", "200")
	fracd("model", "evaluate", sh.Card.ID, "--archive", "--bootstrap", "200")
	if _, _, err := runFracd(t, "--config", s.config, "model", "promote", candidate); err != nil {
		if !strings.Contains(err.Error(), "ROC-AUC") {
			t.Fatalf("promote refused for another reason: %v", err)
		}
		fracd("model", "promote", candidate, "--force", "--reason", "end-to-end test of the retraining loop")
	}
	if st := stateOf(t, fracd, candidate); st != "active" {
		t.Fatalf("candidate %s after promote", st)
	}

	// The running daemon switches between files.
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.logs(), `"model_id":"`+candidate+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not switch to %s\n%s", candidate, p.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	next, _ := testdicom.Spec{Seed: 77}.Bytes()
	dropAtomic(t, s.inbox, "next.dcm", next)
	waitTerminal(t, s, 25, time.Minute, p)
	var rs []store.Result
	if err := json.Unmarshal([]byte(fracd("results", "--format", "json", "--model", candidate)), &rs); err != nil {
		t.Fatalf("results: %v", err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d results by the promoted candidate, want the next file's", len(rs))
	}

	fracd("model", "rollback")
	if st := stateOf(t, fracd, sh.Card.ID); st != "active" {
		t.Fatalf("shipped model %s after rollback", st)
	}
	p.stop(t)
	fracd("audit", "verify")

	// No identifier in the database, the archive, the logs or the run directory.
	assertNoPHIInOutputs(t, s, p.logs(), phi)
	forms := phiForms(phi)
	filepath.WalkDir(runDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasSuffix(path, ".safetensors") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read output for the identifier scan: %v", err)
			return nil
		}
		for _, f := range forms {
			if bytes.Contains(bytes.ToLower(b), []byte(f)) {
				t.Errorf("identifier %q in %s", f, path)
			}
		}
		return nil
	})
}

func stateOf(t *testing.T, fracd func(...string) string, id string) string {
	t.Helper()
	var ms []map[string]any
	if err := json.Unmarshal([]byte(fracd("model", "list", "--format", "json")), &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m["id"] == id {
			s, _ := m["state"].(string)
			return s
		}
	}
	return ""
}
