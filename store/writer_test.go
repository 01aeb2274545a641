package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestWritersQueueInProcess: while one write transaction is open, another
// waits for it in the process (not in SQLite's busy handler) and then
// commits; a waiter whose context ends gives up with the context's error.
func TestWritersQueueInProcess(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "fracd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	inside, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- db.Update(ctx, func(tx *Tx) error {
			close(inside)
			<-release
			_, err := tx.AppendAudit(ctx, "test", "test.first", "a", nil)
			return err
		})
	}()
	<-inside
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := db.Update(short, func(*Tx) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter with an ended context: %v, want context.DeadlineExceeded", err)
	}
	second := make(chan error, 1)
	go func() {
		second <- db.Update(ctx, func(tx *Tx) error {
			_, err := tx.AppendAudit(ctx, "test", "test.second", "b", nil)
			return err
		})
	}()
	close(release)
	for _, c := range []chan error{first, second} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.SQL().QueryRowContext(ctx, `SELECT count(*) FROM audit WHERE action LIKE 'test.%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d test audit rows, want 2", n)
	}
}
