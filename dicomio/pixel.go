package dicomio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// ImageInfo is the Image Pixel module as read from the dataset.
type ImageInfo struct {
	Rows, Columns       int
	SamplesPerPixel     int
	NumberOfFrames      int
	BitsAllocated       int
	BitsStored          int
	HighBit             int
	PixelRepresentation int // 0 unsigned, 1 two's complement
	PlanarConfiguration int // 0 interleaved, 1 by plane
	Photometric         string
}

// Frame holds the stored values of one frame: Data is row-major with the
// samples of a pixel interleaved (R,G,B,R,G,B...), whatever the planar
// configuration of the encoding. Values are masked to BitsStored and
// sign-extended when PixelRepresentation is 1; no Modality/VOI LUT, palette
// or colour conversion has been applied.
type Frame struct {
	Index       int
	Rows        int
	Columns     int
	Samples     int
	Photometric string // colour space of Data (YBR_FULL_422 native data is expanded to YBR_FULL)
	Data        []int32
}

// frameBuffers recycles the sample buffers of frames Render8 decoded for
// itself: a fresh buffer of a megabyte costs 256 page faults on first
// touch (several microseconds each on a virtual machine), a recycled one a
// memclr. Get returns a *[]int32.
var frameBuffers sync.Pool

// minPooledFrame is the smallest buffer worth recycling (64 KiB; a
// variable for tests).
var minPooledFrame = 16 << 10

// frameData returns n zeroed int32s, as make does: a recycled buffer when
// one large enough is pooled. Every decoder allocates its frame with it.
func frameData(n int) []int32 {
	if n >= minPooledFrame {
		if p, ok := frameBuffers.Get().(*[]int32); ok {
			if cap(*p) >= n {
				b := (*p)[:n]
				clear(b)
				return b
			}
			frameBuffers.Put(p) // another caller's size
		}
	}
	return make([]int32, n)
}

// recycleFrame hands fr's samples back for reuse; fr must not be used
// after, nor its Data seen by anyone else.
func recycleFrame(fr *Frame) {
	if fr == nil || cap(fr.Data) < minPooledFrame {
		return
	}
	b := fr.Data[:0]
	fr.Data = nil
	frameBuffers.Put(&b)
}

// ImageInfo validates and returns the pixel description. It refuses images
// whose decoded size would pass the configured limit.
func (f *File) ImageInfo() (ImageInfo, error) {
	var ii ImageInfo
	var ok bool
	if ii.Rows, ok = f.intAttr(tag.Rows); !ok {
		return ii, fmt.Errorf("%w: Rows missing", ErrNoPixelData)
	}
	if ii.Columns, ok = f.intAttr(tag.Columns); !ok {
		return ii, fmt.Errorf("%w: Columns missing", ErrNoPixelData)
	}
	if ii.Rows <= 0 || ii.Columns <= 0 || ii.Rows > 65535 || ii.Columns > 65535 {
		return ii, fmt.Errorf("%w: image size %dx%d", ErrMalformed, ii.Rows, ii.Columns)
	}
	if ii.SamplesPerPixel, ok = f.intAttr(tag.SamplesPerPixel); !ok {
		ii.SamplesPerPixel = 1
	}
	if ii.SamplesPerPixel != 1 && ii.SamplesPerPixel != 3 {
		return ii, fmt.Errorf("%w: SamplesPerPixel %d", ErrMalformed, ii.SamplesPerPixel)
	}
	ii.NumberOfFrames = 1
	if e := findIn(f.Dataset.Elements, tag.NumberOfFrames); e != nil {
		v := intsOf(e)
		if len(v) == 0 {
			n, ok := leadingInt(strsOf(e))
			if !ok {
				return ii, fmt.Errorf("%w: NumberOfFrames not an integer", ErrMalformed)
			}
			v = []int{n}
		}
		ii.NumberOfFrames = v[0]
		if ii.NumberOfFrames == 0 {
			ii.NumberOfFrames = 1
		}
	}
	if ii.NumberOfFrames < 1 {
		return ii, fmt.Errorf("%w: NumberOfFrames %d", ErrMalformed, ii.NumberOfFrames)
	}
	if ii.BitsAllocated, ok = f.intAttr(tag.BitsAllocated); !ok {
		return ii, fmt.Errorf("%w: BitsAllocated missing", ErrMalformed)
	}
	switch ii.BitsAllocated {
	case 1, 8, 16, 32:
	default:
		return ii, fmt.Errorf("%w: BitsAllocated %d", ErrMalformed, ii.BitsAllocated)
	}
	if ii.BitsStored, ok = f.intAttr(tag.BitsStored); !ok {
		ii.BitsStored = ii.BitsAllocated
	}
	if ii.BitsStored < 1 || ii.BitsStored > ii.BitsAllocated {
		return ii, fmt.Errorf("%w: BitsStored %d with BitsAllocated %d", ErrMalformed, ii.BitsStored, ii.BitsAllocated)
	}
	if ii.HighBit, ok = f.intAttr(tag.HighBit); !ok || ii.HighBit < ii.BitsStored-1 || ii.HighBit >= ii.BitsAllocated {
		ii.HighBit = ii.BitsStored - 1
	}
	ii.PixelRepresentation, _ = f.intAttr(tag.PixelRepresentation)
	if ii.PixelRepresentation != 0 {
		ii.PixelRepresentation = 1
	}
	ii.PlanarConfiguration, _ = f.intAttr(tag.PlanarConfiguration)
	if ii.PlanarConfiguration != 0 {
		ii.PlanarConfiguration = 1
	}
	ii.Photometric = strings.ToUpper(f.str(tag.PhotometricInterpretation))
	if ii.Photometric == "" {
		if ii.SamplesPerPixel == 3 {
			ii.Photometric = "RGB"
		} else {
			ii.Photometric = "MONOCHROME2"
		}
	}
	total := int64(ii.Rows) * int64(ii.Columns) * int64(ii.SamplesPerPixel) * int64(ii.NumberOfFrames) * 4
	if total > f.opts.maxPixelBytes {
		return ii, fmt.Errorf("%w: %dx%dx%d x %d frames needs %d bytes, limit %d", ErrTooLarge,
			ii.Rows, ii.Columns, ii.SamplesPerPixel, ii.NumberOfFrames, total, f.opts.maxPixelBytes)
	}
	return ii, nil
}

