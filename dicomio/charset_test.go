package dicomio

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
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

// TestCharsetAfterWrite: suyashkumar decodes text to UTF-8 by the declared
// character set, and the writer emits those UTF-8 bytes; the written file
// must then declare ISO_IR 192 (everywhere), so that dcmtk reads the same
// text. Latin-1 and ISO 2022 Japanese (PS3.5 H.3.1) inputs.
func TestCharsetAfterWrite(t *testing.T) {
	cases := []struct {
		name, charset string
		raw           []byte // Patient's Name as stored in the input
		want          string // the name as text
	}{
		{"ISO_IR 100", "ISO_IR 100", []byte("M\xfcller^Zo\xeb"), "Müller^Zoë"},
		{"lenient ISO_IR100", "ISO_IR100", []byte("Caf\xe9^Ren\xe9e"), "Café^Renée"},
		{"ISO 2022 IR 87", `\ISO 2022 IR 87`,
			[]byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"),
			"Yamada^Tarou=山田^太郎=やまだ^たろう"},
		{"UTF-8 stays", "ISO_IR 192", []byte("Zoë"), "Zoë"},
		{"no character set, ASCII", "", []byte("Doe^John"), "Doe^John"},
	}
	dcmdump, _ := exec.LookPath("dcmdump")
	if dcmdump == "" {
		t.Log("dcmdump not installed: the dcmtk check is skipped")
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &dsBuilder{bo: binary.LittleEndian}
			if c.charset != "" {
				b.str(0x0008, 0x0005, "CS", c.charset)
			}
			item := &dsBuilder{bo: binary.LittleEndian}
			item.raw(0x0010, 0x0010, "PN", c.raw)
			b.seq(0x0008, 0x1115, item.buf.Bytes())
			b.raw(0x0010, 0x0010, "PN", c.raw)
			f, err := Parse(part10(UIDExplicitVRLittleEndian, b.buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.str(tag.PatientName); got != c.want {
				t.Fatalf("parsed name %q, want %q", got, c.want)
			}
			var out bytes.Buffer
			if err := f.Write(&out); err != nil {
				t.Fatal(err)
			}
			g, err := Parse(out.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if got := g.str(tag.PatientName); got != c.want {
				t.Errorf("name after write %q, want %q", got, c.want)
			}
			if cs := g.str(tag.SpecificCharacterSet); c.charset != "" && cs != "ISO_IR 192" {
				t.Errorf("written file declares %q for UTF-8 text", cs)
			}
			if dcmdump == "" {
				return
			}
			p := filepath.Join(t.TempDir(), "out.dcm")
			if err := os.WriteFile(p, out.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			dump, err := exec.Command(dcmdump, "+U8", p).CombinedOutput()
			if err != nil {
				t.Fatalf("dcmdump: %v\n%s", err, dump)
			}
			if n := bytes.Count(dump, []byte("["+c.want+"]")); n != 2 {
				t.Errorf("dcmdump +U8 shows the name %d times, want 2 (top level and nested):\n%s", n, dump)
			}
		})
	}
}
