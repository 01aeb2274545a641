package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// layout is what the raw walk learns about a file before suyashkumar sees it.
type layout struct {
	metaStart, metaEnd int // byte range of the group 0002 elements (empty when absent)
	hasPreamble        bool
	tsUID              string // from the meta group, or inferred ("" never leaves scan)
	tsInferred         bool
	ts                 tsInfo
	body               []byte // data set after the meta group (inflated when deflated)
	pixel              *rawPixel
	binaries           map[uint32][]byte
	bodyOwned          bool // body is a buffer of scan's own (inflated or patched)
}

// rawPixel locates the top-level Pixel Data element inside layout.body.
type rawPixel struct {
	vr           string
	encapsulated bool
	bot          []uint32 // Basic Offset Table (may be empty)
	fragments    int      // number of fragments after the BOT
	// native only: where the element and its value are in layout.body
	elemStart, valueStart, valueEnd int
}

const (
	maxDepth = 64 // sequence nesting limit; deeper files are rejected as malformed
)

var le = binary.LittleEndian

func isVR(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	return b[0] >= 'A' && b[0] <= 'Z' && b[1] >= 'A' && b[1] <= 'Z'
}

// longVR reports VRs whose explicit encoding has 2 reserved bytes and a 32-bit length.
func longVR(vr string) bool {
	switch vr {
	case "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV":
		return true
	}
	return false
}

// scan decides the file layout. o bounds the inflated size of a deflated
// data set, absolutely and relative to its compressed size.
func scan(b []byte, o options) (*layout, error) {
	l := &layout{}
	pos := 0
	if len(b) >= 132 && string(b[128:132]) == "DICM" {
		l.hasPreamble = true
		pos = 132
	} else if len(b) >= 4 && string(b[0:4]) == "DICM" {
		// Preamble missing but magic present: seen from some broken exporters.
		pos = 4
	}
	// Meta group: always explicit VR little endian.
	if len(b) >= pos+8 && le.Uint16(b[pos:]) == 0x0002 && isVR(b[pos+4:]) {
		l.metaStart = pos
		for len(b) >= pos+8 && le.Uint16(b[pos:]) == 0x0002 {
			el := le.Uint16(b[pos+2:])
			vr := string(b[pos+4 : pos+6])
			if !isVR(b[pos+4:]) {
				return nil, fmt.Errorf("%w: bad VR in file meta group", ErrMalformed)
			}
			hdr, vl := 8, uint32(le.Uint16(b[pos+6:]))
			if longVR(vr) {
				if len(b) < pos+12 {
					return nil, fmt.Errorf("%w: in file meta group", ErrTruncated)
				}
				hdr, vl = 12, le.Uint32(b[pos+8:])
			}
			if vl == 0xFFFFFFFF || uint64(pos)+uint64(hdr)+uint64(vl) > uint64(len(b)) {
				return nil, fmt.Errorf("%w: file meta element length", ErrTruncated)
			}
			val := b[pos+hdr : pos+hdr+int(vl)]
			if el == 0x0010 {
				l.tsUID = strings.TrimRight(string(val), " \x00")
			}
			pos += hdr + int(vl)
		}
		l.metaEnd = pos
	} else if l.hasPreamble || pos == 4 {
		// DICM without a meta group: treat what follows as a bare data set.
		l.metaStart, l.metaEnd = pos, pos
	}
	rest := b[pos:]
	if len(rest) == 0 {
		if l.metaEnd > l.metaStart {
			return nil, fmt.Errorf("%w: file meta group but no data set", ErrTruncated)
		}
		return nil, ErrNotDICOM
	}
	if l.tsUID == "" {
		uid, ok := inferTS(rest)
		if !ok {
			return nil, ErrNotDICOM
		}
		l.tsUID, l.tsInferred = uid, true
	}
	ts, ok := transferSyntaxes[l.tsUID]
	if !ok {
		return nil, unsupportedTS(l.tsUID, "unknown transfer syntax, data set encoding unknown")
	}
	l.ts = ts
	owned := false // whether rest is our own copy, free to patch in place
	if ts.deflated {
		inflated, err := inflate(rest, o)
		if err != nil {
			return nil, err
		}
		rest, owned = inflated, true
	} else if !ts.implicit && len(rest) >= 6 && !isVR(rest[4:]) && l.metaEnd > l.metaStart {
		// Meta says explicit VR but the data set is implicit: a known exporter
		// bug. Read it as implicit rather than misparse it.
		l.ts.implicit = true
	}
	l.body = rest
	w := walker{b: rest, bo: l.ts.bo, implicit: l.ts.implicit, patchVR: new([]int)}
	end, err := w.walk(0, len(rest), 0, true)
	if err != nil {
		return nil, err
	}
	if !l.hasPreamble && l.metaEnd == l.metaStart && end < 8 {
		return nil, ErrNotDICOM
	}
	l.body = fixCharset(rest[:end], w.charsetPos, w.charsetLen, owned)
	if len(*w.patchVR) > 0 {
		if !owned && &l.body[0] == &rest[0] {
			l.body = append([]byte(nil), l.body...)
		}
		for _, p := range *w.patchVR {
			copy(l.body[p:], "OB")
		}
	}
	l.pixel = w.pixel
	l.binaries = w.binaries
	l.bodyOwned = owned || len(l.body) > 0 && len(rest) > 0 && &l.body[0] != &rest[0]
	return l, nil
}

