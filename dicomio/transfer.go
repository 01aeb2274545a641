package dicomio

import "encoding/binary"

// Transfer syntax UIDs dicomio knows about.
const (
	UIDImplicitVRLittleEndian   = "1.2.840.10008.1.2"
	UIDExplicitVRLittleEndian   = "1.2.840.10008.1.2.1"
	UIDDeflatedExplicitVRLE     = "1.2.840.10008.1.2.1.99"
	UIDExplicitVRBigEndian      = "1.2.840.10008.1.2.2"
	UIDRLELossless              = "1.2.840.10008.1.2.5"
	UIDJPEGBaseline8Bit         = "1.2.840.10008.1.2.4.50"
	UIDJPEGExtended12Bit        = "1.2.840.10008.1.2.4.51"
	UIDJPEGSpectralSelection    = "1.2.840.10008.1.2.4.53"
	UIDJPEGFullProgression      = "1.2.840.10008.1.2.4.55"
	UIDJPEGLossless             = "1.2.840.10008.1.2.4.57"
	UIDJPEGLosslessSV1          = "1.2.840.10008.1.2.4.70"
	UIDJPEGLSLossless           = "1.2.840.10008.1.2.4.80"
	UIDJPEGLSNearLossless       = "1.2.840.10008.1.2.4.81"
	UIDJPEG2000Lossless         = "1.2.840.10008.1.2.4.90"
	UIDJPEG2000                 = "1.2.840.10008.1.2.4.91"
	UIDHTJ2KLossless            = "1.2.840.10008.1.2.4.201"
	UIDHTJ2KLosslessRPCL        = "1.2.840.10008.1.2.4.202"
	UIDHTJ2K                    = "1.2.840.10008.1.2.4.203"
	UIDEncapsulatedUncompressed = "1.2.840.10008.1.2.1.98"
)

type codecKind int

const (
	codecNone         codecKind = iota // not decodable here
	codecNative                        // uncompressed
	codecRLE                           // PS3.5 Annex G
	codecJPEGDCT                       // ISO 10918-1 sequential DCT, 8 or 12 bit
	codecJPEGLossless                  // ISO 10918-1 process 14
	codecJPEGLS                        // ISO 14495-1 via CharLS
	codecJ2K                           // ISO 15444-1 via OpenJPEG
)

type tsInfo struct {
	name         string
	bo           binary.ByteOrder
	implicit     bool
	deflated     bool
	encapsulated bool
	codec        codecKind
	lossy        bool
}

var transferSyntaxes = map[string]tsInfo{
	UIDImplicitVRLittleEndian:   {"ImplicitVRLittleEndian", binary.LittleEndian, true, false, false, codecNative, false},
	UIDExplicitVRLittleEndian:   {"ExplicitVRLittleEndian", binary.LittleEndian, false, false, false, codecNative, false},
	UIDDeflatedExplicitVRLE:     {"DeflatedExplicitVRLittleEndian", binary.LittleEndian, false, true, false, codecNative, false},
	UIDExplicitVRBigEndian:      {"ExplicitVRBigEndian", binary.BigEndian, false, false, false, codecNative, false},
	UIDRLELossless:              {"RLELossless", binary.LittleEndian, false, false, true, codecRLE, false},
	UIDJPEGBaseline8Bit:         {"JPEGBaseline8Bit", binary.LittleEndian, false, false, true, codecJPEGDCT, true},
	UIDJPEGExtended12Bit:        {"JPEGExtended12Bit", binary.LittleEndian, false, false, true, codecJPEGDCT, true},
	UIDJPEGSpectralSelection:    {"JPEGSpectralSelection", binary.LittleEndian, false, false, true, codecJPEGDCT, true},
	UIDJPEGFullProgression:      {"JPEGFullProgression", binary.LittleEndian, false, false, true, codecJPEGDCT, true},
	UIDJPEGLossless:             {"JPEGLossless", binary.LittleEndian, false, false, true, codecJPEGLossless, false},
	UIDJPEGLosslessSV1:          {"JPEGLosslessSV1", binary.LittleEndian, false, false, true, codecJPEGLossless, false},
	UIDJPEGLSLossless:           {"JPEGLSLossless", binary.LittleEndian, false, false, true, codecJPEGLS, false},
	UIDJPEGLSNearLossless:       {"JPEGLSNearLossless", binary.LittleEndian, false, false, true, codecJPEGLS, true},
	UIDJPEG2000Lossless:         {"JPEG2000Lossless", binary.LittleEndian, false, false, true, codecJ2K, false},
	UIDJPEG2000:                 {"JPEG2000", binary.LittleEndian, false, false, true, codecJ2K, true},
	UIDHTJ2KLossless:            {"HTJ2KLossless", binary.LittleEndian, false, false, true, codecNone, false},
	UIDHTJ2KLosslessRPCL:        {"HTJ2KLosslessRPCL", binary.LittleEndian, false, false, true, codecNone, false},
	UIDHTJ2K:                    {"HTJ2K", binary.LittleEndian, false, false, true, codecNone, true},
	UIDEncapsulatedUncompressed: {"EncapsulatedUncompressedExplicitVRLittleEndian", binary.LittleEndian, false, false, true, codecNone, false},
	// Standard syntaxes whose data set is explicit VR LE but whose pixel data
	// (video, JPIP, multi-component J2K, JPEG XL...) fracd does not decode.
	"1.2.840.10008.1.2.4.92":  {"JPEG2000MC", binary.LittleEndian, false, false, true, codecNone, false},
	"1.2.840.10008.1.2.4.93":  {"JPEG2000MCLossless", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.94":  {"JPIPReferenced", binary.LittleEndian, false, false, false, codecNone, false},
	"1.2.840.10008.1.2.4.95":  {"JPIPReferencedDeflate", binary.LittleEndian, false, true, false, codecNone, false},
	"1.2.840.10008.1.2.4.100": {"MPEG2MPML", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.101": {"MPEG2MPHL", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.102": {"MPEG4HP41", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.103": {"MPEG4HP41BD", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.104": {"MPEG4HP422D", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.105": {"MPEG4HP423D", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.106": {"MPEG4HP42Stereo", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.107": {"HEVCMP51", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.108": {"HEVCM10P51", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.110": {"JPEGXLLossless", binary.LittleEndian, false, false, true, codecNone, false},
	"1.2.840.10008.1.2.4.111": {"JPEGXLJPEGRecompression", binary.LittleEndian, false, false, true, codecNone, false},
	"1.2.840.10008.1.2.4.112": {"JPEGXL", binary.LittleEndian, false, false, true, codecNone, true},
	"1.2.840.10008.1.2.4.204": {"HTJ2KRPCLLossless", binary.LittleEndian, false, false, true, codecNone, false},
	"1.2.840.10008.1.2.4.205": {"HTJ2KLosslessRPCL", binary.LittleEndian, false, false, true, codecNone, false},
}

func tsName(uid string) string {
	if t, ok := transferSyntaxes[uid]; ok {
		return t.name
	}
	return "unknown"
}

// TransferSyntaxName returns the short name of a transfer syntax UID, or
// "unknown".
func TransferSyntaxName(uid string) string { return tsName(uid) }
