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
		fr.Data = make([]int32, nbits)
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
	words := make([]uint32, n)
	if ybr422 {
		// Y1 Y2 Cb Cr for each pair of pixels -> Y Cb Cr per pixel.
		for p := 0; p+1 < pixels; p += 2 {
			q := p * 2
			y1, y2, cb, cr := src[q], src[q+1], src[q+2], src[q+3]
			words[3*p], words[3*p+1], words[3*p+2] = uint32(y1), uint32(cb), uint32(cr)
			words[3*p+3], words[3*p+4], words[3*p+5] = uint32(y2), uint32(cb), uint32(cr)
		}
		fr.Photometric = "YBR_FULL"
	} else {
		switch bps {
		case 1:
			for k := range n {
				words[k] = uint32(src[k])
			}
		case 2:
			for k := range n {
				words[k] = uint32(bo.Uint16(src[2*k:]))
			}
		case 4:
			for k := range n {
				words[k] = bo.Uint32(src[4*k:])
			}
		}
		if spp > 1 && ii.PlanarConfiguration == 1 {
			// RRR...GGG...BBB -> RGBRGB...
			inter := make([]uint32, n)
			for s := range spp {
				plane := words[s*pixels : (s+1)*pixels]
				for p, v := range plane {
					inter[p*spp+s] = v
				}
			}
			words = inter
		}
	}
	fr.Data = make([]int32, n)
	shift := uint(ii.HighBit + 1 - ii.BitsStored)
	bs := uint(ii.BitsStored)
	var mask uint32 = 0xFFFFFFFF
	if bs < 32 {
		mask = 1<<bs - 1
	}
	signed := ii.PixelRepresentation == 1
	for k, w := range words {
		v := (w >> shift) & mask
		if signed && bs < 32 && v&(1<<(bs-1)) != 0 {
			fr.Data[k] = int32(int64(v) - int64(1)<<bs)
		} else {
			fr.Data[k] = int32(v)
		}
	}
	return fr, nil
}
