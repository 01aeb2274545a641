// Package testdicom makes small, valid DICOM X-ray files for tests and for the
// sample in testdata/: a synthetic bone-like image with fake identifiers in
// the places real ones sit. Everything here is generated; no corpus is copied.
package testdicom

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fracd/fracd/dicomio"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Spec describes one file.
type Spec struct {
	Rows, Cols int
	// Seed varies the image and the UIDs, so different seeds give
	// different instances.
	Seed int
	// PatientName, PatientID: fake identifiers (defaults below).
	PatientName, PatientID string
	// SOPInstanceUID overrides the generated one (to make a re-send).
	SOPInstanceUID string
	Monochrome1    bool
	// BurnedIn sets Burned In Annotation (YES/NO) when non-empty.
	BurnedIn string
	// NoPixelData leaves Pixel Data out.
	NoPixelData bool
	// SOPClassUID overrides Digital X-Ray Image Storage (e.g. an SR class).
	SOPClassUID string
	// TransferSyntax overrides Explicit VR Little Endian (the pixel data is
	// still native; use it to make an unsupported syntax).
	TransferSyntax string
	// DeclaredRows/Cols, when set, are written instead of the real size (to
	// make a header that claims a huge image).
	DeclaredRows, DeclaredCols int
}

// Identifiers planted in every file unless overridden; tests check that none
// reaches an output.
const (
	DefaultPatientName = "Fakename^Testpatient"
	DefaultPatientID   = "FAKE-MRN-0042"
	BirthDate          = "19610704"
	Accession          = "FAKEACC-9917"
	Institution        = "Fake General Hospital"
	Physician          = "Fakedoc^Referring"
)

// PHI lists the identifiers a Spec plants.
func (s Spec) PHI() []string {
	s = s.withDefaults()
	return []string{s.PatientName, s.PatientID, BirthDate, Accession, Institution, Physician, s.sopUID(), s.studyUID()}
}

func (s Spec) withDefaults() Spec {
	if s.Rows == 0 {
		s.Rows = 96
	}
	if s.Cols == 0 {
		s.Cols = 80
	}
	if s.PatientName == "" {
		s.PatientName = DefaultPatientName
	}
	if s.PatientID == "" {
		s.PatientID = DefaultPatientID
	}
	return s
}

func (s Spec) sopUID() string {
	if s.SOPInstanceUID != "" {
		return s.SOPInstanceUID
	}
	return fmt.Sprintf("1.2.826.0.1.3680043.10.1042.3.%d", s.Seed+1)
}
func (s Spec) studyUID() string { return fmt.Sprintf("1.2.826.0.1.3680043.10.1042.1.%d", s.Seed+1) }

func elem(t tag.Tag, v any) *dicom.Element {
	e, err := dicom.NewElement(t, v)
	if err != nil {
		panic(fmt.Sprintf("testdicom: element %v: %v", t, err))
	}
	return e
}

// Pixels returns the 12-bit image stored in the file, row-major.
func (s Spec) Pixels() []uint16 {
	s = s.withDefaults()
	px := make([]uint16, s.Rows*s.Cols)
	cx, cy := float64(s.Cols)/2, float64(s.Rows)/2
	for y := 0; y < s.Rows; y++ {
		for x := 0; x < s.Cols; x++ {
			// A bright diagonal "bone" with a gap (a "fracture") on soft tissue.
			dx, dy := float64(x)-cx, float64(y)-cy
			along := (dx + dy) / math.Sqrt2
			across := (dx - dy) / math.Sqrt2
			v := 600 + 400*math.Exp(-(dx*dx+dy*dy)/float64(s.Rows*s.Cols))
			if math.Abs(across) < float64(s.Cols)/10 && math.Abs(along-float64(s.Seed%7)) > 2 {
				v += 2400
			}
			v += float64((x*31+y*17+s.Seed*13)%64) - 32
			px[y*s.Cols+x] = uint16(math.Max(0, math.Min(4095, v)))
		}
	}
	return px
}