// NumFrames returns NumberOfFrames (1 when absent), or 0 if the image is invalid.
func (f *File) NumFrames() int {
	ii, err := f.ImageInfo()
	if err != nil {
		return 0
	}
	return ii.NumberOfFrames
}

func (f *File) pixelInfo() (dicom.PixelDataInfo, string, error) {
	el := findIn(f.Dataset.Elements, tag.PixelData)
	if el == nil || el.Value == nil {
		return dicom.PixelDataInfo{}, "", ErrNoPixelData
	}
	info, ok := el.Value.GetValue().(dicom.PixelDataInfo)
	if !ok || info.IntentionallySkipped {
		return dicom.PixelDataInfo{}, "", ErrNoPixelData
	}
	return info, el.RawValueRepresentation, nil
}

// HasPixelData reports whether the dataset carries a Pixel Data element.
func (f *File) HasPixelData() bool {
	_, _, err := f.pixelInfo()
	return err == nil
}

// DecodeFrame decodes frame i (0-based) into stored values.
func (f *File) DecodeFrame(i int) (fr *Frame, err error) {
	defer func() {
		if r := recover(); r != nil {
			fr = nil
			err = &FileError{SHA256: f.SHA256, Op: fmt.Sprintf("decode frame %d", i), Err: fmt.Errorf("%w: %v", ErrPanic, sanitizePanic(r))}
		}
	}()
	fr, err = f.decodeFrame(i)
	if err != nil {
		return nil, &FileError{SHA256: f.SHA256, Op: fmt.Sprintf("decode frame %d", i), Err: err}
	}
	return fr, nil
}

func (f *File) decodeFrame(i int) (*Frame, error) {
	info, vr, err := f.pixelInfo()
	if err != nil {
		return nil, err
	}
	ii, err := f.ImageInfo()
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= ii.NumberOfFrames {
		return nil, fmt.Errorf("frame %d out of range (%d frames)", i, ii.NumberOfFrames)
	}
	ts := f.ts
	if !info.IsEncapsulated {
		if !info.IntentionallyUnprocessed {
			return nil, fmt.Errorf("%w: pixel data value not raw", ErrMalformed)
		}
		if ts.encapsulated {
			return nil, fmt.Errorf("%w: native pixel data under an encapsulated transfer syntax", ErrMalformed)
		}
		return decodeNative(info.UnprocessedValueData, ii, i, ts.bo, vr)
	}
	if !ts.encapsulated {
		return nil, fmt.Errorf("%w: encapsulated pixel data under a native transfer syntax", ErrMalformed)
	}
	if ts.codec == codecNone {
		return nil, unsupportedTS(f.TransferSyntaxUID, "no decoder for this encoding")
	}
	data, err := f.frameBytes(info, ii, i)
	if err != nil {
		return nil, err
	}
	if err := f.checkInflation(ii, i, len(data)); err != nil {
		return nil, err
	}
	var fr *Frame
	switch ts.codec {
	case codecRLE:
		fr, err = decodeRLE(data, ii)
	case codecJPEGDCT, codecJPEGLossless:
		fr, err = decodeJPEG(data, ii)
	case codecJPEGLS:
		fr, err = decodeJPEGLS(data, ii)
	case codecJ2K:
		fr, err = decodeJ2K(data, ii, f.opts.codecThreads)
	default:
		return nil, unsupportedTS(f.TransferSyntaxUID, "")
	}
	if err != nil {
		return nil, err
	}
	fr.Index = i
	maskFrame(fr, ii)
	return fr, nil
}