// inflate decompresses a deflated data set, stopping as soon as the output
// passes o's limits (the smaller of the absolute limit and the ratio limit),
// so a bomb costs no more memory than the limit. The buffer doubles as data
// arrives instead of trusting any declared size.
//
// zlib inflates where built with cgo, about twice as fast. Both decode an
// intact stream to the same bytes, but on a damaged one zlib gets a few
// bytes further before it fails: so a stream zlib finds damaged, or too
// large (the limit may fall in those bytes), is redone with compress/flate,
// whose partial output the damaged-tail rule below has always parsed. The
// redo reuses zlib's buffer: a bomb still costs no more than the limit.
func inflate(compressed []byte, o options) ([]byte, error) {
	var buf []byte
	if zr := newZlibReader(compressed); zr != nil {
		var err error
		buf, err = inflateFrom(zr, len(compressed), o, nil)
		zr.Close()
		if err == nil {
			return buf, nil
		}
		if !errors.Is(err, errInflateDamaged) && !errors.Is(err, ErrTooLarge) {
			return nil, err
		}
	}
	fr := flate.NewReader(bytes.NewReader(compressed))
	defer fr.Close()
	buf, err := inflateFrom(fr, len(compressed), o, buf[:0])
	if err != nil {
		return nil, err
	}
	return buf, nil
}

// errInflateDamaged is zlibReader's every stream error: inflate then asks
// compress/flate.
var errInflateDamaged = errors.New("dicomio: inflate: damaged deflate stream")

// inflateFrom reads r under inflate's limits into buf (allocated when nil)
// and returns the buffer even with an error, for reuse.
func inflateFrom(r io.Reader, compressedLen int, o options, buf []byte) ([]byte, error) {
	limit := min(o.maxFileBytes, o.inflateLimit(compressedLen))
	if buf == nil {
		buf = make([]byte, 0, min(limit+1, int64(max(4*compressedLen, 64<<10))))
	}
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				if limit == o.maxFileBytes {
					return buf, fmt.Errorf("%w: inflated data set exceeds %d bytes", ErrTooLarge, limit)
				}
				return buf, fmt.Errorf("%w: deflated data set of %d bytes inflates to more than %d (limit %g:1)",
					ErrTooLarge, compressedLen, limit, o.maxInflateRatio)
			}
			newCap := 2 * int64(cap(buf))
			if newCap >= limit {
				newCap = limit + 1 // one byte past the limit proves it exceeded
			}
			grown := make([]byte, len(buf), newCap)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			if errors.Is(err, errInflateDamaged) {
				return buf, err
			}
			if len(buf) == 0 {
				return buf, fmt.Errorf("%w: inflate: %v", ErrMalformed, err)
			}
			// A damaged tail: what inflated is parsed (and checked) as usual.
			return buf, nil
		}
	}
}

// inferTS guesses the encoding of a data set without meta information from
// its first element. Only the three uncompressed syntaxes are possible.
func inferTS(b []byte) (string, bool) {
	if len(b) < 8 {
		return "", false
	}
	gLE, gBE := le.Uint16(b), binary.BigEndian.Uint16(b)
	explicit := isVR(b[4:])
	switch {
	case explicit && gLE >= 0x0002 && gLE <= 0x0028 && gLE%2 == 0:
		return UIDExplicitVRLittleEndian, true
	case explicit && gBE >= 0x0002 && gBE <= 0x0028 && gBE%2 == 0:
		return UIDExplicitVRBigEndian, true
	case !explicit && gLE >= 0x0002 && gLE <= 0x0028 && gLE%2 == 0:
		return UIDImplicitVRLittleEndian, true
	}
	return "", false
}

