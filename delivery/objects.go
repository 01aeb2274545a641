package delivery

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/dicomio"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// SOP classes of the objects made here.
const (
	ComprehensiveSRClass  = "1.2.840.10008.5.1.4.1.1.88.33"
	SecondaryCaptureClass = "1.2.840.10008.5.1.4.1.1.7"
)

// Box is a localisation in the original's pixel coordinates (fracd.Box).
type Box = fracd.Box

// Result is one classified instance, as delivery needs it. Everything but
// Original is de-identified.
type Result struct {
	InstanceSHA256    string
	SOPInstanceUID    string // de-identified: the delivery's key, safe to log
	ModelID           string
	ModelArch         string
	ModelSHA256       string
	PreprocessVersion string
	Probability       float64
	Thresholds        fracd.Thresholds
	Boxes             []Box // optional
	// Original is the received file with the hospital's identifiers.
	Original []byte
}

// Category of the result.
func (r Result) Category() fracd.Category { return r.Thresholds.Categorize(r.Probability) }

// Builder makes the SR and SC objects. UID maps a domain-separated key to a
// UID; it must be stable (the same result gives the same UIDs, so a re-made
// or re-sent object is the same object to the PACS) and must not reveal the
// key (the site secret's HMAC).
type Builder struct {
	UID             func(key string) string
	Manufacturer    string // "fracd"
	SoftwareVersion string
	Now             func() time.Time
}

// original holds what the result objects copy from the original.
type original struct {
	elems        map[tag.Tag]*dicom.Element
	sopClass     string
	sop, study   string
	series       string
	accession    string
	nonASCII     bool
	rows, cols   int
	instanceNumb string
	laterality   []string // of the original series, if it is R or L
}

// Tags copied from the original into both objects: patient and study.
var copiedTags = []tag.Tag{
	tag.PatientName, tag.PatientID, tag.IssuerOfPatientID, tag.PatientBirthDate, tag.PatientSex,
	tag.StudyInstanceUID, tag.StudyDate, tag.StudyTime, tag.ReferringPhysicianName, tag.StudyID, tag.AccessionNumber,
}

// type 2 attributes: present, empty when the original lacks them.
var type2Tags = map[tag.Tag]bool{
	tag.PatientName: true, tag.PatientID: true, tag.PatientBirthDate: true, tag.PatientSex: true,
	tag.StudyDate: true, tag.StudyTime: true, tag.ReferringPhysicianName: true, tag.StudyID: true, tag.AccessionNumber: true,
}

func readOriginal(f *dicomio.File) (*original, error) {
	o := &original{elems: map[tag.Tag]*dicom.Element{}}
	get := func(t tag.Tag) string {
		e, err := f.Dataset.FindElementByTag(t)
		if err != nil {
			return ""
		}
		if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
			return strings.Trim(v[0], " \x00")
		}
		return ""
	}
	for _, t := range copiedTags {
		if e, err := f.Dataset.FindElementByTag(t); err == nil {
			o.elems[t] = e
			if v, ok := e.Value.GetValue().([]string); ok {
				for _, s := range v {
					for i := 0; i < len(s); i++ {
						if s[i] >= 0x80 {
							o.nonASCII = true
						}
					}
				}
			}
		}
	}
	o.sopClass, o.sop = get(tag.SOPClassUID), get(tag.SOPInstanceUID)
	o.study, o.series, o.accession = get(tag.StudyInstanceUID), get(tag.SeriesInstanceUID), get(tag.AccessionNumber)
	if e, err := f.Dataset.FindElementByTag(tag.InstanceNumber); err == nil {
		if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
			o.instanceNumb = strings.TrimSpace(v[0])
		}
	}
	// No names here: the error may be logged.
	for name, v := range map[string]string{"SOP Class UID": o.sopClass, "SOP Instance UID": o.sop,
		"Study Instance UID": o.study, "Series Instance UID": o.series} {
		if v == "" {
			return nil, fmt.Errorf("delivery: original has no %s", name)
		}
	}
	if l := get(tag.Laterality); l == "R" || l == "L" {
		o.laterality = []string{l}
	}
	if o.instanceNumb == "" {
		o.instanceNumb = "1"
	}
	return o, nil
}

