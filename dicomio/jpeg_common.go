package dicomio

import "fmt"

// Shared ISO 10918-1 machinery for the pure-Go JPEG decoders (DCT
// sequential 8/12-bit in codec_jpeg_dct.go, lossless process 14 in
// codec_jpeg_lossless.go): marker segments, Huffman tables, entropy bits.

var errJPEG = fmt.Errorf("%w: invalid JPEG stream", ErrMalformed)

const maxJPEGScans = 256

type huffTable struct {
	maxcode [18]int32
	valptr  [17]int32
	mincode [17]int32
	vals    []byte
	// lookahead: code of up to 9 bits -> (length<<8 | value); 0 = miss
	look [1 << 9]uint16
	ok   bool
}

func buildHuff(counts [16]byte, vals []byte) (*huffTable, error) {
	h := &huffTable{vals: vals}
	code, k := int32(0), int32(0)
	total := 0
	for _, c := range counts {
		total += int(c)
	}
	if total > len(vals) || total > 256 {
		return nil, fmt.Errorf("%w: Huffman table size", errJPEG)
	}
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		if n == 0 {
			h.maxcode[l] = -1
		} else {
			h.valptr[l] = k
			h.mincode[l] = code
			code += n
			k += n
			h.maxcode[l] = code - 1
			if l <= 9 {
				for c := h.mincode[l]; c <= h.maxcode[l]; c++ {
					v := vals[h.valptr[l]+c-h.mincode[l]]
					shift := uint(9 - l)
					for x := c << shift; x < (c+1)<<shift; x++ {
						h.look[x] = uint16(l)<<8 | uint16(v)
					}
				}
			}
		}
		if code > 1<<uint(l) {
			return nil, fmt.Errorf("%w: Huffman code overflow", errJPEG)
		}
		code <<= 1
	}
	h.maxcode[17] = 0x7FFFFFFF
	h.ok = true
	return h, nil
}

// bitReader reads entropy-coded bits, removing 0xFF00 stuffing. At a marker
// it stops consuming and supplies zero bits (corrupt data decodes to garbage
// rather than reading past the segment).
type bitReader struct {
	d      []byte
	pos    int
	acc    uint64
	n      uint
	marker bool
}

func (b *bitReader) fill() {
	for b.n <= 56 {
		if b.marker || b.pos >= len(b.d) {
			b.acc <<= 8
			b.n += 8
			continue
		}
		c := b.d[b.pos]
		if c == 0xFF {
			if b.pos+1 < len(b.d) && b.d[b.pos+1] == 0x00 {
				b.pos += 2
			} else {
				b.marker = true
				continue
			}
		} else {
			b.pos++
		}
		b.acc = b.acc<<8 | uint64(c)
		b.n += 8
	}
}

func (b *bitReader) bits(n uint) int32 {
	if b.n < n {
		b.fill()
	}
	v := int32(b.acc>>(b.n-n)) & (1<<n - 1)
	b.n -= n
	return v
}

func (b *bitReader) bit() int32 { return b.bits(1) }

func (b *bitReader) decode(h *huffTable) (byte, error) {
	if b.n < 16 {
		b.fill()
	}
	peek := int32(b.acc>>(b.n-9)) & 0x1FF
	if e := h.look[peek]; e != 0 {
		b.n -= uint(e >> 8)
		return byte(e), nil
	}
	code := int32(0)
	for l := 1; l <= 16; l++ {
		code = code<<1 | b.bit()
		if code <= h.maxcode[l] {
			return h.vals[h.valptr[l]+code-h.mincode[l]], nil
		}
	}
	return 0, fmt.Errorf("%w: bad Huffman code", errJPEG)
}

// receiveExtend reads s bits and sign-extends them (F.2.2.1).
func (b *bitReader) receiveExtend(s byte) int32 {
	if s == 0 {
		return 0
	}
	s &= 31
	if s > 16 {
		s = 16
	}
	if b.n < uint(s) {
		b.fill()
	}
	v := int32(b.acc>>(b.n-uint(s))) & (1<<s - 1)
	b.n -= uint(s)
	if v < 1<<(s-1) {
		v += -1<<s + 1
	}
	return v
}

