package dicomio

import (
	"encoding/binary"
	"fmt"
)

// decodeNative extracts frame i from uncompressed pixel data held in the
// transfer syntax's byte order. vr is the Pixel Data VR as encoded: 8-bit data
// in an OW element of a big-endian file has its bytes swapped in pairs.
func decodeNative(raw []byte, ii ImageInfo, i int, bo binary.ByteOrder, vr string) (*Frame, error) {
	pixels := ii.Rows * ii.Columns
	spp := ii.SamplesPerPixel
	fr := &Frame{Index: i, Rows: ii.Rows, Columns: ii.Columns, Samples: spp, Photometric: ii.Photometric}

	if ii.BitsAllocated == 1 {
		// Bit-packed across frame boundaries, least significant bit first.
		nbits := pixels * spp
		startBit := i * nbits
		if (startBit+nbits+7)/8 > len(raw) {
			return nil, fmt.Errorf("%w: 1-bit pixel data shorter than frame %d", ErrTruncated, i)
		}
		fr.Data = frameData(nbits)
		for k := range nbits {
			b := startBit + k
			fr.Data[k] = int32(raw[b>>3]>>(b&7)) & 1
		}
		return fr, nil
	}

	ybr422 := ii.Photometric == "YBR_FULL_422" && spp == 3 && ii.BitsAllocated == 8
	bps := ii.BitsAllocated / 8
	frameBytes := pixels * spp * bps
	if ybr422 {
		frameBytes = pixels * 2
	}
	off := i * frameBytes
	if off+frameBytes > len(raw) {
		return nil, fmt.Errorf("%w: pixel data has %d bytes, frame %d needs %d..%d", ErrTruncated, len(raw), i, off, off+frameBytes)
	}
	src := raw[off : off+frameBytes]
	if bps == 1 && bo == binary.BigEndian && vr == "OW" {
		// OW words were written big endian: undo the pairwise swap. Frames of
		// odd length straddle words, so swap relative to the element start.
		sw := make([]byte, len(src))
		for k := range src {
			j := off + k
			j ^= 1
			if j < len(raw) {
				sw[k] = raw[j]
			}
		}
		src = sw
	}

	n := pixels * spp
	sf := newSampleFormat(ii)
	// Values go straight into the frame (no intermediate word buffer), so a
	// frame costs its int32s and nothing more.
	fr.Data = frameData(n)
	if ybr422 {
		// Y1 Y2 Cb Cr for each pair of pixels -> Y Cb Cr per pixel.
		for p := 0; p+1 < pixels; p += 2 {
			q := p * 2
			y1, y2, cb, cr := sf.value(uint32(src[q])), sf.value(uint32(src[q+1])), sf.value(uint32(src[q+2])), sf.value(uint32(src[q+3]))
			fr.Data[3*p], fr.Data[3*p+1], fr.Data[3*p+2] = y1, cb, cr
			fr.Data[3*p+3], fr.Data[3*p+4], fr.Data[3*p+5] = y2, cb, cr
		}
		fr.Photometric = "YBR_FULL"
		return fr, nil
	}
	word := func(k int) uint32 {
		switch bps {
		case 1:
			return uint32(src[k])
		case 2:
			return uint32(bo.Uint16(src[2*k:]))
		}
		return bo.Uint32(src[4*k:])
	}
	if spp > 1 && ii.PlanarConfiguration == 1 {
		// RRR...GGG...BBB -> RGBRGB...
		for s := range spp {
			for p := range pixels {
				fr.Data[p*spp+s] = sf.value(word(s*pixels + p))
			}
		}
		return fr, nil
	}
	switch bps {
	case 1:
		for k := range n {
			fr.Data[k] = sf.value(uint32(src[k]))
		}
	case 2:
		if bo == binary.LittleEndian {
			// The common case, without bo's dynamic call per sample.
			decode16LE(fr.Data[:n], src[:2*n], sf)
			break
		}
		for k := range n {
			fr.Data[k] = sf.value(uint32(bo.Uint16(src[2*k:])))
		}
	default:
		for k := range n {
			fr.Data[k] = sf.value(bo.Uint32(src[4*k:]))
		}
	}
	return fr, nil
}

// sampleFormat turns a stored word into its value: shifted down by the
// high bit, masked to BitsStored and sign-extended when signed.
type sampleFormat struct {
	shift, bits uint
	mask        uint32
	signed      bool
}

func newSampleFormat(ii ImageInfo) sampleFormat {
	sf := sampleFormat{shift: uint(ii.HighBit + 1 - ii.BitsStored), bits: uint(ii.BitsStored), mask: 0xFFFFFFFF, signed: ii.PixelRepresentation == 1}
	if sf.bits < 32 {
		sf.mask = 1<<sf.bits - 1
	}
	return sf
}

func (sf sampleFormat) value(w uint32) int32 {
	v := (w >> sf.shift) & sf.mask
	if sf.signed && sf.bits < 32 && v&(1<<(sf.bits-1)) != 0 {
		return int32(int64(v) - int64(1)<<sf.bits)
	}
	return int32(v)
}

// decode16LE is decodeNative's loop for 16-bit little-endian words, with
// the unsigned case (no sign test) split out.
func decode16LE(dst []int32, src []byte, sf sampleFormat) {
	src = src[:2*len(dst)]
	shift, mask := sf.shift, sf.mask
	if !sf.signed || sf.bits >= 32 {
		for k := range dst {
			dst[k] = int32((uint32(src[2*k]) | uint32(src[2*k+1])<<8) >> shift & mask)
		}
		return
	}
	for k := range dst {
		dst[k] = sf.value(uint32(src[2*k]) | uint32(src[2*k+1])<<8)
	}
}
