package main

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDiskCheckCoversArchive: a full archive filesystem stops claiming and
// makes /readyz say not ready, as a full spool does.
func TestDiskCheckCoversArchive(t *testing.T) {
	c := defaultConfig()
	c.Paths.Spool, c.Paths.Archive = "/spool", "/archive"
	cases := []struct {
		name        string
		spool, arch uint64 // free bytes
		statErr     string // path whose statfs fails
		want        string // "" for OK
	}{
		{"both have room", 10 << 30, 10 << 30, "", ""},
		{"archive full", 10 << 30, 1 << 20, "", "archive's filesystem"},
		{"spool full", 1 << 20, 10 << 30, "", "spool's filesystem"},
		{"archive unreadable", 10 << 30, 10 << 30, "/archive", "archive:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			free := func(p string) (uint64, error) {
				if p == tc.statErr {
					return 0, errors.New("statfs failed")
				}
				if p == "/archive" {
					return tc.arch, nil
				}
				return tc.spool, nil
			}
			err := diskCheck(c, free)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("diskCheck: %v; want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("diskCheck: %v; want it to mention %q", err, tc.want)
			}
			if p := (readyState{haveModel: true, inboxOK: true, diskErr: err}).problems(); len(p) != 1 || !strings.HasPrefix(p[0], "disk: ") {
				t.Fatalf("readiness problems %q; want the disk", p)
			}
		})
	}
}

// TestReadinessNamesHungWorker: a file in a worker for longer than
// stall_timeout makes the daemon not ready; busy workers within it do not.
func TestReadinessNamesHungWorker(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ok := readyState{haveModel: true, inboxOK: true, now: now, stallTimeout: 10 * time.Minute}
	busy := ok
	busy.running = []time.Time{now.Add(-time.Minute), now.Add(-9 * time.Minute)}
	if p := busy.problems(); len(p) != 0 {
		t.Fatalf("busy workers within stall_timeout: %q; want ready", p)
	}
	hung := ok
	hung.running = []time.Time{now.Add(-time.Minute), now.Add(-25 * time.Minute)}
	p := hung.problems()
	if len(p) != 1 || !strings.Contains(p[0], "1 file(s) in a worker for longer than stall_timeout 10m0s (longest 25m0s)") {
		t.Fatalf("hung worker: %q", p)
	}
	if c := defaultConfig(); c.StallTimeout != 10*time.Minute {
		t.Fatalf("default stall_timeout %s", c.StallTimeout)
	}
}
