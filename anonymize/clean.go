package anonymize

import (
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
)

// builtinVocabulary is the word list the Clean Descriptors rule accepts:
// radiology, anatomy and projection words that cannot name a person, place
// or number. Anything else in a descriptor makes it unclean.
var builtinVocabulary = strings.Fields(`
XR DX CR CT MR MRI US NM PT RF XA MG X RAY XRAY RADIOGRAPH RADIOGRAPHY IMAGE IMAGES
HAND HANDS WRIST WRISTS ELBOW ELBOWS FOREARM HUMERUS SHOULDER SHOULDERS CLAVICLE
SCAPULA ARM ARMS FINGER FINGERS THUMB DIGIT DIGITS HIP HIPS PELVIS FEMUR KNEE KNEES
PATELLA TIBIA FIBULA LEG LEGS ANKLE ANKLES FOOT FEET TOE TOES HEEL CALCANEUS
SPINE CERVICAL THORACIC LUMBAR SACRUM COCCYX CHEST THORAX RIB RIBS STERNUM SKULL
FACE FACIAL MANDIBLE NASAL ORBIT ORBITS SINUS SINUSES ABDOMEN ABDOMINAL HEAD NECK
UPPER LOWER EXTREMITY EXTREMITIES LIMB JOINT JOINTS BONE BONES SOFT TISSUE
LEFT RIGHT BILATERAL BOTH L R LT RT AP PA LAT LATERAL OBLIQUE OBL VIEW VIEWS
AXIAL FRONTAL DORSAL PALMAR PLANTAR MEDIAL PROXIMAL DISTAL STANDING SUPINE
PRONE ERECT UPRIGHT WEIGHT BEARING FLEXION EXTENSION STRESS
AND OF WITH W WO WITHOUT FOR THE A IN ON OR NO
CONTRAST SERIES STUDY ROUTINE PORTABLE TRAUMA FRACTURE FOLLOW UP POST PRE OP
SCOUT LOCALIZER SURVEY SKELETAL ONE TWO THREE FOUR MIN MINIMUM
`)

func isWordRune(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
}

// provablyClean reports whether every value of a text element consists of
// vocabulary words and single digits only.
func (a *Anonymizer) provablyClean(e *dicom.Element) bool {
	if e.Value == nil || e.Value.ValueType() != dicom.Strings {
		return false
	}
	switch e.RawValueRepresentation {
	case "LO", "SH", "ST", "LT", "UT", "UC", "CS":
	default:
		return false
	}
	for _, v := range stringValues(e) {
		for _, w := range strings.FieldsFunc(strings.ToUpper(v), func(r rune) bool { return !isWordRune(r) }) {
			if len(w) == 1 && w[0] >= '0' && w[0] <= '9' {
				continue
			}
			if !a.vocab[w] {
				return false
			}
		}
	}
	return true
}

// shiftDates applies the per-patient shift to a DA or DT element (TM is
// kept: the shift is whole days). It returns false, without changing e, when
// a value is not a full date it can shift, so the caller falls back to the
// basic action.
func (r *run) shiftDates(e *dicom.Element) (bool, error) {
	if isSeq(e) {
		return true, r.recurse(e)
	}
	vr := e.RawValueRepresentation
	if vr == "TM" {
		return true, nil
	}
	if vr != "DA" && vr != "DT" {
		return false, nil
	}
	vals := stringValues(e)
	if vals == nil {
		return false, nil
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		if v == "" {
			continue
		}
		s, ok := shiftDate(v, vr, r.shiftDays)
		if !ok {
			return false, nil
		}
		out[i] = s
	}
	return true, setStrings(e, out)
}

// shiftDate moves the date part of a DA (YYYYMMDD, or ACR-NEMA YYYY.MM.DD) or
// DT (YYYYMMDD...) value back by days; the rest of a DT is kept.
func shiftDate(v, vr string, days int) (string, bool) {
	datePart, rest := v, ""
	if vr == "DA" && len(v) == 10 && v[4] == '.' && v[7] == '.' {
		datePart = v[:4] + v[5:7] + v[8:]
	}
	if vr == "DT" && len(v) >= 8 {
		datePart, rest = v[:8], v[8:]
	}
	if len(datePart) != 8 {
		return "", false
	}
	d, err := time.Parse("20060102", datePart)
	if err != nil {
		return "", false
	}
	return d.AddDate(0, 0, -days).Format("20060102") + rest, true
}
