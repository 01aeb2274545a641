package dicomio

import (
	"bytes"
	"encoding/binary"
)

// dsBuilder writes DICOM elements by hand so the always-on tests can make
// their own small files in any encoding, including broken ones.
type dsBuilder struct {
	bo       binary.ByteOrder
	implicit bool
	buf      bytes.Buffer
}

func (b *dsBuilder) header(g, e uint16, vr string, n uint32) {
	var h [12]byte
	b.bo.PutUint16(h[0:], g)
	b.bo.PutUint16(h[2:], e)
	switch {
	case b.implicit || g == 0xFFFE:
		b.bo.PutUint32(h[4:], n)
		b.buf.Write(h[:8])
	case longVR(vr):
		copy(h[4:], vr)
		b.bo.PutUint32(h[8:], n)
		b.buf.Write(h[:12])
	default:
		copy(h[4:], vr)
		b.bo.PutUint16(h[6:], uint16(n))
		b.buf.Write(h[:8])
	}
}

func (b *dsBuilder) raw(g, e uint16, vr string, v []byte) *dsBuilder {
	if len(v)%2 == 1 {
		pad := byte(0)
		if vr != "OB" && vr != "UI" && vr != "UN" {
			pad = ' '
		}
		v = append(append([]byte(nil), v...), pad)
	}
	b.header(g, e, vr, uint32(len(v)))
	b.buf.Write(v)
	return b
}

func (b *dsBuilder) str(g, e uint16, vr, s string) *dsBuilder { return b.raw(g, e, vr, []byte(s)) }

func (b *dsBuilder) us(g, e uint16, vals ...uint16) *dsBuilder {
	v := make([]byte, 2*len(vals))
	for i, x := range vals {
		b.bo.PutUint16(v[2*i:], x)
	}
	return b.raw(g, e, "US", v)
}

// encapsulated writes Pixel Data as items: bot (may be nil) then fragments.
func (b *dsBuilder) encapsulated(bot []uint32, frags ...[]byte) *dsBuilder {
	b.header(0x7FE0, 0x0010, "OB", 0xFFFFFFFF)
	t := make([]byte, 4*len(bot))
	for i, o := range bot {
		binary.LittleEndian.PutUint32(t[4*i:], o)
	}
	b.header(0xFFFE, 0xE000, "", uint32(len(t)))
	b.buf.Write(t)
	for _, f := range frags {
		if len(f)%2 == 1 {
			f = append(append([]byte(nil), f...), 0)
		}
		b.header(0xFFFE, 0xE000, "", uint32(len(f)))
		b.buf.Write(f)
	}
	b.header(0xFFFE, 0xE0DD, "", 0)
	return b
}

// image writes the Image Pixel module attributes (before Pixel Data).
func (b *dsBuilder) image(rows, cols, spp, ba, bs, pr int, photometric string) *dsBuilder {
	b.str(0x0008, 0x0016, "UI", "1.2.840.10008.5.1.4.1.1.7")
	b.str(0x0008, 0x0060, "CS", "OT")
	b.str(0x0010, 0x0010, "PN", "Doe^Jane")
	b.us(0x0028, 0x0002, uint16(spp))
	b.str(0x0028, 0x0004, "CS", photometric)
	b.us(0x0028, 0x0010, uint16(rows))
	b.us(0x0028, 0x0011, uint16(cols))
	b.us(0x0028, 0x0100, uint16(ba))
	b.us(0x0028, 0x0101, uint16(bs))
	b.us(0x0028, 0x0102, uint16(bs-1))
	b.us(0x0028, 0x0103, uint16(pr))
	return b
}

// part10 wraps a data set with preamble, DICM and a file meta group.
func part10(tsUID string, body []byte) []byte {
	meta := &dsBuilder{bo: binary.LittleEndian}
	meta.raw(0x0002, 0x0001, "OB", []byte{0, 1})
	meta.str(0x0002, 0x0002, "UI", "1.2.840.10008.5.1.4.1.1.7")
	meta.str(0x0002, 0x0003, "UI", "1.2.3.4.5.6.7")
	meta.str(0x0002, 0x0010, "UI", tsUID)
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	gl := &dsBuilder{bo: binary.LittleEndian}
	gl.raw(0x0002, 0x0000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(meta.buf.Len())))
	out.Write(gl.buf.Bytes())
	out.Write(meta.buf.Bytes())
	out.Write(body)
	return out.Bytes()
}

// packBits is a simple PackBits encoder (literal runs and repeats) for RLE tests.
func packBits(src []byte) []byte {
	var out []byte
	for i := 0; i < len(src); {
		j := i + 1
		for j < len(src) && j-i < 128 && src[j] == src[i] {
			j++
		}
		if j-i >= 3 {
			out = append(out, byte(int8(-(j - i - 1))), src[i])
			i = j
			continue
		}
		j = i
		for j < len(src) && j-i < 128 && !(j+2 < len(src) && src[j] == src[j+1] && src[j] == src[j+2]) {
			j++
		}
		if j == i {
			j = i + 1
		}
		out = append(out, byte(j-i-1))
		out = append(out, src[i:j]...)
		i = j
	}
	return out
}

// rleEncode builds an RLE Lossless frame from interleaved words.
func rleEncode(words []uint32, spp, bps int) []byte {
	pixels := len(words) / spp
	nseg := spp * bps
	hdr := make([]byte, 64)
	binary.LittleEndian.PutUint32(hdr, uint32(nseg))
	var segs []byte
	for s := range nseg {
		sample, shift := s/bps, uint(8*(bps-1-s%bps))
		plane := make([]byte, pixels)
		for p := range pixels {
			plane[p] = byte(words[p*spp+sample] >> shift)
		}
		enc := packBits(plane)
		if len(enc)%2 == 1 {
			enc = append(enc, 0x80) // no-op byte keeps segments even
		}
		binary.LittleEndian.PutUint32(hdr[4+4*s:], uint32(64+len(segs)))
		segs = append(segs, enc...)
	}
	return append(hdr, segs...)
}

// seq writes a sequence of undefined length whose items hold the given
// already-encoded element bytes (same encoding as b).
func (b *dsBuilder) seq(g, e uint16, items ...[]byte) *dsBuilder {
	b.header(g, e, "SQ", 0xFFFFFFFF)
	for _, it := range items {
		b.header(0xFFFE, 0xE000, "", 0xFFFFFFFF)
		b.buf.Write(it)
		b.header(0xFFFE, 0xE00D, "", 0)
	}
	b.header(0xFFFE, 0xE0DD, "", 0)
	return b
}
