package dicomio

import "strings"

// Values read from a file reach errors, logs and `fracd inspect` only in
// these forms: a file controls them, and a "UID" or "code" may hold a name.

// Stand-ins for values that fail validation.
const (
	InvalidUID  = "invalid UID"
	InvalidCode = "invalid code string"
)

// ValidUID reports whether s is a UID as PS3.5 9.1 spells it: at most 64
// characters, digits in dot-separated components.
func ValidUID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range strings.Split(s, ".") {
		if c == "" || strings.IndexFunc(c, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			return false
		}
	}
	return true
}

// SafeUID returns s if it is a valid UID, else InvalidUID ("" stays "").
func SafeUID(s string) string {
	if s == "" || ValidUID(s) {
		return s
	}
	return InvalidUID
}

// SafeCode returns s if it is a valid Code String (PS3.5 6.2: at most 16
// characters of upper-case letters, digits, space and underscore), else
// InvalidCode ("" stays "").
func SafeCode(s string) string {
	if s == "" {
		return s
	}
	if len(s) > 16 || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == ' ' || r == '_')
	}) >= 0 {
		return InvalidCode
	}
	return s
}
