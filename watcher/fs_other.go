//go:build !linux

package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// SameFilesystem is only implemented on Linux, where fracd runs.
func SameFilesystem(a, b string) (bool, error) {
	return false, fmt.Errorf("watcher: same filesystem check: %w", errors.ErrUnsupported)
}

// FreeBytes is only implemented on Linux, where fracd runs.
func FreeBytes(path string) (uint64, error) {
	return 0, fmt.Errorf("watcher: free bytes: %w", errors.ErrUnsupported)
}

// fileID is unknown here; change detection falls back to size and mtime.
func fileID(fs.FileInfo) (dev, ino uint64) { return 0, 0 }

// openForWriting is unknown here; Settle alone decides.
func openForWriting(string) (open, known bool) { return false, false }

// removeEmptyDir is only implemented on Linux; emptied folders stay.
func removeEmptyDir(root, rel string) error { return errors.ErrUnsupported }

// inodeChanged is unknown here: only what the watcher saw counts.
func inodeChanged(fs.FileInfo) (time.Time, bool) { return time.Time{}, false }

// localInodeTimes is false here: only what the watcher saw counts.
func localInodeTimes(string) bool { return false }