// restart skips to just after the next RSTn marker and resets the reader.
func (b *bitReader) restart() {
	b.acc, b.n = 0, 0
	p := b.pos
	for p+1 < len(b.d) {
		if b.d[p] == 0xFF && b.d[p+1] >= 0xD0 && b.d[p+1] <= 0xD7 {
			b.pos = p + 2
			b.marker = false
			return
		}
		if b.d[p] == 0xFF && b.d[p+1] != 0 && b.d[p+1] != 0xFF {
			// Some other marker: no restart here; keep position.
			b.pos = p
			b.marker = true
			return
		}
		p++
	}
	b.pos = len(b.d)
}

type jpegComponent struct {
	id     byte
	h, v   int
	tq     int
	td, ta int // Huffman table selectors for the current scan
}

type jpegFrame struct {
	sof       byte // 0xC0..0xC3
	precision int
	height    int
	width     int
	comps     []jpegComponent
	hmax      int
	vmax      int
}

type jpegScan struct {
	comps  []int // indexes into frame.comps
	ss, se int
	ah, al int
	data   []byte // entropy-coded data to the next non-RST marker
	end    int    // index in the stream just past data
}

type jpegState struct {
	frame   *jpegFrame
	dc, ac  [4]*huffTable
	quant   [4][64]int32
	restart int
	haveQ   [4]bool
	scans   []jpegScan
	d       []byte
}

func be16(d []byte, p int) int { return int(d[p])<<8 | int(d[p+1]) }

// parseJPEG reads the marker segments of one JPEG stream. Huffman and
// quantisation tables may be redefined between scans, so callers that need
// per-scan tables run the scan decoders through the scan callback.
func parseJPEG(d []byte, onScan func(st *jpegState, sc *jpegScan) error) (*jpegState, error) {
	st := &jpegState{d: d}
	p := 0
	for p+1 < len(d) && !(d[p] == 0xFF && d[p+1] == 0xD8) {
		p++ // leading garbage/padding before SOI
	}
	if p+1 >= len(d) {
		return nil, fmt.Errorf("%w: no SOI marker", errJPEG)
	}
	p += 2
	for {
		// find marker
		for p < len(d) && d[p] != 0xFF {
			p++
		}
		for p < len(d) && d[p] == 0xFF {
			p++
		}
		if p >= len(d) {
			if st.frame != nil && len(st.scans) > 0 {
				return st, nil // missing EOI: tolerate, data already decoded
			}
			return nil, fmt.Errorf("%w: unexpected end of stream", errJPEG)
		}
		m := d[p]
		p++
		switch {
		case m == 0xD9: // EOI
			if st.frame == nil || len(st.scans) == 0 {
				return nil, fmt.Errorf("%w: no frame/scan before EOI", errJPEG)
			}
			return st, nil
		case m >= 0xD0 && m <= 0xD7, m == 0x01:
			continue
		}
		if p+2 > len(d) {
			return nil, fmt.Errorf("%w: segment length", errJPEG)
		}
		ln := be16(d, p)
		if ln < 2 || p+ln > len(d) {
			return nil, fmt.Errorf("%w: segment length", errJPEG)
		}
		seg := d[p+2 : p+ln]
		p += ln
		switch {
		case m == 0xC0 || m == 0xC1 || m == 0xC2 || m == 0xC3:
			if st.frame != nil {
				return nil, fmt.Errorf("%w: multiple frames", errJPEG)
			}
			fr, err := parseSOF(m, seg)
			if err != nil {
				return nil, err
			}
			st.frame = fr
		case m >= 0xC5 && m <= 0xCF && m != 0xC8 && m != 0xCC:
			return nil, fmt.Errorf("%w: unsupported JPEG process (SOF%d)", ErrUnsupportedTransferSyntax, m-0xC0)
		case m == 0xC4:
			if err := st.parseDHT(seg); err != nil {
				return nil, err
			}
		case m == 0xDB:
			if err := st.parseDQT(seg); err != nil {
				return nil, err
			}
		case m == 0xDD:
			if len(seg) < 2 {
				return nil, fmt.Errorf("%w: DRI", errJPEG)
			}
			st.restart = be16(seg, 0)
		case m == 0xDA:
			if st.frame == nil {
				return nil, fmt.Errorf("%w: SOS before SOF", errJPEG)
			}
			if len(st.scans) >= maxJPEGScans {
				// Each scan walks the whole image: bound the work a small
				// stream can demand (real encoders use at most a few dozen).
				return nil, fmt.Errorf("%w: more than %d scans", errJPEG, maxJPEGScans)
			}
			sc, err := st.parseSOS(seg)
			if err != nil {
				return nil, err
			}
			// Entropy data runs to the next marker that is not RSTn or stuffing.
			q := p
			for q+1 < len(d) {
				if d[q] == 0xFF && d[q+1] != 0 && !(d[q+1] >= 0xD0 && d[q+1] <= 0xD7) && d[q+1] != 0xFF {
					break
				}
				q++
			}
			if q+1 >= len(d) {
				q = len(d)
			}
			sc.data = d[p:q]
			sc.end = q
			if err := onScan(st, sc); err != nil {
				return nil, err
			}
			st.scans = append(st.scans, *sc)
			p = q
		}
	}
}

