package dicomio

import (
	"strconv"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Attribute helpers over a dataset (top level only). They never panic on
// unexpected value types: a wrong type reads as absent.

func findIn(elems []*dicom.Element, t tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e != nil && e.Tag == t {
			return e
		}
	}
	return nil
}

func strsOf(e *dicom.Element) []string {
	if e == nil || e.Value == nil {
		return nil
	}
	v, ok := e.Value.GetValue().([]string)
	if !ok {
		return nil
	}
	return v
}

func intsOf(e *dicom.Element) []int {
	if e == nil || e.Value == nil {
		return nil
	}
	switch v := e.Value.GetValue().(type) {
	case []int:
		return v
	case []string: // IS values
		var out []int
		for _, s := range v {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return nil
			}
			out = append(out, n)
		}
		return out
	}
	return nil
}

func floatsOf(e *dicom.Element) []float64 {
	if e == nil || e.Value == nil {
		return nil
	}
	switch v := e.Value.GetValue().(type) {
	case []float64:
		return v
	case []int:
		out := make([]float64, len(v))
		for i, n := range v {
			out[i] = float64(n)
		}
		return out
	case []string: // DS values
		var out []float64
		for _, s := range v {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return nil
			}
			out = append(out, x)
		}
		return out
	}
	return nil
}

func bytesOf(e *dicom.Element) []byte {
	if e == nil || e.Value == nil {
		return nil
	}
	switch v := e.Value.GetValue().(type) {
	case []byte:
		return v
	case []string: // OV/OL/OD read by suyashkumar as a string
		return []byte(strings.Join(v, "\\"))
	}
	return nil
}

func (f *File) str(t tag.Tag) string {
	s := strsOf(findIn(f.Dataset.Elements, t))
	if len(s) == 0 {
		return ""
	}
	return strings.TrimSpace(s[0])
}

func (f *File) intAttr(t tag.Tag) (int, bool) {
	v := intsOf(findIn(f.Dataset.Elements, t))
	if len(v) == 0 {
		return 0, false
	}
	return v[0], true
}

// sequenceItems returns the element lists of the items of a top-level sequence.
func sequenceItems(elems []*dicom.Element, t tag.Tag) [][]*dicom.Element {
	e := findIn(elems, t)
	if e == nil || e.Value == nil {
		return nil
	}
	items, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok {
		return nil
	}
	var out [][]*dicom.Element
	for _, it := range items {
		if it == nil {
			continue
		}
		if els, ok := it.GetValue().([]*dicom.Element); ok {
			out = append(out, els)
		}
	}
	return out
}