// el makes an element with an explicit VR (the dictionary's first VR is not
// always the right one, e.g. 8-bit Pixel Data is OB).
func el(t tag.Tag, vr string, v any) *dicom.Element {
	val, err := dicom.NewValue(v)
	if err != nil {
		panic(fmt.Sprintf("delivery: element (%04X,%04X): %v", t.Group, t.Element, err))
	}
	return &dicom.Element{Tag: t, ValueRepresentation: tag.GetVRKind(t, vr), RawValueRepresentation: vr, Value: val}
}

func s(t tag.Tag, vr string, v ...string) *dicom.Element {
	if v == nil {
		v = []string{}
	}
	return el(t, vr, v)
}

func sq(t tag.Tag, items ...[]*dicom.Element) *dicom.Element {
	if items == nil {
		items = [][]*dicom.Element{}
	}
	for _, it := range items {
		sortElems(it)
	}
	return el(t, "SQ", items)
}

func sortElems(es []*dicom.Element) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Tag, es[j].Tag
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Element < b.Element
	})
}

// code is a Code Sequence item.
type code struct{ value, scheme, meaning string }

func (c code) item() []*dicom.Element {
	return []*dicom.Element{s(tag.CodeValue, "SH", c.value), s(tag.CodingSchemeDesignator, "SH", c.scheme), s(tag.CodeMeaning, "LO", c.meaning)}
}

// Codes used in the objects.
var (
	codeMeasurementReport  = code{"126000", "DCM", "Imaging Measurement Report"}
	codeLanguage           = code{"121049", "DCM", "Language of Content Item and Descendants"}
	codeEnglish            = code{"en-US", "RFC5646", "English (United States)"}
	codeObserverType       = code{"121005", "DCM", "Observer Type"}
	codeDevice             = code{"121007", "DCM", "Device"}
	codeDeviceUID          = code{"121012", "DCM", "Device Observer UID"}
	codeDeviceName         = code{"121013", "DCM", "Device Observer Name"}
	codeDeviceMfr          = code{"121014", "DCM", "Device Observer Manufacturer"}
	codeDeviceModel        = code{"121015", "DCM", "Device Observer Model Name"}
	codeProcedureReported  = code{"121058", "DCM", "Procedure reported"}
	codeRadiography        = code{"363680008", "SCT", "Radiographic imaging procedure"}
	codeImageLibrary       = code{"111028", "DCM", "Image Library"}
	codeImageLibraryGroup  = code{"126200", "DCM", "Image Library Group"}
	codeImagingMeasurement = code{"126010", "DCM", "Imaging Measurements"}
	codeMeasurementGroup   = code{"125007", "DCM", "Measurement Group"}
	codeTrackingID         = code{"112039", "DCM", "Tracking Identifier"}
	codeTrackingUID        = code{"112040", "DCM", "Tracking Unique Identifier"}
	codeFinding            = code{"121071", "DCM", "Finding"}
	codeFractureOfBone     = code{"125605004", "SCT", "Fracture of bone"}
	codePresent            = code{"52101004", "SCT", "Present"}
	codeAbsent             = code{"2667000", "SCT", "Absent"}
	codeCertainty          = code{"111012", "DCM", "Certainty of Finding"}
	codeNoUnits            = code{"1", "UCUM", "no units"}
	codeAlgorithmName      = code{"111001", "DCM", "Algorithm Name"}
	codeAlgorithmVersion   = code{"111003", "DCM", "Algorithm Version"}
	codeImageRegion        = code{"111030", "DCM", "Image Region"}
	codeProcessingEquip    = code{"109102", "DCM", "Processing Equipment"}
	// fracd's three-way category has no standard code: a private scheme,
	// declared in Coding Scheme Identification Sequence.
	codeCategory = code{"category", privateScheme, "fracd result category"}
)

const privateScheme = "99FRACD"

func categoryCode(c fracd.Category) code {
	switch c {
	case fracd.CategoryFracture:
		return code{"fracture", privateScheme, "Fracture"}
	case fracd.CategoryDoubt:
		return code{"doubt", privateScheme, "Doubt"}
	}
	return code{"no_fracture", privateScheme, "No fracture"}
}

// categoryText is what the secondary capture shows.
func categoryText(c fracd.Category) string {
	switch c {
	case fracd.CategoryFracture:
		return "FRACTURE"
	case fracd.CategoryDoubt:
		return "DOUBT"
	}
	return "NO FRACTURE"
}

