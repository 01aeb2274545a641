// Package anonymize de-identifies DICOM datasets with the PS3.15 Annex E
// Basic Application Level Confidentiality Profile (Table E.1-1, embedded as
// data, edition Edition) and its options. New UIDs and patient pseudonyms are
// HMAC-SHA256 of the original under a site secret, so they are consistent
// across instances and runs without a lookup table, and not reversible
// without the secret. Pixel data is never touched.
package anonymize

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ErrBurnedIn marks an instance rejected because its pixels may carry text
// (Burned In Annotation YES, or a SOP class prone to it without the
// attribute). The wrapping error's text names the reason; it never contains
// patient data.
var ErrBurnedIn = errors.New("anonymize: burned-in annotation")

// MethodDescription is written to De-identification Method (0012,0063).
const MethodDescription = "PS3.15 " + Edition + " Annex E Basic Profile (fracd)"

// Anonymizer applies one site profile. It is safe for concurrent use.
type Anonymizer struct {
	opts     Options
	secret   []byte
	table    *table
	on       [numOptions]bool
	vocab    map[string]bool
	safePriv map[PrivateAttr]bool
	burnedIn map[string]bool
	codes    []Code
}

// Result describes one de-identified instance with its new values, for the
// pipeline to store and log (none of them is an original identifier unless
// RetainUIDs is set).
type Result struct {
	StudyInstanceUID  string
	SeriesInstanceUID string
	SOPInstanceUID    string
	SOPClassUID       string
	Modality          string
	BodyPartExamined  string
	// PatientPseudonym is the new Patient ID.
	PatientPseudonym string
	// Methods are the CID 7050 codes written to (0012,0064).
	Methods []Code
}

