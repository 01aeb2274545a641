package dicomio

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// TestFrameLocation covers the ways frames are found among fragments: the
// Extended Offset Table (with an empty BOT), and multi-fragment frames
// without any table (split at JPEG SOI markers).
func TestFrameLocation(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	rows, cols := 6, 10
	var frames [][]int32
	var streams [][]byte
	for range 3 {
		v := make([]int32, rows*cols)
		for k := range v {
			v[k] = int32(rng.IntN(4096))
		}
		frames = append(frames, v)
		streams = append(streams, losslessJPEG(v, rows, cols, 12, 1))
	}
	even := func(b []byte) []byte { // fragments before the last must be even
		return b[:len(b)&^1]
	}
	t.Run("extended offset table", func(t *testing.T) {
		b := &dsBuilder{bo: binary.LittleEndian}
		b.image(rows, cols, 1, 16, 12, 0, "MONOCHROME2")
		b.str(0x0028, 0x0008, "IS", "3")
		var eot, lens []byte
		off := uint64(0)
		var frags [][]byte
		for _, s := range streams {
			if len(s)%2 == 1 {
				s = append(s, 0)
			}
			eot = binary.LittleEndian.AppendUint64(eot, off)
			lens = binary.LittleEndian.AppendUint64(lens, uint64(len(s)))
			frags = append(frags, s)
			off += 8 + uint64(len(s))
		}
		b.raw(0x7FE0, 0x0001, "OV", eot)
		b.raw(0x7FE0, 0x0002, "OV", lens)
		b.encapsulated(nil, frags...)
		data := part10(UIDJPEGLosslessSV1, b.buf.Bytes())
		f, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		checkFrames(t, f, frames)
		// The EOT survives a write-back byte for byte.
		out := filepath.Join(t.TempDir(), "eot.dcm")
		if err := WriteFile(out, f.Dataset); err != nil {
			t.Fatal(err)
		}
		g, err := ParseFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytesOf(findIn(g.Dataset.Elements, tag.ExtendedOffsetTable)); !bytes.Equal(got, eot) {
			t.Errorf("EOT after write-back: % x, want % x", got, eot)
		}
		checkFrames(t, g, frames)
		if dcmdump, err := exec.LookPath("dcmdump"); err == nil {
			dcmtkPixels(t, dcmdump, out) // dcmtk must read it (exit 0)
		}
	})
	t.Run("fragmented frames without BOT", func(t *testing.T) {
		b := &dsBuilder{bo: binary.LittleEndian}
		b.image(rows, cols, 1, 16, 12, 0, "MONOCHROME2")
		b.str(0x0028, 0x0008, "IS", "3")
		var frags [][]byte
		for _, s := range streams {
			h := even(s[:len(s)/2])
			frags = append(frags, h, s[len(h):])
		}
		b.encapsulated(nil, frags...)
		f, err := Parse(part10(UIDJPEGLosslessSV1, b.buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		checkFrames(t, f, frames)
	})
	t.Run("fragmented frames with BOT", func(t *testing.T) {
		b := &dsBuilder{bo: binary.LittleEndian}
		b.image(rows, cols, 1, 16, 12, 0, "MONOCHROME2")
		b.str(0x0028, 0x0008, "IS", "3")
		var frags [][]byte
		var bot []uint32
		off := uint32(0)
		for _, s := range streams {
			h := even(s[:len(s)/2])
			r := s[len(h):]
			bot = append(bot, off)
			frags = append(frags, h, r)
			off += 16 + uint32(len(h)) + uint32(len(r)+len(r)%2)
		}
		b.encapsulated(bot, frags...)
		f, err := Parse(part10(UIDJPEGLosslessSV1, b.buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		checkFrames(t, f, frames)
	})
}

func checkFrames(t *testing.T, f *File, want [][]int32) {
	t.Helper()
	for i, w := range want {
		fr, err := f.DecodeFrame(i)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		for k := range w {
			if fr.Data[k] != w[k] {
				t.Fatalf("frame %d sample %d: %d, want %d", i, k, fr.Data[k], w[k])
			}
		}
	}
}
