package anonymize

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"strings"

	"github.com/fracd/fracd/internal/fsutil"
)

// MinSecretLen is the shortest site secret New accepts (128 bits).
const MinSecretLen = 16

// LoadOrCreateSecret returns the site secret stored hex-encoded in path,
// creating it (32 random bytes, mode 0600, parent directories 0700) on first
// run. A secret file readable by group or others is refused: whoever reads
// it can recompute every pseudonym. Losing the file breaks linkage between
// instances anonymised before and after.
func LoadOrCreateSecret(path string) ([]byte, error) {
	secret, err := fsutil.ReadKeyFile(path, MinSecretLen)
	if errors.Is(err, fs.ErrNotExist) {
		return createSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("anonymize: secret: %w", err)
	}
	return secret, nil
}

func createSecret(path string) ([]byte, error) {
	// If another process created it meanwhile, use theirs instead of
	// overwriting a secret that may already have been used.
	secret, err := fsutil.CreateKeyFile(path, 32)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateSecret(path)
	}
	if err != nil {
		return nil, fmt.Errorf("anonymize: create secret: %w", err)
	}
	return secret, nil
}

func mac(secret []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, secret)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// PseudonymUID maps an original UID to "2.25." followed by the decimal value
// of the first 128 bits of HMAC-SHA256(secret, uid). Trailing NUL/space
// padding of uid is ignored. The result has at most 44 characters and no
// leading zeros, is stable for one secret and not recomputable without it.
func PseudonymUID(secret []byte, uid string) string {
	h := mac(secret, trimValue(uid))
	return "2.25." + new(big.Int).SetBytes(h[:16]).String()
}

// PseudonymPatientID maps an original patient identity to a stable
// 20-character pseudonym (80 bits of HMAC-SHA256, upper-case hex). It is
// domain-separated from the UID mapping.
func PseudonymPatientID(secret []byte, patientID string) string {
	h := mac(secret, "fracd/patient", trimValue(patientID))
	return strings.ToUpper(hex.EncodeToString(h[:10]))
}

// dateShiftDays is the per-patient backward date shift: 1 to 3650 days,
// never 0 so an original date is never reproduced.
func dateShiftDays(secret []byte, patientKey string) int {
	h := mac(secret, "fracd/dateshift", patientKey)
	return 1 + int(binary.BigEndian.Uint64(h[:8])%3650)
}

func trimValue(s string) string { return strings.Trim(s, " \x00") }
