package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"github.com/fracd/fracd/internal/fsutil"
)

// MinAuditKeyLen is the shortest audit key accepted, in bytes.
const MinAuditKeyLen = 32

// LoadAuditKey reads the audit key file (hex, as LoadOrCreateAuditKey
// writes it). A missing file is an error that wraps fs.ErrNotExist; a file
// that group or others may read is refused, since whoever reads the key can
// forge the chain.
func LoadAuditKey(path string) ([]byte, error) {
	key, err := fsutil.ReadKeyFile(path, MinAuditKeyLen)
	if err != nil {
		return nil, fmt.Errorf("store: audit key: %w", err)
	}
	return key, nil
}

// LoadOrCreateAuditKey reads the audit key file, creating it (0600, 32
// random bytes in hex) if it does not exist yet.
func LoadOrCreateAuditKey(path string) ([]byte, error) {
	key, err := LoadAuditKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	// If another process made one meanwhile, use that one rather than
	// replace a key the chain may already be keyed with.
	key, err = fsutil.CreateKeyFile(path, MinAuditKeyLen)
	if errors.Is(err, fs.ErrExist) {
		return LoadAuditKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: create audit key: %w", err)
	}
	return key, nil
}

// AuditKeyID names a key without revealing it: the first 16 hex digits of
// sha256("fracd audit key id\n" || key).
func AuditKeyID(key []byte) string {
	s := sha256.Sum256(append([]byte("fracd audit key id\n"), key...))
	return hex.EncodeToString(s[:8])
}

// UseAuditKey keys the audit chain with key: every row appended from now on
// is chained with HMAC-SHA256 under it, and VerifyAudit checks keyed rows
// with it. The first keyed row after unkeyed ones is preceded by an
// audit.keyed marker naming the key (AuditKeyID). Nothing is written now.
func (db *DB) UseAuditKey(key []byte) error {
	if len(key) < MinAuditKeyLen {
		return fmt.Errorf("store: audit key has %d bytes, want at least %d", len(key), MinAuditKeyLen)
	}
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	db.auditKey = append([]byte(nil), key...)
	return nil
}

// UseAuditKeyFile is UseAuditKey with the key in a file. A missing file is
// created (LoadOrCreateAuditKey) only when the first audit row is written,
// so a command that ends up writing nothing leaves no key behind: a key
// file next to an unkeyed chain would look like a rewritten chain.
func (db *DB) UseAuditKeyFile(path string) error {
	key, err := LoadAuditKey(path)
	switch {
	case err == nil:
		return db.UseAuditKey(key)
	case errors.Is(err, fs.ErrNotExist):
		db.keyMu.Lock()
		defer db.keyMu.Unlock()
		db.auditKeyFile = path
		return nil
	default:
		return err
	}
}

// writeKey is the key to chain a new row with, creating the key file on
// first use; nil without one.
func (db *DB) writeKey() ([]byte, error) {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	if db.auditKey == nil && db.auditKeyFile != "" {
		key, err := LoadOrCreateAuditKey(db.auditKeyFile)
		if err != nil {
			return nil, err
		}
		db.auditKey = key
	}
	return db.auditKey, nil
}

// readKey is the key to verify with; nil without one.
func (db *DB) readKey() []byte {
	db.keyMu.Lock()
	defer db.keyMu.Unlock()
	return db.auditKey
}
