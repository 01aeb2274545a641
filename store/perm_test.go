package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestNewDatabaseIsPrivate: the database (results, audit, de-identified
// UIDs) and its WAL are created 0600 whatever the umask.
func TestNewDatabaseIsPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "fracd.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.AppendAudit(context.Background(), "test", ActionClaimed, "x", nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s created %v; want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}