func ds(v float64) string {
	out := strconv.FormatFloat(v, 'f', 6, 64)
	out = strings.TrimRight(strings.TrimRight(out, "0"), ".")
	if out == "" || out == "-" {
		out = "0"
	}
	return out
}

// common builds the elements both objects share: meta, patient, study,
// equipment, SOP common.
func (b *Builder) common(o *original, sopClass, sop, series, modality, seriesNumber string, now time.Time) []*dicom.Element {
	date, tm := now.Format("20060102"), now.Format("150405")
	es := []*dicom.Element{
		el(tag.FileMetaInformationVersion, "OB", []byte{0, 1}),
		s(tag.MediaStorageSOPClassUID, "UI", sopClass),
		s(tag.MediaStorageSOPInstanceUID, "UI", sop),
		s(tag.TransferSyntaxUID, "UI", dicomio.UIDExplicitVRLittleEndian),
		s(tag.ImplementationClassUID, "UI", b.UID("implementation")),
		s(tag.ImplementationVersionName, "SH", "FRACD"),
		s(tag.SOPClassUID, "UI", sopClass),
		s(tag.SOPInstanceUID, "UI", sop),
		s(tag.InstanceCreationDate, "DA", date),
		s(tag.InstanceCreationTime, "TM", tm),
		s(tag.ContentDate, "DA", date),
		s(tag.ContentTime, "TM", tm),
		s(tag.SeriesDate, "DA", date),
		s(tag.SeriesTime, "TM", tm),
		s(tag.Modality, "CS", modality),
		s(tag.SeriesInstanceUID, "UI", series),
		s(tag.SeriesNumber, "IS", seriesNumber),
		s(tag.SeriesDescription, "LO", "fracd fracture detection (AI)"),
		s(tag.InstanceNumber, "IS", o.instanceNumb),
		s(tag.Manufacturer, "LO", b.Manufacturer),
		s(tag.ManufacturerModelName, "LO", b.Manufacturer),
		s(tag.SoftwareVersions, "LO", b.SoftwareVersion),
		s(tag.DeviceSerialNumber, "LO", b.UID("device")),
		sq(tag.ContributingEquipmentSequence, []*dicom.Element{
			sq(tag.PurposeOfReferenceCodeSequence, codeProcessingEquip.item()),
			s(tag.Manufacturer, "LO", b.Manufacturer),
			s(tag.ManufacturerModelName, "LO", b.Manufacturer),
			s(tag.SoftwareVersions, "LO", b.SoftwareVersion),
			s(tag.DeviceUID, "UI", b.UID("device")),
			s(tag.ContributionDateTime, "DT", now.Format("20060102150405")),
			s(tag.ContributionDescription, "ST", "Fracture detection by fracd (decision support, not a diagnosis)"),
		}),
	}
	if o.nonASCII {
		// suyashkumar decodes text to UTF-8; it is written back as such.
		es = append(es, s(tag.SpecificCharacterSet, "CS", "ISO_IR 192"))
	}
	for _, t := range copiedTags {
		if e, ok := o.elems[t]; ok {
			es = append(es, e)
		} else if type2Tags[t] {
			info, _ := tag.Find(t)
			es = append(es, s(t, info.VRs[0]))
		}
	}
	return es
}

// Build makes the SR and the secondary capture for a result. Errors name no
// identifier.
func (b *Builder) Build(r Result) (sr, sc dicom.Dataset, err error) {
	if err := r.Thresholds.Validate(); err != nil {
		return sr, sc, fmt.Errorf("delivery: %s: %w", r.SOPInstanceUID, err)
	}
	f, err := dicomio.Parse(r.Original)
	if err != nil {
		return sr, sc, fmt.Errorf("delivery: parse original of %s: %w", r.SOPInstanceUID, err)
	}
	o, err := readOriginal(f)
	if err != nil {
		return sr, sc, fmt.Errorf("delivery: %s: %w", r.SOPInstanceUID, err)
	}
	gray, err := f.Render8(0)
	if err != nil {
		return sr, sc, fmt.Errorf("delivery: render original of %s: %w", r.SOPInstanceUID, err)
	}
	now := time.Now()
	if b.Now != nil {
		now = b.Now()
	}
	return b.buildSR(o, r, now), b.buildSC(o, r, gray, now), nil
}
