package pipeline

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fracd/fracd/store"
)

// TestRejectFilesNotOwned: a rejected file the daemon cannot chmod (another
// user's), or that others can still reach (another hard link), ends in
// spool/rejected as the daemon's own 0600 copy, and the work file is gone.
func TestRejectFilesNotOwned(t *testing.T) {
	bad := []byte("not DICOM: owned by somebody else\n")
	cases := []struct {
		name  string
		setup func(t *testing.T, e *env, work string)
	}{
		{"fchmod refused", func(t *testing.T, e *env, work string) {
			e.p.fchmod = func(*os.File, os.FileMode) error { return &fs.PathError{Op: "fchmod", Err: syscall.EPERM} }
		}},
		{"owned by another user", func(t *testing.T, e *env, work string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a file to another user")
			}
			must(t, os.Chown(work, 65534, 65534))
		}},
		{"hard-linked outside the spool", func(t *testing.T, e *env, work string) {
			must(t, os.Link(work, filepath.Join(e.root, "sender-keeps-a-link")))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			job, err := e.p.Claim(ctx, e.drop(t, "a.dcm", bad))
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(t, e, job.Path)
			out, err := e.p.Process(ctx, job)
			if err != nil || out.State != store.StateRejected {
				t.Fatalf("process: %+v, %v; want rejected", out, err)
			}
			kept := filepath.Join(e.p.RejectedDir(), job.SHA256+".dcm")
			fi, err := os.Lstat(kept)
			if err != nil {
				t.Fatalf("rejected file: %v", err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != 0o600 || int(st.Uid) != os.Geteuid() || st.Nlink != 1 {
				t.Fatalf("rejected file mode %v uid %d links %d; want 0600, %d, 1", fi.Mode().Perm(), st.Uid, st.Nlink, os.Geteuid())
			}
			if b, _ := os.ReadFile(kept); !bytes.Equal(b, bad) {
				t.Fatal("rejected copy differs")
			}
			if entries, _ := os.ReadDir(e.p.WorkDir()); len(entries) != 0 {
				t.Fatalf("spool/work holds %d entries", len(entries))
			}
		})
	}
}
