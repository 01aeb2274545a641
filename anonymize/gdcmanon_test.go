package anonymize

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// TestCompareGDCMAnon runs GDCM's gdcmanon (Debian libgdcm-tools; its basic
// profile needs a certificate, so a throwaway self-signed one is made with
// openssl) on the same files as ours and reports, per attribute, what one
// removes or blanks that the other keeps, plus phi.json identifiers left in
// each output. It asserts only about our output; gdcmanon's is reported
// (go test -run GDCMAnon -v).
func TestCompareGDCMAnon(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: gdcmanon comparison skipped")
	}
	gdcmanon, err1 := exec.LookPath("gdcmanon")
	openssl, err2 := exec.LookPath("openssl")
	if err1 != nil || err2 != nil {
		t.Skip("gdcmanon or openssl not installed")
	}
	phi := loadPHI(t)
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if out, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
		"-out", cert, "-subj", "/CN=fracd-test", "-days", "1").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	a, err := New(Options{AllowBurnedIn: true, AllowUndeclaredBurnedIn: true}, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	corpora := []struct {
		name  string
		files []string
	}{}
	xr, _ := filepath.Glob(filepath.Join(xrayDir, "files", "*.dcm"))
	all, _ := filepath.Glob(filepath.Join(corpusDir, "*"))
	corpora = append(corpora, struct {
		name  string
		files []string
	}{"xray-dicom", xr}, struct {
		name  string
		files []string
	}{"dicom", all})
	for _, c := range corpora {
		diff := map[string]map[string]int{} // attribute -> "ours/gdcm" -> count
		gdcmFail, compared, gdcmPixelSame := 0, 0, 0
		oursPHI, gdcmPHI, gdcmPHIFiles := 0, 0, 0
		for _, in := range c.files {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			orig, err1 := parseBytes(data)
			ours, err2 := parseBytes(data)
			if err1 != nil || err2 != nil {
				continue
			}
			if _, err := a.Apply(ours); err != nil {
				t.Fatal(err)
			}
			gout := filepath.Join(dir, "g-"+filepath.Base(in))
			if err := exec.Command(gdcmanon, "-e", "-c", cert, "-i", in, "-o", gout).Run(); err != nil {
				gdcmFail++
				continue
			}
			gb, err := os.ReadFile(gout)
			if err != nil {
				gdcmFail++
				continue
			}
			gd, err := parseBytes(gb)
			if err != nil {
				gdcmFail++
				continue
			}
			compared++
			if c.name == "xray-dicom" && bytes.Equal(rawPixelData(t, data), rawPixelData(t, gb)) {
				gdcmPixelSame++
			}
			if strs := phiStrings(phi[filepath.Base(in)]); c.name == "xray-dicom" {
				var ob strings.Builder
				if err := encodeTo(&ob, ours); err != nil {
					t.Fatal(err)
				}
				if f := phiFound([]byte(ob.String()), strs); len(f) > 0 {
					oursPHI += len(f)
					t.Errorf("%s: our output keeps %q", filepath.Base(in), f)
				}
				if f := phiFound(searchable(gb), strs); len(f) > 0 {
					gdcmPHI += len(f)
					gdcmPHIFiles++
					if gdcmPHIFiles == 1 {
						t.Logf("gdcmanon output of %s keeps %q", filepath.Base(in), f)
					}
				}
			}
			of, gf := flatten(ours.Elements), flatten(gd.Elements)
			for p, e := range flatten(orig.Elements) {
				if e.elem.Tag.Group == 0x0002 || e.elem.Tag == tag.PixelData || e.elem.Tag.Element == 0 {
					continue
				}
				o, g := fate(e, of, p), fate(e, gf, p)
				if o != g {
					name := attrName(e.elem.Tag)
					if diff[name] == nil {
						diff[name] = map[string]int{}
					}
					diff[name]["ours "+o+", gdcmanon "+g]++
				}
			}
		}
		var lines []string
		for name, m := range diff {
			for k, n := range m {
				lines = append(lines, fmt.Sprintf("  %-55s %-40s %d", name, k, n))
			}
		}
		sort.Strings(lines)
		t.Logf("%s: %d files compared, %d gdcmanon failed, %d gdcmanon outputs with identical pixel data; phi.json strings left: ours %d, gdcmanon %d (in %d files)\n%s",
			c.name, compared, gdcmFail, gdcmPixelSame, oursPHI, gdcmPHI, gdcmPHIFiles, strings.Join(lines, "\n"))
	}
}

func phiStrings(m map[string]string) []string {
	var s []string
	for _, v := range m {
		s = append(s, v)
	}
	return s
}

func encodeTo(sb *strings.Builder, ds *dicom.Dataset) error {
	var buf = new(bytesBuffer)
	if err := encode(&buf.Buffer, ds); err != nil {
		return err
	}
	sb.Write(buf.Bytes())
	return nil
}

// fate is what became of an input element in an output: kept, blanked,
// replaced, removed (or dropped with its enclosing sequence).
func fate(in flat, out map[string]flat, p string) string {
	o, ok := out[p]
	switch {
	case !ok:
		return "removed"
	case isSeq(o.elem):
		if isEmptyValue(o.elem) && !isEmptyValue(in.elem) {
			return "blanked"
		}
		if len(flatten(seqElems(o.elem))) < len(flatten(seqElems(in.elem))) {
			return "replaced" // items emptied or content removed
		}
		return "kept"
	case valueString(o.elem) == valueString(in.elem):
		return "kept"
	case isEmptyValue(o.elem):
		return "blanked"
	}
	return "replaced"
}

func attrName(t tag.Tag) string {
	if t.Group%2 == 1 {
		return "private attributes"
	}
	if info, err := tag.Find(t); err == nil {
		return fmt.Sprintf("(%04X,%04X) %s", t.Group, t.Element, info.Name)
	}
	return fmt.Sprintf("(%04X,%04X)", t.Group, t.Element)
}

type bytesBuffer struct{ bytes.Buffer }

// seqElems puts a sequence's items' elements under one list, for counting.
func seqElems(e *dicom.Element) []*dicom.Element {
	var all []*dicom.Element
	for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
		all = append(all, it.GetValue().([]*dicom.Element)...)
	}
	return all
}
