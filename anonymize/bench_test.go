package anonymize

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentApply: one Anonymizer shared by workers gives each the same
// result as a serial run (run with -race).
func TestConcurrentApply(t *testing.T) {
	a, err := New(Options{RetainLongitudinalModifiedDates: true}, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	want := syntheticDataset("1.2.840.10008.5.1.4.1.1.1.1", "NO")
	if _, err := a.Apply(want); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ds := syntheticDataset("1.2.840.10008.5.1.4.1.1.1.1", "NO")
			if _, err := a.Apply(ds); err != nil {
				t.Error(err)
				return
			}
			if !ds.Equals(want) {
				t.Error("concurrent result differs")
			}
		}()
	}
	wg.Wait()
}

func BenchmarkApplySynthetic(b *testing.B) {
	a, err := New(Options{}, testSecret)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ds := syntheticDataset("1.2.840.10008.5.1.4.1.1.1.1", "NO")
		b.StartTimer()
		if _, err := a.Apply(ds); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileXRay is read + Apply + write of one hospital-like file.
func BenchmarkFileXRay(b *testing.B) {
	in := filepath.Join(xrayDir, "files", "xr00000.dcm")
	if _, err := os.Stat(in); err != nil {
		b.Skip("../shared/xray-dicom absent")
	}
	a, err := New(Options{}, testSecret)
	if err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "out.dcm")
	for i := 0; i < b.N; i++ {
		if _, err := anonymizeFile(a, in, out); err != nil {
			b.Fatal(err)
		}
	}
}
