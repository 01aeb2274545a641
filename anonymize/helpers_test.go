package anonymize

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/fracd/fracd/dicomio"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// flat is one element of a dataset addressed by its path through sequences,
// e.g. "(0040,0275)[0](0008,0050)".
type flat struct {
	path string
	elem *dicom.Element
	top  bool
}

func flatten(elems []*dicom.Element) map[string]flat {
	out := map[string]flat{}
	var walk func(prefix string, elems []*dicom.Element)
	walk = func(prefix string, elems []*dicom.Element) {
		for _, e := range elems {
			p := prefix + fmt.Sprintf("(%04X,%04X)", e.Tag.Group, e.Tag.Element)
			out[p] = flat{path: p, elem: e, top: prefix == ""}
			if isSeq(e) {
				for i, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
					walk(fmt.Sprintf("%s[%d]", p, i), it.GetValue().([]*dicom.Element))
				}
			}
		}
	}
	walk("", elems)
	return out
}

func sortedKeys(m map[string]flat) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// valueString renders an element's value for comparisons and golden dumps.
func valueString(e *dicom.Element) string {
	if e.Value == nil {
		return "<nil>"
	}
	switch e.Value.ValueType() {
	case dicom.Strings, dicom.Bytes:
		if e.Value.ValueType() == dicom.Bytes && e.RawValueRepresentation != "UN" {
			return fmt.Sprintf("%x", e.Value.GetValue().([]byte))
		}
		return strings.Join(stringValues(e), `\`)
	case dicom.Sequences:
		return fmt.Sprintf("SQ#%d", len(e.Value.GetValue().([]*dicom.SequenceItemValue)))
	case dicom.PixelData:
		return "pixel data"
	default:
		return fmt.Sprint(e.Value.GetValue())
	}
}

func isEmptyValue(e *dicom.Element) bool {
	if e.Value == nil {
		return true
	}
	switch e.Value.ValueType() {
	case dicom.Strings:
		return strings.Join(stringValues(e), "") == ""
	case dicom.Bytes:
		return len(e.Value.GetValue().([]byte)) == 0
	case dicom.Ints:
		return len(e.Value.GetValue().([]int)) == 0
	case dicom.Floats:
		return len(e.Value.GetValue().([]float64)) == 0
	case dicom.Sequences:
		return len(e.Value.GetValue().([]*dicom.SequenceItemValue)) == 0
	}
	return false
}

func mustElem(t tag.Tag, vr string, data any) *dicom.Element {
	v, err := dicom.NewValue(data)
	if err != nil {
		panic(err)
	}
	return &dicom.Element{Tag: t, ValueRepresentation: tag.GetVRKind(t, vr), RawValueRepresentation: vr, Value: v}
}

// searchable returns a DICOM file's bytes with a deflated data set
// inflated, so that identifier searches see its text.
func searchable(file []byte) []byte {
	const ts = "1.2.840.10008.1.2.1.99"
	if len(file) < 144 || string(file[128:132]) != "DICM" {
		return file
	}
	metaEnd := 144 + int(binary.LittleEndian.Uint32(file[140:144]))
	if metaEnd > len(file) || !bytes.Contains(file[:metaEnd], []byte(ts)) {
		return file
	}
	inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(file[metaEnd:])))
	if err != nil {
		panic(fmt.Sprintf("inflate: %v", err))
	}
	return append(append([]byte{}, file[:metaEnd]...), inflated...)
}

// parseBytes reads a DICOM file as the daemon does: with dicomio (Basic
// Offset Table kept, panics recovered, text relabelled UTF-8), so the
// goldens below test the path users run.
func parseBytes(data []byte) (*dicom.Dataset, error) {
	f, err := dicomio.Parse(data)
	if err != nil {
		return nil, err
	}
	return &f.Dataset, nil
}

// encode writes ds as the daemon writes the archive (dicomio.Write).
func encode(buf *bytes.Buffer, ds *dicom.Dataset) error { return dicomio.Write(buf, *ds) }

// anonymizeFile is what `fracd anonymize` does with one file: read with
// dicomio, apply the profile, write durably with dicomio.
func anonymizeFile(a *Anonymizer, in, out string) (*Result, error) {
	f, err := dicomio.ParseFile(in)
	if err != nil {
		return nil, err
	}
	res, err := a.Apply(&f.Dataset)
	if err != nil {
		return nil, err
	}
	return res, dicomio.WriteFile(out, f.Dataset)
}
