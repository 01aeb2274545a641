package dicomio

import (
	"fmt"
	"image"
	"math"
	"strings"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Render8 decodes frame i and renders it to 8-bit gray, the classifier's input.
func (f *File) Render8(i int) (*image.Gray, error) {
	fr, err := f.DecodeFrame(i)
	if err != nil {
		return nil, err
	}
	img, err := f.RenderFrame(fr)
	recycleFrame(fr) // nothing else saw this frame; img is a new image
	return img, err
}

// RenderFrame renders decoded stored values to 8-bit gray:
// Modality LUT (sequence, else rescale slope/intercept), then VOI (first
// window with its VOI LUT Function LINEAR / LINEAR_EXACT / SIGMOID, else the
// first VOI LUT Sequence item, else min-max), then MONOCHROME1 inversion.
// Colour frames (RGB, YBR_*, PALETTE COLOR) become gray with the fixed-point
// ITU-R 601 weights of OpenCV's RGB2GRAY.
func (f *File) RenderFrame(fr *Frame) (img *image.Gray, err error) {
	defer func() {
		if r := recover(); r != nil {
			img = nil
			err = &FileError{SHA256: f.SHA256, Op: "render", Err: fmt.Errorf("%w: %v", ErrPanic, sanitizePanic(r))}
		}
	}()
	if fr == nil || fr.Rows <= 0 || fr.Columns <= 0 || len(fr.Data) != fr.Rows*fr.Columns*fr.Samples {
		return nil, &FileError{SHA256: f.SHA256, Op: "render", Err: fmt.Errorf("%w: frame shape", ErrMalformed)}
	}
	ii, err := f.ImageInfo()
	if err != nil {
		return nil, &FileError{SHA256: f.SHA256, Op: "render", Err: err}
	}
	img = image.NewGray(image.Rect(0, 0, fr.Columns, fr.Rows))
	photo := strings.ToUpper(fr.Photometric)
	switch {
	case fr.Samples == 3:
		renderColour(img, fr, ii.BitsStored)
	case photo == "PALETTE COLOR":
		if err := f.renderPalette(img, fr); err != nil {
			return nil, &FileError{SHA256: f.SHA256, Op: "render", Err: err}
		}
	default:
		f.renderGray(img, fr, ii, photo == "MONOCHROME1")
	}
	return img, nil
}

// lut is a DICOM lookup table (PS3.3 C.11.1.1).
type lut struct {
	first int
	bits  int
	data  []int32
}

func (l *lut) at(x float64) float64 {
	idx := int(math.Floor(x)) - l.first
	if idx < 0 {
		idx = 0
	} else if idx >= len(l.data) {
		idx = len(l.data) - 1
	}
	return float64(l.data[idx])
}

// readLUT reads LUT Descriptor/Data from one sequence item.
func readLUT(item []*dicom.Element, signedInput bool) *lut {
	desc := intsOf(findIn(item, tag.LUTDescriptor))
	dataEl := findIn(item, tag.LUTData)
	if len(desc) < 3 || dataEl == nil {
		return nil
	}
	n := desc[0]
	if n == 0 {
		n = 65536
	}
	first := desc[1]
	if signedInput && first > 32767 {
		first -= 65536 // US-encoded descriptor of a signed LUT input
	}
	l := &lut{first: first, bits: desc[2]}
	if v := intsOf(dataEl); len(v) > 0 {
		for _, x := range v {
			l.data = append(l.data, int32(x))
		}
	} else if b := bytesOf(dataEl); len(b) > 0 {
		for k := 0; k+1 < len(b); k += 2 {
			l.data = append(l.data, int32(uint16(b[k])|uint16(b[k+1])<<8))
		}
	}
	if len(l.data) == 0 {
		return nil
	}
	if len(l.data) > n {
		l.data = l.data[:n]
	}
	if l.bits <= 0 || l.bits > 16 {
		l.bits = 16
	}
	return l
}

func (f *File) renderGray(img *image.Gray, fr *Frame, ii ImageInfo, mono1 bool) {
	els := f.Dataset.Elements
	// Work per distinct stored value: a table over [lo, hi] makes the
	// per-pixel cost one lookup, whatever the LUT functions cost.
	lo, hi := minMax(fr.Data)
	span := int64(hi) - int64(lo) + 1

	// Modality LUT.
	var mlut *lut
	if items := sequenceItems(els, tag.ModalityLUTSequence); len(items) > 0 {
		mlut = readLUT(items[0], ii.PixelRepresentation == 1)
	}
	slope, intercept := 1.0, 0.0
	if s := floatsOf(findIn(els, tag.RescaleSlope)); len(s) > 0 && s[0] != 0 && !math.IsNaN(s[0]) && !math.IsInf(s[0], 0) {
		slope = s[0]
	}
	if s := floatsOf(findIn(els, tag.RescaleIntercept)); len(s) > 0 && !math.IsNaN(s[0]) && !math.IsInf(s[0], 0) {
		intercept = s[0]
	}
	modality := func(v int32) float64 {
		if mlut != nil {
			return mlut.at(float64(v))
		}
		return float64(v)*slope + intercept
	}

	centers := floatsOf(findIn(els, tag.WindowCenter))
	widths := floatsOf(findIn(els, tag.WindowWidth))
	fn := strings.ToUpper(f.str(tag.VOILUTFunction))
	var voi func(x float64) float64
	if len(centers) > 0 && len(widths) > 0 && widths[0] > 0 && !(fn != "LINEAR_EXACT" && fn != "SIGMOID" && widths[0] < 1) {
		voi = windowFunc(centers[0], widths[0], fn)
	} else if items := sequenceItems(els, tag.VOILUTSequence); len(items) > 0 {
		if l := readLUT(items[0], ii.PixelRepresentation == 1 && mlut == nil); l != nil {
			scale := 255.0 / float64(int(1)<<l.bits-1)
			voi = func(x float64) float64 { return l.at(x) * scale }
		}
	}
	if voi == nil {
		// Min-max over the modality values present, as dcmtk's min-max
		// window: centre (min+max+1)/2, width max-min+1, linear function.
		mlo, mhi := math.Inf(1), math.Inf(-1)
		if span <= 1<<16 {
			seen := make([]bool, span)
			for _, v := range fr.Data {
				seen[int64(v)-int64(lo)] = true
			}
			for k, ok := range seen {
				if ok {
					m := modality(int32(int64(lo) + int64(k)))
					mlo, mhi = math.Min(mlo, m), math.Max(mhi, m)
				}
			}
		} else {
			for _, v := range fr.Data {
				m := modality(v)
				mlo, mhi = math.Min(mlo, m), math.Max(mhi, m)
			}
		}
		voi = windowFunc((mlo+mhi+1)/2, mhi-mlo+1, "LINEAR")
	}
	out8 := func(v int32) uint8 {
		b := uint8(math.Max(0, math.Min(255, math.Floor(voi(modality(v))+0.5))))
		if mono1 {
			b = 255 - b
		}
		return b
	}
	if span <= 1<<20 {
		table := make([]uint8, span)
		for k := range table {
			table[k] = out8(int32(int64(lo) + int64(k)))
		}
		for k, v := range fr.Data {
			img.Pix[k] = table[int64(v)-int64(lo)]
		}
		return
	}
	for k, v := range fr.Data {
		img.Pix[k] = out8(v)
	}
}

// windowFunc returns the PS3.3 C.11.2.1.2 window function onto 0..255.
func windowFunc(c, w float64, fn string) func(float64) float64 {
	const ymax = 255.0
	switch fn {
	case "SIGMOID":
		return func(x float64) float64 { return ymax / (1 + math.Exp(-4*(x-c)/w)) }
	case "LINEAR_EXACT":
		return func(x float64) float64 {
			switch {
			case x <= c-w/2:
				return 0
			case x > c+w/2:
				return ymax
			}
			return ((x-c)/w + 0.5) * ymax
		}
	}
	return func(x float64) float64 {
		switch {
		case x <= c-0.5-(w-1)/2:
			return 0
		case x > c-0.5+(w-1)/2:
			return ymax
		}
		return ((x-(c-0.5))/(w-1) + 0.5) * ymax
	}
}

// gray601 is OpenCV 4.6's fixed-point 8-bit RGB2GRAY: weights
// 0.299/0.587/0.114 in Q15 (its Q14 variant differs by 1 on some colours).
func gray601(r, g, b int32) uint8 {
	return uint8((r*9798 + g*19235 + b*3735 + 1<<14) >> 15)
}

func clamp8(v int32) int32 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return v
}

