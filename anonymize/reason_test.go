package anonymize

import (
	"bytes"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// TestFileTextStaysOut: text a file controls reaches neither an error, nor
// the Result the pipeline stores, nor the output unless it is valid for
// what it claims to be.
func TestFileTextStaysOut(t *testing.T) {
	dx := "1.2.840.10008.5.1.4.1.1.1.1"
	with := func(edit func(ds *dicom.Dataset)) *dicom.Dataset {
		ds := syntheticDataset(dx, "NO")
		edit(ds)
		return ds
	}
	set := func(tg tag.Tag, vr, v string) func(*dicom.Dataset) {
		return func(ds *dicom.Dataset) {
			if e, err := ds.FindElementByTag(tg); err == nil {
				setStrings(e, []string{v})
				return
			}
			ds.Elements = append(ds.Elements, mustElem(tg, vr, []string{v}))
			sortElements(ds.Elements)
		}
	}
	cases := []struct {
		name  string
		ds    *dicom.Dataset
		opts  Options
		check func(t *testing.T, res *Result)
	}{
		{"Retain UIDs keeps only UIDs", with(set(tag.SOPInstanceUID, "UI", "Doe^Jane")), Options{RetainUIDs: true},
			func(t *testing.T, res *Result) {
				if res.SOPInstanceUID != PseudonymUID(testSecret, "Doe^Jane") || res.StudyInstanceUID != "1.2.826.0.1.3680043.2.1125.556" {
					t.Errorf("SOP %q, study %q: an invalid UID must be mapped, valid ones retained", res.SOPInstanceUID, res.StudyInstanceUID)
				}
			}},
		{"modality that is not one", with(set(tag.Modality, "CS", "JANE DOE")), Options{},
			func(t *testing.T, res *Result) {
				if res.Modality != "" {
					t.Errorf("modality %q kept", res.Modality)
				}
			}},
		{"modality kept", with(set(tag.Modality, "CS", "CR")), Options{},
			func(t *testing.T, res *Result) {
				if res.Modality != "CR" {
					t.Errorf("modality %q, want CR", res.Modality)
				}
			}},
		{"body part that is not one", with(set(tag.BodyPartExamined, "CS", "Doe^Jane")), Options{},
			func(t *testing.T, res *Result) {
				if res.BodyPartExamined != "" {
					t.Errorf("body part %q kept", res.BodyPartExamined)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := New(c.opts, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			in, _ := encodeParse(t, c.ds)
			res, err := a.Apply(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{res.StudyInstanceUID, res.SeriesInstanceUID, res.SOPInstanceUID} {
				if !ValidUID(u) {
					t.Errorf("Result UID %q is not a valid UID", u)
				}
			}
			c.check(t, res)
			_, out := encodeParse(t, in)
			if bytes.Contains(bytes.ToLower(out), []byte("doe")) {
				t.Error("file text survives in the output")
			}
		})
	}

	// MapUID (what the pipeline stores for source references) likewise.
	a, err := New(Options{RetainUIDs: true}, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.MapUID("Doe^Jane"); got != PseudonymUID(testSecret, "Doe^Jane") {
		t.Errorf("MapUID under Retain UIDs returns %q for a non-UID", got)
	}
	if got := a.MapUID("1.2.3"); got != "1.2.3" {
		t.Errorf("MapUID under Retain UIDs returns %q for a UID", got)
	}

	// Parse errors never quote the parser's message (which can quote values).
	ds := syntheticDataset(dx, "NO")
	// dicomio keeps an unknown character set's bytes as read; a transfer
	// syntax carrying a name is what it refuses.
	ds.Elements = append([]*dicom.Element{mustElem(tag.SpecificCharacterSet, "CS", []string{"DOE^JANE"})}, ds.Elements...)
	sortElements(ds.Elements)
	var buf bytes.Buffer
	if err := encode(&buf, ds); err != nil {
		t.Fatal(err)
	}
	data := bytes.Replace(buf.Bytes(), []byte(uid.ExplicitVRLittleEndian+"\x00"), []byte("1.2.840.DOE^JANE.12\x00"), 1)
	_, err = parseBytes(data)
	if err == nil {
		t.Fatal("transfer syntax carrying a name accepted")
	}
	if strings.Contains(strings.ToLower(err.Error()), "doe") {
		t.Errorf("parse error quotes the file: %v", err)
	}
}
