package dicomio

import (
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/charset"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Lenient Specific Character Set (0008,0005): exporters write "ISO_IR100",
// "iso-ir 100", "UTF-8" and the like, which suyashkumar would reject or read
// as UTF-8. dicomio rewrites such values to the defined terms in place (the
// value field is padded to an even length, so the fix usually fits).

var charsetCanonical = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"ISO_IR 6", "ISO_IR 13", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110",
		"ISO_IR 126", "ISO_IR 127", "ISO_IR 138", "ISO_IR 144", "ISO_IR 148", "ISO_IR 166", "ISO_IR 192",
		"ISO 2022 IR 6", "ISO 2022 IR 13", "ISO 2022 IR 87", "ISO 2022 IR 58", "ISO 2022 IR 100",
		"ISO 2022 IR 101", "ISO 2022 IR 109", "ISO 2022 IR 110", "ISO 2022 IR 126", "ISO 2022 IR 127",
		"ISO 2022 IR 138", "ISO 2022 IR 144", "ISO 2022 IR 148", "ISO 2022 IR 149", "ISO 2022 IR 159",
		"ISO 2022 IR 166", "GB18030", "GBK"} {
		m[charsetKey(n)] = n
	}
	m["UTF8"] = "ISO_IR 192"
	m["LATIN1"] = "ISO_IR 100"
	m["ISO88591"] = "ISO_IR 100"
	m["ASCII"] = "ISO_IR 6"
	return m
}()

func charsetKey(s string) string {
	s = strings.ToUpper(s)
	return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)
}

// normalizeCharsets returns the canonical form of a Specific Character Set
// value and whether it differs from the input (ignoring padding).
func normalizeCharsets(v string) (string, bool) {
	trimmed := strings.Trim(v, " \x00")
	parts := strings.Split(trimmed, "\\")
	for i, p := range parts {
		if c, ok := charsetCanonical[charsetKey(strings.TrimSpace(p))]; ok {
			parts[i] = c
		} else {
			parts[i] = strings.TrimSpace(p)
		}
	}
	out := strings.Join(parts, "\\")
	return out, out != trimmed
}

// fixCharset rewrites the top-level Specific Character Set value of body
// (in a copy unless owned) when a lenient spelling can be mapped to a
// defined term.
func fixCharset(body []byte, pos, n int, owned bool) []byte {
	if n <= 0 || pos < 0 || pos+n > len(body) {
		return body
	}
	norm, changed := normalizeCharsets(string(body[pos : pos+n]))
	if !changed || len(norm) > n {
		return body
	}
	out := body
	if !owned {
		out = append([]byte(nil), body...)
	}
	copy(out[pos:], norm)
	for i := pos + len(norm); i < pos+n; i++ {
		out[i] = ' '
	}
	return out
}

// declareUTF8 relabels the data set as ISO_IR 192 when suyashkumar decoded
// its text: it turns every text value into UTF-8 by the top-level Specific
// Character Set (nested ones included), and its writer emits those UTF-8
// bytes, so a file written back under the original Latin-1 or ISO 2022 label
// would be misread (by dcmtk, by a PACS). An absent or unknown character set
// is left alone: then the bytes were kept as they are.
func declareUTF8(elems []*dicom.Element) {
	top := findIn(elems, tag.SpecificCharacterSet)
	names := strsOf(top)
	if names == nil || len(names) == 1 && names[0] == "ISO_IR 192" {
		return
	}
	if _, err := charset.ParseSpecificCharacterSet(names); err != nil {
		return
	}
	relabelCharsets(elems)
}

func relabelCharsets(elems []*dicom.Element) {
	for _, e := range elems {
		if e == nil || e.Value == nil {
			continue
		}
		if e.Tag == tag.SpecificCharacterSet {
			if v, err := dicom.NewValue([]string{"ISO_IR 192"}); err == nil {
				e.Value, e.ValueLength = v, 0
			}
			continue
		}
		if items, ok := e.Value.GetValue().([]*dicom.SequenceItemValue); ok {
			for _, it := range items {
				if it == nil {
					continue
				}
				if els, ok := it.GetValue().([]*dicom.Element); ok {
					relabelCharsets(els)
				}
			}
		}
	}
}
