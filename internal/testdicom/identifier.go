package testdicom

import "bytes"

// ContainsIdentifier reports whether identifier form f occurs in b, other
// than by chance inside the digits of a pseudonymous 2.25 UID: a numeric
// identifier such as a birth date is an 8-digit string, and one of the
// hundred or so random 39-digit UIDs a test run writes contains it now and
// then. A digit run around the match that is not such a UID (a DA or DT
// value, an ID, another UID root) still counts. Tests' identifier scans
// use it instead of bytes.Contains.
func ContainsIdentifier(b []byte, f string) bool {
	isDigit := func(c byte) bool { return '0' <= c && c <= '9' }
	for i := range len(f) {
		if !isDigit(f[i]) {
			return bytes.Contains(b, []byte(f))
		}
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(f))
		if i < 0 {
			return false
		}
		i += off
		s, e := i, i+len(f)
		for s > 0 && isDigit(b[s-1]) {
			s--
		}
		for e < len(b) && isDigit(b[e]) {
			e++
		}
		if !(e-s >= 20 && s >= 5 && string(b[s-5:s]) == "2.25.") {
			return true
		}
		off = i + 1
	}
}
