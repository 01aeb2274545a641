//go:build linux

package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// SameFilesystem reports whether a rename(2) from path a to path b can
// succeed as far as the mount layout goes: both must be on the same device
// (st_dev) and, where the kernel reports it (statx STATX_MNT_ID, Linux 5.8+),
// on the same mount. The mount check matters because two bind mounts of one
// filesystem share st_dev yet rename between them fails with EXDEV — a common
// layout in containers. Symlinks are followed. Paths are admin-configured
// directories, so they may appear in the error.
func SameFilesystem(a, b string) (bool, error) {
	sa, err := mountOf(a)
	if err != nil {
		return false, err
	}
	sb, err := mountOf(b)
	if err != nil {
		return false, err
	}
	if sa.dev != sb.dev {
		return false, nil
	}
	if sa.hasMnt && sb.hasMnt {
		return sa.mnt == sb.mnt, nil
	}
	return true, nil
}

type mountID struct {
	dev    uint64
	mnt    uint64
	hasMnt bool
}

func mountOf(p string) (mountID, error) {
	var sx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_STATX_SYNC_AS_STAT, unix.STATX_BASIC_STATS|unix.STATX_MNT_ID, &sx)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// Old kernel or a seccomp filter without statx: st_dev alone.
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return mountID{}, fmt.Errorf("watcher: stat %s: %w", p, err)
		}
		return mountID{dev: uint64(st.Dev)}, nil
	}
	if err != nil {
		return mountID{}, fmt.Errorf("watcher: statx %s: %w", p, err)
	}
	return mountID{
		dev:    unix.Mkdev(sx.Dev_major, sx.Dev_minor),
		mnt:    sx.Mnt_id,
		hasMnt: sx.Mask&unix.STATX_MNT_ID != 0,
	}, nil
}

// FreeBytes returns the bytes available to an unprivileged user on the
// filesystem holding path (statfs f_bavail * f_bsize), for the disk
// watermark: the root-reserved blocks are not counted because the daemon
// should not run the disk into them.
func FreeBytes(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("watcher: statfs %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// fileID returns the device and inode of a file, so that a path whose file
// was replaced (rename over it) is told apart from the file that was emitted.
func fileID(fi fs.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev, st.Ino
	}
	return 0, 0
}

// inodeChanged returns the file's ctime: when its inode last changed. The
// kernel sets it on every write, truncate, rename, link and attribute
// change, and no program can set it, so a file whose ctime lies Settle in
// the past has been quiet that long even if nobody was watching (a folder
// moved into the inbox, files left there while the daemon was down).
func inodeChanged(fi fs.FileInfo) (time.Time, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec), true
}

// localInodeTimes reports whether the filesystem at path is a local one,
// whose inode times come from this machine's clock. A network filesystem's
// come from the server's (or a client's), which may run behind ours, so
// there only what the watcher itself saw counts.
func localInodeTimes(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC,
		unix.TMPFS_MAGIC, unix.RAMFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC, zfsSuperMagic:
		return true
	}
	return false
}

// zfsSuperMagic is OpenZFS's f_type (not in x/sys/unix).
const zfsSuperMagic = 0x2fc12fc1

// openForWriting reports whether any process holds path open for writing.
// It asks for a read lease (fcntl F_SETLEASE), which the kernel refuses with
// EAGAIN while the file has writers, and drops it at once. This catches a
// sender that pauses longer than Settle in the middle of a file. known is
// false where leases are unavailable (not the file's owner and no
// CAP_LEASE, NFS, FUSE); Settle alone then decides.
func openForWriting(path string) (open, known bool) {
	// O_NONBLOCK: never wait on another holder's lease, nor on a FIFO
	// swapped in since the Lstat.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, false
	}
	defer unix.Close(fd)
	_, err = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_RDLCK)
	switch {
	case err == nil:
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK)
		return false, true
	case errors.Is(err, unix.EAGAIN):
		return true, true
	default:
		return false, false
	}
}

// removeEmptyDir removes the empty folder rel below root without following
// a symlink on the way (rmdir by path would follow a symlinked parent out of
// the inbox): each folder is opened relative to the one above it.
func removeEmptyDir(root, rel string) error {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) == 0 || rel == "." || rel == "" {
		return errors.New("watcher: not below the inbox")
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	for _, c := range parts[:len(parts)-1] {
		if c == "" || c == "." || c == ".." {
			unix.Close(fd)
			return errors.New("watcher: not below the inbox")
		}
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = next
	}
	defer unix.Close(fd)
	name := parts[len(parts)-1]
	if name == "" || name == "." || name == ".." {
		return errors.New("watcher: not below the inbox")
	}
	// AT_REMOVEDIR removes only an empty folder, never a symlink or a file.
	return unix.Unlinkat(fd, name, unix.AT_REMOVEDIR)
}
