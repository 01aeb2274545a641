package watcher_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/fracd/fracd/watcher"
)

// The pipeline's side of the contract: receive a path, claim it by an
// atomic rename into the spool (same filesystem, checked at start), then
// call Done. ENOENT on the rename means the file was already taken.
func Example() {
	inbox, spool := os.TempDir(), os.TempDir()
	if ok, err := watcher.SameFilesystem(inbox, spool); err != nil || !ok {
		return // fracd refuses to start: claims could not be atomic
	}
	w, err := watcher.New(watcher.Config{Dir: inbox}, slog.Default())
	if err != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string)
	go func() { _ = w.Run(ctx, ready) }()
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-ready:
			err := os.Rename(p, filepath.Join(spool, "work", "claimed.dcm"))
			w.Done(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue // someone else claimed it
			}
			// ... process the claimed file ...
		}
	}
}
