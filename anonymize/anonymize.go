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

// ImplementationVersionName is written to (0002,0013) of de-identified
// files, with an Implementation Class UID of the site (see fileMeta).
const ImplementationVersionName = "FRACD"

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
	if meta, err := run.fileMeta(ds.Elements, out); err != nil {
		return nil, err
	} else if len(meta) > 0 {
		out = append(meta, out...) // group 0002 sorts first
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

// fileMeta rebuilds the file meta group as fracd writes it: version, the
// (de-identified) SOP class and instance, the transfer syntax the data set
// is encoded in, and fracd's Implementation Class UID (derived from the site
// secret, as for the delivery objects) and Version Name.
// A data set without a meta group (not from a file) gets none.
func (r *run) fileMeta(in, out []*dicom.Element) ([]*dicom.Element, error) {
	a := r.a
	had := false
	for _, e := range in {
		if e.Tag.Group == 0x0002 {
			had = true
			break
		}
	}
	if !had {
		return nil, nil
	}
	ts := topString(in, tag.TransferSyntaxUID)
	if ts != "" && !ValidUID(ts) {
		return nil, errors.New("anonymize: file meta: Transfer Syntax UID is not a valid UID")
	}
	class := topString(out, tag.SOPClassUID)
	if !ValidUID(class) {
		if class = topString(in, tag.MediaStorageSOPClassUID); !ValidUID(class) {
			class = ""
		}
	}
	// Media Storage SOP Instance UID gets its own table row's action (it
	// equals the SOP Instance UID in any sane file, and so its result).
	var instElem *dicom.Element
	if e := findElement(in, tag.MediaStorageSOPInstanceUID); e != nil {
		if rule := a.table.lookup(e.Tag); rule != nil {
			keep, err := r.applyRule(e, rule, true)
			if err != nil {
				return nil, fmt.Errorf("anonymize: file meta: %w", err)
			}
			if keep {
				instElem = e
			}
		}
	}
	inst := ""
	if instElem == nil {
		inst = topString(out, tag.SOPInstanceUID)
	}
	var meta []*dicom.Element
	for _, kv := range []struct {
		t tag.Tag
		v any
	}{
		{tag.FileMetaInformationVersion, []byte{0, 1}},
		{tag.MediaStorageSOPClassUID, class},
		{tag.MediaStorageSOPInstanceUID, inst},
		{tag.TransferSyntaxUID, ts},
		{tag.ImplementationClassUID, PseudonymUID(a.secret, "fracd/implementation")},
		{tag.ImplementationVersionName, ImplementationVersionName},
	} {
		if s, ok := kv.v.(string); ok {
			if s == "" {
				continue
			}
			kv.v = []string{s}
		}
		e, err := dicom.NewElement(kv.t, kv.v)
		if err != nil {
			return nil, fmt.Errorf("anonymize: build file meta %v: %w", kv.t, err)
		}
		meta = append(meta, e)
	}
	if instElem != nil {
		meta = append(meta, instElem)
		slices.SortFunc(meta, func(x, y *dicom.Element) int { return x.Tag.Compare(y.Tag) })
	}
	return meta, nil
}

func findElement(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e.Tag == t {
			return e
		}
	}
	return nil
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
