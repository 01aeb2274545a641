package anonymize

import (
	"encoding/hex"
	"strings"
)

// PseudonymAccession maps an Accession Number (which the profile empties) to
// a stable 32-character key (128 bits of HMAC-SHA256, lower-case hex,
// domain-separated from the UID and patient pseudonyms), so that a study can
// be found by the number the hospital knows without storing the number.
func PseudonymAccession(secret []byte, accession string) string {
	h := mac(secret, "fracd/accession", strings.TrimSpace(trimValue(accession)))
	return hex.EncodeToString(h[:16])
}
