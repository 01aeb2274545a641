package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// errSpoolBusy says another fracd (serve or process) works on the spool.
var errSpoolBusy = errors.New("another fracd (serve or process) is using this spool")

// lockSpool takes the spool's exclusive lock (an flock on spool/fracd.lock)
// for as long as the returned release is not called. serve and process both
// take it: each treats spool/work as its own (serve re-processes whatever is
// there at start, process moves its copies through it), so two of them at
// once race on the same files. The kernel drops the lock when the process
// dies, so a crash leaves nothing to clean up.
func lockSpool(spool string) (release func(), err error) {
	if err := os.MkdirAll(spool, 0o750); err != nil {
		return nil, fmt.Errorf("create spool: %w", err)
	}
	path := filepath.Join(spool, "fracd.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open spool lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s is locked)", errSpoolBusy, path)
		}
		return nil, fmt.Errorf("lock spool: %w", err)
	}
	return func() { f.Close() }, nil
}
