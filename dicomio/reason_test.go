package dicomio

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
)

// safeText: what may reach a rejection reason, a log line or `fracd
// inspect`: printable ASCII of bounded length.
func safeText(t *testing.T, what, s string, maxLen int) {
	t.Helper()
	if len(s) > maxLen {
		t.Errorf("%s: %d characters, want at most %d: %q", what, len(s), maxLen, s)
	}
	for _, r := range s {
		if r < ' ' || r > '~' {
			t.Errorf("%s: non-printable or non-ASCII %q in %q", what, r, s)
			break
		}
	}
	if strings.Contains(strings.ToLower(s), "doe") {
		t.Errorf("%s quotes file content: %q", what, s)
	}
}

// TestFileTextNotQuoted: values a file controls (transfer syntax, SOP class,
// modality, photometric) reach errors and the inspect report only when they
// are valid UIDs or code strings; otherwise a fixed word stands in.
func TestFileTextNotQuoted(t *testing.T) {
	image := func(sopClass, modality, photometric string) []byte {
		b := &dsBuilder{bo: binary.LittleEndian}
		b.str(0x0008, 0x0016, "UI", sopClass)
		b.str(0x0008, 0x0060, "CS", modality)
		b.us(0x0028, 0x0002, 1)
		b.str(0x0028, 0x0004, "CS", photometric)
		b.us(0x0028, 0x0010, 2).us(0x0028, 0x0011, 2).us(0x0028, 0x0100, 8).us(0x0028, 0x0101, 8).us(0x0028, 0x0102, 7)
		b.raw(0x7FE0, 0x0010, "OB", []byte{1, 2, 3, 4})
		return b.buf.Bytes()
	}
	good := image("1.2.840.10008.5.1.4.1.1.7", "OT", "MONOCHROME2")
	long := "1." + strings.Repeat("2", 70)
	cases := []struct {
		name    string
		data    []byte
		reason  string
		quoted  string // must appear (a valid value is still shown)
		summary func(Summary) []string
	}{
		{"TS with a name", part10("1.2.840.10008.Doe^Jane", good), "unsupported_transfer_syntax", "invalid UID", nil},
		{"TS of letters and dots", part10("Jane.Doe.1961", good), "unsupported_transfer_syntax", "invalid UID", nil},
		{"TS too long", part10(long, good), "unsupported_transfer_syntax", "invalid UID", nil},
		{"TS unknown but valid", part10("1.2.3.4.5.99", good), "unsupported_transfer_syntax", "1.2.3.4.5.99", nil},
		{"SOP class, modality, photometric with a name", part10(UIDExplicitVRLittleEndian, image("Doe^Jane", "DOE^JANE", "Jane^Doe 1961")), "", "",
			func(s Summary) []string { return []string{s.SOPClassUID, s.Modality, s.Photometric} }},
		{"valid values shown", part10(UIDExplicitVRLittleEndian, good), "", "",
			func(s Summary) []string {
				if s.SOPClassUID != "1.2.840.10008.5.1.4.1.1.7" || s.Modality != "OT" || s.Photometric != "MONOCHROME2" {
					t.Errorf("valid values not shown: %q %q %q", s.SOPClassUID, s.Modality, s.Photometric)
				}
				return nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Inspect(context.Background(), c.data)
			if r.Reason != c.reason {
				t.Errorf("reason %q (%s), want %q", r.Reason, r.ParseError, c.reason)
			}
			all := r.ParseError + " " + r.DecodeError + " " + r.RenderError + " " + r.ImageError
			if !strings.Contains(all, c.quoted) {
				t.Errorf("errors %q do not say %q", all, c.quoted)
			}
			for what, s := range map[string]string{"parse error": r.ParseError, "decode error": r.DecodeError,
				"render error": r.RenderError, "image error": r.ImageError, "transfer syntax": r.TransferSyntaxUID,
				"SOP class": r.SOPClassUID, "modality": r.Modality, "photometric": r.Photometric} {
				safeText(t, what, s, 200)
			}
			if c.summary != nil {
				for _, s := range c.summary(r.Summary) {
					safeText(t, "summary", s, 64)
				}
			}
		})
	}
}
