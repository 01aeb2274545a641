package dicomio

import (
	"bytes"
	"path/filepath"
	"testing"
)

// TestRender8RecyclesFramesCleanly renders every test file with frame
// recycling off, then twice more with every buffer recycled, in forward and
// reverse order: each file then decodes into a buffer another file (of
// another size and encoding) left dirty, and must still give exactly the
// same image.
func TestRender8RecyclesFramesCleanly(t *testing.T) {
	paths, err := filepath.Glob("testdata/pydicom/*.dcm")
	if err != nil || len(paths) < 5 {
		t.Fatalf("test files: %v (%d)", err, len(paths))
	}
	render := func(p string) []byte {
		t.Helper()
		f, err := ParseFile(p)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		img, err := f.Render8(0)
		if err != nil {
			t.Fatalf("%s: render: %v", filepath.Base(p), err)
		}
		return img.Pix
	}
	defer func(v int) { minPooledFrame = v }(minPooledFrame)
	minPooledFrame = 1 << 62 // nothing recycled
	want := map[string][]byte{}
	for _, p := range paths {
		want[p] = render(p)
	}
	minPooledFrame = 1
	order := append([]string(nil), paths...)
	for pass := 0; pass < 2; pass++ {
		for _, p := range order {
			if got := render(p); !bytes.Equal(got, want[p]) {
				t.Errorf("pass %d, %s: image differs when decoded into a recycled buffer", pass, filepath.Base(p))
			}
		}
		for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
			order[i], order[j] = order[j], order[i]
		}
	}
}