// New checks opts and the secret and returns an Anonymizer.
func New(opts Options, secret []byte) (*Anonymizer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("anonymize: secret has %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	t, err := profileTable()
	if err != nil {
		return nil, err
	}
	a := &Anonymizer{
		opts:     opts,
		secret:   slices.Clone(secret),
		table:    t,
		on:       opts.enabled(),
		vocab:    map[string]bool{},
		safePriv: map[PrivateAttr]bool{},
		burnedIn: map[string]bool{},
		codes:    opts.methodCodes(),
	}
	for _, w := range builtinVocabulary {
		a.vocab[w] = true
	}
	for _, w := range opts.CleanVocabulary {
		w = strings.ToUpper(strings.TrimSpace(w))
		if w == "" || strings.IndexFunc(w, func(r rune) bool { return !isWordRune(r) }) >= 0 {
			return nil, fmt.Errorf("anonymize: clean vocabulary word %q must be letters and digits only", w)
		}
		a.vocab[w] = true
	}
	for _, p := range opts.SafePrivate {
		if p.Group%2 == 0 || p.Creator == "" {
			return nil, fmt.Errorf("anonymize: safe private attribute (%04X,xx%02X) needs an odd group and a creator", p.Group, p.Element)
		}
		p.Creator = strings.TrimSpace(p.Creator)
		a.safePriv[p] = true
	}
	classes := opts.BurnedInSOPClasses
	if classes == nil {
		classes = DefaultBurnedInSOPClasses
	}
	for _, c := range classes {
		a.burnedIn[c] = true
	}
	return a, nil
}

// Apply de-identifies ds in place and marks it as de-identified. A rejection
// (ErrBurnedIn) leaves ds unchanged; after any other error ds may be partly
// processed and must be discarded.
func (a *Anonymizer) Apply(ds *dicom.Dataset) (*Result, error) {
	if ds == nil {
		return nil, errors.New("anonymize: nil dataset")
	}
	if err := a.checkBurnedIn(ds); err != nil {
		return nil, err
	}
	run := &run{a: a, sopClass: topString(ds.Elements, tag.SOPClassUID)}
	key := topString(ds.Elements, tag.PatientID)
	if key == "" {
		key = topString(ds.Elements, tag.PatientName)
	}
	run.patientPseudonym = PseudonymPatientID(a.secret, key)
	run.shiftDays = dateShiftDays(a.secret, key)

	out, err := run.item(ds.Elements, true)
	if err != nil {
		return nil, err
	}
	marks, err := a.markElements()
	if err != nil {
		return nil, err
	}
	for _, m := range marks {
		out = setElement(out, m)
	}
	ds.Elements = out

	return &Result{
		StudyInstanceUID:  topString(out, tag.StudyInstanceUID),
		SeriesInstanceUID: topString(out, tag.SeriesInstanceUID),
		SOPInstanceUID:    topString(out, tag.SOPInstanceUID),
		SOPClassUID:       topString(out, tag.SOPClassUID),
		Modality:          topString(out, tag.Modality),
		BodyPartExamined:  topString(out, tag.BodyPartExamined),
		PatientPseudonym:  topString(out, tag.PatientID),
		Methods:           slices.Clone(a.codes),
	}, nil
}

func (a *Anonymizer) checkBurnedIn(ds *dicom.Dataset) error {
	bia := strings.ToUpper(topString(ds.Elements, tag.BurnedInAnnotation))
	if bia == "YES" && !a.opts.AllowBurnedIn {
		return fmt.Errorf("%w: Burned In Annotation (0028,0301) is YES and the site does not allow burned-in text", ErrBurnedIn)
	}
	if bia == "" && !a.opts.AllowUndeclaredBurnedIn {
		if c := topString(ds.Elements, tag.SOPClassUID); a.burnedIn[c] {
			return fmt.Errorf("%w: SOP class %s often carries burned-in text and Burned In Annotation (0028,0301) is absent", ErrBurnedIn, c)
		}
	}
	return nil
}

// markElements builds Patient Identity Removed, De-identification Method
// and its Code Sequence, and Longitudinal Temporal Information Modified.
func (a *Anonymizer) markElements() ([]*dicom.Element, error) {
	var items [][]*dicom.Element
	for _, c := range a.codes {
		item := make([]*dicom.Element, 0, 3)
		for _, kv := range []struct {
			t tag.Tag
			v string
		}{{tag.CodeValue, c.Value}, {tag.CodingSchemeDesignator, c.Scheme}, {tag.CodeMeaning, c.Meaning}} {
			e, err := dicom.NewElement(kv.t, []string{kv.v})
			if err != nil {
				return nil, fmt.Errorf("anonymize: build method code: %w", err)
			}
			item = append(item, e)
		}
		items = append(items, item)
	}
	longitudinal := "REMOVED"
	if a.opts.RetainLongitudinalModifiedDates {
		longitudinal = "MODIFIED"
	}
	var out []*dicom.Element
	for _, kv := range []struct {
		t tag.Tag
		v any
	}{
		{tag.PatientIdentityRemoved, []string{"YES"}},
		{tag.DeidentificationMethod, []string{MethodDescription}},
		{tag.DeidentificationMethodCodeSequence, items},
		{tag.LongitudinalTemporalInformationModified, []string{longitudinal}},
	} {
		e, err := dicom.NewElement(kv.t, kv.v)
		if err != nil {
			return nil, fmt.Errorf("anonymize: build marking %v: %w", kv.t, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// setElement replaces the element with e's tag or inserts e in tag order.
func setElement(elems []*dicom.Element, e *dicom.Element) []*dicom.Element {
	i, found := slices.BinarySearchFunc(elems, e.Tag, func(x *dicom.Element, t tag.Tag) int { return x.Tag.Compare(t) })
	if found {
		elems[i] = e
		return elems
	}
	// Datasets from a parser are in tag order; if not, a linear search still
	// finds a duplicate before inserting.
	for j, x := range elems {
		if x.Tag == e.Tag {
			elems[j] = e
			return elems
		}
	}
	return slices.Insert(elems, i, e)
}

// topString returns the first value of a top-level string element, trimmed,
// or "" when absent.
func topString(elems []*dicom.Element, t tag.Tag) string {
	for _, e := range elems {
		if e.Tag == t {
			v := stringValues(e)
			if len(v) > 0 {
				return v[0]
			}
			return ""
		}
	}
	return ""
}
