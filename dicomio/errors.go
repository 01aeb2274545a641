package dicomio

import (
	"errors"
	"fmt"
)

// Sentinel errors: the pipeline maps them to rejection reasons with errors.Is.
var (
	// ErrNotDICOM: the bytes do not look like a DICOM data set at all.
	ErrNotDICOM = errors.New("not a DICOM file")
	// ErrTruncated: an element or the pixel data runs past the end of the input.
	ErrTruncated = errors.New("truncated DICOM file")
	// ErrMalformed: the structure or an attribute needed for decoding is invalid.
	ErrMalformed = errors.New("malformed DICOM file")
	// ErrNoPixelData: there is no (decodable) Pixel Data element.
	ErrNoPixelData = errors.New("no pixel data")
	// ErrUnsupportedTransferSyntax: the transfer syntax is unknown or has no decoder.
	ErrUnsupportedTransferSyntax = errors.New("unsupported transfer syntax")
	// ErrTooLarge: the file or its decoded pixel data exceeds the configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrPanic: a panic was recovered inside the parser or a decoder.
	ErrPanic = errors.New("internal panic while reading DICOM")
)

// unsupportedTS builds the error that names the transfer syntax: by its UID
// only when that is a valid UID (a file may put a name there), else as
// InvalidUID.
func unsupportedTS(uid, why string) error {
	shown := InvalidUID
	if ValidUID(uid) {
		shown = uid + " (" + tsName(uid) + ")"
	}
	if why != "" {
		return fmt.Errorf("%w %s: %s", ErrUnsupportedTransferSyntax, shown, why)
	}
	return fmt.Errorf("%w %s", ErrUnsupportedTransferSyntax, shown)
}

// FileError wraps any error from dicomio with the content hash of the input,
// the only way a file is named in errors and logs.
type FileError struct {
	SHA256 string // hex sha256 of the input bytes
	Op     string
	Err    error
}

func (e *FileError) Error() string {
	s := e.SHA256
	if len(s) > 16 {
		s = s[:16]
	}
	return fmt.Sprintf("dicomio: %s sha256:%s: %v", e.Op, s, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }
