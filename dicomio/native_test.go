package dicomio

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// nativeCase describes one synthetic uncompressed image.
type nativeCase struct {
	name        string
	ts          string
	ba, bs, pr  int
	spp, planar int
	photometric string
	frames      int
	garbage     bool // set bits above HighBit that decoding must mask off
	vr          string
}

func (c nativeCase) tsInfo() tsInfo { return transferSyntaxes[c.ts] }

// build returns the file bytes and the expected stored values of every frame.
func (c nativeCase) build(rows, cols int, rng *rand.Rand) ([]byte, [][]int32) {
	ti := c.tsInfo()
	b := &dsBuilder{bo: ti.bo, implicit: ti.implicit}
	b.image(rows, cols, c.spp, c.ba, c.bs, c.pr, c.photometric)
	if c.spp > 1 {
		b.us(0x0028, 0x0006, uint16(c.planar))
	}
	if c.frames > 1 {
		b.str(0x0028, 0x0008, "IS", itoa(c.frames))
	}
	pixels := rows * cols
	var raw []byte
	var want [][]int32
	var bits []byte
	for f := 0; f < c.frames; f++ {
		vals := make([]int32, pixels*c.spp)
		words := make([]uint32, pixels*c.spp)
		for k := range vals {
			var v int64
			if c.ba == 1 {
				v = int64(rng.IntN(2))
			} else if c.pr == 1 {
				v = rng.Int64N(1<<c.bs) - 1<<(c.bs-1)
			} else {
				v = rng.Int64N(1 << c.bs)
			}
			vals[k] = int32(v)
			w := uint32(v) & uint32(1<<c.bs-1)
			if c.bs == 32 {
				w = uint32(v)
			}
			if c.garbage && c.bs < c.ba {
				w |= uint32(rng.IntN(1<<(c.ba-c.bs))) << c.bs
			}
			words[k] = w
		}
		want = append(want, vals)
		// Encode, planar if asked.
		order := make([]uint32, 0, len(words))
		if c.planar == 1 && c.spp > 1 {
			for s := range c.spp {
				for p := range pixels {
					order = append(order, words[p*c.spp+s])
				}
			}
		} else {
			order = words
		}
		for _, w := range order {
			switch c.ba {
			case 1:
				bits = append(bits, byte(w))
			case 8:
				raw = append(raw, byte(w))
			case 16:
				raw = ti.bo.(binary.AppendByteOrder).AppendUint16(raw, uint16(w))
			case 32:
				raw = ti.bo.(binary.AppendByteOrder).AppendUint32(raw, w)
			}
		}
	}
	if c.ba == 1 {
		raw = make([]byte, (len(bits)+7)/8)
		for i, v := range bits {
			raw[i/8] |= v << (i % 8)
		}
	}
	vr := c.vr
	if vr == "" {
		vr = "OW"
		if c.ba <= 8 {
			vr = "OB"
		}
	}
	if len(raw)%2 == 1 {
		raw = append(raw, 0)
	}
	if vr == "OW" && c.ba == 8 && ti.bo == binary.BigEndian {
		// 8-bit samples in a big endian OW element are swapped in pairs.
		for i := 0; i+1 < len(raw); i += 2 {
			raw[i], raw[i+1] = raw[i+1], raw[i]
		}
	}
	b.raw(0x7FE0, 0x0010, vr, raw)
	return part10(c.ts, b.buf.Bytes()), want
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var s []byte
	for n > 0 {
		s = append([]byte{byte('0' + n%10)}, s...)
		n /= 10
	}
	return string(s)
}

