package anonymize

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/fracd/fracd/dicomio"
)

// TestCorpusThroughDicomio runs the pipeline's path (dicomio parse, Apply,
// dicomio write) over every file of ../shared/dicom that dicomio parses: the
// output must parse again and, where dcmtk reads the input, dcmtk must read
// the output too.
func TestCorpusThroughDicomio(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*"))
	if len(files) == 0 {
		t.Skip("../shared/dicom absent: corpus round trip skipped")
	}
	dcmdump, _ := exec.LookPath("dcmdump")
	a, err := New(Options{AllowBurnedIn: true, AllowUndeclaredBurnedIn: true}, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	written, rendered, dcmtkChecked := 0, 0, 0
	for _, in := range files {
		data, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		f, err := dicomio.Parse(data)
		if err != nil {
			continue
		}
		name := filepath.Base(in)
		before, renderErr := f.Render8(0)
		if _, err := a.Apply(&f.Dataset); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var buf bytes.Buffer
		if err := dicomio.Write(&buf, f.Dataset); err != nil {
			t.Errorf("%s: write: %v", name, err)
			continue
		}
		g, err := dicomio.Parse(buf.Bytes())
		if err != nil {
			t.Errorf("%s: output does not parse: %v", name, err)
			continue
		}
		if renderErr == nil {
			after, err := g.Render8(0)
			if err != nil {
				t.Errorf("%s: input renders, output does not: %v", name, err)
			} else if !bytes.Equal(before.Pix, after.Pix) {
				t.Errorf("%s: output renders differently", name)
			} else {
				rendered++
			}
		}
		written++
		if dcmdump == "" || exec.Command(dcmdump, "-q", in).Run() != nil {
			continue
		}
		out := filepath.Join(dir, name)
		if err := os.WriteFile(out, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command(dcmdump, "-q", out).CombinedOutput(); err != nil {
			t.Errorf("%s: dcmdump reads the input but not the output: %v %.200s", name, err, msg)
		}
		dcmtkChecked++
	}
	t.Logf("%d files de-identified and written through dicomio, %d render identically; %d also checked with dcmdump", written, rendered, dcmtkChecked)
	if written < 100 {
		t.Errorf("only %d files", written)
	}
}
