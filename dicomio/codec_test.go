package dicomio

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// rleFile builds an RLE Lossless file from per-frame interleaved words.
func rleFile(t testing.TB, frames [][]uint32, rows, cols, spp, ba int, withBOT bool) []byte {
	t.Helper()
	b := &dsBuilder{bo: binary.LittleEndian}
	photo := "MONOCHROME2"
	if spp == 3 {
		photo = "RGB"
	}
	b.image(rows, cols, spp, ba, ba, 0, photo)
	b.str(0x0028, 0x0008, "IS", itoa(len(frames)))
	var frags [][]byte
	var bot []uint32
	off := uint32(0)
	for _, w := range frames {
		enc := rleEncode(w, spp, ba/8)
		frags = append(frags, enc)
		bot = append(bot, off)
		off += 8 + uint32(len(enc)+len(enc)%2)
	}
	if !withBOT {
		bot = nil
	}
	b.encapsulated(bot, frags...)
	return part10(UIDRLELossless, b.buf.Bytes())
}

func TestRLE(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	cases := []struct {
		name         string
		spp, ba, nfr int
		bot          bool
	}{
		{"8-bit gray", 1, 8, 1, false},
		{"16-bit gray 3 frames with BOT", 1, 16, 3, true},
		{"16-bit gray 2 frames no BOT", 1, 16, 2, false},
		{"RGB 8-bit", 3, 8, 1, true},
		{"32-bit", 1, 32, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, cols := 9, 13
			var frames [][]uint32
			for range c.nfr {
				w := make([]uint32, rows*cols*c.spp)
				for k := range w {
					if k%5 < 3 { // runs and literals both
						w[k] = uint32(rng.Uint64()) & (1<<uint(c.ba) - 1)
					} else if k > 0 {
						w[k] = w[k-1]
					}
				}
				frames = append(frames, w)
			}
			f, err := Parse(rleFile(t, frames, rows, cols, c.spp, c.ba, c.bot))
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range frames {
				fr, err := f.DecodeFrame(i)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				for k := range w {
					if uint32(fr.Data[k]) != w[k] {
						t.Fatalf("frame %d sample %d: %d, want %d", i, k, fr.Data[k], w[k])
					}
				}
			}
		})
	}
}

// losslessJPEG encodes gray samples with ISO 10918-1 process 14 (one
// component, the given predictor), using a fixed 5-bit code per category.
func losslessJPEG(vals []int32, rows, cols, precision, predictor int) []byte {
	var o bytes.Buffer
	o.Write([]byte{0xFF, 0xD8})
	o.Write([]byte{0xFF, 0xC3, 0, 11, byte(precision), byte(rows >> 8), byte(rows), byte(cols >> 8), byte(cols), 1, 1, 0x11, 0})
	// DHT: 17 symbols (categories 0..16), all of length 5.
	dht := []byte{0xFF, 0xC4, 0, byte(2 + 1 + 16 + 17), 0x00}
	counts := make([]byte, 16)
	counts[4] = 17
	dht = append(dht, counts...)
	for s := range 17 {
		dht = append(dht, byte(s))
	}
	o.Write(dht)
	o.Write([]byte{0xFF, 0xDA, 0, 8, 1, 1, 0x00, byte(predictor), 0, 0})
	var acc uint64
	var n uint
	put := func(v uint64, bits uint) {
		acc = acc<<bits | v&(1<<bits-1)
		n += bits
		for n >= 8 {
			b := byte(acc >> (n - 8))
			o.WriteByte(b)
			if b == 0xFF {
				o.WriteByte(0)
			}
			n -= 8
		}
	}
	at := func(r, c int) int32 { return vals[r*cols+c] }
	for r := range rows {
		for c := range cols {
			var p int32
			switch {
			case r == 0 && c == 0:
				p = 1 << (precision - 1)
			case r == 0:
				p = at(r, c-1)
			case c == 0:
				p = at(r-1, c)
			default:
				ra, rb, rc := at(r, c-1), at(r-1, c), at(r-1, c-1)
				p = [8]int32{0, ra, rb, rc, ra + rb - rc, ra + ((rb - rc) >> 1), rb + ((ra - rc) >> 1), (ra + rb) >> 1}[predictor]
			}
			d := (at(r, c) - p) & 0xFFFF
			if d >= 0x8000 {
				d -= 0x10000
			}
			ad := d
			if ad < 0 {
				ad = -ad
			}
			s := 0
			for (int32(1) << s) <= ad {
				s++
			}
			put(uint64(s), 5)
			if s > 0 && s < 16 {
				v := d
				if d < 0 {
					v = d + (1 << s) - 1
				}
				put(uint64(v), uint(s))
			}
		}
	}
	if n > 0 {
		put(0x7F, 8-n) // pad with ones
	}
	o.Write([]byte{0xFF, 0xD9})
	return o.Bytes()
}

