package dicomio

import (
	"encoding/binary"
	"fmt"
)

// decodeRLE decodes one RLE Lossless frame (PS3.5 Annex G): a 64-byte header
// of segment offsets, then one PackBits segment per byte plane, ordered by
// sample and, within a sample, from the most significant byte down.
func decodeRLE(data []byte, ii ImageInfo) (*Frame, error) {
	if len(data) < 64 {
		return nil, fmt.Errorf("%w: RLE header", ErrTruncated)
	}
	bps := ii.BitsAllocated / 8
	if ii.BitsAllocated == 1 || bps < 1 || bps > 4 {
		return nil, fmt.Errorf("%w: RLE with BitsAllocated %d", ErrMalformed, ii.BitsAllocated)
	}
	spp := ii.SamplesPerPixel
	nseg := int(binary.LittleEndian.Uint32(data))
	if nseg != spp*bps {
		return nil, fmt.Errorf("%w: RLE has %d segments, expected %d", ErrMalformed, nseg, spp*bps)
	}
	offs := make([]int, nseg+1)
	for s := range nseg {
		offs[s] = int(binary.LittleEndian.Uint32(data[4+4*s:]))
		if offs[s] < 64 || offs[s] > len(data) || (s > 0 && offs[s] < offs[s-1]) {
			return nil, fmt.Errorf("%w: RLE segment offset", ErrMalformed)
		}
	}
	offs[nseg] = len(data)
	pixels := ii.Rows * ii.Columns
	// PackBits yields at most 128 bytes per 2 input bytes: a segment too
	// short for its plane is refused before the frame is allocated.
	for s := range nseg {
		if n := offs[s+1] - offs[s]; pixels > 64*(n+1) {
			return nil, fmt.Errorf("%w: RLE segment %d of %d bytes cannot hold %d samples", ErrTruncated, s, n, pixels)
		}
	}
	fr := &Frame{Rows: ii.Rows, Columns: ii.Columns, Samples: spp, Photometric: ii.Photometric, Data: frameData(pixels * spp)}
	plane := make([]byte, pixels)
	for s := range nseg {
		if err := unpackBits(data[offs[s]:offs[s+1]], plane); err != nil {
			return nil, err
		}
		sample := s / bps
		shift := uint(8 * (bps - 1 - s%bps))
		// Planes are ORed straight into the frame: no intermediate word buffer.
		for p, b := range plane {
			k := p*spp + sample
			fr.Data[k] = int32(uint32(fr.Data[k]) | uint32(b)<<shift)
		}
	}
	return fr, nil
}

// unpackBits fills out from a PackBits segment. A segment that ends early is
// an error; extra decoded bytes (encoder padding) are ignored.
func unpackBits(src, out []byte) error {
	o := 0
	for i := 0; i < len(src) && o < len(out); {
		n := int(int8(src[i]))
		i++
		switch {
		case n >= 0:
			cnt := n + 1
			if i+cnt > len(src) {
				cnt = len(src) - i
			}
			o += copy(out[o:], src[i:i+cnt])
			i += n + 1
		case n != -128:
			if i >= len(src) {
				return fmt.Errorf("%w: RLE run", ErrTruncated)
			}
			b := src[i]
			i++
			for k := 0; k < 1-n && o < len(out); k++ {
				out[o] = b
				o++
			}
		}
	}
	if o < len(out) {
		return fmt.Errorf("%w: RLE segment decodes to %d of %d bytes", ErrTruncated, o, len(out))
	}
	return nil
}