// checkInflation refuses a compressed frame whose stored values would be
// more than the ratio limit times its compressed bytes, before a decoder
// allocates for the size the header declares.
func (f *File) checkInflation(ii ImageInfo, i, compressed int) error {
	stored := int64(ii.Rows) * int64(ii.Columns) * int64(ii.SamplesPerPixel) * int64(max(ii.BitsAllocated/8, 1))
	if limit := f.opts.inflateLimit(compressed); stored > limit {
		return fmt.Errorf("%w: frame %d of %d compressed bytes decodes to %d bytes (limit %g:1)",
			ErrTooLarge, i, compressed, stored, f.opts.maxInflateRatio)
	}
	return nil
}

// frameBytes gathers the fragments of frame i: by the Extended Offset Table,
// else the Basic Offset Table, else one fragment per frame, else by codec
// start markers.
func (f *File) frameBytes(info dicom.PixelDataInfo, ii ImageInfo, i int) ([]byte, error) {
	frags := make([][]byte, 0, len(info.Frames))
	for _, fr := range info.Frames {
		if fr == nil {
			return nil, fmt.Errorf("%w: nil fragment", ErrMalformed)
		}
		frags = append(frags, fr.EncapsulatedData.Data)
	}
	if len(frags) == 0 {
		return nil, fmt.Errorf("%w: encapsulated pixel data has no fragments", ErrNoPixelData)
	}
	n := ii.NumberOfFrames
	// Item start offsets relative to the first fragment item.
	starts := make([]uint64, len(frags)+1)
	for j, fr := range frags {
		starts[j+1] = starts[j] + 8 + uint64(len(fr))
	}
	byOffsets := func(offs []uint64) ([]byte, error) {
		lo := offs[i]
		hi := starts[len(frags)]
		if i+1 < len(offs) {
			hi = offs[i+1]
		}
		var out []byte
		for j, fr := range frags {
			if starts[j] >= lo && starts[j] < hi {
				out = append(out, fr...)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: offset table points at no fragment for frame %d", ErrMalformed, i)
		}
		return out, nil
	}
	if eot := bytesOf(findIn(f.Dataset.Elements, tag.ExtendedOffsetTable)); len(eot) >= 8*n && len(eot)%8 == 0 {
		offs := make([]uint64, len(eot)/8)
		for j := range offs {
			offs[j] = binary.LittleEndian.Uint64(eot[8*j:])
		}
		if validOffsets(offs, starts, n) {
			return byOffsets(offs)
		}
	}
	if len(info.Offsets) == n && n > 0 {
		offs := make([]uint64, n)
		for j, o := range info.Offsets {
			offs[j] = uint64(o)
		}
		if validOffsets(offs, starts, n) {
			return byOffsets(offs)
		}
	}
	if n == 1 {
		if len(frags) == 1 {
			return frags[0], nil
		}
		return bytes.Join(frags, nil), nil
	}
	if len(frags) == n {
		return frags[i], nil
	}
	// No usable table and more fragments than frames: frames start at a
	// fragment that opens with a JPEG SOI or a JPEG 2000 SOC marker.
	var groups [][]byte
	for _, fr := range frags {
		if len(groups) == 0 || (len(fr) >= 2 && fr[0] == 0xFF && (fr[1] == 0xD8 || fr[1] == 0x4F)) ||
			(len(fr) >= 12 && bytes.Equal(fr[4:8], []byte("jP  "))) {
			groups = append(groups, append([]byte(nil), fr...))
			continue
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], fr...)
	}
	if len(groups) != n {
		return nil, fmt.Errorf("%w: cannot split %d fragments into %d frames", ErrMalformed, len(frags), n)
	}
	return groups[i], nil
}

// validOffsets checks that an offset table is increasing and lands on item starts.
func validOffsets(offs, starts []uint64, n int) bool {
	if len(offs) < n || offs[0] != 0 {
		return false
	}
	set := make(map[uint64]bool, len(starts))
	for _, s := range starts[:len(starts)-1] {
		set[s] = true
	}
	for j := 0; j < n; j++ {
		if !set[offs[j]] || (j > 0 && offs[j] <= offs[j-1]) {
			return false
		}
	}
	return true
}

// maskFrame applies BitsStored masking and sign extension to decoder output
// (codecs return the raw sample words).
func maskFrame(fr *Frame, ii ImageInfo) {
	bs := ii.BitsStored
	if bs >= 32 {
		return
	}
	mask := int32(1)<<bs - 1
	if ii.PixelRepresentation == 1 && fr.Samples == 1 {
		sign := int32(1) << (bs - 1)
		for k, v := range fr.Data {
			v &= mask
			if v&sign != 0 {
				v -= mask + 1
			}
			fr.Data[k] = v
		}
		return
	}
	for k, v := range fr.Data {
		fr.Data[k] = v & mask
	}
}

// leadingInt reads the leading decimal digits of an IS value the way dcmtk
// does ("1A" is 1); an empty value means 1. Anything else is not a number.
func leadingInt(s []string) (int, bool) {
	if len(s) == 0 || strings.TrimSpace(s[0]) == "" {
		return 1, true
	}
	t := strings.TrimSpace(s[0])
	n, digits := 0, 0
	for _, r := range t {
		if r < '0' || r > '9' || digits >= 9 {
			break
		}
		n = n*10 + int(r-'0')
		digits++
	}
	return n, digits > 0
}
