//go:build !cgo

package dicomio

import "io"

// Without cgo there is no zlib: deflated data sets inflate with compress/flate.
func newZlibReader([]byte) io.ReadCloser { return nil }
