package testdicom

import "testing"

// TestContainsIdentifierIgnoresPseudonymDigits: an identifier scan must not
// fail on a birth date that a random pseudonymous UID happens to contain
// (one did: 19710510 in 2.25.204862279197105105410264444609203638134), and
// must still catch the date everywhere else.
func TestContainsIdentifierIgnoresPseudonymDigits(t *testing.T) {
	for _, c := range []struct {
		b, f string
		want bool
	}{
		{"uid 2.25.204862279197105105410264444609203638134 x", "19710510", false},
		{"(0010,0030) da 19710510 ", "19710510", true},
		{"dt 19710510120000", "19710510", true},
		{"2.25.19710510", "19710510", true}, // too short for a pseudonym
		{"1.2.840.10008.19710510123456789012345", "19710510", true},
		{"2.25.204862279197105105410264444609203638134 and 19710510", "19710510", true},
		{"smith^john", "smith^john", true},
		{"nothing here", "19710510", false},
	} {
		if got := ContainsIdentifier([]byte(c.b), c.f); got != c.want {
			t.Errorf("ContainsIdentifier(%q, %q) = %v, want %v", c.b, c.f, got, c.want)
		}
	}
}
