package main

import (
	"errors"
	"strings"
)

// checkUID applies the DICOM UID rules (PS3.5 9.1) to a UID that is stored
// as given: at most 64 characters, components of digits separated by
// single dots, no leading zero in a component other than "0" itself. The
// value is not echoed: a wrong column could hold anything, names included.
func checkUID(s string) error {
	if s == "" {
		return errors.New("empty UID")
	}
	if len(s) > 64 {
		return errors.New("UID longer than 64 characters")
	}
	for _, c := range strings.Split(s, ".") {
		if c == "" || strings.Trim(c, "0123456789") != "" {
			return errors.New("UID is not digits separated by single dots")
		}
		if len(c) > 1 && c[0] == '0' {
			return errors.New("UID component with a leading zero")
		}
	}
	return nil
}