func TestNativeDecoding(t *testing.T) {
	cases := []nativeCase{
		{name: "explicit LE 16u", ts: UIDExplicitVRLittleEndian, ba: 16, bs: 16, spp: 1, photometric: "MONOCHROME2", frames: 1},
		{name: "explicit LE 12s with garbage", ts: UIDExplicitVRLittleEndian, ba: 16, bs: 12, pr: 1, spp: 1, photometric: "MONOCHROME2", frames: 2, garbage: true},
		{name: "implicit LE 10u MONOCHROME1", ts: UIDImplicitVRLittleEndian, ba: 16, bs: 10, spp: 1, photometric: "MONOCHROME1", frames: 1, garbage: true},
		{name: "big endian 16s", ts: UIDExplicitVRBigEndian, ba: 16, bs: 16, pr: 1, spp: 1, photometric: "MONOCHROME2", frames: 3},
		{name: "big endian 8-bit RGB OW", ts: UIDExplicitVRBigEndian, ba: 8, bs: 8, spp: 3, photometric: "RGB", frames: 1, vr: "OW"},
		{name: "big endian 8-bit RGB OB", ts: UIDExplicitVRBigEndian, ba: 8, bs: 8, spp: 3, photometric: "RGB", frames: 1, vr: "OB"},
		{name: "deflated 8u", ts: UIDDeflatedExplicitVRLE, ba: 8, bs: 8, spp: 1, photometric: "MONOCHROME2", frames: 2},
		{name: "32-bit unsigned", ts: UIDImplicitVRLittleEndian, ba: 32, bs: 32, spp: 1, photometric: "MONOCHROME2", frames: 2},
		{name: "32-bit signed 24 stored", ts: UIDExplicitVRLittleEndian, ba: 32, bs: 24, pr: 1, spp: 1, photometric: "MONOCHROME2", frames: 1, garbage: true},
		{name: "1-bit multi-frame", ts: UIDExplicitVRLittleEndian, ba: 1, bs: 1, spp: 1, photometric: "MONOCHROME2", frames: 3},
		{name: "RGB planar", ts: UIDExplicitVRLittleEndian, ba: 8, bs: 8, spp: 3, planar: 1, photometric: "RGB", frames: 2},
		{name: "RGB 16-bit planar BE", ts: UIDExplicitVRBigEndian, ba: 16, bs: 16, spp: 3, planar: 1, photometric: "RGB", frames: 1},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, cols := 7, 5 // odd sizes catch padding and bit-packing errors
			data, want := c.build(rows, cols, rng)
			if c.ts == UIDDeflatedExplicitVRLE {
				data = deflateBody(t, data)
			}
			f, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if f.NumFrames() != c.frames {
				t.Fatalf("frames %d, want %d", f.NumFrames(), c.frames)
			}
			for i := range c.frames {
				fr, err := f.DecodeFrame(i)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if len(fr.Data) != len(want[i]) {
					t.Fatalf("frame %d: %d values, want %d", i, len(fr.Data), len(want[i]))
				}
				for k := range want[i] {
					if fr.Data[k] != want[i][k] {
						t.Fatalf("frame %d sample %d: %d, want %d", i, k, fr.Data[k], want[i][k])
					}
				}
				if _, err := f.RenderFrame(fr); err != nil {
					t.Fatalf("render: %v", err)
				}
			}
			if _, err := f.DecodeFrame(c.frames); err == nil {
				t.Error("frame past the end decoded")
			}
		})
	}
}

