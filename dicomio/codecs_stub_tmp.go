package dicomio

import "fmt"

// Temporary until the codec files land.
func decodeJPEGLS(data []byte, ii ImageInfo) (*Frame, error) {
	return nil, fmt.Errorf("%w: JPEG-LS decoder pending", ErrUnsupportedTransferSyntax)
}
func decodeJ2K(data []byte, ii ImageInfo) (*Frame, error) {
	return nil, fmt.Errorf("%w: JPEG 2000 decoder pending", ErrUnsupportedTransferSyntax)
}
