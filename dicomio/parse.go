package dicomio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Default limits; all are configurable per call.
const (
	DefaultMaxFileBytes  = 1 << 30 // 1 GiB of input (and of inflated data set)
	DefaultMaxPixelBytes = 1 << 30 // 1 GiB of decoded stored values (int32 each)
	// DefaultMaxInflateRatio bounds the bytes a deflated data set inflates
	// to, and the stored bytes a compressed frame decodes to, per input
	// byte. The hospital-like reference X-rays compress 2-9:1; bombs do
	// 64:1 (RLE) to 1000:1 (deflate) and more (JPEG, JPEG 2000).
	DefaultMaxInflateRatio = 32
	// defaultRatioFloor: outputs up to this size are not held to the ratio.
	// They are cheap, and small blank or synthetic images legitimately
	// compress far better (a 2 MiB JPEG 2000 test image does 2097:1).
	defaultRatioFloor = 16 << 20
)

type options struct {
	maxFileBytes    int64
	maxPixelBytes   int64
	maxInflateRatio float64
	ratioFloor      int64
	codecThreads    int
}

// Option configures Parse.
type Option func(*options)

// WithMaxFileBytes refuses inputs (and inflated deflated data sets) larger
// than n bytes with ErrTooLarge.
func WithMaxFileBytes(n int64) Option { return func(o *options) { o.maxFileBytes = n } }

// WithMaxPixelBytes refuses files whose decoded pixel data
// (Rows x Columns x Samples x Frames x 4 bytes) would exceed n bytes, before
// anything is allocated for it.
func WithMaxPixelBytes(n int64) Option { return func(o *options) { o.maxPixelBytes = n } }

// WithMaxInflateRatio refuses, with ErrTooLarge, a deflated data set that
// inflates to more than r times its compressed size, and a compressed frame
// whose stored values (Rows x Columns x Samples x bytes per sample) are more
// than r times its compressed bytes, before inflating or allocating beyond
// that. Outputs of at most 16 MiB are exempt. Default DefaultMaxInflateRatio.
func WithMaxInflateRatio(r float64) Option { return func(o *options) { o.maxInflateRatio = r } }

// WithCodecThreads sets how many threads a codec may use for one frame
// (OpenJPEG's, for JPEG 2000). 0, the default: one per core, at most 4, the
// fastest single decode. A caller decoding several files at once sets 1:
// OpenJPEG's threads cost more CPU in all than one (README, Speed), which
// the other files could use.
func WithCodecThreads(n int) Option { return func(o *options) { o.codecThreads = n } }

func toOptions(opts []Option) options {
	o := options{maxFileBytes: DefaultMaxFileBytes, maxPixelBytes: DefaultMaxPixelBytes,
		maxInflateRatio: DefaultMaxInflateRatio, ratioFloor: defaultRatioFloor}
	for _, f := range opts {
		f(&o)
	}
	if o.maxFileBytes <= 0 {
		o.maxFileBytes = DefaultMaxFileBytes
	}
	if o.maxPixelBytes <= 0 {
		o.maxPixelBytes = DefaultMaxPixelBytes
	}
	if !(o.maxInflateRatio > 0) { // also NaN
		o.maxInflateRatio = DefaultMaxInflateRatio
	}
	if o.codecThreads <= 0 {
		o.codecThreads = min(runtime.GOMAXPROCS(0), 4)
	}
	return o
}

// inflateLimit is the most bytes in compressed bytes may decode to.
func (o options) inflateLimit(in int) int64 {
	r := o.maxInflateRatio * float64(in)
	if r >= float64(math.MaxInt64/2) {
		return math.MaxInt64 / 2
	}
	return max(int64(r), o.ratioFloor)
}