func parseSOF(m byte, seg []byte) (*jpegFrame, error) {
	if len(seg) < 6 {
		return nil, fmt.Errorf("%w: SOF", errJPEG)
	}
	fr := &jpegFrame{sof: m, precision: int(seg[0]), height: be16(seg, 1), width: be16(seg, 3)}
	nc := int(seg[5])
	if nc < 1 || nc > 4 || len(seg) < 6+3*nc {
		return nil, fmt.Errorf("%w: SOF components", errJPEG)
	}
	if fr.width == 0 || fr.height == 0 {
		return nil, fmt.Errorf("%w: SOF size %dx%d (DNL not supported)", errJPEG, fr.width, fr.height)
	}
	if fr.precision < 2 || fr.precision > 16 {
		return nil, fmt.Errorf("%w: precision %d", errJPEG, fr.precision)
	}
	for i := range nc {
		c := jpegComponent{id: seg[6+3*i], h: int(seg[7+3*i] >> 4), v: int(seg[7+3*i] & 15), tq: int(seg[8+3*i])}
		if c.h < 1 || c.h > 4 || c.v < 1 || c.v > 4 || c.tq > 3 {
			return nil, fmt.Errorf("%w: component sampling", errJPEG)
		}
		fr.hmax, fr.vmax = max(fr.hmax, c.h), max(fr.vmax, c.v)
		fr.comps = append(fr.comps, c)
	}
	return fr, nil
}

func (st *jpegState) parseDHT(seg []byte) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return fmt.Errorf("%w: DHT", errJPEG)
		}
		tc, th := seg[0]>>4, seg[0]&15
		if tc > 1 || th > 3 {
			return fmt.Errorf("%w: DHT class/id", errJPEG)
		}
		var counts [16]byte
		copy(counts[:], seg[1:17])
		n := 0
		for _, c := range counts {
			n += int(c)
		}
		if len(seg) < 17+n {
			return fmt.Errorf("%w: DHT values", errJPEG)
		}
		h, err := buildHuff(counts, append([]byte(nil), seg[17:17+n]...))
		if err != nil {
			return err
		}
		if tc == 0 {
			st.dc[th] = h
		} else {
			st.ac[th] = h
		}
		seg = seg[17+n:]
	}
	return nil
}

func (st *jpegState) parseDQT(seg []byte) error {
	for len(seg) > 0 {
		pq, tq := seg[0]>>4, seg[0]&15
		if tq > 3 || pq > 1 {
			return fmt.Errorf("%w: DQT", errJPEG)
		}
		n := 65
		if pq == 1 {
			n = 129
		}
		if len(seg) < n {
			return fmt.Errorf("%w: DQT length", errJPEG)
		}
		for k := range 64 {
			if pq == 0 {
				st.quant[tq][k] = int32(seg[1+k])
			} else {
				st.quant[tq][k] = int32(seg[1+2*k])<<8 | int32(seg[2+2*k])
			}
		}
		st.haveQ[tq] = true
		seg = seg[n:]
	}
	return nil
}

