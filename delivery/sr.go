package delivery

import (
	"fmt"
	"strconv"
	"time"

	"github.com/fracd/fracd"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Content item helpers (PS3.3 C.17.3): each returns one item of a Content
// Sequence.

func contentItem(rel, valueType string, concept *code, rest ...*dicom.Element) []*dicom.Element {
	es := []*dicom.Element{s(tag.RelationshipType, "CS", rel), s(tag.ValueType, "CS", valueType)}
	if concept != nil {
		es = append(es, sq(tag.ConceptNameCodeSequence, concept.item()))
	}
	return append(es, rest...)
}

func containerItem(rel string, concept code, children ...[]*dicom.Element) []*dicom.Element {
	return contentItem(rel, "CONTAINER", &concept, s(tag.ContinuityOfContent, "CS", "SEPARATE"), sq(tag.ContentSequence, children...))
}

func codeItem(rel string, concept, value code) []*dicom.Element {
	return contentItem(rel, "CODE", &concept, sq(tag.ConceptCodeSequence, value.item()))
}

func textItem(rel string, concept code, text string) []*dicom.Element {
	return contentItem(rel, "TEXT", &concept, s(tag.TextValue, "UT", text))
}

func uidItem(rel string, concept code, uid string) []*dicom.Element {
	return contentItem(rel, "UIDREF", &concept, s(tag.UID, "UI", uid))
}

func numItem(rel string, concept code, v float64, units code) []*dicom.Element {
	return contentItem(rel, "NUM", &concept, sq(tag.MeasuredValueSequence, []*dicom.Element{
		sq(tag.MeasurementUnitsCodeSequence, units.item()),
		s(tag.NumericValue, "DS", ds(v)),
	}))
}

func imageItem(rel string, sopClass, sop string) []*dicom.Element {
	return contentItem(rel, "IMAGE", nil, sq(tag.ReferencedSOPSequence, []*dicom.Element{
		s(tag.ReferencedSOPClassUID, "UI", sopClass),
		s(tag.ReferencedSOPInstanceUID, "UI", sop),
	}))
}

// closedPolyline is a box as a SCOORD POLYLINE whose last point repeats the
// first (PS3.3 C.18.6.1.2: a closed polyline).
func closedPolyline(b Box) []float64 {
	return []float64{b.X0, b.Y0, b.X1, b.Y0, b.X1, b.Y1, b.X0, b.Y1, b.X0, b.Y0}
}

func presenceCode(c fracd.Category) code {
	switch c {
	case fracd.CategoryFracture:
		return codePresent
	case fracd.CategoryDoubt:
		// Neither present nor absent: the category item says why.
		return code{"42425007", "SCT", "Equivocal"}
	}
	return codeAbsent
}

// algorithm is TID 4019 (Algorithm Identification).
func algorithm(r Result) [][]*dicom.Element {
	name := "fracd fracture classifier"
	if r.ModelArch != "" {
		name += " (" + r.ModelArch + ")"
	}
	version := r.ModelID
	if r.ModelSHA256 != "" {
		version += " weights sha256 " + r.ModelSHA256
	}
	if r.PreprocessVersion != "" {
		version += " preprocessing " + r.PreprocessVersion
	}
	return [][]*dicom.Element{
		textItem("HAS CONCEPT MOD", codeAlgorithmName, name),
		textItem("HAS CONCEPT MOD", codeAlgorithmVersion, version),
	}
}

// buildSR makes the TID 1500 Measurement Report (Comprehensive SR) for a
// result: the finding Fracture of bone with its presence, fracd's category
// and the probability, one region per box, and the algorithm (TID 4019).
func (b *Builder) buildSR(o *original, r Result, now time.Time) dicom.Dataset {
	sop := b.UID("sr/" + o.sop)
	series := b.UID("sr-series/" + o.study)
	cat := r.Category()

	group := [][]*dicom.Element{
		textItem("CONTAINS", codeTrackingID, "fracture finding"),
		uidItem("CONTAINS", codeTrackingUID, b.UID("finding/"+o.sop)),
		codeItem("CONTAINS", codeFinding, codeFractureOfBone),
	}
	group = append(group, algorithm(r)...)
	group = append(group,
		numItem("CONTAINS", codeCertainty, r.Probability, codeNoUnits),
		codeItem("CONTAINS", codeFractureOfBone, presenceCode(cat)),
		codeItem("CONTAINS", codeCategory, categoryCode(cat)),
	)
	measurements := [][]*dicom.Element{containerItem("CONTAINS", codeMeasurementGroup, group...)}
	for i, box := range r.Boxes {
		region := [][]*dicom.Element{
			textItem("CONTAINS", codeTrackingID, "fracture region "+strconv.Itoa(i+1)),
			uidItem("CONTAINS", codeTrackingUID, b.UID(fmt.Sprintf("region/%d/%s", i+1, o.sop))),
			codeItem("CONTAINS", codeFinding, codeFractureOfBone),
		}
		region = append(region, algorithm(r)...)
		region = append(region,
			contentItem("CONTAINS", "SCOORD", &codeImageRegion,
				el(tag.GraphicData, "FL", closedPolyline(box)),
				s(tag.GraphicType, "CS", "POLYLINE"),
				sq(tag.ContentSequence, imageItem("SELECTED FROM", o.sopClass, o.sop)),
			),
			numItem("CONTAINS", codeCertainty, box.Score, codeNoUnits),
		)
		measurements = append(measurements, containerItem("CONTAINS", codeMeasurementGroup, region...))
	}

	content := [][]*dicom.Element{
		codeItem("HAS CONCEPT MOD", codeLanguage, codeEnglish),
		codeItem("HAS OBS CONTEXT", codeObserverType, codeDevice),
		uidItem("HAS OBS CONTEXT", codeDeviceUID, b.UID("device")),
		textItem("HAS OBS CONTEXT", codeDeviceName, b.Manufacturer),
		textItem("HAS OBS CONTEXT", codeDeviceMfr, b.Manufacturer),
		textItem("HAS OBS CONTEXT", codeDeviceModel, b.Manufacturer+" "+r.ModelArch),
		codeItem("HAS CONCEPT MOD", codeProcedureReported, codeRadiography),
		containerItem("CONTAINS", codeImageLibrary,
			containerItem("CONTAINS", codeImageLibraryGroup, imageItem("CONTAINS", o.sopClass, o.sop))),
		containerItem("CONTAINS", codeImagingMeasurement, measurements...),
	}

	es := b.common(o, ComprehensiveSRClass, sop, series, "SR", "9901", now)
	es = append(es,
		s(tag.ValueType, "CS", "CONTAINER"),
		sq(tag.ConceptNameCodeSequence, codeMeasurementReport.item()),
		s(tag.ContinuityOfContent, "CS", "SEPARATE"),
		sq(tag.ContentTemplateSequence, []*dicom.Element{s(tag.MappingResource, "CS", "DCMR"), s(tag.TemplateIdentifier, "CS", "1500")}),
		sq(tag.ContentSequence, content...),
		s(tag.CompletionFlag, "CS", "COMPLETE"),
		s(tag.VerificationFlag, "CS", "UNVERIFIED"),
		sq(tag.PerformedProcedureCodeSequence),
		sq(tag.ReferencedPerformedProcedureStepSequence),
		sq(tag.CurrentRequestedProcedureEvidenceSequence, []*dicom.Element{
			s(tag.StudyInstanceUID, "UI", o.study),
			sq(tag.ReferencedSeriesSequence, []*dicom.Element{
				s(tag.SeriesInstanceUID, "UI", o.series),
				sq(tag.ReferencedSOPSequence, []*dicom.Element{
					s(tag.ReferencedSOPClassUID, "UI", o.sopClass),
					s(tag.ReferencedSOPInstanceUID, "UI", o.sop),
				}),
			}),
		}),
		sq(tag.CodingSchemeIdentificationSequence, []*dicom.Element{
			s(tag.CodingSchemeDesignator, "SH", privateScheme),
			s(tag.CodingSchemeName, "ST", "fracd result categories"),
			s(tag.CodingSchemeResponsibleOrganization, "ST", "fracd"),
		}),
	)
	sortElems(es)
	return dicom.Dataset{Elements: es}
}
