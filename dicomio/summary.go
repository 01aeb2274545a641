package dicomio

import (
	"errors"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Summary describes a file without any identifying attribute: encoding and
// image geometry only, plus the content hash. Safe to log and to show: the
// UIDs and codes it quotes are validated (SafeUID, SafeCode) first.
type Summary struct {
	SHA256              string `json:"sha256"`
	Size                int64  `json:"size"`
	TransferSyntaxUID   string `json:"transfer_syntax_uid"`
	TransferSyntaxName  string `json:"transfer_syntax"`
	TSInferred          bool   `json:"transfer_syntax_inferred,omitempty"`
	HasPreamble         bool   `json:"preamble"`
	HasFileMeta         bool   `json:"file_meta"`
	Modality            string `json:"modality,omitempty"`
	SOPClassUID         string `json:"sop_class_uid,omitempty"`
	Rows                int    `json:"rows"`
	Columns             int    `json:"columns"`
	Frames              int    `json:"frames"`
	SamplesPerPixel     int    `json:"samples_per_pixel"`
	Photometric         string `json:"photometric,omitempty"`
	BitsAllocated       int    `json:"bits_allocated"`
	BitsStored          int    `json:"bits_stored"`
	PixelRepresentation int    `json:"pixel_representation"`
	PixelData           string `json:"pixel_data"` // "native", "encapsulated (N fragments)", "none"
	Codec               string `json:"codec"`
	ImageError          string `json:"image_error,omitempty"`
}

var codecNames = map[codecKind]string{
	codecNone:         "none",
	codecNative:       "native",
	codecRLE:          "RLE (pure Go)",
	codecJPEGDCT:      "JPEG DCT 8/12-bit (pure Go)",
	codecJPEGLossless: "JPEG lossless (pure Go)",
	codecJPEGLS:       "JPEG-LS (CharLS)",
	codecJ2K:          "JPEG 2000 (OpenJPEG)",
}

// Summary returns the non-identifying description of the file.
func (f *File) Summary() Summary {
	s := Summary{
		SHA256:             f.SHA256,
		Size:               f.Size,
		TransferSyntaxUID:  SafeUID(f.TransferSyntaxUID),
		TransferSyntaxName: tsName(f.TransferSyntaxUID),
		TSInferred:         f.TransferSyntaxInferred,
		HasPreamble:        f.HasPreamble,
		HasFileMeta:        f.HasFileMeta,
		Modality:           SafeCode(f.Modality()),
		SOPClassUID:        SafeUID(f.str(tag.SOPClassUID)), // a class (kind of object), not an instance
		Codec:              codecNames[f.ts.codec],
	}
	if info, _, err := f.pixelInfo(); err == nil {
		if info.IsEncapsulated {
			s.PixelData = "encapsulated"
		} else {
			s.PixelData = "native"
		}
	} else {
		s.PixelData = "none"
	}
	ii, err := f.ImageInfo()
	if err != nil {
		s.ImageError = err.Error()
		if errors.Is(err, ErrNoPixelData) {
			s.ImageError = ErrNoPixelData.Error()
		}
	}
	s.Rows, s.Columns, s.Frames = ii.Rows, ii.Columns, ii.NumberOfFrames
	s.SamplesPerPixel, s.Photometric = ii.SamplesPerPixel, SafeCode(ii.Photometric)
	s.BitsAllocated, s.BitsStored, s.PixelRepresentation = ii.BitsAllocated, ii.BitsStored, ii.PixelRepresentation
	return s
}

// Modality returns (0008,0060), e.g. "CR".
func (f *File) Modality() string { return f.str(tag.Modality) }

// Photometric returns (0028,0004) upper-cased.
func (f *File) Photometric() string {
	ii, _ := f.ImageInfo()
	return ii.Photometric
}

// Rows, Columns: image geometry (0 when absent).
func (f *File) Rows() int    { v, _ := f.intAttr(tag.Rows); return v }
func (f *File) Columns() int { v, _ := f.intAttr(tag.Columns); return v }

// Lossy reports whether the transfer syntax is a lossy one.
func (f *File) Lossy() bool { return f.ts.lossy }
