package dicomio

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fuzzing reports whether this run is `go test -fuzz` (not a plain test run).
func fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

// FuzzParseDecodeRender feeds arbitrary bytes through Parse, DecodeFrame,
// RenderFrame and Write. Nothing may panic (recovered panics count as
// failures) and nothing may allocate beyond the configured limits.
// Seeds: the MIT pydicom files in testdata, synthetic files, and, when
// fuzzing with ../shared present, the small files of the team's corpus.
func FuzzParseDecodeRender(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/pydicom/*.dcm")
	if fuzzing() {
		shared, _ := filepath.Glob(filepath.Join(sharedDir, "dicom", "files", "*"))
		seeds = append(seeds, shared...)
	}
	for _, p := range seeds {
		if st, err := os.Stat(p); err != nil || st.Size() > 300<<10 {
			continue // big inputs slow the mutator down more than they add
		}
		if d, err := os.ReadFile(p); err == nil {
			f.Add(d)
		}
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, c := range []nativeCase{
		{ts: UIDExplicitVRLittleEndian, ba: 16, bs: 12, pr: 1, spp: 1, photometric: "MONOCHROME1", frames: 2},
		{ts: UIDExplicitVRBigEndian, ba: 8, bs: 8, spp: 3, planar: 1, photometric: "RGB", frames: 1, vr: "OW"},
		{ts: UIDImplicitVRLittleEndian, ba: 1, bs: 1, spp: 1, photometric: "MONOCHROME2", frames: 2},
	} {
		d, _ := c.build(6, 5, rng)
		f.Add(d)
	}
	f.Add(rleFile(f, [][]uint32{make([]uint32, 20), make([]uint32, 20)}, 4, 5, 1, 16, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		if fuzzing() {
			// Keep inputs that take too long where they can be found: the
			// fuzzer reports crashes, not hangs.
			slow := time.AfterFunc(3*time.Second, func() {
				os.WriteFile(filepath.Join(os.TempDir(), fmt.Sprintf("dicomio-slow-%x", sha256.Sum256(data))), data, 0o600)
			})
			defer slow.Stop()
		}
		file, err := Parse(data, WithMaxPixelBytes(16<<20), WithMaxFileBytes(8<<20))
		if err != nil {
			if errors.Is(err, ErrPanic) {
				t.Fatalf("parse: %v", err)
			}
			return
		}
		_ = file.Summary()
		n := min(file.NumFrames(), 3)
		for i := range n {
			fr, err := file.DecodeFrame(i)
			if err != nil {
				if errors.Is(err, ErrPanic) {
					t.Fatalf("decode: %v", err)
				}
				continue
			}
			if len(fr.Data) != fr.Rows*fr.Columns*fr.Samples {
				t.Fatalf("frame shape %dx%dx%d with %d values", fr.Rows, fr.Columns, fr.Samples, len(fr.Data))
			}
			if _, err := file.RenderFrame(fr); errors.Is(err, ErrPanic) {
				t.Fatalf("render: %v", err)
			}
		}
		var buf bytes.Buffer
		if err := file.Write(&buf); errors.Is(err, ErrPanic) {
			t.Fatalf("write: %v", err)
		}
	})
}
