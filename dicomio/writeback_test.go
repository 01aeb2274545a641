package dicomio

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// rawPixel returns the Pixel Data value as stored: native bytes, or the BOT
// and every fragment.
func rawPixelOf(t *testing.T, f *File) (native []byte, bot []uint32, frags [][]byte) {
	t.Helper()
	info, _, err := f.pixelInfo()
	if err != nil {
		return nil, nil, nil
	}
	for _, fr := range info.Frames {
		frags = append(frags, fr.EncapsulatedData.Data)
	}
	return info.UnprocessedValueData, info.Offsets, frags
}

// roundTrip writes f's dataset (after dropping PatientName, as
// de-identification would) and re-reads it, requiring identical pixel data.
func roundTrip(t *testing.T, f *File, dir, name string) string {
	t.Helper()
	var kept []*dicom.Element
	for _, e := range f.Dataset.Elements {
		if e.Tag != tag.PatientName {
			kept = append(kept, e)
		}
	}
	ds := dicom.Dataset{Elements: kept}
	out := filepath.Join(dir, name)
	if err := WriteFile(out, ds); err != nil {
		t.Fatalf("write: %v", err)
	}
	g, err := ParseFile(out)
	if err != nil {
		t.Fatalf("re-read: %v", err)
	}
	if g.TransferSyntaxUID != f.TransferSyntaxUID {
		t.Errorf("transfer syntax %s, want %s", g.TransferSyntaxUID, f.TransferSyntaxUID)
	}
	if findIn(g.Dataset.Elements, tag.PatientName) != nil {
		t.Error("removed element came back")
	}
	n1, b1, f1 := rawPixelOf(t, f)
	n2, b2, f2 := rawPixelOf(t, g)
	if !bytes.Equal(n1, n2) || !slices.Equal(b1, b2) || len(f1) != len(f2) {
		t.Fatalf("pixel data changed: native %d/%d bytes, BOT %v/%v, %d/%d fragments", len(n1), len(n2), b1, b2, len(f1), len(f2))
	}
	for i := range f1 {
		if !bytes.Equal(f1[i], f2[i]) {
			t.Fatalf("fragment %d changed", i)
		}
	}
	if f.HasPixelData() {
		a, err1 := f.DecodeFrame(0)
		b, err2 := g.DecodeFrame(0)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && !slices.Equal(a.Data, b.Data)) {
			t.Errorf("decoded frame differs after write (%v, %v)", err1, err2)
		}
	}
	return out
}

// dcmtkPixels runs dcmdump on path, requiring exit 0, and returns the pixel
// data items dcmtk extracts (+W), keyed by item number.
func dcmtkPixels(t *testing.T, dcmdump, path string) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(dcmdump, "-q", "+W", dir, path)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dcmdump %s: %v\n%s", filepath.Base(path), err, msg)
	}
	out := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	base := filepath.Base(path)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		out[e.Name()[len(base):]] = b
	}
	return out
}

func checkWithDcmtk(t *testing.T, orig, written string) {
	t.Helper()
	dcmdump, err := exec.LookPath("dcmdump")
	if err != nil {
		t.Skip("dcmdump (dcmtk) not installed; CI installs dcmtk for this check")
	}
	// Same base name so dcmdump's +W file names line up.
	tmp := filepath.Join(t.TempDir(), filepath.Base(written))
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := dcmtkPixels(t, dcmdump, tmp)
	got := dcmtkPixels(t, dcmdump, written)
	if len(want) == 0 {
		return
	}
	for k, w := range want {
		if !bytes.Equal(got[k], w) {
			t.Errorf("dcmtk sees different pixel data in item %q (%d vs %d bytes)", k, len(got[k]), len(w))
		}
	}
}

// TestWriteBack: always on, over the pydicom test files and synthetic files.
func TestWriteBack(t *testing.T) {
	files, _ := filepath.Glob("testdata/pydicom/*.dcm")
	rng := rand.New(rand.NewPCG(13, 14))
	synth := map[string][]byte{}
	synth["synthetic_be.dcm"], _ = nativeCase{ts: UIDExplicitVRBigEndian, ba: 16, bs: 12, spp: 1, photometric: "MONOCHROME2", frames: 2}.build(5, 3, rng)
	d, _ := nativeCase{ts: UIDDeflatedExplicitVRLE, ba: 8, bs: 8, spp: 1, photometric: "MONOCHROME2", frames: 1}.build(4, 4, rng)
	synth["synthetic_deflated.dcm"] = deflateBody(t, d)
	synth["synthetic_rle_bot.dcm"] = rleFile(t, [][]uint32{make([]uint32, 12), make([]uint32, 12)}, 3, 4, 1, 16, true)
	dir := t.TempDir()
	for name, data := range synth {
		p := filepath.Join(dir, "in_"+name)
		os.WriteFile(p, data, 0o600)
		files = append(files, p)
	}
	outDir := t.TempDir()
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f, err := ParseFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out := roundTrip(t, f, outDir, filepath.Base(p))
			checkWithDcmtk(t, p, out)
		})
	}
}

// TestWriteBackCorpus writes back every parseable file of ../shared/dicom
// and ../shared/xray-dicom and checks it with suyashkumar (via dicomio) and dcmtk.
func TestWriteBackCorpus(t *testing.T) {
	dir := needShared(t, "dicom")
	files, _ := filepath.Glob(filepath.Join(dir, "files", "*"))
	xr, _ := filepath.Glob(filepath.Join(sharedDir, "xray-dicom", "files", "*.dcm"))
	files = append(files, xr...)
	outDir := t.TempDir()
	n := 0
	for _, p := range files {
		f, err := ParseFile(p)
		if err != nil {
			continue // rejected inputs are covered by TestReferenceCorpus
		}
		n++
		t.Run(filepath.Base(p), func(t *testing.T) {
			out := roundTrip(t, f, outDir, filepath.Base(p))
			checkWithDcmtk(t, p, out)
		})
	}
	t.Logf("wrote back %d files", n)
}
