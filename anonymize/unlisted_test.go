package anonymize

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/fracd/fracd/dicomio"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// planted is one identifier placed where Table E.1-1 does not look.
type planted struct {
	path  string // flatten() path in the output
	t     tag.Tag
	vr    string
	value any
	token string // text searched for in the output bytes ("" for numbers)
	uid   string // original UID: the output must hold its pseudonym
}

// vrSample is an identifier-bearing value of vr for element t, and the text
// to search for.
func vrSample(t tag.Tag, vr string) (any, string) {
	token := fmt.Sprintf("PHI%04X%04X", t.Group, t.Element)
	switch vr {
	case "US", "SS", "UL", "SL", "AT":
		return []int{4242}, ""
	case "FL", "FD":
		return []float64{4242.5}, ""
	case "OB", "OW", "UN":
		return []byte(token + "xxxxx"), token // 16 bytes, a multiple of every word size
	case "OD", "OF", "OL", "OV", "SV", "UV":
		// suyashkumar holds these as text; dicomio keeps their bytes
		return []string{token + "xxxxx"}, token
	case "SQ":
		return nil, ""
	case "CS", "AS", "DA", "TM", "DT", "DS", "IS":
		return []string{token}, token
	}
	return []string{token + "^Doe"}, token
}

// unlistedCases: an identifier in every VR in attributes outside the table
// (unknown public elements, group 0010 included, retired ones, instance
// UIDs the table lacks), nested in a kept sequence, in the file meta, and
// invalid values in attributes the profile keeps.
func unlistedCases() []planted {
	var ps []planted
	add := func(t tag.Tag, vr string, prefix string) {
		v, tok := vrSample(t, vr)
		if vr == "SQ" {
			inner := tag.Tag{Group: 0x0098, Element: 0x0F00}
			v = [][]*dicom.Element{{mustElem(inner, "PN", []string{"PHISEQITEM^Doe"})}}
			tok = "PHISEQITEM"
		}
		ps = append(ps, planted{path: prefix + fmt.Sprintf("(%04X,%04X)", t.Group, t.Element), t: t, vr: vr, value: v, token: tok})
	}
	for i, vr := range strings.Fields("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UL UN UR US UT UV") {
		add(tag.Tag{Group: 0x0098, Element: uint16(0x0010 + i)}, vr, "")
	}
	for _, k := range []struct {
		t  tag.Tag
		vr string
	}{
		{tag.Tag{Group: 0x0010, Element: 0x0033}, "LO"}, // Patient's Birth Date in Alternative Calendar
		{tag.Tag{Group: 0x0010, Element: 0x0035}, "CS"}, // Patient's Alternative Calendar
		{tag.Tag{Group: 0x0010, Element: 0x00F1}, "LO"}, // unknown, group 0010
		{tag.Tag{Group: 0x0010, Element: 0x00F3}, "PN"}, // unknown PN, group 0010
		{tag.Tag{Group: 0x0018, Element: 0x00F5}, "PN"}, // unknown PN
		{tag.Tag{Group: 0x0008, Element: 0x0010}, "SH"}, // Recognition Code (retired)
		{tag.Tag{Group: 0x0028, Element: 0x0005}, "US"}, // Image Dimensions (retired)
		{tag.Tag{Group: 0x7FE0, Element: 0x0020}, "OW"}, // Coefficients SDVN (retired)
		{tag.Tag{Group: 0x0008, Element: 0x0070}, "LO"}, // Manufacturer: listed nowhere, free text
		{tag.Tag{Group: 0x0028, Element: 0x1055}, "LO"}, // Window Center & Width Explanation
	} {
		add(k.t, k.vr, "")
	}
	// Instance UIDs the table lacks: remapped, not copied.
	for i, t := range []tag.Tag{{Group: 0x0008, Element: 0x1167}, {Group: 0x0020, Element: 0x0242}, {Group: 0x0020, Element: 0x9312}, {Group: 0x0098, Element: 0x0F10}} {
		u := fmt.Sprintf("1.2.826.0.1.3680043.2.1125.70%d", i)
		ps = append(ps, planted{path: fmt.Sprintf("(%04X,%04X)", t.Group, t.Element), t: t, vr: "UI", value: []string{u}, uid: u})
	}
	// Attributes the profile keeps, with values that are not of their VR.
	for _, k := range []struct {
		t   tag.Tag
		vr  string
		val string
	}{
		{tag.Modality, "CS", "Phimodality^Doe"},
		{tag.BodyPartExamined, "CS", "PHI-BODYPART"},
		{tag.ViewPosition, "CS", "PHIVIEWPOSITIONTOOLONG"},
		{tag.WindowCenter, "DS", "PHIWINDOW"},
		{tag.InstanceNumber, "IS", "PHI12"},
	} {
		ps = append(ps, planted{path: fmt.Sprintf("(%04X,%04X)", k.t.Group, k.t.Element), t: k.t, vr: k.vr, value: []string{k.val}, token: k.val})
	}
	return ps
}

