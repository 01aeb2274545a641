package safetensors

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHalfToFloat(t *testing.T) {
	for _, tc := range []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.33325195}, {0x7bff, 65504},
		{0x0001, 5.9604645e-08}, {0x03ff, 6.097555e-05}, {0x0400, 6.1035156e-05},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := HalfToFloat(tc.h); got != tc.want {
			t.Errorf("half %#04x = %g, want %g", tc.h, got, tc.want)
		}
	}
	if v := HalfToFloat(0x7e00); !math.IsNaN(float64(v)) {
		t.Errorf("half NaN decoded to %g", v)
	}
}

func TestFloatToHalf(t *testing.T) {
	for _, tc := range []struct {
		f    float32
		want uint16
	}{
		{0, 0x0000}, {1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {1e6, 0x7c00},
		{5.9604645e-08, 0x0001}, {6.1035156e-05, 0x0400}, {1e-9, 0x0000},
		{1.00048828125, 0x3c00}, // halfway between 1 and 1+2^-10: ties to even
		{1.00146484375, 0x3c02}, // halfway, odd neighbour below: rounds up
		{0.33333334, 0x3555},
	} {
		if got := FloatToHalf(tc.f); got != tc.want {
			t.Errorf("FloatToHalf(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
	for h := 0; h < 0x7c00; h++ { // every finite positive half survives the round trip
		if got := FloatToHalf(HalfToFloat(uint16(h))); got != uint16(h) {
			t.Fatalf("half %#04x -> %g -> %#04x", h, HalfToFloat(uint16(h)), got)
		}
	}
}

// TestWriteParse writes F32, F16 and I64 entries with metadata and reads
// them back; a tampered header must be refused.
func TestWriteParse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	steps := int64(7)
	entries := []Entry{
		{Name: "b", Shape: []int{2, 2}, F32: []float32{1, -2, 0.5, 3}},
		{Name: "a", Shape: []int{3}, F32: []float32{1, 0.33333334, 65504}, Half: true},
		{Name: "n", Shape: []int{}, I64: &steps},
	}
	if _, err := Write(path, entries, map[string]string{"arch": "x"}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["arch"] != "x" || len(f.Tensors) != 3 {
		t.Fatalf("metadata %v, %d tensors", f.Metadata, len(f.Tensors))
	}
	if v, err := f.Floats("b"); err != nil || v[1] != -2 || v[3] != 3 {
		t.Errorf("b = %v, %v", v, err)
	}
	if v, err := f.Floats("a"); err != nil || v[1] != HalfToFloat(0x3555) || v[2] != 65504 {
		t.Errorf("a = %v, %v", v, err)
	}
	if n, err := f.Integer("n"); err != nil || n != 7 {
		t.Errorf("n = %d, %v", n, err)
	}
	if _, err := f.Floats("missing"); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing tensor: %v", err)
	}
	bad := append([]byte(nil), raw...)
	bad[0] = 0xff // header length beyond the file
	if _, err := Parse(bad); err == nil {
		t.Error("header length beyond the file accepted")
	}
}
