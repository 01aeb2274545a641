package anonymize

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

var testSecret = []byte("fracd test secret, not for production")

// Identifiers planted in the synthetic instance; none may survive.
var syntheticPHI = []string{
	"Doe^Jane", "MRN-424242", "19700203", "20240517",
	"Acme Clinic", "Dr^Who", "ROOM-7", "SN-99", "ACC-777", "Jane's private note", "STUDY-55",
	"1.2.826.0.1.3680043.2.1125.555", "1.2.826.0.1.3680043.2.1125.556", "1.2.826.0.1.3680043.2.1125.557",
	"1.2.826.0.1.3680043.2.1125.558", "1.2.826.0.1.3680043.2.1125.559", "overlay note", "curve note",
	"ST-AE-7", "RP-31", "Jane Doe's hand",
}

// syntheticDataset builds an instance with identifiers in the places real
// ones sit: top level, nested sequences, private blocks, overlays, curves,
// retired group lengths and file meta.
func syntheticDataset(sopClass string, burnedIn string) *dicom.Dataset {
	pixels := make([]byte, 4*4*2)
	for i := range pixels {
		pixels[i] = byte(i * 7)
	}
	pd := mustElem(tag.PixelData, "OW", dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: pixels})
	refItem := []*dicom.Element{
		mustElem(tag.ReferencedSOPClassUID, "UI", []string{uid.ImplicitVRLittleEndian}),
		mustElem(tag.ReferencedSOPInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.558"}),
	}
	reqItem := []*dicom.Element{
		mustElem(tag.AccessionNumber, "SH", []string{"ACC-777"}),
		mustElem(tag.RequestedProcedureID, "SH", []string{"RP-31"}),
		mustElem(tag.ReferencedStudySequence, "SQ", [][]*dicom.Element{refItem}),
	}
	elems := []*dicom.Element{
		mustElem(tag.FileMetaInformationVersion, "OB", []byte{0, 1}),
		mustElem(tag.MediaStorageSOPClassUID, "UI", []string{sopClass}),
		mustElem(tag.MediaStorageSOPInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.555"}),
		mustElem(tag.TransferSyntaxUID, "UI", []string{uid.ExplicitVRLittleEndian}),
		mustElem(tag.SourceApplicationEntityTitle, "AE", []string{"ST-AE-7"}),
		mustElem(tag.Tag{Group: 0x0008, Element: 0x0000}, "UL", []int{1234}),
		mustElem(tag.SOPClassUID, "UI", []string{sopClass}),
		mustElem(tag.SOPInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.555"}),
		mustElem(tag.StudyDate, "DA", []string{"20240517"}),
		mustElem(tag.SeriesDate, "DA", []string{"2024.05.17"}),
		mustElem(tag.AcquisitionDateTime, "DT", []string{"20240517101500.000000"}),
		mustElem(tag.ContentDate, "DA", []string{"20240517"}),
		mustElem(tag.StudyTime, "TM", []string{"101500"}),
		mustElem(tag.ContentTime, "TM", []string{"101500"}),
		mustElem(tag.AccessionNumber, "SH", []string{"ACC-777"}),
		mustElem(tag.Modality, "CS", []string{"DX"}),
		mustElem(tag.InstitutionName, "LO", []string{"Acme Clinic"}),
		mustElem(tag.ReferringPhysicianName, "PN", []string{"Dr^Who"}),
		mustElem(tag.StationName, "SH", []string{"ROOM-7"}),
		mustElem(tag.StudyDescription, "LO", []string{"Jane Doe's hand"}),
		mustElem(tag.SeriesDescription, "LO", []string{"HAND 2 views"}),
		mustElem(tag.ReferencedImageSequence, "SQ", [][]*dicom.Element{refItem}),
		mustElem(tag.ReferencedSeriesSequence, "SQ", [][]*dicom.Element{{
			mustElem(tag.SeriesInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.557"}),
			mustElem(tag.ReferencedInstanceSequence, "SQ", [][]*dicom.Element{refItem}),
		}}),
		mustElem(tag.PatientName, "PN", []string{"Doe^Jane"}),
		mustElem(tag.PatientID, "LO", []string{"MRN-424242"}),
		mustElem(tag.PatientBirthDate, "DA", []string{"19700203"}),
		mustElem(tag.PatientSex, "CS", []string{"F"}),
		mustElem(tag.PatientAge, "AS", []string{"054Y"}),
		mustElem(tag.Tag{Group: 0x0011, Element: 0x0010}, "LO", []string{"ACME 1.0"}),
		mustElem(tag.Tag{Group: 0x0011, Element: 0x0011}, "LO", []string{"SAFE CO"}),
		mustElem(tag.Tag{Group: 0x0011, Element: 0x1010}, "LO", []string{"Jane's private note"}),
		mustElem(tag.Tag{Group: 0x0011, Element: 0x1110}, "DS", []string{"1.5"}),
		mustElem(tag.BodyPartExamined, "CS", []string{"HAND"}),
		mustElem(tag.DeviceSerialNumber, "LO", []string{"SN-99"}),
		mustElem(tag.StudyInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.556"}),
		mustElem(tag.SeriesInstanceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.557"}),
		mustElem(tag.StudyID, "SH", []string{"STUDY-55"}),
		mustElem(tag.FrameOfReferenceUID, "UI", []string{"1.2.826.0.1.3680043.2.1125.559"}),
		mustElem(tag.Rows, "US", []int{4}),
		mustElem(tag.Columns, "US", []int{4}),
		mustElem(tag.BitsAllocated, "US", []int{16}),
	}
	if burnedIn != "" {
		elems = append(elems, mustElem(tag.BurnedInAnnotation, "CS", []string{burnedIn}))
	}
	elems = append(elems,
		mustElem(tag.RequestAttributesSequence, "SQ", [][]*dicom.Element{reqItem}),
		mustElem(tag.Tag{Group: 0x5000, Element: 0x3000}, "LO", []string{"curve note"}),
		mustElem(tag.Tag{Group: 0x6000, Element: 0x0010}, "US", []int{4}),
		mustElem(tag.Tag{Group: 0x6000, Element: 0x3000}, "OW", []byte{1, 0, 0, 0}),
		mustElem(tag.Tag{Group: 0x6000, Element: 0x4000}, "LT", []string{"overlay note"}),
		pd,
	)
	return &dicom.Dataset{Elements: elems}
}

func encodeParse(t *testing.T, ds *dicom.Dataset) (*dicom.Dataset, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := encode(&buf, ds); err != nil {
		t.Fatal(err)
	}
	out, err := parseBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return out, buf.Bytes()
}

var dateRE = regexp.MustCompile(`^(\d{4})(\d{2})(\d{2})$`)

// phiForms returns the spellings of an identifier to search for: itself,
// with ^ read as a space, and a YYYYMMDD date in the other DICOM and common
// formats (ACR-NEMA YYYY.MM.DD, ISO YYYY-MM-DD, YYYY/MM/DD).
func phiForms(s string) []string {
	forms := []string{s}
	if strings.Contains(s, "^") {
		forms = append(forms, strings.ReplaceAll(s, "^", " "), strings.TrimSpace(strings.ReplaceAll(s, "^", "")))
	}
	if m := dateRE.FindStringSubmatch(s); m != nil {
		for _, sep := range []string{".", "-", "/"} {
			forms = append(forms, m[1]+sep+m[2]+sep+m[3])
		}
	}
	return forms
}

// phiFound returns the identifiers present in b in any of their forms,
// case-insensitive.
func phiFound(b []byte, phi []string) []string {
	low := bytes.ToLower(b)
	var found []string
	for _, s := range phi {
		for _, f := range phiForms(s) {
			if bytes.Contains(low, bytes.ToLower([]byte(f))) {
				found = append(found, f)
				break
			}
		}
	}
	return found
}

func TestSyntheticNoPHI(t *testing.T) {
	cases := []struct {
		name string
		opts Options
	}{
		{"basic", Options{}},
		{"modified dates", Options{RetainLongitudinalModifiedDates: true}},
		{"clean descriptors", Options{CleanDescriptors: true}},
		{"patient characteristics", Options{RetainPatientCharacteristics: true}},
		{"safe private, empty list", Options{RetainSafePrivate: true}},
	}
	dx := "1.2.840.10008.5.1.4.1.1.1.1"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, inBytes := encodeParse(t, syntheticDataset(dx, "NO"))
			if got := phiFound(inBytes, syntheticPHI); len(got) != len(syntheticPHI) {
				t.Fatalf("fixture lost identifiers: has %d of %d", len(got), len(syntheticPHI))
			}
			a, err := New(c.opts, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			res, err := a.Apply(in)
			if err != nil {
				t.Fatal(err)
			}
			out, outBytes := encodeParse(t, in)
			if got := phiFound(outBytes, syntheticPHI); len(got) > 0 {
				t.Errorf("identifiers survive: %q", got)
			}
			if res.SOPInstanceUID != PseudonymUID(testSecret, "1.2.826.0.1.3680043.2.1125.555") {
				t.Errorf("SOP Instance UID %q is not the pseudonym", res.SOPInstanceUID)
			}
			f := flatten(out.Elements)
			if ms := f["(0002,0003)"]; valueString(ms.elem) != res.SOPInstanceUID {
				t.Errorf("media storage SOP instance UID %q != SOP instance UID %q", valueString(ms.elem), res.SOPInstanceUID)
			}
			// References inside kept sequences map like the instances they name.
			for p, want := range map[string]string{
				"(0008,1115)[0](0020,000E)":               res.SeriesInstanceUID,
				"(0008,1115)[0](0008,114A)[0](0008,1155)": PseudonymUID(testSecret, "1.2.826.0.1.3680043.2.1125.558"),
			} {
				if got, ok := f[p]; !ok || valueString(got.elem) != want {
					t.Errorf("%s missing or not the pseudonym %q", p, want)
				}
			}
			pd, ok := f["(7FE0,0010)"]
			if !ok || !bytes.Equal(pd.elem.Value.GetValue().(dicom.PixelDataInfo).UnprocessedValueData, syntheticDataset(dx, "").Elements[len(syntheticDataset(dx, "").Elements)-1].Value.GetValue().(dicom.PixelDataInfo).UnprocessedValueData) {
				t.Error("pixel data changed")
			}
			for _, p := range []string{"(0008,0000)", "(0011,0010)", "(0011,1010)", "(6000,0010)", "(6000,3000)", "(5000,3000)", "(0002,0016)"} {
				if _, ok := f[p]; ok {
					t.Errorf("%s survives", p)
				}
			}
			for p, want := range map[string]string{"(0012,0062)": "YES", "(0012,0064)[0](0008,0100)": "113100", "(0010,0020)": res.PatientPseudonym} {
				if got := valueString(f[p].elem); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
		})
	}
}

// TestSyntheticGolden pins the full de-identified result of the synthetic
// instance, per option set, as a readable dump (testdata/*.golden; review
// diffs by hand, regenerate with -update).
func TestSyntheticGolden(t *testing.T) {
	for name, opts := range map[string]Options{
		"basic":   {},
		"options": {RetainLongitudinalModifiedDates: true, CleanDescriptors: true, RetainPatientCharacteristics: true, RetainDeviceIdentity: true, RetainSafePrivate: true, SafePrivate: []PrivateAttr{{Creator: "SAFE CO", Group: 0x0011, Element: 0x10}}},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := New(opts, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			ds := syntheticDataset("1.2.840.10008.5.1.4.1.1.1.1", "NO")
			if _, err := a.Apply(ds); err != nil {
				t.Fatal(err)
			}
			out, _ := encodeParse(t, ds)
			f := flatten(out.Elements)
			var b strings.Builder
			for _, k := range sortedKeys(f) {
				fmt.Fprintf(&b, "%s %s %s\n", k, f[k].elem.RawValueRepresentation, valueString(f[k].elem))
			}
			golden := filepath.Join("testdata", "synthetic_"+name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("result differs from %s:\n%s", golden, b.String())
			}
		})
	}
}

func TestBurnedInPolicy(t *testing.T) {
	dx, sc, us := "1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.6.1"
	cases := []struct {
		name, class, bia string
		opts             Options
		reject           bool
	}{
		{"dx declared yes", dx, "YES", Options{}, true},
		{"dx declared yes, allowed", dx, "YES", Options{AllowBurnedIn: true}, false},
		{"dx absent", dx, "", Options{}, false},
		{"sc absent", sc, "", Options{}, true},
		{"sc absent, allowed", sc, "", Options{AllowUndeclaredBurnedIn: true}, false},
		{"sc declared no", sc, "NO", Options{}, false},
		{"us absent", us, "", Options{}, true},
		{"us absent, custom class list", us, "", Options{BurnedInSOPClasses: []string{sc}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := New(c.opts, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			ds := syntheticDataset(c.class, c.bia)
			before := len(ds.Elements)
			_, err = a.Apply(ds)
			if got := errors.Is(err, ErrBurnedIn); got != c.reject {
				t.Fatalf("rejected = %v (%v), want %v", got, err, c.reject)
			}
			if c.reject {
				if len(ds.Elements) != before {
					t.Error("rejected dataset was modified")
				}
				if phi := phiFound([]byte(err.Error()), syntheticPHI); len(phi) > 0 {
					t.Errorf("error text carries identifiers %q", phi)
				}
				if !strings.Contains(err.Error(), "Burned In Annotation") {
					t.Errorf("error %q does not name the reason", err)
				}
			}
		})
	}
}

var uidRE = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$`)

func TestPseudonymUID(t *testing.T) {
	other := []byte("another site secret, also not real")
	seen := map[string]string{}
	for i := 0; i < 2000; i++ {
		orig := fmt.Sprintf("1.2.826.0.1.3680043.8.498.%d", i)
		u := PseudonymUID(testSecret, orig)
		if len(u) > 64 || !uidRE.MatchString(u) || !strings.HasPrefix(u, "2.25.") {
			t.Fatalf("invalid UID %q", u)
		}
		if u != PseudonymUID(testSecret, orig+"\x00") || u != PseudonymUID(testSecret, orig) {
			t.Fatalf("not stable under padding/repetition: %q", orig)
		}
		if u == PseudonymUID(other, orig) {
			t.Fatalf("same UID under another secret")
		}
		if prev, dup := seen[u]; dup {
			t.Fatalf("collision %q and %q", prev, orig)
		}
		seen[u] = orig
	}
}

func TestShiftDate(t *testing.T) {
	cases := []struct {
		in, vr string
		days   int
		want   string
		ok     bool
	}{
		{"20240301", "DA", 1, "20240229", true},
		{"2024.03.01", "DA", 366, "20230301", true},
		{"20240301101500.5+0100", "DT", 1, "20240229101500.5+0100", true},
		{"202403", "DT", 1, "", false},
		{"20241301", "DA", 1, "", false},
		{"20240301-20240302", "DA", 1, "", false},
	}
	for _, c := range cases {
		got, ok := shiftDate(c.in, c.vr, c.days)
		if got != c.want || ok != c.ok {
			t.Errorf("shiftDate(%q, %s, %d) = %q, %v; want %q, %v", c.in, c.vr, c.days, got, ok, c.want, c.ok)
		}
	}
}

func TestLongitudinalIntervalsSurvive(t *testing.T) {
	a, err := New(Options{RetainLongitudinalModifiedDates: true}, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	// Two studies of one patient 10 days apart keep their interval.
	var got []string
	for _, d := range []string{"20240517", "20240527"} {
		ds := syntheticDataset("1.2.840.10008.5.1.4.1.1.1.1", "NO")
		setStrings(flatten(ds.Elements)["(0008,0020)"].elem, []string{d})
		if _, err := a.Apply(ds); err != nil {
			t.Fatal(err)
		}
		got = append(got, valueString(flatten(ds.Elements)["(0008,0020)"].elem))
	}
	d0, _ := shiftDate(got[0], "DA", -10)
	if d0 != got[1] || got[0] == "20240517" {
		t.Errorf("shifted study dates %q lose the 10-day interval", got)
	}
}

func TestCleanDescriptors(t *testing.T) {
	a, err := New(Options{CleanDescriptors: true, CleanVocabulary: []string{"scaphoid"}}, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for v, clean := range map[string]bool{
		"HAND 2 views": true, "XR Wrist, Left (PA/LAT)": true, "Scaphoid series": true,
		"XR HAND for Quillfeather Horatio": false, "HAND 12": false, "Patient DOB 19880516": false, "": true,
	} {
		e := mustElem(tag.StudyDescription, "LO", []string{v})
		if got := a.provablyClean(e); got != clean {
			t.Errorf("provablyClean(%q) = %v, want %v", v, got, clean)
		}
	}
	if _, err := New(Options{CleanVocabulary: []string{"two words"}}, testSecret); err == nil {
		t.Error("vocabulary word with a space accepted")
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "secret.key")
	s1, err := LoadOrCreateSecret(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || len(s1) != 32 {
		t.Fatalf("mode %v, %d bytes", st.Mode().Perm(), len(s1))
	}
	s2, err := LoadOrCreateSecret(p)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("second load differs (%v)", err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateSecret(p); err == nil {
		t.Error("world-readable secret accepted")
	}
	if _, err := New(Options{}, []byte("short")); err == nil {
		t.Error("short secret accepted")
	}
}

func TestEmbeddedTable(t *testing.T) {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 621 {
		t.Errorf("%d rules, want 621 (edition %s)", len(rules), Edition)
	}
	shared, err := os.ReadFile("../../shared/deid/annex_e.csv")
	if err != nil {
		t.Skip("../shared/deid/annex_e.csv absent: cannot compare the embedded copy")
	}
	if !bytes.Equal(shared, annexE) {
		t.Error("embedded annex_e.csv differs from ../shared/deid/annex_e.csv")
	}
}
