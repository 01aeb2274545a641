package anonymize

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fracd/fracd/dicomio"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// latin1File is the synthetic instance with ISO_IR 100 and a Latin-1
// Institution Name, which Retain Institution Identity keeps.
func latin1File(t *testing.T) []byte {
	t.Helper()
	ds := syntheticDataset("1.2.840.10008.5.1.4.1.1.1.1", "NO")
	ds.Elements = append(ds.Elements, mustElem(tag.SpecificCharacterSet, "CS", []string{"ISO_IR 100"}))
	sortElements(ds.Elements)
	// The writer emits a string's bytes as they are: these are Latin-1.
	setStrings(flatten(ds.Elements)["(0008,0080)"].elem, []string{"H\xf4pital G\xe9n\xe9ral"})
	var buf bytes.Buffer
	if err := encode(&buf, ds); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("H\xf4pital")) {
		t.Fatal("fixture: Latin-1 institution name not written")
	}
	return buf.Bytes()
}

// TestCharsetOfKeptText: text the profile keeps reads the same after
// de-identification, both through anonymize's own reader and writer and
// through dicomio, and dcmtk (+U8) shows it right.
func TestCharsetOfKeptText(t *testing.T) {
	const want = "Hôpital Général"
	in := latin1File(t)
	a, err := New(Options{RetainInstitutionIdentity: true}, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]func() []byte{
		"anonymize": func() []byte {
			ds, err := parseBytes(in)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Apply(ds); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := encode(&buf, ds); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		},
		"dicomio": func() []byte {
			f, err := dicomio.Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Apply(&f.Dataset); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := dicomio.Write(&buf, f.Dataset); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		},
	}
	dcmdump, _ := exec.LookPath("dcmdump")
	for name, run := range paths {
		t.Run(name, func(t *testing.T) {
			out := run()
			ds, err := parseBytes(out)
			if err != nil {
				t.Fatal(err)
			}
			if got := topString(ds.Elements, tag.InstitutionName); got != want {
				t.Errorf("institution %q, want %q", got, want)
			}
			if cs := topString(ds.Elements, tag.SpecificCharacterSet); cs != "ISO_IR 192" {
				t.Errorf("character set %q for UTF-8 text", cs)
			}
			if dcmdump == "" {
				t.Skip("dcmdump not installed")
			}
			p := filepath.Join(t.TempDir(), "out.dcm")
			if err := os.WriteFile(p, out, 0o600); err != nil {
				t.Fatal(err)
			}
			dump, err := exec.Command(dcmdump, "+U8", p).CombinedOutput()
			if err != nil {
				t.Fatalf("dcmdump: %v\n%s", err, dump)
			}
			if !bytes.Contains(dump, []byte("["+want+"]")) {
				t.Errorf("dcmdump +U8 does not show %q:\n%s", want, dump)
			}
		})
	}
}