type walker struct {
	b          []byte
	bo         binary.ByteOrder
	implicit   bool
	pixel      *rawPixel
	charsetPos int // value of the top-level Specific Character Set
	charsetLen int
	// binary values suyashkumar would read as trimmed text (OV, OL, ...):
	// top-level tag -> value bytes, restored after parsing.
	binaries map[uint32][]byte
	// positions of explicit VRs suyashkumar cannot read (OV, SV, UV: 32-bit
	// lengths it does not know); they are presented to it as OB.
	patchVR *[]int
}

// walk checks the elements in b[pos:end] and returns where the last complete
// top-level element ends. Trailing bytes too short to be an element are
// ignored (padding), anything else that does not fit is an error.
func (w *walker) walk(pos, end, depth int, top bool) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("%w: sequences nested deeper than %d", ErrMalformed, maxDepth)
	}
	for pos < end {
		if end-pos < 8 {
			if top {
				return pos, nil
			}
			return 0, fmt.Errorf("%w: element header", ErrTruncated)
		}
		next, stop, err := w.element(pos, end, depth, top)
		if err != nil {
			return 0, err
		}
		if stop {
			return next, nil
		}
		pos = next
	}
	return pos, nil
}

// element checks one element at pos. stop reports an item/sequence delimiter.
func (w *walker) element(pos, end, depth int, top bool) (int, bool, error) {
	b := w.b
	group, elem := w.bo.Uint16(b[pos:]), w.bo.Uint16(b[pos+2:])
	if group == 0xFFFE {
		// Delimiters end an item of undefined length; items cannot appear here.
		switch elem {
		case 0xE00D, 0xE0DD:
			return pos + 8, true, nil
		}
		return 0, false, fmt.Errorf("%w: unexpected item tag outside a sequence", ErrMalformed)
	}
	var vr string
	hdr := 8
	var vl uint32
	if w.implicit {
		vl = w.bo.Uint32(b[pos+4:])
	} else {
		if !isVR(b[pos+4:]) {
			return 0, false, fmt.Errorf("%w: invalid VR", ErrMalformed)
		}
		vr = string(b[pos+4 : pos+6])
		if longVR(vr) {
			if end-pos < 12 {
				return 0, false, fmt.Errorf("%w: element header", ErrTruncated)
			}
			hdr, vl = 12, w.bo.Uint32(b[pos+8:])
		} else {
			vl = uint32(w.bo.Uint16(b[pos+6:]))
		}
	}
	start := pos + hdr
	if vr == "OV" || vr == "SV" || vr == "UV" {
		*w.patchVR = append(*w.patchVR, pos+4)
	}
	if group == 0x0008 && elem == 0x0005 && vr != "" && !stringVR(vr) {
		// suyashkumar assumes Specific Character Set holds strings.
		return 0, false, fmt.Errorf("%w: Specific Character Set with VR %s", ErrMalformed, vr)
	}
	if top && group == 0x0008 && elem == 0x0005 && vl != 0xFFFFFFFF {
		w.charsetPos, w.charsetLen = start, int(vl)
	}
	if top && vl != 0xFFFFFFFF && uint64(start)+uint64(vl) <= uint64(end) {
		bvr := vr
		if w.implicit {
			if info, err := tag.Find(tag.Tag{Group: group, Element: elem}); err == nil && len(info.VRs) > 0 {
				bvr = info.VRs[0]
			}
		}
		if textReadBinaryVR(bvr) {
			if w.binaries == nil {
				w.binaries = map[uint32][]byte{}
			}
			w.binaries[uint32(group)<<16|uint32(elem)] = w.b[start : start+int(vl)]
		}
	}
	isPixel := group == 0x7FE0 && elem == 0x0010
	if vl == 0xFFFFFFFF {
		if isPixel {
			if !top {
				// Icon pixel data nested in a sequence: walk it but do not record it.
				n, _, err := w.encapsulated(start, end)
				return n, false, err
			}
			n, px, err := w.encapsulated(start, end)
			if err != nil {
				return 0, false, err
			}
			px.vr = vr
			w.pixel = px
			return n, false, nil
		}
		// Undefined length: a sequence (SQ, UN, or implicit).
		sub := *w
		if vr == "UN" {
			sub.implicit, sub.bo = true, le // PS3.5 6.2.2: UN of undefined length is implicit LE
		}
		n, err := sub.sequence(start, end, depth+1)
		return n, false, err
	}
	if uint64(start)+uint64(vl) > uint64(end) {
		return 0, false, fmt.Errorf("%w: element (%04X,%04X) length %d past end", ErrTruncated, group, elem, vl)
	}
	if w.implicit && vl > 0 {
		// Implicit VR: suyashkumar reads dictionary SQ tags as sequences, so
		// their items must be checked too.
		if info, err := tag.Find(tag.Tag{Group: group, Element: elem}); err == nil && len(info.VRs) > 0 && info.VRs[0] == "SQ" {
			vr = "SQ"
		}
	}
	if vr == "SQ" && vl > 0 {
		sub := *w
		if _, err := sub.sequence(start, start+int(vl), depth+1); err != nil {
			return 0, false, err
		}
	}
	if isPixel && top {
		w.pixel = &rawPixel{vr: vr, elemStart: pos, valueStart: start, valueEnd: start + int(vl)}
	}
	return start + int(vl), false, nil
}