func (st *jpegState) parseSOS(seg []byte) (*jpegScan, error) {
	if len(seg) < 1 {
		return nil, fmt.Errorf("%w: SOS", errJPEG)
	}
	ns := int(seg[0])
	if ns < 1 || ns > 4 || len(seg) < 1+2*ns+3 {
		return nil, fmt.Errorf("%w: SOS components", errJPEG)
	}
	sc := &jpegScan{}
	for i := range ns {
		id := seg[1+2*i]
		idx := -1
		for k, c := range st.frame.comps {
			if c.id == id {
				idx = k
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("%w: SOS names unknown component", errJPEG)
		}
		st.frame.comps[idx].td = int(seg[2+2*i] >> 4)
		st.frame.comps[idx].ta = int(seg[2+2*i] & 15)
		if st.frame.comps[idx].td > 3 || st.frame.comps[idx].ta > 3 {
			return nil, fmt.Errorf("%w: SOS table selector", errJPEG)
		}
		sc.comps = append(sc.comps, idx)
	}
	q := 1 + 2*ns
	sc.ss, sc.se = int(seg[q]), int(seg[q+1])
	sc.ah, sc.al = int(seg[q+2]>>4), int(seg[q+2]&15)
	return sc, nil
}

// decodeJPEG decodes one frame of any supported ISO 10918-1 process.
func decodeJPEG(data []byte, ii ImageInfo) (*Frame, error) {
	return decodeJPEGMode(data, ii, true)
}

// decodeJPEGMode is decodeJPEG; stream lets a sequential one-component frame
// be transformed block by block as it is decoded (see dctDecoder.stream).
func decodeJPEGMode(data []byte, ii ImageInfo, stream bool) (*Frame, error) {
	var dct *dctDecoder
	var ll *losslessDecoder
	st, err := parseJPEG(data, func(st *jpegState, sc *jpegScan) error {
		fr := st.frame
		if int64(fr.width)*int64(fr.height)*int64(len(fr.comps)) > int64(ii.Rows)*int64(ii.Columns)*int64(ii.SamplesPerPixel)*4+64 {
			return fmt.Errorf("%w: JPEG frame %dx%dx%d larger than the image", ErrMalformed, fr.width, fr.height, len(fr.comps))
		}
		switch fr.sof {
		case 0xC3:
			if ll == nil {
				ll = newLosslessDecoder(fr)
			}
			return ll.scan(st, sc)
		case 0xC0, 0xC1, 0xC2:
			if dct == nil {
				dct = newDCTDecoder(fr, stream)
			}
			return dct.scan(st, sc)
		}
		return fmt.Errorf("%w: SOF%d", ErrUnsupportedTransferSyntax, fr.sof-0xC0)
	})
	if err != nil {
		return nil, fmt.Errorf("jpeg: %w", err)
	}
	fr := st.frame
	if fr.width != ii.Columns || fr.height != ii.Rows || len(fr.comps) != ii.SamplesPerPixel {
		return nil, fmt.Errorf("%w: JPEG is %dx%d with %d components, dataset says %dx%d with %d",
			ErrMalformed, fr.width, fr.height, len(fr.comps), ii.Columns, ii.Rows, ii.SamplesPerPixel)
	}
	if dct != nil && dct.stream && (dct.scans != 1 || dct.q != st.quant[fr.comps[0].tq]) {
		// A component scanned twice, or its table redefined after its scan:
		// only the stored coefficients give what decoding always gave.
		return decodeJPEGMode(data, ii, false)
	}
	out := &Frame{Rows: fr.height, Columns: fr.width, Samples: len(fr.comps), Photometric: ii.Photometric}
	if ll != nil {
		out.Data = ll.output()
	} else {
		out.Data = dct.output(st)
	}
	return out, nil
}
