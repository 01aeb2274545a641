package anonymize

import (
	"fmt"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// action is a resolved, single action for one element.
type action int

const (
	actKeep     action = iota // K, and sequences kept for their content (U*)
	actRemove                 // X
	actZero                   // Z
	actDummy                  // D
	actUID                    // U
	actShift                  // C of the modified-dates option: shift dates
	actCleanTxt               // C of the other options: keep if proven clean
)

// run holds the per-instance state of one Apply.
type run struct {
	a                *Anonymizer
	sopClass         string
	patientPseudonym string
	shiftDays        int
}

// item applies the profile to the elements of one dataset or sequence item
// and returns the elements to keep.
func (r *run) item(elems []*dicom.Element, top bool) ([]*dicom.Element, error) {
	keepPriv := r.safePrivate(elems)
	out := elems[:0:0]
	for _, e := range elems {
		t := e.Tag
		switch {
		case top && t.Group == 0x0002:
			// The file meta is rebuilt as fracd's own (fileMeta): nothing the
			// sender put there (AE titles, implementation, private data) is kept.
			continue
		case t.Element == 0x0000:
			// Group lengths (retired) would be stale after removals.
			continue
		case t.Group%2 == 1:
			if !keepPriv[t] {
				continue
			}
			if err := r.recurse(e); err != nil {
				return nil, err
			}
			out = append(out, e)
			continue
		case t.Group >= 0x6000 && t.Group <= 0x601E:
			// The table removes Overlay Data and Comments; an overlay plane
			// without its Type 1 data is invalid, and its description and
			// label are free text too, so the whole group goes.
			continue
		case t == tag.PixelData:
			out = append(out, e)
			continue
		}
		rule := r.a.table.lookup(t)
		if rule == nil {
			// Not in the table: what the table does not know is not kept,
			// unless the safe list says so (keep.go).
			keep, err := r.unlisted(e)
			if err != nil {
				return nil, fmt.Errorf("anonymize: %v: %w", t, err)
			}
			if keep {
				out = append(out, e)
			}
			continue
		}
		keep, err := r.applyRule(e, rule, top)
		if err != nil {
			return nil, fmt.Errorf("anonymize: %v: %w", t, err)
		}
		if keep {
			out = append(out, e)
		}
	}
	return out, nil
}

// safePrivate returns the private tags (data elements and their creators)
// of one item that the Retain Safe Private option keeps.
func (r *run) safePrivate(elems []*dicom.Element) map[tag.Tag]bool {
	if !r.a.opts.RetainSafePrivate || len(r.a.safePriv) == 0 {
		return nil
	}
	creators := map[tag.Tag]string{}
	for _, e := range elems {
		if e.Tag.Group%2 == 1 && e.Tag.Element >= 0x0010 && e.Tag.Element <= 0x00FF {
			if v := stringValues(e); len(v) > 0 {
				creators[e.Tag] = v[0]
			}
		}
	}
	keep := map[tag.Tag]bool{}
	for _, e := range elems {
		g, el := e.Tag.Group, e.Tag.Element
		if g%2 == 0 || el < 0x1000 {
			continue
		}
		ct := tag.Tag{Group: g, Element: el >> 8}
		c, ok := creators[ct]
		if ok && r.a.safePriv[PrivateAttr{Creator: c, Group: g, Element: uint8(el)}] {
			keep[e.Tag] = true
			keep[ct] = true
		}
	}
	return keep
}

// recurse profiles the items of a sequence element in place.
func (r *run) recurse(e *dicom.Element) error {
	if e.Value == nil || e.Value.ValueType() != dicom.Sequences {
		return nil
	}
	items := e.Value.GetValue().([]*dicom.SequenceItemValue)
	newItems := make([][]*dicom.Element, 0, len(items))
	for i, it := range items {
		elems, _ := it.GetValue().([]*dicom.Element)
		kept, err := r.item(elems, false)
		if err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
		newItems = append(newItems, kept)
	}
	v, err := dicom.NewValue(newItems)
	if err != nil {
		return err
	}
	e.Value = v
	return nil
}

// resolve picks the single action for an element under the enabled options.
// Options override the basic profile; where two apply, K wins over C.
func (r *run) resolve(e *dicom.Element, rule *Rule) action {
	var clean []option
	for o := option(0); o < numOptions; o++ {
		if !r.a.on[o] {
			continue
		}
		switch rule.Options[optionColumns[o]] {
		case "K":
			return actKeep
		case "C":
			clean = append(clean, o)
		}
	}
	for _, o := range clean {
		if o == optLongModifiedDates {
			return actShift
		}
	}
	if len(clean) > 0 {
		return actCleanTxt
	}
	return r.basic(e, rule)
}

// basic resolves the basic-profile code, picking from a combined code by
// the attribute's type in the IOD (1 -> D, 2 -> Z, 3 -> X; U* keeps the
// sequence so its instance UIDs are replaced) and, where the type is not
// known, the safer (leftmost: X before Z before D) action.
func (r *run) basic(e *dicom.Element, rule *Rule) action {
	parts := strings.Split(rule.Basic, "/")
	if len(parts) == 1 {
		return single(parts[0])
	}
	has := func(c string) bool {
		for _, p := range parts {
			if p == c {
				return true
			}
		}
		return false
	}
	switch iodType(e.Tag, r.sopClass) {
	case 1:
		for _, c := range []string{"D", "U*", "Z"} {
			if has(c) {
				return single(c)
			}
		}
	case 2:
		for _, c := range []string{"Z", "D", "U*"} {
			if has(c) {
				return single(c)
			}
		}
	}
	return single(parts[0])
}

func single(c string) action {
	switch c {
	case "K", "U*":
		return actKeep
	case "X":
		return actRemove
	case "Z":
		return actZero
	case "D":
		return actDummy
	case "U":
		return actUID
	case "C":
		return actCleanTxt
	}
	return actRemove // unreachable: codes are validated when the table loads
}

// applyRule applies rule to e in place; false means remove e.
func (r *run) applyRule(e *dicom.Element, rule *Rule, top bool) (bool, error) {
	act := r.resolve(e, rule)
	switch act {
	case actShift:
		ok, err := r.shiftDates(e)
		if err != nil || ok {
			return ok, err
		}
		act = r.basic(e, rule) // not a shiftable date: the basic action
	case actCleanTxt:
		if isSeq(e) {
			return true, r.recurse(e)
		}
		if r.a.provablyClean(e) {
			return true, nil
		}
		act = r.basic(e, rule)
		if act == actCleanTxt { // C in the basic profile: nothing proves it clean
			act = actRemove
		}
	}
	if top && (e.Tag == tag.PatientID || e.Tag == tag.PatientName) && (act == actZero || act == actDummy) {
		// The issue asks for a stable pseudonym; a pseudonym is the dummy
		// value that Z (zero length or dummy) and D allow.
		p := r.patientPseudonym
		if e.Tag == tag.PatientName {
			p = "ANON^" + p
		}
		return true, setStrings(e, []string{p})
	}
	switch act {
	case actKeep:
		if e.RawValueRepresentation == "UI" && !isSeq(e) && !allValidUIDs(stringValues(e)) {
			// Retain UIDs retains UIDs; a value that is not one (it may be
			// a name) is mapped like any other.
			return true, r.mapInvalidUIDs(e)
		}
		return true, r.recurse(e)
	case actRemove:
		return false, nil
	case actZero:
		return true, setEmpty(e)
	case actDummy:
		if isSeq(e) {
			// A dummy sequence is one empty item: the content (e.g. an SR
			// Content Sequence, whose Text Values the table does not list) is
			// what the basic profile removes; Clean Structured Content, not
			// implemented, would keep it.
			return true, setValue(e, [][]*dicom.Element{{}})
		}
		return true, r.setDummy(e)
	case actUID:
		// Retain UIDs keeps only the rows whose option column says K (it
		// does not cover e.g. Digital Signature UID), resolved above.
		return true, r.mapUIDs(e)
	}
	return false, fmt.Errorf("unresolved action %d", act)
}

// iodType is the attribute's type in the IOD of sopClass for the attributes
// with a combined action whose type is the same across the composite image
// IODs, or 0 when unknown (the caller then takes the safer action).
func iodType(t tag.Tag, sopClass string) int {
	switch t {
	case tag.ContentDate, tag.ContentTime:
		// Type 1 in the DX Image Module, 2C in the General Image Module.
		if dxClasses[sopClass] {
			return 1
		}
		return 2
	case tag.PatientID, tag.ContrastBolusAgent:
		return 2 // Patient Module; Contrast/Bolus Module
	case tag.ContentCreatorName:
		return 2
	}
	return 0
}

var dxClasses = map[string]bool{
	"1.2.840.10008.5.1.4.1.1.1.1":   true, // Digital X-Ray Image for Presentation
	"1.2.840.10008.5.1.4.1.1.1.1.1": true, // ... for Processing
	"1.2.840.10008.5.1.4.1.1.1.2":   true, // Digital Mammography for Presentation
	"1.2.840.10008.5.1.4.1.1.1.2.1": true,
	"1.2.840.10008.5.1.4.1.1.1.3":   true, // Digital Intra-Oral X-Ray for Presentation
	"1.2.840.10008.5.1.4.1.1.1.3.1": true,
}

func isSeq(e *dicom.Element) bool {
	return e.Value != nil && e.Value.ValueType() == dicom.Sequences
}

// stringValues returns a string element's values with padding trimmed; for
// byte values (e.g. VR UN) the bytes are read as backslash-separated text.
func stringValues(e *dicom.Element) []string {
	if e.Value == nil {
		return nil
	}
	var vals []string
	switch e.Value.ValueType() {
	case dicom.Strings:
		vals = append(vals, e.Value.GetValue().([]string)...)
	case dicom.Bytes:
		vals = strings.Split(string(e.Value.GetValue().([]byte)), `\`)
	default:
		return nil
	}
	for i := range vals {
		vals[i] = trimValue(vals[i])
	}
	return vals
}

func setStrings(e *dicom.Element, vals []string) error {
	if e.Value != nil && e.Value.ValueType() == dicom.Bytes {
		b := []byte(strings.Join(vals, `\`))
		if len(b)%2 == 1 {
			b = append(b, 0)
		}
		return setValue(e, b)
	}
	return setValue(e, vals)
}

func setValue(e *dicom.Element, data any) error {
	v, err := dicom.NewValue(data)
	if err != nil {
		return err
	}
	e.Value = v
	e.ValueLength = 0 // recomputed by the writer
	return nil
}

// setEmpty makes e zero length, keeping its value type.
func setEmpty(e *dicom.Element) error {
	if e.Value == nil {
		return nil
	}
	switch e.Value.ValueType() {
	case dicom.Strings:
		return setValue(e, []string{})
	case dicom.Ints:
		return setValue(e, []int{})
	case dicom.Floats:
		return setValue(e, []float64{})
	case dicom.Sequences:
		return setValue(e, [][]*dicom.Element{})
	default:
		return setValue(e, []byte{})
	}
}

// dummyStrings are the dummy values by VR for the D action.
var dummyStrings = map[string]string{
	"AE": "ANONYMOUS", "AS": "000D", "CS": "ANONYMIZED", "DA": "19000101",
	"DS": "0", "DT": "19000101000000", "IS": "0", "LO": "ANONYMIZED",
	"LT": "ANONYMIZED", "PN": "ANONYMIZED", "SH": "ANONYMIZED", "ST": "ANONYMIZED",
	"TM": "000000", "UC": "ANONYMIZED", "UR": "urn:anonymized", "UT": "ANONYMIZED",
}

func (r *run) setDummy(e *dicom.Element) error {
	vr := e.RawValueRepresentation
	if vr == "UI" {
		return r.mapUIDs(e)
	}
	if e.Value == nil {
		return nil
	}
	switch e.Value.ValueType() {
	case dicom.Strings:
		d, ok := dummyStrings[vr]
		if !ok {
			d = "ANONYMIZED"
		}
		return setValue(e, []string{d})
	case dicom.Ints:
		if vr == "AT" {
			return setValue(e, []int{})
		}
		return setValue(e, []int{0})
	case dicom.Floats:
		return setValue(e, []float64{0})
	case dicom.Bytes:
		if d, ok := dummyStrings[vr]; ok {
			return setStrings(e, []string{d})
		}
		return setValue(e, []byte{0, 0})
	}
	return setEmpty(e)
}

// mapInvalidUIDs replaces the values of e that are not valid UIDs with
// their pseudonyms and keeps the others.
func (r *run) mapInvalidUIDs(e *dicom.Element) error {
	vals := stringValues(e)
	if vals == nil {
		return setEmpty(e)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = v
		if v != "" && !ValidUID(v) {
			out[i] = PseudonymUID(r.a.secret, v)
		}
	}
	return setStrings(e, out)
}

// mapUIDs replaces every UID value of e with its pseudonym.
func (r *run) mapUIDs(e *dicom.Element) error {
	vals := stringValues(e)
	if vals == nil {
		return setEmpty(e)
	}
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if v == "" {
			out = append(out, "")
			continue
		}
		out = append(out, PseudonymUID(r.a.secret, v))
	}
	return setStrings(e, out)
}