// sequence walks items until a sequence delimiter (undefined length) or end.
func (w *walker) sequence(pos, end, depth int) (int, error) {
	if depth > maxDepth {
		return 0, fmt.Errorf("%w: sequences nested deeper than %d", ErrMalformed, maxDepth)
	}
	b := w.b
	for pos < end {
		if end-pos < 8 {
			return 0, fmt.Errorf("%w: sequence item header", ErrTruncated)
		}
		group, elem := w.bo.Uint16(b[pos:]), w.bo.Uint16(b[pos+2:])
		vl := w.bo.Uint32(b[pos+4:])
		if group != 0xFFFE {
			return 0, fmt.Errorf("%w: non-item in sequence", ErrMalformed)
		}
		switch elem {
		case 0xE0DD:
			return pos + 8, nil
		case 0xE000:
		default:
			return 0, fmt.Errorf("%w: unexpected delimiter in sequence", ErrMalformed)
		}
		start := pos + 8
		if vl == 0xFFFFFFFF {
			n, err := w.walk(start, end, depth+1, false)
			if err != nil {
				return 0, err
			}
			pos = n
			continue
		}
		if uint64(start)+uint64(vl) > uint64(end) {
			return 0, fmt.Errorf("%w: sequence item length past end", ErrTruncated)
		}
		if _, err := w.walk(start, start+int(vl), depth+1, false); err != nil {
			return 0, err
		}
		pos = start + int(vl)
	}
	return pos, nil
}

// encapsulated walks the item list of encapsulated pixel data.
func (w *walker) encapsulated(pos, end int) (int, *rawPixel, error) {
	b := w.b
	px := &rawPixel{encapsulated: true}
	first := true
	for {
		if end-pos < 8 {
			return 0, nil, fmt.Errorf("%w: encapsulated pixel data", ErrTruncated)
		}
		group, elem := le.Uint16(b[pos:]), le.Uint16(b[pos+2:])
		vl := le.Uint32(b[pos+4:])
		if group != 0xFFFE {
			return 0, nil, fmt.Errorf("%w: encapsulated pixel data: expected item", ErrMalformed)
		}
		if elem == 0xE0DD {
			return pos + 8, px, nil
		}
		if elem != 0xE000 || vl == 0xFFFFFFFF {
			return 0, nil, fmt.Errorf("%w: encapsulated pixel data: bad item", ErrMalformed)
		}
		start := pos + 8
		if uint64(start)+uint64(vl) > uint64(end) {
			return 0, nil, fmt.Errorf("%w: encapsulated pixel data fragment past end", ErrTruncated)
		}
		if first {
			if vl%4 != 0 {
				return 0, nil, fmt.Errorf("%w: basic offset table length %d", ErrMalformed, vl)
			}
			for i := 0; i < int(vl); i += 4 {
				px.bot = append(px.bot, le.Uint32(b[start+i:]))
			}
			first = false
		} else {
			px.fragments++
		}
		pos = start + int(vl)
	}
}

// stringVR reports VRs whose value suyashkumar reads as text.
func stringVR(vr string) bool {
	switch vr {
	case "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT":
		return true
	}
	return false
}

// textReadBinaryVR reports binary VRs that suyashkumar reads as text,
// trimming NUL and space bytes from both ends (which corrupts them).
func textReadBinaryVR(vr string) bool {
	switch vr {
	case "OD", "OF", "OL", "OV", "SV", "UV":
		return true
	}
	return false
}
