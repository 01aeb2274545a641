package dicomio

import (
	"encoding/binary"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"
)

func TestLenientCharset(t *testing.T) {
	cases := []struct{ in, want string }{
		{"ISO_IR 100", "ISO_IR 100"},
		{"ISO_IR100", "ISO_IR 100"},
		{"iso-ir 100", "ISO_IR 100"},
		{"UTF-8", "ISO_IR 192"},
		{"\\ISO 2022 IR 87", "\\ISO 2022 IR 87"},
		{"ISO2022IR6\\ISO2022IR87", "ISO 2022 IR 6\\ISO 2022 IR 87"},
		{"KLINGON", "KLINGON"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, _ := normalizeCharsets(c.in)
			if got != c.want {
				t.Errorf("%q -> %q, want %q", c.in, got, c.want)
			}
			// Through Parse: a Latin-1 name decodes to UTF-8 when the
			// (fixed) character set is Latin-1; unknown sets still parse.
			b := &dsBuilder{bo: binary.LittleEndian}
			b.str(0x0008, 0x0005, "CS", c.in)
			b.raw(0x0008, 0x1030, "LO", []byte("Caf\xe9"))
			f, err := Parse(part10(UIDExplicitVRLittleEndian, b.buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "ISO_IR 100" {
				if got := f.str(tag.StudyDescription); got != "Café" {
					t.Errorf("study description %q, want Café", got)
				}
			}
		})
	}
}
