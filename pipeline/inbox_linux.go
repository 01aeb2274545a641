//go:build linux

package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// inboxFile is an inbox entry opened without following a symlink anywhere
// on its path, with the folder that holds it, so that the claim acts on the
// file that was opened and hashed and never on whatever the path names by
// the time of the rename.
type inboxFile struct {
	dir  int // O_PATH descriptor of the folder holding the file
	name string
	f    *os.File
	id   fileID
}

// noFollowRead opens a file for reading without following a final symlink
// and without blocking on a FIFO (or on another holder's lease).
const noFollowRead = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

// openInbox opens path, which must be absolute. Paths from the watcher are
// fully resolved (it resolves its root and never follows links), so a
// symlink met on the way was swapped in after the file settled: refused.
// Errors carry no path.
func openInbox(path string) (*inboxFile, error) {
	if !filepath.IsAbs(path) {
		return nil, errors.New("inbox path is not absolute")
	}
	parent, name := filepath.Split(filepath.Clean(path))
	if name == "" {
		return nil, errNotRegular
	}
	dir, err := openDirNoFollow(parent)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(dir, name, noFollowRead, 0)
	if err != nil {
		unix.Close(dir)
		if errors.Is(err, unix.ELOOP) {
			return nil, errNotRegular
		}
		return nil, fmt.Errorf("open: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inbox file")
	id, err := regularID(f)
	if err != nil {
		f.Close()
		unix.Close(dir)
		return nil, err
	}
	return &inboxFile{dir: dir, name: name, f: f, id: id}, nil
}

// openDirNoFollow walks from / one component at a time, refusing symlinks.
// O_PATH needs only search permission on the folders above.
func openDirNoFollow(path string) (int, error) {
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /: %w", err)
	}
	for _, c := range strings.Split(path, "/") {
		if c == "" {
			continue
		}
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return -1, errors.New("a folder on the inbox path is a symlink or not a folder")
		}
		if err != nil {
			return -1, fmt.Errorf("open folder: %w", err)
		}
		fd = next
	}
	return fd, nil
}

// regularID checks that f is a regular file and returns its identity.
func regularID(f *os.File) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileID{}, fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileID{}, errNotRegular
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

func (in *inboxFile) close() {
	in.f.Close()
	unix.Close(in.dir)
}

// entryID is the identity of the entry name in dir, not following a link.
func entryID(dir int, name string) (fileID, uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fileID{}, 0, err
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, st.Mode & unix.S_IFMT, nil
}

// moveTo renames the entry into dstDir/dstName relative to the folder
// descriptor, then checks that what moved is the opened file: a rename acts
// on the name, and another entry may have taken it since the open. Such an
// entry is put back; if its name was taken again, a regular file stays (and
// is processed by its content, like any claimed file) and anything else is
// removed from spool/work (the entry, never what it points to).
func (in *inboxFile) moveTo(dstDir, dstName string) error {
	dst, err := unix.Open(dstDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open spool folder: %w", err)
	}
	defer unix.Close(dst)
	if err := unix.Renameat(in.dir, in.name, dst, dstName); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	id, mode, err := entryID(dst, dstName)
	if err != nil {
		return fmt.Errorf("stat claimed file: %w", err)
	}
	if id == in.id {
		return nil
	}
	if unix.Renameat2(dst, dstName, in.dir, in.name, unix.RENAME_NOREPLACE) != nil && mode != unix.S_IFREG {
		if err := unix.Unlinkat(dst, dstName, 0); err != nil {
			return fmt.Errorf("%w; and removing what took its place: %v", errReplaced, err)
		}
	}
	return errReplaced
}

// remove unlinks the entry if it is still the opened file.
func (in *inboxFile) remove() error {
	id, _, err := entryID(in.dir, in.name)
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if id != in.id {
		return errReplaced
	}
	if err := unix.Unlinkat(in.dir, in.name, 0); err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// openRegular opens a file for reading that must be a regular file; the
// final component is followed only when follow is set (paths given on the
// command line), and a FIFO or device never blocks the open.
func openRegular(path string, follow bool) (*os.File, error) {
	flags := noFollowRead
	if follow {
		flags &^= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(path, flags, 0)
	if errors.Is(err, unix.ELOOP) && !follow {
		return nil, errNotRegular
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if _, err := regularID(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ownedAlone reports whether f is this process's user's file with no other
// hard link: only then may it be moved to spool/rejected as it is.
func ownedAlone(f *os.File) bool {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return int(st.Uid) == os.Geteuid() && st.Nlink == 1
}
