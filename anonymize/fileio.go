package anonymize

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/charset"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// ReadFile parses a DICOM file for de-identification: pixel data is kept as
// raw bytes (native) or fragments plus Basic Offset Table (encapsulated) so
// that WriteFile reproduces it byte for byte. Errors name the file by the
// sha256 of its content, never by path (paths may carry patient names).
func ReadFile(path string) (*dicom.Dataset, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("anonymize: read input: %w", err)
	}
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	ds, err := ParseBytes(data)
	if err != nil {
		return nil, id, fmt.Errorf("anonymize: file sha256 %s: %w", id, err)
	}
	return ds, id, nil
}

// ParseBytes parses an in-memory DICOM file as ReadFile does.
func ParseBytes(data []byte) (ds *dicom.Dataset, err error) {
	defer func() {
		// The parser panics on some malformed input; the panic value is not
		// quoted since it may contain element values.
		if r := recover(); r != nil {
			ds, err = nil, fmt.Errorf("parse: parser panicked on malformed input (%T)", r)
		}
	}()
	d, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, dicom.SkipProcessingPixelDataValue())
	if err != nil {
		// The parser's messages quote values (a character set, a VR), which
		// a file controls: only the fact reaches the error.
		return nil, errors.New("parse: the DICOM parser cannot read this file")
	}
	if err := restoreOffsetTable(&d, data); err != nil {
		return nil, err
	}
	declareUTF8(d.Elements)
	return &d, nil
}

// declareUTF8 relabels the data set as ISO_IR 192 when the parser decoded
// its text: it turns every text value into UTF-8 by the top-level Specific
// Character Set (nested items included) and the writer emits those bytes,
// so the original Latin-1 or ISO 2022 label would misdescribe the output.
// An absent or unknown character set is left alone (bytes kept as read).
// dicomio's reader does the same for the pipeline's path.
func declareUTF8(elems []*dicom.Element) {
	var names []string
	for _, e := range elems {
		if e.Tag == tag.SpecificCharacterSet {
			names = stringValues(e)
		}
	}
	if names == nil || len(names) == 1 && names[0] == "ISO_IR 192" {
		return
	}
	if _, err := charset.ParseSpecificCharacterSet(names); err != nil {
		return
	}
	var relabel func(elems []*dicom.Element)
	relabel = func(elems []*dicom.Element) {
		for _, e := range elems {
			if e.Tag == tag.SpecificCharacterSet {
				setStrings(e, []string{"ISO_IR 192"})
			} else if isSeq(e) {
				for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
					if els, ok := it.GetValue().([]*dicom.Element); ok {
						relabel(els)
					}
				}
			}
		}
	}
	relabel(elems)
}

// restoreOffsetTable puts the Basic Offset Table back into encapsulated
// Pixel Data: suyashkumar/dicom v1.1.0 skips it when reading and would write
// an empty one. Fragments are unchanged, so the table stays valid.
func restoreOffsetTable(ds *dicom.Dataset, data []byte) error {
	pe, err := ds.FindElementByTag(tag.PixelData)
	if err != nil || pe.Value == nil || pe.Value.ValueType() != dicom.PixelData {
		return nil
	}
	info := pe.Value.GetValue().(dicom.PixelDataInfo)
	if !info.IsEncapsulated {
		return nil
	}
	// Encapsulated Pixel Data is always explicit VR little endian, and the
	// top-level one is the last (7FE0,0010) with undefined length.
	var at = -1
	for _, vr := range []string{"OB", "OW"} {
		pat := append([]byte{0xE0, 0x7F, 0x10, 0x00}, vr...)
		pat = append(pat, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF)
		if i := bytes.LastIndex(data, pat); i > at {
			at = i + len(pat)
		}
	}
	if at < 0 || at+8 > len(data) || !bytes.Equal(data[at:at+4], []byte{0xFE, 0xFF, 0x00, 0xE0}) {
		return nil
	}
	n := int(binary.LittleEndian.Uint32(data[at+4 : at+8]))
	if n%4 != 0 || at+8+n > len(data) {
		return fmt.Errorf("parse: malformed basic offset table")
	}
	info.Offsets = make([]uint32, n/4)
	for i := range info.Offsets {
		info.Offsets[i] = binary.LittleEndian.Uint32(data[at+8+4*i:])
	}
	v, err := dicom.NewValue(info)
	if err != nil {
		return fmt.Errorf("parse: restore offset table: %w", err)
	}
	pe.Value = v
	return nil
}

// WriteFile writes ds to path atomically (temporary file, fsync, rename).
// A deflated data set is written as explicit VR little endian instead,
// which suyashkumar/dicom cannot deflate; the values are the same.
func WriteFile(path string, ds *dicom.Dataset) error {
	var buf bytes.Buffer
	if err := Encode(&buf, ds); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".anonymize-*.tmp")
	if err != nil {
		return fmt.Errorf("anonymize: create output: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("anonymize: write output: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("anonymize: sync output: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("anonymize: close output: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("anonymize: rename output: %w", err)
	}
	return nil
}

// Encode serialises ds as a DICOM file (see WriteFile about deflate).
func Encode(buf *bytes.Buffer, ds *dicom.Dataset) error {
	if ts, err := ds.FindElementByTag(tag.TransferSyntaxUID); err == nil {
		if v := stringValues(ts); len(v) == 1 && v[0] == uid.DeflatedExplicitVRLittleEndian {
			if err := setStrings(ts, []string{uid.ExplicitVRLittleEndian}); err != nil {
				return fmt.Errorf("anonymize: encode: %w", err)
			}
		}
	}
	if err := dicom.Write(buf, *ds, dicom.SkipVRVerification()); err != nil {
		return fmt.Errorf("anonymize: encode: %w", err)
	}
	return nil
}

// AnonymizeFile reads in, applies the profile and writes the result to out.
func (a *Anonymizer) AnonymizeFile(in, out string) (*Result, error) {
	ds, id, err := ReadFile(in)
	if err != nil {
		return nil, err
	}
	res, err := a.Apply(ds)
	if err != nil {
		return nil, fmt.Errorf("anonymize: file sha256 %s: %w", id, err)
	}
	if err := WriteFile(out, ds); err != nil {
		return nil, fmt.Errorf("anonymize: file sha256 %s: %w", id, err)
	}
	return res, nil
}
