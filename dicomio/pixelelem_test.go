package dicomio

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unsafe"

	"github.com/suyashkumar/dicom"
)

// TestPixelElementAsSuyashkumar checks that parseBody, which builds a
// trailing native Pixel Data element itself, gives the elements suyashkumar
// gives for the whole body, and that it aliases only buffers it owns.
func TestPixelElementAsSuyashkumar(t *testing.T) {
	inputs := map[string][]byte{}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []nativeCase{
		{name: "explicit LE 16u", ts: UIDExplicitVRLittleEndian, ba: 16, bs: 16, spp: 1, photometric: "MONOCHROME2", frames: 1},
		{name: "implicit LE 12s", ts: UIDImplicitVRLittleEndian, ba: 16, bs: 12, pr: 1, spp: 1, photometric: "MONOCHROME2", frames: 2, garbage: true},
		{name: "big endian 8-bit OW", ts: UIDExplicitVRBigEndian, ba: 8, bs: 8, spp: 3, photometric: "RGB", frames: 1, vr: "OW"},
		{name: "deflated 8u", ts: UIDDeflatedExplicitVRLE, ba: 8, bs: 8, spp: 1, photometric: "MONOCHROME2", frames: 2},
	} {
		data, _ := c.build(7, 5, rng)
		if c.ts == UIDDeflatedExplicitVRLE {
			data = deflateBody(t, data)
		}
		inputs[c.name] = data
	}
	var paths []string
	for _, pat := range []string{"testdata/pydicom/*", filepath.Join(sharedDir, "dicom/files/*.dcm"), filepath.Join(sharedDir, "xray-dicom/files/*.dcm")} {
		m, _ := filepath.Glob(pat)
		paths = append(paths, m...)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		inputs[p] = b
	}
	built := 0
	for name, data := range inputs {
		l, err := scan(data, toOptions(nil))
		if err != nil {
			continue // refused before parsing: not what this test is about
		}
		want, werr := parseElements(l.body, l.ts.bo, l.ts.implicit)
		for _, owned := range []bool{false, true} {
			got, err := parseBody(l, owned)
			if (err != nil) != (werr != nil) {
				t.Fatalf("%s owned=%v: error %v, suyashkumar's %v", name, owned, err, werr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s owned=%v: elements differ from suyashkumar's", name, owned)
			}
			if len(got) == 0 {
				continue
			}
			info, ok := got[len(got)-1].Value.GetValue().(dicom.PixelDataInfo)
			if !ok || !info.IntentionallyUnprocessed || len(info.UnprocessedValueData) == 0 {
				continue
			}
			if l.pixel != nil && !l.pixel.encapsulated && l.pixel.valueEnd == len(l.body) {
				built++
			}
			v := unsafe.Pointer(unsafe.SliceData(info.UnprocessedValueData))
			lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(data))), uintptr(unsafe.Pointer(unsafe.SliceData(data)))+uintptr(len(data))
			if in := uintptr(v) >= lo && uintptr(v) < hi; in && !owned {
				t.Fatalf("%s: pixel value aliases the caller's buffer", name)
			}
		}
	}
	if built == 0 {
		t.Fatal("no input took the built-element path")
	}
}

// TestParseOwnedTakesTheCallersHash: ParseOwned parses as ParseContext
// does, names the file by the hash it is given (not hashing again), and
// hashes itself when given none.
func TestParseOwnedTakesTheCallersHash(t *testing.T) {
	paths, _ := filepath.Glob("testdata/pydicom/*.dcm")
	if len(paths) == 0 {
		t.Fatal("no testdata/pydicom files")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want, werr := Parse(b)
		const given = "0000000000000000000000000000000000000000000000000000000000000001"
		for _, id := range []string{given, ""} {
			got, err := ParseOwned(context.Background(), append([]byte(nil), b...), id)
			if (err != nil) != (werr != nil) {
				t.Fatalf("%s: ParseOwned error %v, Parse's %v", p, err, werr)
			}
			if err != nil {
				var fe *FileError
				if wantID := cmp.Or(id, hashHex(b)); !errors.As(err, &fe) || fe.SHA256 != wantID {
					t.Errorf("%s: error %v does not name %s", p, err, wantID)
				}
				continue
			}
			if wantID := cmp.Or(id, want.SHA256); got.SHA256 != wantID {
				t.Errorf("%s: SHA256 %s, want %s", p, got.SHA256, wantID)
			}
			if !reflect.DeepEqual(got.Dataset, want.Dataset) {
				t.Errorf("%s: data set differs from Parse's", p)
			}
		}
	}
}