// Bytes encodes the file.
func (s Spec) Bytes() ([]byte, error) {
	s = s.withDefaults()
	ts := dicomio.UIDExplicitVRLittleEndian
	photometric := "MONOCHROME2"
	if s.Monochrome1 {
		photometric = "MONOCHROME1"
	}
	rows, cols := s.Rows, s.Cols
	if s.DeclaredRows > 0 {
		rows = s.DeclaredRows
	}
	if s.DeclaredCols > 0 {
		cols = s.DeclaredCols
	}
	dxSOPClass := "1.2.840.10008.5.1.4.1.1.1.1" // Digital X-Ray Image Storage - For Presentation
	if s.SOPClassUID != "" {
		dxSOPClass = s.SOPClassUID
	}
	elems := []*dicom.Element{
		elem(tag.FileMetaInformationVersion, []byte{0, 1}),
		elem(tag.MediaStorageSOPClassUID, []string{dxSOPClass}),
		elem(tag.MediaStorageSOPInstanceUID, []string{s.sopUID()}),
		elem(tag.TransferSyntaxUID, []string{ts}),
		elem(tag.ImplementationClassUID, []string{"1.2.826.0.1.3680043.10.1042.99"}),
		elem(tag.SOPClassUID, []string{dxSOPClass}),
		elem(tag.SOPInstanceUID, []string{s.sopUID()}),
		elem(tag.StudyDate, []string{"20260315"}),
		elem(tag.AccessionNumber, []string{Accession}),
		elem(tag.Modality, []string{"DX"}),
		elem(tag.InstitutionName, []string{Institution}),
		elem(tag.ReferringPhysicianName, []string{Physician}),
		elem(tag.PatientName, []string{s.PatientName}),
		elem(tag.PatientID, []string{s.PatientID}),
		elem(tag.PatientBirthDate, []string{BirthDate}),
		elem(tag.PatientSex, []string{"O"}),
		elem(tag.BodyPartExamined, []string{"HAND"}),
		elem(tag.StudyInstanceUID, []string{s.studyUID()}),
		elem(tag.SeriesInstanceUID, []string{fmt.Sprintf("1.2.826.0.1.3680043.10.1042.2.%d", s.Seed+1)}),
		elem(tag.SamplesPerPixel, []int{1}),
		elem(tag.PhotometricInterpretation, []string{photometric}),
		elem(tag.Rows, []int{rows}),
		elem(tag.Columns, []int{cols}),
		elem(tag.BitsAllocated, []int{16}),
		elem(tag.BitsStored, []int{12}),
		elem(tag.HighBit, []int{11}),
		elem(tag.PixelRepresentation, []int{0}),
		elem(tag.WindowCenter, []string{"2048"}),
		elem(tag.WindowWidth, []string{"4096"}),
	}
	if s.BurnedIn != "" {
		elems = append(elems, elem(tag.BurnedInAnnotation, []string{s.BurnedIn}))
	}
	if !s.NoPixelData {
		px := s.Pixels()
		raw := make([]byte, 2*len(px))
		for i, v := range px {
			binary.LittleEndian.PutUint16(raw[2*i:], v)
		}
		elems = append(elems, elem(tag.PixelData, dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: raw}))
	}
	var buf bytes.Buffer
	if err := dicomio.Write(&buf, dicom.Dataset{Elements: elems}); err != nil {
		return nil, fmt.Errorf("testdicom: encode: %w", err)
	}
	if s.TransferSyntax == "" {
		return buf.Bytes(), nil
	}
	return replaceTransferSyntax(buf.Bytes(), s.TransferSyntax, s.sopUID(), dxSOPClass)
}

// replaceTransferSyntax re-encodes the file meta group by hand with another
// transfer syntax, since no writer will encode a syntax it cannot handle.
func replaceTransferSyntax(file []byte, ts, sop, sopClass string) ([]byte, error) {
	if len(file) < 144 || string(file[128:132]) != "DICM" {
		return nil, fmt.Errorf("testdicom: not a Part 10 file")
	}
	groupLen := binary.LittleEndian.Uint32(file[140:144])
	body := file[144+int(groupLen):]
	var meta bytes.Buffer
	put := func(elem uint16, vr string, val []byte) {
		if len(val)%2 == 1 {
			pad := byte(0)
			if vr != "UI" && vr != "OB" {
				pad = ' '
			}
			val = append(val, pad)
		}
		binary.Write(&meta, binary.LittleEndian, [2]uint16{0x0002, elem})
		meta.WriteString(vr)
		if vr == "OB" {
			meta.Write([]byte{0, 0})
			binary.Write(&meta, binary.LittleEndian, uint32(len(val)))
		} else {
			binary.Write(&meta, binary.LittleEndian, uint16(len(val)))
		}
		meta.Write(val)
	}
	put(0x0001, "OB", []byte{0, 1})
	put(0x0002, "UI", []byte(sopClass))
	put(0x0003, "UI", []byte(sop))
	put(0x0010, "UI", []byte(ts))
	put(0x0012, "UI", []byte("1.2.826.0.1.3680043.10.1042.99"))
	var out bytes.Buffer
	out.Write(file[:132])
	binary.Write(&out, binary.LittleEndian, [2]uint16{0x0002, 0x0000})
	out.WriteString("UL")
	binary.Write(&out, binary.LittleEndian, uint16(4))
	binary.Write(&out, binary.LittleEndian, uint32(meta.Len()))
	out.Write(meta.Bytes())
	out.Write(encapsulate(body))
	return out.Bytes(), nil
}

// encapsulate turns the native Pixel Data element (the last one) into an
// encapsulated one holding the native bytes as a single fragment, as an
// encoder of a syntax we do not support would lay it out.
func encapsulate(body []byte) []byte {
	marker := []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'W', 0, 0}
	i := bytes.LastIndex(body, marker)
	if i < 0 {
		return body
	}
	n := binary.LittleEndian.Uint32(body[i+8 : i+12])
	frag := body[i+12 : i+12+int(n)]
	var out bytes.Buffer
	out.Write(body[:i])
	out.Write([]byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	item := func(length uint32) {
		binary.Write(&out, binary.LittleEndian, [2]uint16{0xFFFE, 0xE000})
		binary.Write(&out, binary.LittleEndian, length)
	}
	item(0) // empty Basic Offset Table
	item(uint32(len(frag)))
	out.Write(frag)
	binary.Write(&out, binary.LittleEndian, [2]uint16{0xFFFE, 0xE0DD})
	binary.Write(&out, binary.LittleEndian, uint32(0))
	out.Write(body[i+12+int(n):])
	return out.Bytes()
}

// Sample is testdata/sample-hand-dx.dcm: a 512x416 synthetic hand DX with
// fake identifiers, for trying fracd out.
func Sample() ([]byte, error) {
	return Spec{Rows: 512, Cols: 416, Seed: 5}.Bytes()
}
