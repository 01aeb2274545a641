package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
)

// outsideFile is a file next to the inbox that fracd must never read, move,
// remove or change, whatever is swapped into the inbox.
type outsideFile struct {
	path string
	data []byte
}

func (o outsideFile) check(t *testing.T) {
	t.Helper()
	fi, err := os.Lstat(o.path)
	if err != nil {
		t.Fatalf("file outside the inbox gone: %v", err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("file outside the inbox changed mode to %v", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(o.path); !bytes.Equal(b, o.data) {
		t.Error("file outside the inbox changed")
	}
}

func idOf(t *testing.T, path string) *fileID {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return &fileID{dev: uint64(st.Dev), ino: st.Ino}
}

// claimWithin claims like the worker does, failing the test if the claim
// hangs (a FIFO, an endless device).
func claimWithin(t *testing.T, e *env, path string, want *fileID) (Job, error) {
	t.Helper()
	type res struct {
		job Job
		err error
	}
	ch := make(chan res, 1)
	go func() {
		j, err := e.p.claim(context.Background(), path, want)
		ch <- res{j, err}
	}()
	select {
	case r := <-ch:
		return r.job, r.err
	case <-time.After(20 * time.Second):
		t.Fatal("claim hung")
		return Job{}, nil
	}
}

// TestClaimNeverFollowsSwappedEntries replaces a settled inbox file, or its
// folder, between settle and claim (or, through the hook, between the claim's
// open and its rename) and checks that nothing outside the inbox is touched.
func TestClaimNeverFollowsSwappedEntries(t *testing.T) {
	inboxData := mustBytes(t, testdicom.Spec{Seed: 71})
	// Not DICOM: processing it would reject it, and the rejection chmods.
	outsideData := []byte("a file outside the inbox, not DICOM\n")
	cases := []struct {
		name string
		// swap runs after the file settled and before the claim opens it.
		swap func(t *testing.T, file, dir, outside string)
		// during runs between the claim's open and its rename instead.
		during func(t *testing.T, file, dir, outside string)
		// claimed: the settled file itself is still what gets claimed.
		claimed bool
	}{
		{name: "file replaced by a symlink", swap: func(t *testing.T, file, dir, outside string) {
			must(t, os.Remove(file))
			must(t, os.Symlink(filepath.Join(outside, "a.dcm"), file))
		}},
		{name: "folder replaced by a symlink", swap: func(t *testing.T, file, dir, outside string) {
			must(t, os.Rename(dir, dir+"-moved"))
			must(t, os.Symlink(outside, dir))
		}},
		{name: "file replaced by a FIFO", swap: func(t *testing.T, file, dir, outside string) {
			must(t, os.Remove(file))
			must(t, syscall.Mkfifo(file, 0o644))
		}},
		{name: "file replaced by a symlink to /dev/zero", swap: func(t *testing.T, file, dir, outside string) {
			must(t, os.Remove(file))
			must(t, os.Symlink("/dev/zero", file))
		}},
		{name: "file replaced by another file", swap: func(t *testing.T, file, dir, outside string) {
			must(t, os.WriteFile(file+".new", inboxData[:len(inboxData)/2], 0o644))
			must(t, os.Rename(file+".new", file))
		}},
		{name: "file replaced by a symlink during the claim", during: func(t *testing.T, file, dir, outside string) {
			must(t, os.Rename(file, filepath.Join(dir, "kept.dcm")))
			must(t, os.Symlink(filepath.Join(outside, "a.dcm"), file))
		}},
		{name: "folder replaced by a symlink during the claim", claimed: true, during: func(t *testing.T, file, dir, outside string) {
			must(t, os.Rename(dir, dir+"-moved"))
			must(t, os.Symlink(outside, dir))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			outside := filepath.Join(e.root, "outside")
			must(t, os.Mkdir(outside, 0o755))
			of := outsideFile{filepath.Join(outside, "a.dcm"), outsideData}
			must(t, os.WriteFile(of.path, of.data, 0o644))
			must(t, os.Chmod(of.path, 0o644))
			dir := filepath.Join(e.inbox, "sub")
			must(t, os.Mkdir(dir, 0o755))
			file := filepath.Join(dir, "a.dcm")
			must(t, os.WriteFile(file, inboxData, 0o644))
			settled := idOf(t, file)

			if tc.swap != nil {
				tc.swap(t, file, dir, outside)
			}
			if tc.during != nil {
				e.p.hookBeforeRename = func() { tc.during(t, file, dir, outside) }
			}
			job, err := claimWithin(t, e, file, settled)
			e.p.hookBeforeRename = nil
			if !tc.claimed {
				if err == nil {
					t.Fatalf("claim succeeded (%s); want it refused", job.SHA256)
				}
				if entries, _ := os.ReadDir(e.p.WorkDir()); len(entries) != 0 {
					t.Fatalf("spool/work holds %d entries after a refused claim", len(entries))
				}
				if es, _ := e.db.ListAudit(ctx, store.AuditFilter{Action: store.ActionClaimed}); len(es) != 0 {
					t.Fatalf("claimed audit rows: %d", len(es))
				}
				of.check(t)
				return
			}
			if err != nil {
				t.Fatalf("claim: %v", err)
			}
			if b, _ := os.ReadFile(job.Path); !bytes.Equal(b, inboxData) {
				t.Fatal("work file is not the file that settled")
			}
			out, err := e.p.Process(ctx, job)
			if err != nil || out.State != store.StateDone {
				t.Fatalf("process: %+v, %v", out, err)
			}
			of.check(t)
		})
	}
}

// TestSymlinkInWorkIsNeverFollowed plants a symlink in spool/work (as an
// older claim could leave one): processing must neither read its target nor
// chmod it while rejecting.
func TestSymlinkInWorkIsNeverFollowed(t *testing.T) {
	e := newEnv(t)
	outside := filepath.Join(e.root, "outside")
	must(t, os.Mkdir(outside, 0o755))
	of := outsideFile{filepath.Join(outside, "notes.txt"), []byte("not DICOM\n")}
	must(t, os.WriteFile(of.path, of.data, 0o644))
	sha := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	link := filepath.Join(e.p.WorkDir(), sha+".dcm")
	must(t, os.Symlink(of.path, link))
	out, err := e.p.Process(context.Background(), Job{SHA256: sha, Path: link})
	if err == nil {
		t.Fatalf("processed a symlink: %+v", out)
	}
	of.check(t)
	if n, _ := e.db.Counts(context.Background()); len(n) != 0 {
		t.Fatalf("rows recorded for a symlink: %v", n)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunClaimsOnlyTheSettledFile: the worker pool asks SettledID which file
// settled at a path and leaves anything else there in the inbox.
func TestRunClaimsOnlyTheSettledFile(t *testing.T) {
	e := newEnv(t)
	data := mustBytes(t, testdicom.Spec{Seed: 73})
	path := e.drop(t, "a.dcm", data)
	settled := idOf(t, path)
	must(t, os.WriteFile(path+".new", data, 0o644))
	must(t, os.Rename(path+".new", path)) // same bytes, another file
	released := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	inbox := make(chan string, 1)
	inbox <- path
	done := make(chan error, 1)
	go func() {
		done <- e.p.Run(ctx, RunConfig{
			Workers:   1,
			SettledID: func(string) (uint64, uint64, bool) { return settled.dev, settled.ino, true },
			Release:   func(p string) { released <- p },
		}, inbox)
	}()
	select {
	case <-released:
	case <-time.After(20 * time.Second):
		t.Fatal("path never released")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("swapped-in file left the inbox: %v", err)
	}
	if entries, _ := os.ReadDir(e.p.WorkDir()); len(entries) != 0 {
		t.Fatalf("spool/work holds %d entries", len(entries))
	}
}
