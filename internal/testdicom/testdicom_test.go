package testdicom

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/fracd/fracd/dicomio"
)

var update = flag.Bool("update", false, "rewrite testdata/sample-hand-dx.dcm")

// The generated files must be real DICOM: dicomio parses and renders them.
func TestBytesParseAndRender(t *testing.T) {
	for _, s := range []Spec{{}, {Seed: 3, Monochrome1: true}, {Rows: 300, Cols: 200}} {
		b, err := s.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		f, err := dicomio.Parse(b)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		img, err := f.Render8(0)
		if err != nil {
			t.Fatalf("%+v: render: %v", s, err)
		}
		s = s.withDefaults()
		if img.Bounds().Dx() != s.Cols || img.Bounds().Dy() != s.Rows {
			t.Fatalf("rendered %v; want %dx%d", img.Bounds(), s.Cols, s.Rows)
		}
		fr, err := f.DecodeFrame(0)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range s.Pixels() {
			if fr.Data[i] != int32(v) {
				t.Fatalf("pixel %d decodes to %d; wrote %d", i, fr.Data[i], v)
			}
		}
	}
	if _, err := (Spec{NoPixelData: true}).Bytes(); err != nil {
		t.Fatal(err)
	}
}

// TestSampleFile keeps testdata/sample-hand-dx.dcm (the README's quick-start
// file) identical to what the generator makes; -update rewrites it.
func TestSampleFile(t *testing.T) {
	want, err := Sample()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "testdata", "sample-hand-dx.dcm")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/testdicom -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("testdata/sample-hand-dx.dcm differs from the generator's output (run go test ./internal/testdicom -update)")
	}
}
