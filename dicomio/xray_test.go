package dicomio

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestXrayDicom decodes and renders all 24 hospital-like files of
// ../shared/xray-dicom and checks that nothing dicomio reports about them
// (summary, errors) carries any of their fake identifiers.
func TestXrayDicom(t *testing.T) {
	dir := needShared(t, "xray-dicom")
	raw, err := os.ReadFile(filepath.Join(dir, "phi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var phi map[string]map[string]any
	if err := json.Unmarshal(raw, &phi); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "files", "*.dcm"))
	if len(files) != 24 {
		t.Fatalf("%d files, want 24", len(files))
	}
	byTS := map[string]int{}
	for _, p := range files {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			f, err := ParseFile(p)
			if err != nil {
				t.Fatal(err)
			}
			img, err := f.Render8(0)
			if err != nil {
				t.Fatal(err)
			}
			// A real radiograph uses most of the 8-bit range.
			lo, hi := 255, 0
			for _, v := range img.Pix {
				lo, hi = min(lo, int(v)), max(hi, int(v))
			}
			if hi-lo < 100 {
				t.Errorf("rendering spans only %d..%d", lo, hi)
			}
			byTS[TransferSyntaxName(f.TransferSyntaxUID)]++
			s, _ := json.Marshal(f.Summary())
			var secrets []string
			for _, v := range phi[name] {
				collectStrings(v, &secrets)
			}
			for _, sec := range secrets {
				if len(sec) >= 4 && strings.Contains(string(s), sec) {
					t.Errorf("summary leaks %q", sec)
				}
			}
		})
	}
	keys := make([]string, 0, len(byTS))
	for k := range byTS {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, " %s=%d", k, byTS[k])
	}
	fmt.Printf("xray-dicom: decoded and rendered by transfer syntax:%s\n", sb.String())
}

func collectStrings(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case []any:
		for _, e := range x {
			collectStrings(e, out)
		}
	case map[string]any:
		for _, e := range x {
			collectStrings(e, out)
		}
	}
}
