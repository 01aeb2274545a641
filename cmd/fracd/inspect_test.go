package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The pydicom MIT files dicomio keeps for its own tests.
const dicomioTestdata = "../../dicomio/testdata/pydicom"

func TestInspectAndRender(t *testing.T) {
	good := filepath.Join(dicomioTestdata, "pyd__MR_small_jpeg_ls_lossless.dcm")
	bad := filepath.Join(t.TempDir(), "notdicom.dcm")
	os.WriteFile(bad, []byte(strings.Repeat("not a dicom file ", 40)), 0o600)

	out, _, err := runFracd(t, "inspect", good)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	for _, want := range []string{"1.2.840.10008.1.2.4.80 (JPEGLSLossless)", "64 x 64", "MONOCHROME2", "ok: decodes and renders"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out, _, err = runFracd(t, "inspect", good, bad)
	if err == nil || !strings.Contains(out, "REJECTED (not_dicom)") {
		t.Errorf("inspect of a non-DICOM file: err %v\n%s", err, out)
	}

	png1 := filepath.Join(t.TempDir(), "out.png")
	if _, _, err := runFracd(t, "render", good, "-o", png1); err != nil {
		t.Fatalf("render: %v", err)
	}
	fh, err := os.Open(png1)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 64 || img.Bounds().Dy() != 64 {
		t.Errorf("rendered %v", img.Bounds())
	}
}
