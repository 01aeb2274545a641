package preprocess

import (
	"encoding/binary"
	"image"
	"image/color"
)

// OpenCV 4.6's fixed-point ITU-R BT.601 weights for 8-bit RGB2GRAY: R 0.299,
// G 0.587, B 0.114 scaled by 2^15 (its 8-bit path uses 15-bit coefficients,
// not the 14-bit yuv_shift ones; checked equal to cv2 on all 2^24 colours).
const (
	grayShift = 15
	grayR     = 9798
	grayG     = 19235
	grayB     = 3735
	grayRound = 1 << (grayShift - 1)
)

func rgbToGray(r, g, b uint32) uint8 {
	return uint8((r*grayR + g*grayG + b*grayB + grayRound) >> grayShift)
}

// Gray converts img to 8-bit gray as cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
// does for 8-bit RGB. A *image.Gray is copied unchanged (the seed skips the
// conversion for single-channel input); alpha is ignored; 16-bit samples are
// reduced to their high byte first.
func Gray(img image.Image) *image.Gray {
	b := img.Bounds()
	dst := newGray(b.Dx(), b.Dy())
	grayInto(dst, img)
	return dst
}

// grayInto writes the gray version of img into dst (same size, origin 0,0).
func grayInto(dst *image.Gray, img image.Image) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return
	}
	switch src := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			off := src.PixOffset(b.Min.X, b.Min.Y+y)
			copy(dst.Pix[y*dst.Stride:y*dst.Stride+w], src.Pix[off:off+w])
		}
	case *image.RGBA:
		rgbaRows(dst, src.Pix, src.Stride, src.PixOffset(b.Min.X, b.Min.Y), w, h)
	case *image.NRGBA:
		rgbaRows(dst, src.Pix, src.Stride, src.PixOffset(b.Min.X, b.Min.Y), w, h)
	case *image.YCbCr:
		// JPEG colour input: Go's YCbCr->RGB conversion (libjpeg's can differ by 1).
		parallelRange(h, w*h*2, func(lo, hi int) {
			for y := lo; y < hi; y++ {
				row := dst.Pix[y*dst.Stride : y*dst.Stride+w]
				for x := range row {
					yi := src.YOffset(b.Min.X+x, b.Min.Y+y)
					ci := src.COffset(b.Min.X+x, b.Min.Y+y)
					r, g, bb := color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
					row[x] = rgbToGray(uint32(r), uint32(g), uint32(bb))
				}
			}
		})
	default:
		parallelRange(h, w*h*4, func(lo, hi int) {
			for y := lo; y < hi; y++ {
				row := dst.Pix[y*dst.Stride : y*dst.Stride+w]
				for x := range row {
					r, g, bb, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
					row[x] = rgbToGray(r>>8, g>>8, bb>>8)
				}
			}
		})
	}
}

// rgbaRows converts interleaved 4-byte RGB(A) rows.
func rgbaRows(dst *image.Gray, pix []uint8, stride, off, w, h int) {
	parallelRange(h, w*h, func(lo, hi int) {
		for y := lo; y < hi; y++ {
			s := pix[off+y*stride : off+y*stride+4*w]
			d := dst.Pix[y*dst.Stride : y*dst.Stride+w]
			s = s[:4*len(d)]
			x := 0
			// Two pixels per 8-byte load, both weighted sums computed at once
			// in the two 32-bit halves of a uint64 (each stays below 2^24).
			const lanes = 0x000000ff000000ff
			const round2 = grayRound | grayRound<<32
			for ; x+2 <= len(d); x += 2 {
				u := binary.LittleEndian.Uint64(s[4*x:])
				sum := (u&lanes)*grayR + (u>>8&lanes)*grayG + (u>>16&lanes)*grayB + round2
				d[x] = uint8(sum >> grayShift)
				d[x+1] = uint8(sum >> (32 + grayShift))
			}
			for ; x < len(d); x++ {
				i := 4 * x
				d[x] = rgbToGray(uint32(s[i]), uint32(s[i+1]), uint32(s[i+2]))
			}
		}
	})
}
