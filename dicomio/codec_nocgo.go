//go:build !cgo

package dicomio

import "fmt"

// Without cgo there is no CharLS or OpenJPEG: JPEG-LS and JPEG 2000 files are
// rejected with a reason instead of failing the build.

func decodeJPEGLS(data []byte, ii ImageInfo) (*Frame, error) {
	return nil, fmt.Errorf("%w: JPEG-LS needs CharLS (built without cgo)", ErrUnsupportedTransferSyntax)
}

func decodeJ2K(data []byte, ii ImageInfo, threads int) (*Frame, error) {
	return nil, fmt.Errorf("%w: JPEG 2000 needs OpenJPEG (built without cgo)", ErrUnsupportedTransferSyntax)
}