// TestYBRFull422Native checks the expansion of native YBR_FULL_422 pairs.
func TestYBRFull422Native(t *testing.T) {
	b := &dsBuilder{bo: binary.LittleEndian}
	b.image(1, 4, 3, 8, 8, 0, "YBR_FULL_422")
	b.raw(0x7FE0, 0x0010, "OB", []byte{10, 20, 100, 200, 30, 40, 110, 210})
	f, err := Parse(part10(UIDExplicitVRLittleEndian, b.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := f.DecodeFrame(0)
	if err != nil {
		t.Fatal(err)
	}
	want := []int32{10, 100, 200, 20, 100, 200, 30, 110, 210, 40, 110, 210}
	for k := range want {
		if fr.Data[k] != want[k] {
			t.Fatalf("got %v, want %v", fr.Data, want)
		}
	}
	if fr.Photometric != "YBR_FULL" {
		t.Errorf("photometric %s", fr.Photometric)
	}
}

func TestRejections(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	good, _ := nativeCase{ts: UIDExplicitVRLittleEndian, ba: 16, bs: 16, spp: 1, photometric: "MONOCHROME2", frames: 1}.build(8, 8, rng)

	huge := &dsBuilder{bo: binary.LittleEndian}
	huge.image(60000, 60000, 1, 16, 16, 0, "MONOCHROME2")
	huge.raw(0x7FE0, 0x0010, "OW", make([]byte, 64))

	noPixel := &dsBuilder{bo: binary.LittleEndian}
	noPixel.str(0x0008, 0x0060, "CS", "SR").str(0x0010, 0x0010, "PN", "Doe^Jane")

	htj := &dsBuilder{bo: binary.LittleEndian}
	htj.image(4, 4, 1, 8, 8, 0, "MONOCHROME2")
	htj.encapsulated(nil, []byte{0xFF, 0x4F, 0xFF, 0x51})

	cases := []struct {
		name    string
		data    []byte
		want    error
		inText  string // must appear in the message
		atParse bool
	}{
		{"empty", nil, ErrNotDICOM, "", true},
		{"text file", []byte(strings.Repeat("hello, this is not DICOM\n", 20)), ErrNotDICOM, "", true},
		{"truncated pixel data", good[:len(good)-7], ErrTruncated, "", true},
		{"truncated header", good[:140], ErrTruncated, "", true},
		{"huge dimensions", part10(UIDExplicitVRLittleEndian, huge.buf.Bytes()), ErrTooLarge, "", false},
		{"no pixel data", part10(UIDExplicitVRLittleEndian, noPixel.buf.Bytes()), ErrNoPixelData, "", false},
		{"private transfer syntax", part10("1.2.3.4.5.99", noPixel.buf.Bytes()), ErrUnsupportedTransferSyntax, "1.2.3.4.5.99", true},
		{"HTJ2K", part10(UIDHTJ2KLossless, htj.buf.Bytes()), ErrUnsupportedTransferSyntax, UIDHTJ2KLossless, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse(c.data)
			if c.atParse {
				if !errors.Is(err, c.want) {
					t.Fatalf("parse error %v, want %v", err, c.want)
				}
			} else {
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				_, err = f.DecodeFrame(0)
				if !errors.Is(err, c.want) {
					t.Fatalf("decode error %v, want %v", err, c.want)
				}
			}
			if !strings.Contains(err.Error(), c.inText) {
				t.Errorf("error %q does not name %q", err, c.inText)
			}
			if strings.Contains(err.Error(), "Doe") {
				t.Errorf("error leaks patient data: %v", err)
			}
			var fe *FileError
			if !errors.As(err, &fe) || len(fe.SHA256) != 64 {
				t.Errorf("error does not name the file by content hash: %v", err)
			}
		})
	}
}

// TestSizeLimits checks the configurable limits.
func TestSizeLimits(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data, _ := nativeCase{ts: UIDExplicitVRLittleEndian, ba: 16, bs: 16, spp: 1, photometric: "MONOCHROME2", frames: 1}.build(32, 32, rng)
	if _, err := Parse(data, WithMaxFileBytes(100)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("file limit: %v", err)
	}
	f, err := Parse(data, WithMaxPixelBytes(32*32*4-1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.DecodeFrame(0); !errors.Is(err, ErrTooLarge) {
		t.Errorf("pixel limit: %v", err)
	}
	f, err = Parse(data, WithMaxPixelBytes(32*32*4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.DecodeFrame(0); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

// TestTruncationNeverPanics cuts a file at every length: each prefix parses
// and decodes or fails with an error, never a recovered panic.
func TestTruncationNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	data, _ := nativeCase{ts: UIDExplicitVRLittleEndian, ba: 16, bs: 12, spp: 1, photometric: "MONOCHROME2", frames: 1}.build(4, 4, rng)
	rle := rleFile(t, [][]uint32{make([]uint32, 16)}, 4, 4, 1, 16, true)
	for _, d := range [][]byte{data, rle} {
		for n := range len(d) {
			f, err := Parse(d[:n])
			if err == nil {
				_, err = f.Render8(0)
			}
			if errors.Is(err, ErrPanic) {
				t.Fatalf("prefix %d: %v", n, err)
			}
		}
	}
}

// TestReasonClasses: every sentinel maps to a stable reason, including codec errors.
func TestReasonClasses(t *testing.T) {
	b := &dsBuilder{bo: binary.LittleEndian}
	b.image(4, 4, 1, 8, 8, 0, "MONOCHROME2")
	b.encapsulated(nil, []byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x02, 0xFF, 0xD9})
	f, err := Parse(part10(UIDJPEGBaseline8Bit, b.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.DecodeFrame(0)
	if got := Reason(err); got != "malformed" {
		t.Errorf("broken JPEG: reason %q (%v)", got, err)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{ErrNotDICOM, "not_dicom"}, {ErrTruncated, "truncated"}, {ErrTooLarge, "too_large"},
		{ErrNoPixelData, "no_pixel_data"}, {ErrUnsupportedTransferSyntax, "unsupported_transfer_syntax"},
		{ErrMalformed, "malformed"}, {ErrPanic, "decoder_panic"}, {errors.New("other"), "decode_failed"}, {nil, ""},
	} {
		if got := Reason(c.err); got != c.want {
			t.Errorf("Reason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