// File is a parsed DICOM file. Dataset holds every element, the file meta
// group included; its Pixel Data value is left unprocessed (native: the raw
// bytes in the transfer syntax's byte order; encapsulated: the fragments and
// the Basic Offset Table) so that Write reproduces it byte for byte.
// Callers (de-identification) may edit Dataset; decoding and rendering read
// the attributes they need from it at call time.
type File struct {
	Dataset dicom.Dataset
	// SHA256 is the hex sha256 of the input bytes: the only name errors use.
	SHA256 string
	// TransferSyntaxUID is the syntax the data set was read with.
	TransferSyntaxUID string
	// TransferSyntaxInferred is true when the file had no (0002,0010) and the
	// encoding was guessed from the first element.
	TransferSyntaxInferred bool
	// HasPreamble reports the 128-byte preamble and "DICM" magic.
	HasPreamble bool
	// HasFileMeta reports a group 0002 file meta information block.
	HasFileMeta bool
	// Size is the input length in bytes.
	Size int64

	opts options
	ts   tsInfo
}

// Parse parses a DICOM file held in memory.
func Parse(data []byte, opts ...Option) (*File, error) {
	return ParseContext(context.Background(), data, opts...)
}

// ParseContext is Parse with cancellation checked between stages.
func ParseContext(ctx context.Context, data []byte, opts ...Option) (f *File, err error) {
	return parseContext(ctx, data, false, opts)
}

// ParseOwned is ParseContext for a caller that hands data over: the File
// may reference it instead of copying (the pixel data), so the caller must
// not change it afterwards. sha256, when not empty, is the hex SHA-256 of
// data that the caller has already computed (a content address), so data
// is not hashed again.
func ParseOwned(ctx context.Context, data []byte, sha256 string, opts ...Option) (*File, error) {
	return parseContextID(ctx, data, true, sha256, opts)
}

// parseContext is ParseContext; owned says data is dicomio's own buffer,
// which the File may then reference instead of copying (the pixel data).
func parseContext(ctx context.Context, data []byte, owned bool, opts []Option) (f *File, err error) {
	return parseContextID(ctx, data, owned, "", opts)
}

// parseContextID is parseContext with data's hash when already known.
func parseContextID(ctx context.Context, data []byte, owned bool, id string, opts []Option) (f *File, err error) {
	o := toOptions(opts)
	if id == "" {
		id = hashHex(data)
	}
	defer func() {
		if r := recover(); r != nil {
			f = nil
			err = &FileError{SHA256: id, Op: "parse", Err: fmt.Errorf("%w: %v", ErrPanic, sanitizePanic(r))}
		}
	}()
	if int64(len(data)) > o.maxFileBytes {
		return nil, &FileError{SHA256: id, Op: "parse", Err: fmt.Errorf("%w: %d bytes exceeds limit %d", ErrTooLarge, len(data), o.maxFileBytes)}
	}
	f, err = parse(ctx, data, owned, o)
	if err != nil {
		return nil, &FileError{SHA256: id, Op: "parse", Err: err}
	}
	f.SHA256 = id
	return f, nil
}

// ParseReader reads all of r (at most the file-size limit) and parses it.
func ParseReader(r io.Reader, opts ...Option) (*File, error) {
	o := toOptions(opts)
	data, err := io.ReadAll(io.LimitReader(r, o.maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("dicomio: read: %w", err)
	}
	if int64(len(data)) > o.maxFileBytes {
		return nil, &FileError{SHA256: hashHex(data), Op: "parse", Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, o.maxFileBytes)}
	}
	return parseContext(context.Background(), data, true, opts)
}

