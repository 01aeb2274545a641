package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"
)

// zeroDeflate returns a raw deflate stream of prefix followed by n zero
// bytes. One flushed 1 MiB block of zeros decodes the same after any 32 KiB
// of zeros, so it is repeated: a gigabyte bomb costs milliseconds and a few
// hundred kilobytes to make, and nothing large is committed.
func zeroDeflate(t testing.TB, prefix []byte, n int) []byte {
	t.Helper()
	const chunk = 1 << 20
	var out bytes.Buffer
	w, err := flate.NewWriter(&out, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, chunk)
	w.Write(prefix)
	first := min(n, chunk)
	w.Write(zeros[:first])
	w.Flush()
	n -= first
	if n >= chunk {
		mark := out.Len()
		w.Write(zeros)
		w.Flush()
		block := append([]byte(nil), out.Bytes()[mark:]...)
		for n -= chunk; n >= chunk; n -= chunk {
			out.Write(block)
		}
	}
	w.Write(zeros[:n])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// deflateBomb is a deflated file whose native 16-bit pixel data (rows x
// cols, all zero) matches its header, so only the inflation is abnormal.
func deflateBomb(t testing.TB, rows, cols int) []byte {
	b := &dsBuilder{bo: binary.LittleEndian}
	b.image(rows, cols, 1, 16, 16, 0, "MONOCHROME2")
	n := rows * cols * 2
	b.header(0x7FE0, 0x0010, "OW", uint32(n))
	file := part10(UIDDeflatedExplicitVRLE, nil)
	return append(file, zeroDeflate(t, b.buf.Bytes(), n)...)
}

// rleBomb is an RLE file of one 8-bit frame of rows x cols zeros, every
// 2 bytes of the segment a run of 128 (PackBits' best ratio, 64:1).
func rleBomb(rows, cols int) []byte {
	plane := rows * cols
	frag := make([]byte, 64, 64+plane/64)
	binary.LittleEndian.PutUint32(frag, 1)
	binary.LittleEndian.PutUint32(frag[4:], 64)
	for range plane / 128 {
		frag = append(frag, 0x81, 0x00) // -127: repeat the next byte 128 times
	}
	b := &dsBuilder{bo: binary.LittleEndian}
	b.image(rows, cols, 1, 8, 8, 0, "MONOCHROME2")
	b.encapsulated(nil, frag)
	return part10(UIDRLELossless, b.buf.Bytes())
}

// rleShortSegment declares a rows x cols 8-bit frame but carries only a
// few bytes of RLE data.
func rleShortSegment(rows, cols int) []byte {
	frag := make([]byte, 64, 72)
	binary.LittleEndian.PutUint32(frag, 1)
	binary.LittleEndian.PutUint32(frag[4:], 64)
	frag = append(frag, 0x81, 0x00, 0x81, 0x00, 0x81, 0x00, 0x81, 0x00)
	b := &dsBuilder{bo: binary.LittleEndian}
	b.image(rows, cols, 1, 8, 8, 0, "MONOCHROME2")
	b.encapsulated(nil, frag)
	return part10(UIDRLELossless, b.buf.Bytes())
}

// probeBomb is a valid, small file whose first data set element, an LT of
// 12 KiB with a tag the dictionary lacks, reads as an implicit VR element of
// 805 MB: suyashkumar probes the syntax that way before being told it.
func probeBomb() []byte {
	b := &dsBuilder{bo: binary.LittleEndian}
	b.raw(0x0008, 0x00F1, "LT", make([]byte, 0x3000)) // unknown tag: read as UN
	b.image(4, 4, 1, 8, 8, 0, "MONOCHROME2")
	b.raw(0x7FE0, 0x0010, "OB", make([]byte, 16))
	return part10(UIDExplicitVRLittleEndian, b.buf.Bytes())
}

// allocated returns the bytes the Go heap handed out while f ran: an upper
// bound of its peak, independent of GC timing.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// parseAndRender is what the pipeline does with a file before anything is
// archived: parse, check the image, render frame 0.
func parseAndRender(data []byte, opts ...Option) error {
	f, err := Parse(data, opts...)
	if err != nil {
		return err
	}
	if _, err := f.ImageInfo(); err != nil {
		return err
	}
	_, err = f.Render8(0)
	return err
}

// TestBombs: files whose content inflates far beyond their size are refused
// with ErrTooLarge (or ErrTruncated when the bytes are simply not there)
// before the memory is allocated, under the default limits the daemon uses.
func TestBombs(t *testing.T) {
	const mib = 1 << 20
	smallFloor := func(o *options) { o.ratioFloor = 0 }
	cases := []struct {
		name     string
		data     func(t *testing.T) []byte
		opts     []Option
		want     error // nil: decodes
		maxAlloc uint64
	}{
		// 512 MiB of pixel data in ~0.5 MB: within the 1 GiB limits, so only
		// the ratio can stop it.
		{"deflate 512 MiB", func(t *testing.T) []byte { return deflateBomb(t, 16384, 16384) }, nil, ErrTooLarge, 48 * mib},
		{"deflate over the absolute limit", func(t *testing.T) []byte { return deflateBomb(t, 1024, 1024) },
			[]Option{WithMaxFileBytes(1 * mib), WithMaxInflateRatio(1e6)}, ErrTooLarge, 8 * mib},
		{"deflate within limits", func(t *testing.T) []byte { return deflateBomb(t, 256, 256) }, nil, nil, 8 * mib},
		// 4 MiB of RLE decoding to 256 MiB of samples (1 GiB as int32).
		{"RLE 4 MiB", func(*testing.T) []byte { return rleBomb(16384, 16384) }, nil, ErrTooLarge, 48 * mib},
		{"RLE ratio refused", func(*testing.T) []byte { return rleBomb(512, 512) }, []Option{smallFloor}, ErrTooLarge, 4 * mib},
		{"RLE ratio raised", func(*testing.T) []byte { return rleBomb(512, 512) }, []Option{smallFloor, WithMaxInflateRatio(100)}, nil, 8 * mib},
		{"RLE pixel limit", func(*testing.T) []byte { return rleBomb(512, 512) }, []Option{WithMaxPixelBytes(512*512*4 - 1)}, ErrTooLarge, 4 * mib},
		{"syntax probe", func(*testing.T) []byte { return probeBomb() }, nil, nil, 4 * mib},
		// Declared 16384x16384 with 8 bytes of segment: nothing to decode.
		{"RLE segment too short", func(*testing.T) []byte { return rleShortSegment(16384, 16384) },
			[]Option{WithMaxInflateRatio(1e9)}, ErrTruncated, 4 * mib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.data(t)
			var err error
			n := allocated(func() { err = parseAndRender(data, c.opts...) })
			t.Logf("%d byte file: %v; %.1f MiB allocated", len(data), err, float64(n)/mib)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %v, want %v", err, c.want)
			}
			if n > c.maxAlloc {
				t.Errorf("%.1f MiB allocated, want at most %.1f", float64(n)/mib, float64(c.maxAlloc)/mib)
			}
		})
	}
}
