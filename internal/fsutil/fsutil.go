// Package fsutil holds fracd's durable file writes, file hashing, path
// scrubbing and secret key files: one way to do each, with the strongest
// guarantee any caller needs.
//
// A durable write goes through a temporary file in the destination's own
// directory (so the rename cannot cross filesystems), fsyncs the file,
// renames it over the destination and fsyncs the directory, so that after a
// crash the path holds either the old content or the whole new content. The
// temporary file is removed on every error path.
package fsutil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Temp is a temporary file in the directory of the file it will become.
// Commit or CommitNew makes it that file; Abort (safe to defer, a no-op
// after a commit) removes it.
type Temp struct {
	*os.File
	done bool
}

// CreateTemp makes a temporary file (mode 0600, owned by this process) in
// dir; pattern is as for os.CreateTemp. Names starting with "." and ending
// in ".tmp" keep it out of the scans that look for finished files.
func CreateTemp(dir, pattern string) (*Temp, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("fsutil: create temporary file: %w", err)
	}
	return &Temp{File: f}, nil
}

// Abort closes and removes the temporary file unless it was committed.
func (t *Temp) Abort() {
	if t == nil || t.done {
		return
	}
	t.done = true
	t.File.Close()
	os.Remove(t.Name())
}

// seal fsyncs and closes the file, removing it if either fails.
func (t *Temp) seal(perm os.FileMode) error {
	if t.done {
		return errors.New("fsutil: temporary file already committed or aborted")
	}
	err := t.Chmod(perm)
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.File.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.done = true
		os.Remove(t.Name())
		return fmt.Errorf("fsutil: make temporary file durable: %w", err)
	}
	return nil
}

// Commit makes the temporary file path (mode perm), replacing whatever was
// there, durably.
func (t *Temp) Commit(path string, perm os.FileMode) error {
	if err := t.seal(perm); err != nil {
		return err
	}
	t.done = true
	if err := os.Rename(t.Name(), path); err != nil {
		os.Remove(t.Name())
		return fmt.Errorf("fsutil: rename into place: %w", err)
	}
	return SyncDir(filepath.Dir(path))
}

// CommitNew is Commit that never replaces: if path exists the error wraps
// fs.ErrExist and path is untouched. A hard link makes the check and the
// creation one step, so two writers racing cannot both win.
func (t *Temp) CommitNew(path string, perm os.FileMode) error {
	if err := t.seal(perm); err != nil {
		return err
	}
	t.done = true
	defer os.Remove(t.Name())
	if err := os.Link(t.Name(), path); err != nil {
		return fmt.Errorf("fsutil: create %s: %w", filepath.Base(path), err)
	}
	if err := os.Remove(t.Name()); err != nil {
		return fmt.Errorf("fsutil: remove temporary file: %w", err)
	}
	return SyncDir(filepath.Dir(path))
}

func tempFor(path string) (*Temp, error) {
	return CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*.tmp")
}

// WriteAtomic has write produce the content of path (mode perm), durably.
func WriteAtomic(path string, perm os.FileMode, write func(io.Writer) error) error {
	t, err := tempFor(path)
	if err != nil {
		return err
	}
	defer t.Abort()
	if err := write(t); err != nil {
		return err
	}
	return t.Commit(path, perm)
}

// WriteFileAtomic writes data to path (mode perm), durably.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileNew writes data to a new file at path (mode perm), durably; if
// path exists the error wraps fs.ErrExist and path is untouched.
func WriteFileNew(path string, data []byte, perm os.FileMode) error {
	t, err := tempFor(path)
	if err != nil {
		return err
	}
	defer t.Abort()
	if _, err := t.Write(data); err != nil {
		return fmt.Errorf("fsutil: write: %w", err)
	}
	return t.CommitNew(path, perm)
}

// WriteAtomicPath is WriteAtomic for writers that take a file name (they
// create or truncate the file at the name they are given).
func WriteAtomicPath(path string, perm os.FileMode, write func(tmp string) error) error {
	t, err := tempFor(path)
	if err != nil {
		return err
	}
	defer t.Abort()
	if err := write(t.Name()); err != nil {
		return err
	}
	// Reopen: the writer may have replaced the file at that name.
	f, err := os.OpenFile(t.Name(), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("fsutil: reopen temporary file: %w", err)
	}
	t.File.Close()
	t.File = f
	return t.Commit(path, perm)
}

// CopyAtomic copies r into path (mode perm), durably.
func CopyAtomic(path string, r io.Reader, perm os.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// CopyFileAtomic copies the file src to dst (mode perm), durably.
func CopyFileAtomic(dst, src string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("fsutil: copy: %w", err)
	}
	defer in.Close()
	return CopyAtomic(dst, in, perm)
}

// SyncDir fsyncs a directory, making the entries created, renamed or
// removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsutil: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsutil: sync %s: %w", dir, err)
	}
	return nil
}

// HashReader is the hex sha256 of what r yields, and its length.
func HashReader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// HashFile is the hex sha256 of a file's content.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("fsutil: hash: %w", err)
	}
	defer f.Close()
	sum, _, err := HashReader(f)
	if err != nil {
		return "", fmt.Errorf("fsutil: hash %s: %w", filepath.Base(path), err)
	}
	return sum, nil
}

// HashBytes is the hex sha256 of data.
func HashBytes(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ScrubPath drops the file names from a filesystem error, keeping the
// operation and the cause (an errno that errors.Is still finds): inbox
// names may carry a patient's name, and errors end up in logs.
func ScrubPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return fmt.Errorf("%s: %w", le.Op, le.Err)
	}
	return err
}

// ReadLimited reads r to EOF, at most limit bytes, into a buffer sized for
// hint (the file's size, one byte over so EOF needs no regrowth): io.ReadAll
// grows from 512 bytes, which for a typical image allocates and copies
// about twice its size. A wrong hint only costs regrowth.
func ReadLimited(r io.Reader, hint, limit int64) ([]byte, error) {
	buf := make([]byte, 0, max(min(hint+1, limit), 512))
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // let append pick the growth
		}
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}