func renderColour(img *image.Gray, fr *Frame, bitsStored int) {
	shift := 0
	if bitsStored > 8 {
		shift = bitsStored - 8
	}
	ybr := strings.HasPrefix(strings.ToUpper(fr.Photometric), "YBR_FULL")
	for p := range fr.Rows * fr.Columns {
		a, b, c := fr.Data[3*p]>>shift, fr.Data[3*p+1]>>shift, fr.Data[3*p+2]>>shift
		a, b, c = clamp8(a), clamp8(b), clamp8(c)
		if ybr {
			// JFIF YCbCr -> RGB, then the same gray weights as for RGB input.
			y, cb, cr := float64(a), float64(b)-128, float64(c)-128
			a = clamp8(int32(math.Round(y + 1.402*cr)))
			b = clamp8(int32(math.Round(y - 0.344136*cb - 0.714136*cr)))
			c = clamp8(int32(math.Round(y + 1.772*cb)))
		}
		img.Pix[p] = gray601(a, b, c)
	}
}

func (f *File) renderPalette(img *image.Gray, fr *Frame) error {
	els := f.Dataset.Elements
	var luts [3]*lut
	descTags := []tag.Tag{tag.RedPaletteColorLookupTableDescriptor, tag.GreenPaletteColorLookupTableDescriptor, tag.BluePaletteColorLookupTableDescriptor}
	dataTags := []tag.Tag{tag.RedPaletteColorLookupTableData, tag.GreenPaletteColorLookupTableData, tag.BluePaletteColorLookupTableData}
	for c := range 3 {
		l := readLUT([]*dicom.Element{
			{Tag: tag.LUTDescriptor, Value: findValue(els, descTags[c])},
			{Tag: tag.LUTData, Value: findValue(els, dataTags[c])},
		}, false)
		if l == nil {
			return fmt.Errorf("%w: palette colour lookup table missing", ErrMalformed)
		}
		luts[c] = l
	}
	for p, v := range fr.Data {
		var rgb [3]int32
		for c := range 3 {
			x := int32(luts[c].at(float64(v)))
			if luts[c].bits > 8 {
				x >>= uint(luts[c].bits - 8)
			}
			rgb[c] = clamp8(x)
		}
		img.Pix[p] = gray601(rgb[0], rgb[1], rgb[2])
	}
	return nil
}

func findValue(els []*dicom.Element, t tag.Tag) dicom.Value {
	if e := findIn(els, t); e != nil {
		return e.Value
	}
	return nil
}
