package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDaemonInProcess runs serve as a Daemon value on port 0: ready with
// its model, one dropped file classified and recorded, then a clean Close
// that leaves nothing in spool/work (the kill -9 tests run the binary).
func TestDaemonInProcess(t *testing.T) {
	s := newSite(t, tinyModelFile(t), 1)
	c := defaultConfig()
	c.Paths.Inbox, c.Paths.Spool, c.Paths.Archive = s.inbox, filepath.Join(s.root, "spool"), s.archive
	c.Paths.DB, c.Paths.Models = s.db, filepath.Join(s.root, "models")
	c.Workers, c.Settle, c.Rescan, c.MinFreeMB, c.Shutdown = 1, 400*time.Millisecond, 2*time.Second, 1, 10*time.Second
	c.Anonymize.SecretFile = filepath.Join(s.root, "secret.key")
	c.Model.Path = tinyModelFile(t)
	c.HTTP.Listen = "127.0.0.1:0"
	logs := &syncBuffer{}
	m := &Main{Config: c, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}

	dm, err := m.OpenDaemon(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer dm.Close()
	// Ready once the watcher has read the inbox (its first scan runs in
	// the background): poll for it.
	var status int
	var body []byte
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + dm.Addr() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if status = resp.StatusCode; status == http.StatusOK {
			break
		}
	}
	if status != http.StatusOK || !strings.Contains(string(body), "ready: model tiny-e2e") {
		t.Fatalf("/readyz %d %q; want ready with the tiny model", status, body)
	}

	spec := testdicom.Spec{Seed: 501}
	data, err := spec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	dropAtomic(t, s.inbox, "Fakename_Testpatient.dcm", data)
	counts := waitTerminal(t, s, 1, 2*time.Minute, nil)
	if counts[store.StateDone] != 1 {
		t.Fatalf("states %v; want 1 done\n%s", counts, logs)
	}
	if err := dm.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := dm.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if ents, err := os.ReadDir(s.work); err != nil || len(ents) != 0 {
		t.Fatalf("spool/work after Close: %v (%v)", ents, err)
	}
	if _, err := http.Get("http://" + dm.Addr() + "/healthz"); err == nil {
		t.Error("listener still answers after Close")
	}
	for _, phi := range append(spec.PHI(), "Fakename_Testpatient") {
		if strings.Contains(logs.String(), phi) {
			t.Errorf("logs name %q", phi)
		}
	}
}
