//go:build cgo

package dicomio

/*
#cgo pkg-config: libopenjp2
#include <stdlib.h>
#include <string.h>
#include <openjpeg.h>

typedef struct { const unsigned char *data; OPJ_SIZE_T len; OPJ_SIZE_T pos; } fracd_buf;

static OPJ_SIZE_T fracd_read(void *dst, OPJ_SIZE_T n, void *u) {
	fracd_buf *b = (fracd_buf *)u;
	if (b->pos >= b->len) return (OPJ_SIZE_T)-1;
	if (n > b->len - b->pos) n = b->len - b->pos;
	memcpy(dst, b->data + b->pos, n);
	b->pos += n;
	return n;
}
static OPJ_OFF_T fracd_skip(OPJ_OFF_T n, void *u) {
	fracd_buf *b = (fracd_buf *)u;
	if (n < 0) {
		if ((OPJ_SIZE_T)(-n) > b->pos) n = -(OPJ_OFF_T)b->pos;
	} else if ((OPJ_SIZE_T)n > b->len - b->pos) {
		n = (OPJ_OFF_T)(b->len - b->pos);
	}
	b->pos += n;
	return n;
}
static OPJ_BOOL fracd_seek(OPJ_OFF_T n, void *u) {
	fracd_buf *b = (fracd_buf *)u;
	if (n < 0 || (OPJ_SIZE_T)n > b->len) return OPJ_FALSE;
	b->pos = (OPJ_SIZE_T)n;
	return OPJ_TRUE;
}
static void fracd_quiet(const char *msg, void *client) { (void)msg; (void)client; }

// Decodes a J2K codestream (or JP2 file) into a malloc'd interleaved int32
// buffer. Returns 0 on success, a negative stage code on failure.
// The header is checked against the expected size before anything is
// decoded, so a codestream cannot make OpenJPEG allocate more than the
// dataset allows.
static int fracd_j2k_decode(const unsigned char *data, size_t len, int jp2,
	int ew, int eh, int enc, int threads,
	int32_t **out, int *w, int *h, int *nc, int *prec, int *sgnd) {
	fracd_buf buf = { data, len, 0 };
	opj_codec_t *codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
	if (!codec) return -1;
	opj_set_info_handler(codec, fracd_quiet, NULL);
	opj_set_warning_handler(codec, fracd_quiet, NULL);
	opj_set_error_handler(codec, fracd_quiet, NULL);
	opj_dparameters_t params;
	opj_set_default_decoder_parameters(&params);
	if (!opj_setup_decoder(codec, &params)) { opj_destroy_codec(codec); return -2; }
	// Code blocks decode in parallel (OpenJPEG >= 2.2), as GDCM does; a
	// failure here only means one thread.
	if (threads > 1) opj_codec_set_threads(codec, threads);
	opj_stream_t *s = opj_stream_create(1 << 16, OPJ_TRUE);
	if (!s) { opj_destroy_codec(codec); return -3; }
	opj_stream_set_user_data(s, &buf, NULL);
	opj_stream_set_user_data_length(s, len);
	opj_stream_set_read_function(s, fracd_read);
	opj_stream_set_skip_function(s, fracd_skip);
	opj_stream_set_seek_function(s, fracd_seek);
	opj_image_t *img = NULL;
	int rc = 0;
	if (!opj_read_header(s, codec, &img)) rc = -4;
	else if ((int)(img->x1 - img->x0) != ew || (int)(img->y1 - img->y0) != eh || (int)img->numcomps != enc) rc = -10;
	else if (!opj_decode(codec, s, img)) rc = -5;
	else if (!opj_end_decompress(codec, s)) rc = -6;
	if (rc == 0) {
		int n = (int)img->numcomps;
		if (n < 1 || n > 4) rc = -7;
		for (int c = 0; rc == 0 && c < n; c++) {
			opj_image_comp_t *cp = &img->comps[c];
			if (cp->w != img->comps[0].w || cp->h != img->comps[0].h || cp->dx != 1 || cp->dy != 1 || !cp->data ||
				cp->prec != img->comps[0].prec || cp->sgnd != img->comps[0].sgnd) rc = -8;
		}
		if (rc == 0) {
			size_t W = img->comps[0].w, H = img->comps[0].h;
			int32_t *o = (int32_t *)malloc(W * H * (size_t)n * sizeof(int32_t));
			if (!o) rc = -9;
			else {
				for (int c = 0; c < n; c++) {
					const OPJ_INT32 *src = img->comps[c].data;
					for (size_t i = 0; i < W * H; i++) o[i * n + c] = src[i];
				}
				*out = o; *w = (int)W; *h = (int)H; *nc = n;
				*prec = (int)img->comps[0].prec; *sgnd = (int)img->comps[0].sgnd;
			}
		}
	}
	if (img) opj_image_destroy(img);
	opj_stream_destroy(s);
	opj_destroy_codec(codec);
	return rc;
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"unsafe"
)

// decodeJ2K decodes a JPEG 2000 (.90/.91) frame with OpenJPEG. OpenJPEG
// reverses the RCT/ICT component transform itself, so YBR_RCT/YBR_ICT data
// come back as RGB, like pydicom's and GDCM's output.
func decodeJ2K(data []byte, ii ImageInfo, threads int) (*Frame, error) {
	if len(data) < 16 {
		return nil, fmt.Errorf("%w: JPEG 2000 stream", ErrTruncated)
	}
	jp2 := 0
	if bytes.HasPrefix(data, []byte{0, 0, 0, 0x0C, 'j', 'P', ' ', ' '}) {
		jp2 = 1
	} else if data[0] != 0xFF || data[1] != 0x4F {
		// Some encoders pad before the SOC marker.
		if i := bytes.Index(data, []byte{0xFF, 0x4F, 0xFF, 0x51}); i > 0 && i < 64 {
			data = data[i:]
		} else {
			return nil, fmt.Errorf("%w: no JPEG 2000 SOC marker", ErrMalformed)
		}
	}
	src := C.CBytes(data)
	defer C.free(src)
	var out *C.int32_t
	var w, h, nc, prec, sgnd C.int
	rc := C.fracd_j2k_decode((*C.uchar)(src), C.size_t(len(data)), C.int(jp2),
		C.int(ii.Columns), C.int(ii.Rows), C.int(ii.SamplesPerPixel), C.int(threads), &out, &w, &h, &nc, &prec, &sgnd)
	if rc == -10 {
		return nil, fmt.Errorf("%w: JPEG 2000 header does not match the dataset's %dx%d with %d samples", ErrMalformed, ii.Columns, ii.Rows, ii.SamplesPerPixel)
	}
	if rc != 0 {
		return nil, fmt.Errorf("%w: JPEG 2000 decode failed (openjpeg stage %d)", ErrMalformed, int(rc))
	}
	defer C.free(unsafe.Pointer(out))
	if int(w) != ii.Columns || int(h) != ii.Rows || int(nc) != ii.SamplesPerPixel {
		return nil, fmt.Errorf("%w: JPEG 2000 is %dx%d with %d components, dataset says %dx%d with %d",
			ErrMalformed, w, h, nc, ii.Columns, ii.Rows, ii.SamplesPerPixel)
	}
	n := int(w) * int(h) * int(nc)
	fr := &Frame{Rows: int(h), Columns: int(w), Samples: int(nc), Photometric: ii.Photometric, Data: frameData(n)}
	copy(fr.Data, unsafe.Slice((*int32)(unsafe.Pointer(out)), n))
	if fr.Samples == 3 && (ii.Photometric == "YBR_RCT" || ii.Photometric == "YBR_ICT") {
		fr.Photometric = "RGB"
	}
	return fr, nil
}
