//go:build cgo

package dicomio

/*
#cgo pkg-config: zlib
#include <stdlib.h>
#include <zlib.h>

static int fracd_inflate_init(z_stream *s) {
	return inflateInit2(s, -15); // raw deflate (RFC 1951), as DICOM deflates
}

// One inflate step into out. The Go buffers are only lent for the call:
// zlib keeps its own window, so the stream is cleared of them before return.
static int fracd_inflate(z_stream *s, const unsigned char *in, size_t n_in,
	unsigned char *out, size_t n_out, size_t *used_in, size_t *used_out) {
	s->next_in = (Bytef *)in;
	s->avail_in = (uInt)n_in;
	s->next_out = out;
	s->avail_out = (uInt)n_out;
	int rc = inflate(s, Z_NO_FLUSH);
	*used_in = n_in - s->avail_in;
	*used_out = n_out - s->avail_out;
	s->next_in = Z_NULL;
	s->next_out = Z_NULL;
	return rc;
}
*/
import "C"

import (
	"io"
	"unsafe"
)

// zlibReader inflates a raw deflate stream held in memory with zlib, about
// twice as fast as compress/flate. Any stream error is errInflateDamaged:
// inflate then redoes the stream with compress/flate, so that what a damaged
// stream yields stays what it always was.
type zlibReader struct {
	s    *C.z_stream
	in   []byte
	off  int
	done bool
}

// newZlibReader returns nil when zlib cannot start (out of memory).
func newZlibReader(in []byte) io.ReadCloser {
	s := (*C.z_stream)(C.calloc(1, C.sizeof_z_stream))
	if s == nil {
		return nil
	}
	if C.fracd_inflate_init(s) != C.Z_OK {
		C.free(unsafe.Pointer(s))
		return nil
	}
	return &zlibReader{s: s, in: in}
}

func (z *zlibReader) Read(p []byte) (int, error) {
	if z.done {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p = p[:min(len(p), 1<<30)] // zlib counts in 32 bits
	in := z.in[z.off:]
	in = in[:min(len(in), 1<<30)]
	var usedIn, usedOut C.size_t
	rc := C.fracd_inflate(z.s, (*C.uchar)(unsafe.Pointer(unsafe.SliceData(in))), C.size_t(len(in)),
		(*C.uchar)(unsafe.Pointer(unsafe.SliceData(p))), C.size_t(len(p)), &usedIn, &usedOut)
	z.off += int(usedIn)
	n := int(usedOut)
	switch rc {
	case C.Z_STREAM_END:
		z.done = true
		return n, io.EOF
	case C.Z_OK:
		return n, nil
	}
	return n, errInflateDamaged // Z_BUF_ERROR here is a truncated stream
}

func (z *zlibReader) Close() error {
	if z.s != nil {
		C.inflateEnd(z.s)
		C.free(unsafe.Pointer(z.s))
		z.s = nil
	}
	return nil
}
