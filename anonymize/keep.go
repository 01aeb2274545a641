package anonymize

import (
	"slices"
	"strings"

	"github.com/fracd/fracd/dicomio"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// keptUnlisted is the explicit safe list: public attributes that Table E.1-1
// does not list and that the profile keeps, because decoding and rendering
// the pixels (and describing what they show) need them. They are coded,
// numeric or structural; no free-text or person-name attribute is on it.
// Everything else the table does not list is removed, except UI values,
// which are remapped (see unlisted). A kept value must also be valid for its
// VR (safeValue), so text smuggled into, say, Modality does not pass.
var keptUnlisted = func() map[tag.Tag]bool {
	m := map[tag.Tag]bool{}
	for _, t := range []tag.Tag{
		// SOP Common, and the class (not instance) of referenced objects.
		tag.SpecificCharacterSet, tag.SOPClassUID, tag.ReferencedSOPClassUID,
		// Reference structure: their instance UIDs are remapped inside.
		tag.ReferencedSeriesSequence, tag.ReferencedInstanceSequence,
		// What the image is (coded values).
		tag.ImageType, tag.Modality, tag.ConversionType, tag.PresentationIntentType,
		tag.BodyPartExamined, tag.ViewPosition, tag.PatientOrientation, tag.Laterality,
		tag.ImageLaterality, tag.SeriesNumber, tag.InstanceNumber, tag.BurnedInAnnotation,
		tag.LossyImageCompression, tag.LossyImageCompressionRatio, tag.LossyImageCompressionMethod,
		// Image Pixel module and geometry.
		tag.SamplesPerPixel, tag.PhotometricInterpretation, tag.PlanarConfiguration,
		tag.NumberOfFrames, tag.FrameIncrementPointer, tag.Rows, tag.Columns,
		tag.PixelSpacing, tag.ImagerPixelSpacing, tag.PixelAspectRatio,
		tag.BitsAllocated, tag.BitsStored, tag.HighBit, tag.PixelRepresentation,
		tag.SmallestImagePixelValue, tag.LargestImagePixelValue,
		tag.PixelPaddingValue, tag.PixelPaddingRangeLimit,
		tag.PixelIntensityRelationship, tag.PixelIntensityRelationshipSign,
		// Modality LUT, VOI LUT, palette, presentation LUT.
		tag.RescaleIntercept, tag.RescaleSlope, tag.ModalityLUTSequence,
		tag.WindowCenter, tag.WindowWidth, tag.VOILUTFunction, tag.VOILUTSequence,
		tag.LUTDescriptor, tag.LUTData,
		tag.RedPaletteColorLookupTableDescriptor, tag.GreenPaletteColorLookupTableDescriptor,
		tag.BluePaletteColorLookupTableDescriptor, tag.RedPaletteColorLookupTableData,
		tag.GreenPaletteColorLookupTableData, tag.BluePaletteColorLookupTableData,
		tag.SegmentedRedPaletteColorLookupTableData, tag.SegmentedGreenPaletteColorLookupTableData,
		tag.SegmentedBluePaletteColorLookupTableData, tag.PresentationLUTShape,
		// Frame location in encapsulated pixel data.
		tag.ExtendedOffsetTable, tag.ExtendedOffsetTableLengths,
	} {
		m[t] = true
	}
	return m
}()

// unlisted decides an element Table E.1-1 does not list; false means remove.
func (r *run) unlisted(e *dicom.Element) (bool, error) {
	if keptUnlisted[e.Tag] {
		if !safeValue(e) {
			return false, nil
		}
		return true, r.recurse(e)
	}
	if e.RawValueRepresentation == "UI" {
		// An instance UID the table does not know of (Concatenation Source,
		// Multi-frame Source, Volume Frame of Reference...): remapped like
		// the ones it lists, so references stay consistent.
		if r.a.opts.RetainUIDs {
			return true, r.mapInvalidUIDs(e)
		}
		return true, r.mapUIDs(e)
	}
	return false, nil
}

// safeValue reports whether a safe-listed element has a VR the dictionary
// allows for it and values valid for that VR.
func safeValue(e *dicom.Element) bool {
	vr := e.RawValueRepresentation
	info, err := tag.Find(e.Tag)
	if err != nil || !slices.Contains(info.VRs, vr) {
		return false
	}
	switch vr {
	case "US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "OV":
		return true // numbers and pixel-like data
	case "SQ":
		return isSeq(e)
	case "UI":
		return allValidUIDs(stringValues(e))
	case "CS":
		if e.Tag == tag.Modality {
			// Stored in the database: only a defined term, never a code-like name.
			return allMatch(stringValues(e), 16, isCodeRune) && allIn(stringValues(e), modalities)
		}
		return allMatch(stringValues(e), 16, isCodeRune)
	case "DS":
		return allMatch(stringValues(e), 16, func(r rune) bool { return r >= '0' && r <= '9' || strings.ContainsRune("+-.eE ", r) })
	case "IS":
		return allMatch(stringValues(e), 12, func(r rune) bool { return r >= '0' && r <= '9' || r == '+' || r == '-' || r == ' ' })
	}
	return false
}

// modalities are the defined terms of Modality (0008,0060), PS3.3
// C.7.3.1.1.1, current and retired.
var modalities = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range strings.Fields(`AR ASMT AU BDUS BI BMD CR CT CTPROTOCOL DG DOC DX ECG EPS ES FID GM HC HD
		IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PLAN
		POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT
		RWV SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC
		AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF`) {
		m[v] = true
	}
	return m
}()

func allIn(vals []string, set map[string]bool) bool {
	for _, v := range vals {
		if !set[strings.ToUpper(v)] {
			return false
		}
	}
	return true
}

// isCodeRune: the Code String repertoire (PS3.5 6.2), lower case tolerated
// since some exporters write it.
func isCodeRune(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == ' ' || r == '_'
}

func allMatch(vals []string, maxLen int, ok func(rune) bool) bool {
	if vals == nil {
		return false
	}
	for _, v := range vals {
		if len(v) > maxLen || strings.IndexFunc(v, func(r rune) bool { return !ok(r) }) >= 0 {
			return false
		}
	}
	return true
}

// ValidUID reports whether s is a UID as PS3.5 9.1 spells it (the check
// dicomio makes of what it reads). Only such values are ever kept, or
// quoted, as UIDs.
func ValidUID(s string) bool { return dicomio.ValidUID(s) }

// allValidUIDs: every non-empty value is a valid UID.
func allValidUIDs(vals []string) bool {
	if vals == nil {
		return false
	}
	for _, v := range vals {
		if v != "" && !ValidUID(v) {
			return false
		}
	}
	return true
}
