package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// deflateBody compresses the data set of a Part 10 file (after the meta group).
func deflateBody(t *testing.T, data []byte) []byte {
	t.Helper()
	pos := 132
	glen := int(binary.LittleEndian.Uint32(data[140:]))
	pos = 144 + glen
	var out bytes.Buffer
	out.Write(data[:pos])
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write(data[pos:])
	w.Close()
	return out.Bytes()
}

// TestInflateAsFlate checks that inflate (zlib where built with cgo, with
// its fallback) gives exactly what compress/flate alone gives, bytes and
// error, for intact, truncated and corrupted streams.
func TestInflateAsFlate(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var streams [][]byte
	for _, n := range []int{0, 1, 100, 70000, 300000} {
		plain := make([]byte, n)
		for i := range plain {
			plain[i] = byte(rng.IntN(16) * rng.IntN(3)) // compressible, not trivially
		}
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.BestCompression, flate.HuffmanOnly} {
			var b bytes.Buffer
			w, _ := flate.NewWriter(&b, level)
			w.Write(plain)
			w.Close()
			s := b.Bytes()
			streams = append(streams, s, append(append([]byte(nil), s...), 1, 2, 3)) // trailing bytes
			for range 8 {
				if len(s) > 1 {
					streams = append(streams, s[:rng.IntN(len(s))])
				}
				c := append([]byte(nil), s...)
				for range 1 + rng.IntN(3) {
					c[rng.IntN(len(c))] ^= byte(1 << rng.IntN(8))
				}
				streams = append(streams, c)
			}
		}
	}
	streams = append(streams, nil, []byte{0xFF}, []byte{0x78, 0x9C, 0x03, 0x00}) // empty, junk, zlib-wrapped
	opts := []options{toOptions(nil), toOptions([]Option{WithMaxFileBytes(100000)}), {maxFileBytes: 1 << 30, maxInflateRatio: 2, ratioFloor: 1000}}
	for i, s := range streams {
		for j, o := range opts {
			got, gerr := inflate(s, o)
			want, werr := inflateFrom(flate.NewReader(bytes.NewReader(s)), len(s), o, nil)
			if werr != nil {
				want = nil
			}
			if !bytes.Equal(got, want) || (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
				t.Fatalf("stream %d (%d bytes) options %d: %d bytes, %v; compress/flate %d bytes, %v", i, len(s), j, len(got), gerr, len(want), werr)
			}
		}
	}
}
