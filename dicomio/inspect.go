package dicomio

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// identifyingTags are attributes that name or date the patient, the staff or
// the study instance. Inspect reports which are present, never their values.
var identifyingTags = []struct {
	t    tag.Tag
	name string
}{
	{tag.PatientName, "PatientName"},
	{tag.PatientID, "PatientID"},
	{tag.PatientBirthDate, "PatientBirthDate"},
	{tag.PatientAddress, "PatientAddress"},
	{tag.PatientTelephoneNumbers, "PatientTelephoneNumbers"},
	{tag.OtherPatientIDsSequence, "OtherPatientIDsSequence"},
	{tag.AccessionNumber, "AccessionNumber"},
	{tag.ReferringPhysicianName, "ReferringPhysicianName"},
	{tag.PerformingPhysicianName, "PerformingPhysicianName"},
	{tag.OperatorsName, "OperatorsName"},
	{tag.InstitutionName, "InstitutionName"},
	{tag.InstitutionAddress, "InstitutionAddress"},
	{tag.StationName, "StationName"},
	{tag.DeviceSerialNumber, "DeviceSerialNumber"},
	{tag.StudyID, "StudyID"},
	{tag.StudyDate, "StudyDate"},
	{tag.StudyDescription, "StudyDescription"},
	{tag.ImageComments, "ImageComments"},
	{tag.StudyInstanceUID, "StudyInstanceUID"},
	{tag.SeriesInstanceUID, "SeriesInstanceUID"},
	{tag.SOPInstanceUID, "SOPInstanceUID"},
}

// IdentifyingAttributes lists the names of identifying attributes present at
// the top level, plus a count of private elements (which may hold anything).
func (f *File) IdentifyingAttributes() (names []string, private int) {
	for _, it := range identifyingTags {
		if findIn(f.Dataset.Elements, it.t) != nil {
			names = append(names, it.name)
		}
	}
	for _, e := range f.Dataset.Elements {
		if e != nil && e.Tag.Group%2 == 1 {
			private++
		}
	}
	return names, private
}

// Report is what `fracd inspect` shows about one file: encoding, geometry,
// whether and how every frame decodes and frame 0 renders. It contains no
// identifying value; identifying attributes are only named.
type Report struct {
	Summary
	ParseError      string   `json:"parse_error,omitempty"`
	Reason          string   `json:"reason,omitempty"` // short rejection class: not_dicom, truncated, ...
	FramesDecoded   int      `json:"frames_decoded"`
	DecodeError     string   `json:"decode_error,omitempty"`
	DecodeMillis    float64  `json:"decode_ms"`
	Min             int32    `json:"min"`
	Max             int32    `json:"max"`
	RenderError     string   `json:"render_error,omitempty"`
	Identifying     []string `json:"identifying_present,omitempty"`
	PrivateElements int      `json:"private_elements"`
}

// Rejection reasons: the fixed vocabulary for input dicomio cannot read.
// They are what the daemon records (instances.reason, metrics, audit rows)
// and what `fracd inspect` prints, so they never change once released.
const (
	ReasonNotDICOM      = "not_dicom"
	ReasonTruncated     = "truncated"
	ReasonMalformed     = "malformed"
	ReasonNoPixelData   = "no_pixel_data"
	ReasonUnsupportedTS = "unsupported_transfer_syntax"
	ReasonTooLarge      = "too_large"
	// ReasonDecoderPanic: a panic recovered in the parser or a decoder.
	ReasonDecoderPanic = "decoder_panic"
	// ReasonDecodeFailed: any other error from dicomio.
	ReasonDecodeFailed = "decode_failed"
	// ReasonCanceled is no rejection: the work was interrupted (the daemon
	// keeps the file and tries again). Only `fracd inspect` shows it.
	ReasonCanceled = "canceled"
)

// Reason maps an error from dicomio to its rejection reason ("" for nil).
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotDICOM):
		return ReasonNotDICOM
	case errors.Is(err, ErrTruncated):
		return ReasonTruncated
	case errors.Is(err, ErrTooLarge):
		return ReasonTooLarge
	case errors.Is(err, ErrNoPixelData):
		return ReasonNoPixelData
	case errors.Is(err, ErrUnsupportedTransferSyntax):
		return ReasonUnsupportedTS
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, ErrPanic):
		return ReasonDecoderPanic
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ReasonCanceled
	}
	return ReasonDecodeFailed
}

// Inspect parses data, decodes every frame and renders frame 0, reporting
// what worked. It never fails: problems are recorded in the Report.
func Inspect(ctx context.Context, data []byte, opts ...Option) Report {
	var r Report
	f, err := ParseContext(ctx, data, opts...)
	if err != nil {
		r.SHA256 = hashHex(data)
		r.Size = int64(len(data))
		r.ParseError = err.Error()
		r.Reason = Reason(err)
		return r
	}
	r.Summary = f.Summary()
	r.Identifying, r.PrivateElements = f.IdentifyingAttributes()
	if !f.HasPixelData() {
		r.DecodeError = ErrNoPixelData.Error()
		r.Reason = Reason(ErrNoPixelData)
		return r
	}
	start := time.Now()
	n := f.NumFrames()
	if n == 0 {
		_, err := f.ImageInfo()
		r.DecodeError = fmt.Sprint(err)
		r.Reason = Reason(err)
		return r
	}
	var first *Frame
	for i := range n {
		if err := ctx.Err(); err != nil {
			r.DecodeError = err.Error()
			r.Reason = Reason(err)
			return r
		}
		fr, err := f.DecodeFrame(i)
		if err != nil {
			r.DecodeError = err.Error()
			r.Reason = Reason(err)
			break
		}
		mn, mx := minMax(fr.Data)
		if i == 0 {
			first = fr
			r.Min, r.Max = mn, mx
		} else {
			r.Min, r.Max = min(r.Min, mn), max(r.Max, mx)
		}
		r.FramesDecoded++
	}
	r.DecodeMillis = float64(time.Since(start).Microseconds()) / 1000
	if first != nil {
		if _, err := f.RenderFrame(first); err != nil {
			r.RenderError = err.Error()
			if r.Reason == "" {
				r.Reason = Reason(err)
			}
		}
	}
	return r
}

func minMax(v []int32) (int32, int32) {
	if len(v) == 0 {
		return 0, 0
	}
	mn, mx := v[0], v[0]
	for _, x := range v {
		mn, mx = min(mn, x), max(mx, x)
	}
	return mn, mx
}