func TestJPEGLossless(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for pred := 1; pred <= 7; pred++ {
		for _, prec := range []int{8, 12, 16} {
			rows, cols := 11, 17
			vals := make([]int32, rows*cols)
			for k := range vals {
				vals[k] = int32(rng.IntN(1 << prec))
			}
			b := &dsBuilder{bo: binary.LittleEndian}
			ba := 16
			if prec == 8 {
				ba = 8
			}
			b.image(rows, cols, 1, ba, prec, 0, "MONOCHROME2")
			// Split the stream over two fragments: one frame, no BOT.
			js := losslessJPEG(vals, rows, cols, prec, pred)
			half := len(js) / 2 &^ 1 // fragments other than the last must not need padding
			b.encapsulated(nil, js[:half], js[half:])
			f, err := Parse(part10(UIDJPEGLossless, b.buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			fr, err := f.DecodeFrame(0)
			if err != nil {
				t.Fatalf("predictor %d precision %d: %v", pred, prec, err)
			}
			for k := range vals {
				if fr.Data[k] != vals[k] {
					t.Fatalf("predictor %d precision %d sample %d: %d, want %d", pred, prec, k, fr.Data[k], vals[k])
				}
			}
		}
	}
}

// TestJPEGBaselineVsStdlib encodes with Go's image/jpeg and checks the
// decoder against image/jpeg's own decode (different IDCTs: allow ±2).
func TestJPEGBaselineVsStdlib(t *testing.T) {
	rows, cols := 37, 45
	src := image.NewGray(image.Rect(0, 0, cols, rows))
	for y := range rows {
		for x := range cols {
			src.Pix[y*cols+x] = uint8((x*7 + y*5) ^ (x * y))
		}
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, src, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	ref, err := jpeg.Decode(bytes.NewReader(jb.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	refGray := ref.(*image.Gray)
	b := &dsBuilder{bo: binary.LittleEndian}
	b.image(rows, cols, 1, 8, 8, 0, "MONOCHROME2")
	b.encapsulated(nil, jb.Bytes())
	f, err := Parse(part10(UIDJPEGBaseline8Bit, b.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := f.DecodeFrame(0)
	if err != nil {
		t.Fatal(err)
	}
	for y := range rows {
		for x := range cols {
			g, w := fr.Data[y*cols+x], int32(refGray.Pix[y*refGray.Stride+x])
			if d := g - w; d > 2 || d < -2 {
				t.Fatalf("(%d,%d): %d, image/jpeg %d", x, y, g, w)
			}
		}
	}
}

// TestJPEGStreamedAsStored checks that a sequential one-component frame
// transformed block by block as it is decoded gives what decoding from
// stored coefficients gives, also where a table is redefined after the scan
// or the component is scanned twice (the streamed decode must fall back).
func TestJPEGStreamedAsStored(t *testing.T) {
	rows, cols := 37, 45 // edge blocks on both axes
	src := image.NewGray(image.Rect(0, 0, cols, rows))
	for y := range rows {
		for x := range cols {
			src.Pix[y*cols+x] = uint8((x*7 + y*5) ^ (x * y))
		}
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, src, &jpeg.Options{Quality: 75}); err != nil {
		t.Fatal(err)
	}
	base := jb.Bytes()
	eoi := bytes.LastIndex(base, []byte{0xFF, 0xD9})
	sos := bytes.Index(base, []byte{0xFF, 0xDA})
	before := func(extra []byte) []byte {
		return append(append(append([]byte(nil), base[:eoi]...), extra...), base[eoi:]...)
	}
	dqt := []byte{0xFF, 0xDB, 0x00, 0x43, 0x00}
	for k := range 64 {
		dqt = append(dqt, byte(1+k))
	}
	ii := ImageInfo{Rows: rows, Columns: cols, SamplesPerPixel: 1, BitsAllocated: 8, BitsStored: 8, HighBit: 7, Photometric: "MONOCHROME2"}
	streams := map[string][]byte{
		"plain":           base,
		"DQT after scan":  before(dqt),
		"component twice": before(base[sos:eoi]),
		"truncated scan":  base[:sos+(eoi-sos)/2],
		"garbage in scan": append(append(append([]byte(nil), base[:sos+40]...), 0x13, 0x57, 0x9B), base[sos+43:]...),
	}
	var paths []string
	for _, pat := range []string{filepath.Join(sharedDir, "xray-dicom/files/*.dcm"), filepath.Join(sharedDir, "dicom/files/*dcmcjpeg_*.dcm"), "testdata/pydicom/*JPG*.dcm"} {
		m, _ := filepath.Glob(pat)
		paths = append(paths, m...)
	}
	files := map[string]ImageInfo{}
	for _, p := range paths {
		f, err := ParseFile(p)
		if err != nil || f.ts.codec != codecJPEGDCT {
			continue
		}
		fii, err := f.ImageInfo()
		if err != nil {
			continue
		}
		info, _, err := f.pixelInfo()
		if err != nil {
			continue
		}
		data, err := f.frameBytes(info, fii, 0)
		if err != nil {
			continue
		}
		streams[p] = data
		files[p] = fii
	}
	for name, data := range streams {
		fii, ok := files[name]
		if !ok {
			fii = ii
		}
		got, gerr := decodeJPEGMode(data, fii, true)
		want, werr := decodeJPEGMode(data, fii, false)
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%s: streamed error %v, stored %v", name, gerr, werr)
		}
		if gerr == nil && !slices.Equal(got.Data, want.Data) {
			t.Fatalf("%s: streamed samples differ from stored", name)
		}
	}
	plain, _ := decodeJPEGMode(base, ii, false)
	redef, _ := decodeJPEGMode(streams["DQT after scan"], ii, false)
	if slices.Equal(plain.Data, redef.Data) {
		t.Fatal("a table redefined after the scan changed nothing: the fallback is not tested")
	}
}