// ParseFile reads and parses the file at path. The path is not put into
// errors (it may carry patient names); only the content hash is.
func ParseFile(path string, opts ...Option) (*File, error) {
	o := toOptions(opts)
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dicomio: open: %w", err)
	}
	defer fh.Close()
	var size int64
	if st, err := fh.Stat(); err == nil {
		if st.Size() > o.maxFileBytes {
			return nil, &FileError{SHA256: "(not read)", Op: "parse", Err: fmt.Errorf("%w: %d bytes exceeds limit %d", ErrTooLarge, st.Size(), o.maxFileBytes)}
		}
		size = st.Size()
	}
	data, err := fsutil.ReadLimited(fh, size, o.maxFileBytes+1)
	if err != nil {
		return nil, fmt.Errorf("dicomio: read: %w", err)
	}
	if int64(len(data)) > o.maxFileBytes {
		return nil, &FileError{SHA256: hashHex(data), Op: "parse", Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, o.maxFileBytes)}
	}
	return parseContext(context.Background(), data, true, opts)
}

// sanitizePanic keeps only the panic's type and a generic message: panic
// values from a parser may quote element values (patient data).
func sanitizePanic(r any) string {
	switch v := r.(type) {
	case error:
		var re interface{ RuntimeError() }
		if errors.As(v, &re) {
			return "runtime error: " + runtimeKind(v.Error())
		}
		return fmt.Sprintf("%T", v)
	default:
		return fmt.Sprintf("%T", r)
	}
}

func runtimeKind(s string) string {
	for _, k := range []string{"index out of range", "nil pointer dereference", "slice bounds out of range", "makeslice", "integer divide by zero", "out of memory"} {
		if bytes.Contains([]byte(s), []byte(k)) {
			return k
		}
	}
	return "other"
}