// unlistedFile builds a valid 4x4 DX file holding every planted element, a
// kept reference sequence and Modality LUT sequence with identifiers in
// unlisted item elements, and a sender's file meta.
func unlistedFile(t *testing.T, ps []planted) ([]byte, []string) {
	t.Helper()
	pixels := make([]byte, 32)
	for i := range pixels {
		pixels[i] = byte(i)
	}
	elems := []*dicom.Element{
		mustElem(tag.FileMetaInformationVersion, "OB", []byte{0, 1}),
		mustElem(tag.MediaStorageSOPClassUID, "UI", []string{"1.2.840.10008.5.1.4.1.1.1.1"}),
		mustElem(tag.MediaStorageSOPInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.600"}),
		mustElem(tag.TransferSyntaxUID, "UI", []string{uid.ExplicitVRLittleEndian}),
		mustElem(tag.ImplementationClassUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.601"}),
		mustElem(tag.ImplementationVersionName, "SH", []string{"PHISENDERVER"}),
		mustElem(tag.SourceApplicationEntityTitle, "AE", []string{"PHISOURCEAE"}),
		mustElem(tag.Tag{Group: 0x0002, Element: 0x0100}, "UI", []string{"1.2.826.0.1.3680043.2.1125.602"}),
		mustElem(tag.Tag{Group: 0x0002, Element: 0x0102}, "OB", []byte("PHIPRIVATEMETA")),
		mustElem(tag.Tag{Group: 0x0002, Element: 0x0099}, "LO", []string{"PHIUNKNOWNMETA"}),
		mustElem(tag.SOPClassUID, "UI", []string{"1.2.840.10008.5.1.4.1.1.1.1"}),
		mustElem(tag.SOPInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.600"}),
		mustElem(tag.ReferencedSeriesSequence, "SQ", [][]*dicom.Element{{
			mustElem(tag.SeriesInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.603"}),
			mustElem(tag.Tag{Group: 0x0010, Element: 0x00F3}, "PN", []string{"PHINESTEDPN^Doe"}),
		}}),
		mustElem(tag.PatientName, "PN", []string{"PHIPATIENT^Doe"}),
		mustElem(tag.PatientID, "LO", []string{"PHIPATIENTID"}),
		mustElem(tag.StudyInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.604"}),
		mustElem(tag.SeriesInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.603"}),
		mustElem(tag.SamplesPerPixel, "US", []int{1}),
		mustElem(tag.PhotometricInterpretation, "CS", []string{"MONOCHROME2"}),
		mustElem(tag.Rows, "US", []int{4}),
		mustElem(tag.Columns, "US", []int{4}),
		mustElem(tag.BitsAllocated, "US", []int{16}),
		mustElem(tag.BitsStored, "US", []int{12}),
		mustElem(tag.HighBit, "US", []int{11}),
		mustElem(tag.PixelRepresentation, "US", []int{0}),
		mustElem(tag.WindowWidth, "DS", []string{"4096"}),
		mustElem(tag.ModalityLUTSequence, "SQ", [][]*dicom.Element{{
			mustElem(tag.LUTDescriptor, "US", []int{2, 0, 16}),
			mustElem(tag.LUTExplanation, "LO", []string{"PHILUTEXPLANATION"}),
			mustElem(tag.ModalityLUTType, "LO", []string{"PHILUTTYPE"}),
			mustElem(tag.LUTData, "US", []int{0, 4095}),
		}}),
		mustElem(tag.PixelData, "OW", dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: pixels}),
	}
	tokens := []string{"PHISENDERVER", "PHISOURCEAE", "PHIPRIVATEMETA", "PHIUNKNOWNMETA", "PHINESTEDPN", "PHIPATIENT",
		"PHILUTEXPLANATION", "PHILUTTYPE", "1.2.826.0.1.3680043.2.1125.60"}
	for _, p := range ps {
		elems = append(elems, mustElem(p.t, p.vr, p.value))
		if p.token != "" {
			tokens = append(tokens, p.token)
		}
		if p.uid != "" {
			tokens = append(tokens, p.uid)
		}
	}
	sortElements(elems)
	var buf bytes.Buffer
	if err := dicomio.Write(&buf, dicom.Dataset{Elements: elems}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), tokens
}

func sortElements(elems []*dicom.Element) {
	for i := 1; i < len(elems); i++ {
		for j := i; j > 0 && elems[j].Tag.Compare(elems[j-1].Tag) < 0; j-- {
			elems[j], elems[j-1] = elems[j-1], elems[j]
		}
	}
}

// TestNothingUnlistedSurvives: what the table does not know is removed
// (unless the profile's explicit safe list keeps it, with a valid value),
// instance UIDs it does not list are remapped, and the file meta is fracd's
// own. Run through dicomio, as the pipeline does.
func TestNothingUnlistedSurvives(t *testing.T) {
	tb, err := profileTable()
	if err != nil {
		t.Fatal(err)
	}
	ps := unlistedCases()
	for _, p := range ps[:len(ps)-5] {
		if tb.lookup(p.t) != nil {
			t.Fatalf("fixture: %s is in Table E.1-1; pick an attribute the table lacks", p.path)
		}
	}
	for name, opts := range map[string]Options{
		"basic":                             {},
		"dates+descriptors+characteristics": {RetainLongitudinalModifiedDates: true, CleanDescriptors: true, RetainPatientCharacteristics: true},
	} {
		t.Run(name, func(t *testing.T) {
			in, tokens := unlistedFile(t, ps)
			if found := phiFound(in, tokens); len(found) != len(tokens) {
				t.Fatalf("fixture holds %d of %d identifiers", len(found), len(tokens))
			}
			f, err := dicomio.Parse(in)
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(opts, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Apply(&f.Dataset)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := dicomio.Write(&buf, f.Dataset); err != nil {
				t.Fatal(err)
			}
			if found := phiFound(buf.Bytes(), tokens); len(found) > 0 {
				t.Errorf("identifiers survive: %q", found)
			}
			g, err := dicomio.Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			out := flatten(g.Dataset.Elements)
			for _, p := range ps {
				got, ok := out[p.path]
				switch {
				case p.uid != "":
					if !ok || valueString(got.elem) != PseudonymUID(testSecret, p.uid) {
						t.Errorf("%s: %q, want the pseudonym of the original UID", p.path, valueIf(got, ok))
					}
				case ok:
					t.Errorf("%s %s survives: %q", p.path, p.vr, valueString(got.elem))
				}
			}
			for _, p := range []string{"(0008,1115)[0](0010,00F3)", "(0028,3000)[0](0028,3003)", "(0028,3000)[0](0028,3004)"} {
				if _, ok := out[p]; ok {
					t.Errorf("%s survives in a kept sequence", p)
				}
			}
			// Kept: what decoding and the references need.
			for _, p := range []string{"(0008,1115)[0](0020,000E)", "(0028,3000)[0](0028,3002)", "(0028,3000)[0](0028,3006)", "(0028,0010)", "(0028,1051)"} {
				if _, ok := out[p]; !ok {
					t.Errorf("%s was removed", p)
				}
			}
			var meta []string
			for _, e := range g.Dataset.Elements {
				if e.Tag.Group == 0x0002 {
					meta = append(meta, fmt.Sprintf("(%04X,%04X)=%s", e.Tag.Group, e.Tag.Element, valueString(e)))
				}
			}
			want := []string{
				"(0002,0000)=" + valueString(findTop(g.Dataset.Elements, tag.FileMetaInformationGroupLength)),
				"(0002,0001)=0001",
				"(0002,0002)=1.2.840.10008.5.1.4.1.1.1.1",
				"(0002,0003)=" + res.SOPInstanceUID,
				"(0002,0010)=" + uid.ExplicitVRLittleEndian,
				"(0002,0012)=" + PseudonymUID(testSecret, "fracd/implementation"),
				"(0002,0013)=" + ImplementationVersionName,
			}
			if strings.Join(meta, " ") != strings.Join(want, " ") {
				t.Errorf("file meta\n %s\nwant\n %s", strings.Join(meta, "\n "), strings.Join(want, "\n "))
			}
			if _, err := g.Render8(0); err != nil {
				t.Errorf("de-identified file does not render: %v", err)
			}
		})
	}
}

func findTop(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e.Tag == t {
			return e
		}
	}
	return mustElem(t, "UL", []int{0})
}
