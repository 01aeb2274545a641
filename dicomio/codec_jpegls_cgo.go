//go:build cgo

package dicomio

/*
#cgo pkg-config: charls
#include <stdlib.h>
#include <charls/charls.h>

// Decode a JPEG-LS stream into dst; returns a charls error code (0 = ok).
// Frame info and the interleave mode are returned through the pointers so Go
// can size dst first (info_only = 1).
static int fracd_jls_decode(const void *src, size_t n, void *dst, size_t dst_n,
	uint32_t *w, uint32_t *h, int32_t *bits, int32_t *comps, int32_t *ilv, int info_only) {
	charls_jpegls_decoder *d = charls_jpegls_decoder_create();
	if (!d) return -1;
	int ec = charls_jpegls_decoder_set_source_buffer(d, src, n);
	if (!ec) ec = charls_jpegls_decoder_read_header(d);
	charls_frame_info fi;
	if (!ec) ec = charls_jpegls_decoder_get_frame_info(d, &fi);
	charls_interleave_mode mode = CHARLS_INTERLEAVE_MODE_NONE;
	if (!ec) ec = charls_jpegls_decoder_get_interleave_mode(d, &mode);
	if (!ec) {
		*w = fi.width; *h = fi.height; *bits = fi.bits_per_sample; *comps = fi.component_count; *ilv = (int32_t)mode;
	}
	if (!ec && !info_only) ec = charls_jpegls_decoder_decode_to_buffer(d, dst, dst_n, 0);
	charls_jpegls_decoder_destroy(d);
	return ec;
}
*/
import "C"

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// decodeJPEGLS decodes a JPEG-LS (.80/.81) frame with CharLS. Near-lossless
// is integer-exact across conforming decoders, so no tolerance is needed.
func decodeJPEGLS(data []byte, ii ImageInfo) (*Frame, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: JPEG-LS stream", ErrTruncated)
	}
	src := C.CBytes(data)
	defer C.free(src)
	var w, h C.uint32_t
	var bits, comps, ilv C.int32_t
	if ec := C.fracd_jls_decode(src, C.size_t(len(data)), nil, 0, &w, &h, &bits, &comps, &ilv, 1); ec != 0 {
		return nil, fmt.Errorf("%w: JPEG-LS header (charls error %d)", ErrMalformed, int(ec))
	}
	if int(w) != ii.Columns || int(h) != ii.Rows || int(comps) != ii.SamplesPerPixel || bits < 2 || bits > 16 {
		return nil, fmt.Errorf("%w: JPEG-LS is %dx%d, %d components of %d bits; dataset says %dx%d with %d",
			ErrMalformed, w, h, comps, bits, ii.Columns, ii.Rows, ii.SamplesPerPixel)
	}
	bps := 1
	if bits > 8 {
		bps = 2
	}
	n := int(w) * int(h) * int(comps)
	dst := C.malloc(C.size_t(n * bps))
	if dst == nil {
		return nil, fmt.Errorf("%w: JPEG-LS output buffer", ErrTooLarge)
	}
	defer C.free(dst)
	if ec := C.fracd_jls_decode(src, C.size_t(len(data)), dst, C.size_t(n*bps), &w, &h, &bits, &comps, &ilv, 0); ec != 0 {
		return nil, fmt.Errorf("%w: JPEG-LS decode (charls error %d)", ErrMalformed, int(ec))
	}
	raw := unsafe.Slice((*byte)(dst), n*bps)
	fr := &Frame{Rows: int(h), Columns: int(w), Samples: int(comps), Photometric: ii.Photometric, Data: frameData(n)}
	pixels := int(w) * int(h)
	planar := ilv == C.CHARLS_INTERLEAVE_MODE_NONE && comps > 1
	for k := range n {
		var v int32
		if bps == 1 {
			v = int32(raw[k])
		} else {
			v = int32(binary.LittleEndian.Uint16(raw[2*k:]))
		}
		if planar {
			c, p := k/pixels, k%pixels
			fr.Data[p*int(comps)+c] = v
		} else {
			fr.Data[k] = v
		}
	}
	return fr, nil
}
