//go:build !linux

package pipeline

import (
	"errors"
	"fmt"
	"os"
)

// Claiming needs descriptor-relative file operations that are only written
// for Linux, where fracd runs.

type inboxFile struct {
	f  *os.File
	id fileID
}

func openInbox(string) (*inboxFile, error) {
	return nil, fmt.Errorf("claim inbox file: %w", errors.ErrUnsupported)
}

func (in *inboxFile) close()                      {}
func (in *inboxFile) moveTo(string, string) error { return errors.ErrUnsupported }
func (in *inboxFile) remove() error               { return errors.ErrUnsupported }

func openRegular(path string, _ bool) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errNotRegular
	}
	return f, nil
}

func ownedAlone(*os.File) bool { return true }
