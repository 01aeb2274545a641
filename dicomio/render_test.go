package dicomio

import (
	"encoding/binary"
	"testing"
)

// grayFile builds a one-row 16-bit MONOCHROME image with the given stored
// values and extra attributes written by attrs (before Pixel Data).
func grayFile(t *testing.T, photometric string, signed bool, vals []int16, attrs func(b *dsBuilder)) *File {
	t.Helper()
	b := &dsBuilder{bo: binary.LittleEndian}
	pr := 0
	if signed {
		pr = 1
	}
	b.image(1, len(vals), 1, 16, 16, pr, photometric)
	if attrs != nil {
		attrs(b)
	}
	raw := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(raw[2*i:], uint16(v))
	}
	b.raw(0x7FE0, 0x0010, "OW", raw)
	f, err := Parse(part10(UIDExplicitVRLittleEndian, b.buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRenderGray(t *testing.T) {
	window := func(c, w, fn string) func(b *dsBuilder) {
		return func(b *dsBuilder) {
			b.str(0x0028, 0x1050, "DS", c).str(0x0028, 0x1051, "DS", w)
			if fn != "" {
				b.str(0x0028, 0x1056, "CS", fn)
			}
		}
	}
	lutItem := func(first uint16, bits uint16, data ...uint16) []byte {
		it := &dsBuilder{bo: binary.LittleEndian}
		it.us(0x0028, 0x3002, uint16(len(data)), first, bits)
		it.us(0x0028, 0x3006, data...)
		return it.buf.Bytes()
	}
	// Expected bytes are the PS3.3 C.11.2.1.2 formulas worked by hand.
	cases := []struct {
		name   string
		photo  string
		signed bool
		vals   []int16
		attrs  func(b *dsBuilder)
		want   []uint8
	}{
		{"linear full range", "MONOCHROME2", false, []int16{0, 2047, 2048, 4095},
			window("2048", "4096", ""), []uint8{0, 127, 128, 255}},
		// c=40 w=400: (40-39.5)/399+0.5 = 0.50125 -> 127.8; x=239.5+ -> 255
		{"linear CT window", "MONOCHROME2", true, []int16{-160, 40, 239, 240, -1000},
			window("40", "400", "LINEAR"), []uint8{0, 128, 255, 255, 0}},
		{"linear exact", "MONOCHROME2", true, []int16{-50, 0, 25, 50, 51},
			window("0", "100", "LINEAR_EXACT"), []uint8{0, 128, 191, 255, 255}},
		// 255/(1+exp(-4x/w)): x=0 -> 127.5, x=50 -> 224.6, x=-50 -> 30.4
		{"sigmoid", "MONOCHROME2", true, []int16{-50, 0, 50},
			window("0", "100", "SIGMOID"), []uint8{30, 128, 225}},
		{"monochrome1 inverts", "MONOCHROME1", false, []int16{0, 2047, 4095},
			window("2048", "4096", ""), []uint8{255, 128, 0}},
		// rescale 2x-1000 then window c=0 w=3: -2 -> 0, 0 -> (0.5/2+0.5)*255 = 191.25, 2 -> 255
		{"rescale then window", "MONOCHROME2", false, []int16{499, 500, 501},
			func(b *dsBuilder) {
				b.str(0x0028, 0x1052, "DS", "-1000").str(0x0028, 0x1053, "DS", "2")
				window("0", "3", "")(b)
			}, []uint8{0, 191, 255}},
		// min-max: min 10 max 20 -> c 15.5 w 11 -> (x-15)/10+0.5
		{"min-max", "MONOCHROME2", false, []int16{10, 15, 20},
			nil, []uint8{0, 128, 255}},
		// VOI LUT (8-bit output): index x-100, clamped at both ends
		{"VOI LUT sequence", "MONOCHROME2", false, []int16{99, 100, 101, 102, 200},
			func(b *dsBuilder) {
				b.seq(0x0028, 0x3010, lutItem(100, 8, 0, 128, 255))
			}, []uint8{0, 0, 128, 255, 255}},
		// Modality LUT maps 0,1,2 -> 0,50,100; then min-max over 0..100
		{"modality LUT sequence", "MONOCHROME2", false, []int16{0, 1, 2},
			func(b *dsBuilder) {
				b.seq(0x0028, 0x3000, lutItem(0, 16, 0, 50, 100))
			}, []uint8{0, 128, 255}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := grayFile(t, c.photo, c.signed, c.vals, c.attrs)
			img, err := f.Render8(0)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range c.want {
				if img.Pix[i] != w {
					t.Errorf("pixel %d (stored %d): %d, want %d", i, c.vals[i], img.Pix[i], w)
				}
			}
		})
	}
}

func TestRenderColour(t *testing.T) {
	// OpenCV 4.6 RGB2GRAY: (R*9798 + G*19235 + B*3735 + 16384) >> 15. The
	// last two RGB pixels are values cv2.cvtColor gives 81 and 112 for, where
	// the Q14 weights would give 82 and 111.
	cases := []struct {
		photo string
		px    []byte
		want  []uint8
	}{
		{"RGB", []byte{255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255}, []uint8{76, 150, 29, 255}},
		{"RGB", []byte{0, 100, 200, 0, 175, 77, 255, 255, 255, 0, 0, 0}, []uint8{81, 112, 255, 0}},
		// YBR_FULL: Y with neutral chroma is gray Y.
		{"YBR_FULL", []byte{0, 128, 128, 100, 128, 128, 255, 128, 128, 17, 128, 128}, []uint8{0, 100, 255, 17}},
	}
	for _, c := range cases {
		t.Run(c.photo, func(t *testing.T) {
			b := &dsBuilder{bo: binary.LittleEndian}
			b.image(1, 4, 3, 8, 8, 0, c.photo)
			b.us(0x0028, 0x0006, 0)
			b.raw(0x7FE0, 0x0010, "OB", c.px)
			f, err := Parse(part10(UIDExplicitVRLittleEndian, b.buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			img, err := f.Render8(0)
			if err != nil {
				t.Fatal(err)
			}
			for i, w := range c.want {
				if img.Pix[i] != w {
					t.Errorf("pixel %d: %d, want %d", i, img.Pix[i], w)
				}
			}
		})
	}
}
