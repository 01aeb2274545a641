package delivery

import (
	"image"
	"math"
	"strings"
	"time"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// buildSC makes the secondary capture: the rendered original with the boxes
// and the category burned in, in a new series of the original study.
func (b *Builder) buildSC(o *original, r Result, gray *image.Gray, now time.Time) dicom.Dataset {
	img := annotate(gray, r)
	w, h := img.Rect.Dx(), img.Rect.Dy()
	px := make([]byte, w*h, w*h+1)
	for y := 0; y < h; y++ {
		copy(px[y*w:(y+1)*w], img.Pix[y*img.Stride:y*img.Stride+w])
	}
	if len(px)%2 == 1 {
		px = append(px, 0) // values have even length
	}
	sop := b.UID("sc/" + o.sop)
	series := b.UID("sc-series/" + o.study)
	es := b.common(o, SecondaryCaptureClass, sop, series, "OT", "9902", now)
	es = append(es,
		s(tag.ConversionType, "CS", "WSD"),
		// Type 2C; dciodvfy wants it whenever Image Laterality is absent.
		s(tag.Laterality, "CS", o.laterality...),
		s(tag.ImageType, "CS", "DERIVED", "SECONDARY"),
		s(tag.PatientOrientation, "CS"),
		s(tag.BurnedInAnnotation, "CS", "YES"),
		s(tag.DerivationDescription, "ST", "Rendered to 8 bits (modality LUT, first VOI window); fracd result and regions drawn on it"),
		s(tag.DateOfSecondaryCapture, "DA", now.Format("20060102")),
		s(tag.TimeOfSecondaryCapture, "TM", now.Format("150405")),
		sq(tag.SourceImageSequence, []*dicom.Element{
			s(tag.ReferencedSOPClassUID, "UI", o.sopClass),
			s(tag.ReferencedSOPInstanceUID, "UI", o.sop),
			sq(tag.PurposeOfReferenceCodeSequence, code{"121322", "DCM", "Source image for image processing operation"}.item()),
		}),
		el(tag.SamplesPerPixel, "US", []int{1}),
		s(tag.PhotometricInterpretation, "CS", "MONOCHROME2"),
		el(tag.Rows, "US", []int{h}),
		el(tag.Columns, "US", []int{w}),
		el(tag.BitsAllocated, "US", []int{8}),
		el(tag.BitsStored, "US", []int{8}),
		el(tag.HighBit, "US", []int{7}),
		el(tag.PixelRepresentation, "US", []int{0}),
		el(tag.PixelData, "OB", dicom.PixelDataInfo{IntentionallyUnprocessed: true, UnprocessedValueData: px}),
	)
	sortElems(es)
	return dicom.Dataset{Elements: es}
}

// annotate copies the rendering and draws each box (white with a black
// outline, so it shows on bone and on background) and a label with the
// category and probability in a black band (boxes drawn last, on top).
func annotate(src *image.Gray, r Result) *image.Gray {
	b := src.Rect
	img := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := 0; y < b.Dy(); y++ {
		copy(img.Pix[y*img.Stride:y*img.Stride+b.Dx()], src.Pix[(y)*src.Stride:(y)*src.Stride+b.Dx()])
	}
	w, h := b.Dx(), b.Dy()
	scale := max(1, min(w, h)/200)
	thick := max(1, scale)
	lines := []string{categoryText(r.Category()) + " P=" + ds2(r.Probability), "FRACD AI RESULT - NOT A DIAGNOSIS"}
	y := scale * 2
	for _, l := range lines {
		drawText(img, scale*2, y, l, scale)
		y += (glyphH + 3) * scale
	}
	for _, box := range r.Boxes {
		x0, y0 := clampInt(int(math.Floor(box.X0)), 0, w-1), clampInt(int(math.Floor(box.Y0)), 0, h-1)
		x1, y1 := clampInt(int(math.Ceil(box.X1))-1, 0, w-1), clampInt(int(math.Ceil(box.Y1))-1, 0, h-1)
		rect(img, x0-thick, y0-thick, x1+thick, y1+thick, thick, 0)
		rect(img, x0, y0, x1, y1, thick, 255)
		label := ds2(box.Score)
		ty := y0 - thick - (glyphH+2)*scale
		if ty < 0 {
			ty = y1 + thick + scale
		}
		drawText(img, x0, ty, label, scale)
	}
	return img
}

func ds2(v float64) string {
	v = math.Round(v*100) / 100
	out := ds(v)
	if !strings.Contains(out, ".") {
		out += ".00"
	} else if len(out)-strings.Index(out, ".") == 2 {
		out += "0"
	}
	return out
}

func clampInt(v, lo, hi int) int { return max(lo, min(v, hi)) }

func fill(img *image.Gray, x0, y0, x1, y1 int, v uint8) {
	r := image.Rect(x0, y0, x1+1, y1+1).Intersect(img.Rect)
	for y := r.Min.Y; y < r.Max.Y; y++ {
		row := img.Pix[y*img.Stride:]
		for x := r.Min.X; x < r.Max.X; x++ {
			row[x] = v
		}
	}
}

// rect draws an outline of thickness t inside (x0,y0)-(x1,y1), inclusive.
func rect(img *image.Gray, x0, y0, x1, y1, t int, v uint8) {
	fill(img, x0, y0, x1, y0+t-1, v)
	fill(img, x0, y1-t+1, x1, y1, v)
	fill(img, x0, y0, x0+t-1, y1, v)
	fill(img, x1-t+1, y0, x1, y1, v)
}

// drawText writes upper-case text with the built-in 5x7 font, white on a
// black band, each font pixel scale x scale.
func drawText(img *image.Gray, x, y int, text string, scale int) {
	text = strings.ToUpper(text)
	n := len([]rune(text))
	fill(img, x-scale, y-scale, x+n*(glyphW+1)*scale, y+(glyphH+1)*scale, 0)
	for i, c := range []rune(text) {
		g, ok := font[c]
		if !ok {
			continue
		}
		gx := x + i*(glyphW+1)*scale
		for row := 0; row < glyphH; row++ {
			for col := 0; col < glyphW; col++ {
				if g[row]&(1<<(glyphW-1-col)) != 0 {
					fill(img, gx+col*scale, y+row*scale, gx+(col+1)*scale-1, y+(row+1)*scale-1, 255)
				}
			}
		}
	}
}
