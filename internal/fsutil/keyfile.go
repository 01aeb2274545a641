package fsutil

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxKeyFile bounds a key file: a key is one line of hex, and a longer file
// is refused rather than cut to a different key.
const maxKeyFile = 1024

// ReadKeyFile reads a secret key stored as a line of hex (as CreateKeyFile
// writes it) of at least minLen bytes. A missing file is an error that
// wraps fs.ErrNotExist; a file that is not regular, or that group or
// others may read, is refused, since whoever reads a key can use it.
func ReadKeyFile(path string, minLen int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has mode %v; it must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is longer than a key file (%d bytes at most)", path, maxKeyFile)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%s is not hex: %w", path, err)
	}
	if len(key) < minLen {
		return nil, fmt.Errorf("the key in %s has %d bytes, want at least %d", path, len(key), minLen)
	}
	return key, nil
}

// CreateKeyFile makes a key of n random bytes and writes it to a new file
// at path in hex (mode 0600, missing parent directories 0700), durably and
// never partial. It never replaces: if path exists the error wraps
// fs.ErrExist, and the caller reads the key already there (another process
// may have made it meanwhile, and used it).
func CreateKeyFile(path string, n int) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	key := make([]byte, n)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	if err := WriteFileNew(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}