func parse(ctx context.Context, data []byte, owned bool, o options) (*File, error) {
	l, err := scan(data, o)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f := &File{
		TransferSyntaxUID:      l.tsUID,
		TransferSyntaxInferred: l.tsInferred,
		HasPreamble:            l.hasPreamble,
		HasFileMeta:            l.metaEnd > l.metaStart,
		Size:                   int64(len(data)),
		opts:                   o,
		ts:                     l.ts,
	}
	var elems []*dicom.Element
	if f.HasFileMeta {
		meta, err := parseElements(data[l.metaStart:l.metaEnd], binary.LittleEndian, false)
		if err != nil {
			// suyashkumar's messages can quote element values: keep them out.
			return nil, fmt.Errorf("%w: file meta group not readable", ErrMalformed)
		}
		elems = append(elems, meta...)
	}
	body, err := parseBody(l, owned)
	if err != nil {
		return nil, fmt.Errorf("%w: data set not readable", ErrMalformed)
	}
	declareUTF8(body)
	elems = append(elems, body...)
	f.Dataset = dicom.Dataset{Elements: elems}
	if findIn(elems, tag.TransferSyntaxUID) == nil {
		// Make the dataset self-describing so Write encodes it the way it was read.
		if e, err := dicom.NewElement(tag.TransferSyntaxUID, []string{l.tsUID}); err == nil {
			f.Dataset.Elements = append([]*dicom.Element{e}, f.Dataset.Elements...)
		}
	}
	for _, e := range body {
		if raw, ok := l.binaries[uint32(e.Tag.Group)<<16|uint32(e.Tag.Element)]; ok {
			// Keep the exact bytes as a single "string": the writer emits
			// strings verbatim, and the VR (OV, OL...) is kept.
			if v, err := dicom.NewValue([]string{string(raw)}); err == nil {
				e.Value = v
				if e.RawValueRepresentation == "OB" {
					// presented as OB to suyashkumar (see scan); restore the VR
					if info, err := tag.Find(e.Tag); err == nil && len(info.VRs) > 0 {
						e.RawValueRepresentation = info.VRs[0]
					}
				}
			}
		}
	}
	if l.pixel != nil && l.pixel.encapsulated {
		if err := f.attachOffsets(l.pixel); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// attachOffsets stores the Basic Offset Table suyashkumar skips, so frames
// can be located and Write reproduces the item list exactly.
func (f *File) attachOffsets(px *rawPixel) error {
	el, err := f.Dataset.FindElementByTag(tag.PixelData)
	if err != nil {
		return fmt.Errorf("%w: pixel data element lost", ErrMalformed)
	}
	info, ok := el.Value.GetValue().(dicom.PixelDataInfo)
	if !ok || !info.IsEncapsulated {
		return fmt.Errorf("%w: pixel data not encapsulated as expected", ErrMalformed)
	}
	if len(info.Frames) != px.fragments {
		return fmt.Errorf("%w: %d fragments read, %d expected", ErrMalformed, len(info.Frames), px.fragments)
	}
	info.Offsets = px.bot
	v, err := dicom.NewValue(info)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	el.Value = v
	return nil
}

// parseBody parses the data set. Native Pixel Data that ends it, the usual
// layout, is cut off and its element built here, its value a slice of the
// body when that is dicomio's own buffer: suyashkumar would allocate and
// copy the largest value of the file. The element is the one it would build.
func parseBody(l *layout, owned bool) ([]*dicom.Element, error) {
	px := l.pixel
	if px == nil || px.encapsulated || px.valueEnd != len(l.body) ||
		!(l.ts.implicit || px.vr == "OW" || px.vr == "OB") {
		return parseElements(l.body, l.ts.bo, l.ts.implicit)
	}
	elems, err := parseElements(l.body[:px.elemStart], l.ts.bo, l.ts.implicit)
	if err != nil {
		return nil, err
	}
	value := l.body[px.valueStart:px.valueEnd:px.valueEnd]
	if !owned && !l.bodyOwned {
		value = append([]byte(nil), value...) // the caller's bytes: not to be aliased
	}
	vr := px.vr
	if l.ts.implicit {
		vr = "OW" // as suyashkumar's implicit VR reader names Pixel Data
	}
	v, err := dicom.NewValue(dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: value})
	if err != nil {
		return nil, err
	}
	return append(elems, &dicom.Element{Tag: tag.PixelData, ValueRepresentation: tag.GetVRKind(tag.PixelData, vr),
		RawValueRepresentation: vr, ValueLength: uint32(len(value)), Value: v}), nil
}

// parseElements runs suyashkumar's element reader over bytes the walker has
// already checked, with the transfer syntax forced (never inferred by it).
func parseElements(b []byte, bo binary.ByteOrder, implicit bool) ([]*dicom.Element, error) {
	if len(b) == 0 {
		return nil, nil
	}
	// suyashkumar first probes the syntax by reading one element from the
	// next 100 bytes as implicit VR, allocating whatever length that reads
	// (an explicit "LT" of 12 KiB reads as 805 MB). So it probes a decoy
	// instead: an implicit-VR element, consumed before the real syntax is
	// set. The pad lets the 100-byte peek succeed on short inputs; the limit
	// keeps it from being parsed. Chained, not appended: no copy of b.
	decoy := []byte{0x08, 0x00, 0x00, 0x00, 4, 0, 0, 0, 0, 0, 0, 0} // (0008,0000) UL, 4 bytes
	pad := make([]byte, 128)
	p, _ := dicom.NewParser(io.MultiReader(bytes.NewReader(decoy), bytes.NewReader(b), bytes.NewReader(pad)),
		int64(len(decoy)+len(b)), nil,
		dicom.SkipMetadataReadOnNewParserInit(),
		dicom.SkipProcessingPixelDataValue(),
		dicom.AllowUnknownSpecificCharacterSet(),
		dicom.AllowMismatchPixelDataLength())
	if p == nil {
		return nil, errors.New("parser init failed")
	}
	if _, err := p.Next(); err != nil { // the decoy, read as implicit VR LE
		return nil, errors.New("parser init failed")
	}
	p.SetTransferSyntax(bo, implicit)
	var out []*dicom.Element
	for {
		el, err := p.Next()
		if err != nil {
			if errors.Is(err, dicom.ErrorEndOfDICOM) {
				return out, nil
			}
			return nil, err
		}
		out = append(out, el)
	}
}

func hashHex(data []byte) string { return fsutil.HashBytes(data) }
