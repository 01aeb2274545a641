package fsutil

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// entries lists dir's names, sorted: a temporary file left behind shows.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func wantEntries(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := entries(t, dir)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s holds %q, want %q", dir, got, want)
	}
}

func wantContent(t *testing.T, path, want string, perm os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Fatalf("%s = %q, want %q", path, b, want)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != perm {
		t.Fatalf("%s mode %v, want %v", path, st.Mode().Perm(), perm)
	}
}

func TestWriteFileAtomicReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := WriteFileAtomic(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "one", 0o600)
	if err := WriteFileAtomic(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "two", 0o640)
	wantEntries(t, dir, "a.txt")
}

func TestWriteAtomicWriterErrorLeavesOldFileAndNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.txt")
	if err := WriteFileAtomic(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteAtomic(p, 0o600, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	wantContent(t, p, "old", 0o600)
	wantEntries(t, dir, "a.txt")
}

func TestRenameFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory at the destination: rename must fail.
	p := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("x"), 0o600); err == nil {
		t.Fatal("write over a non-empty directory succeeded")
	}
	wantEntries(t, dir, "d")
}

func TestMissingDirectoryFails(t *testing.T) {
	dir := t.TempDir()
	if err := WriteFileAtomic(filepath.Join(dir, "no", "a"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	wantEntries(t, dir)
}

func TestWriteFileNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secret")
	if err := WriteFileNew(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFileNew(p, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteFileNew: %v, want fs.ErrExist", err)
	}
	wantContent(t, p, "first", 0o600)
	wantEntries(t, dir, "secret")
}

func TestWriteAtomicPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ck.bin")
	// A writer that replaces the file at the name it is given.
	err := WriteAtomicPath(p, 0o640, func(tmp string) error {
		if err := os.Remove(tmp); err != nil {
			return err
		}
		return os.WriteFile(tmp, []byte("ck"), 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	wantContent(t, p, "ck", 0o640)
	boom := errors.New("boom")
	if err := WriteAtomicPath(p, 0o640, func(tmp string) error {
		os.WriteFile(tmp, []byte("partial"), 0o600)
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	wantContent(t, p, "ck", 0o640)
	wantEntries(t, dir, "ck.bin")
}

func TestCopyFileAtomicAndHash(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	if err := CopyFileAtomic(dst, src, 0o640); err != nil {
		t.Fatal(err)
	}
	wantContent(t, dst, "hello", 0o640)
	const helloSHA = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if h, err := HashFile(dst); err != nil || h != helloSHA {
		t.Fatalf("HashFile = %s, %v", h, err)
	}
	if h := HashBytes([]byte("hello")); h != helloSHA {
		t.Fatalf("HashBytes = %s", h)
	}
	if err := CopyFileAtomic(filepath.Join(dir, "dst2"), filepath.Join(dir, "missing"), 0o640); err == nil {
		t.Fatal("copy of a missing file succeeded")
	}
	wantEntries(t, dir, "dst", "src")
}

func TestAbortAfterCommitKeepsFile(t *testing.T) {
	dir := t.TempDir()
	tf, err := CreateTemp(dir, ".x-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	tf.Write([]byte("z"))
	p := filepath.Join(dir, "z")
	if err := tf.Commit(p, 0o600); err != nil {
		t.Fatal(err)
	}
	tf.Abort()
	wantContent(t, p, "z", 0o600)
	wantEntries(t, dir, "z")
	tf2, err := CreateTemp(dir, ".x-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	tf2.Abort()
	tf2.Abort()
	wantEntries(t, dir, "z")
}

func TestScrubPath(t *testing.T) {
	_, err := os.Open("/nonexistent/DOE^JOHN/file.dcm")
	s := ScrubPath(err)
	if strings.Contains(s.Error(), "DOE") {
		t.Fatalf("scrubbed error names the path: %v", s)
	}
	if !errors.Is(s, fs.ErrNotExist) {
		t.Fatalf("scrubbed error lost its cause: %v", s)
	}
	lerr := os.Rename("/nonexistent/DOE^JOHN", "/nonexistent/SMITH")
	if s := ScrubPath(lerr); strings.Contains(s.Error(), "DOE") || strings.Contains(s.Error(), "SMITH") {
		t.Fatalf("scrubbed link error names a path: %v", s)
	}
	if ScrubPath(nil) != nil {
		t.Fatal("ScrubPath(nil) != nil")
	}
}

// TestKeyFile: a key file is made once (0600) and read back; one that is
// not regular, readable by others, too long or too short is refused.
func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "k.key")
	key, err := CreateKeyFile(path, 32)
	if err != nil || len(key) != 32 {
		t.Fatalf("create: %d bytes, %v", len(key), err)
	}
	if _, err := CreateKeyFile(path, 32); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second create: %v; want fs.ErrExist", err)
	}
	if got, err := ReadKeyFile(path, 32); err != nil || string(got) != string(key) {
		t.Fatalf("read back: %v", err)
	}
	wantEntries(t, filepath.Join(dir, "keys"), "k.key")
	long := filepath.Join(dir, "long.key")
	os.WriteFile(long, []byte(strings.Repeat("ab", 600)), 0o600)
	os.Chmod(path, 0o640)
	for name, p := range map[string]string{"group-readable": path, "not regular": dir, "too long": long} {
		if _, err := ReadKeyFile(p, 1); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}
	os.Chmod(path, 0o600)
	if _, err := ReadKeyFile(path, 33); err == nil {
		t.Error("a 32-byte key accepted where 33 are needed")
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "absent"), 1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing key file: %v; want fs.ErrNotExist", err)
	}
}
