package anonymize

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fracd/fracd/dicomio"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

const xrayDir = "../../shared/xray-dicom"

// loadPHI reads phi.json: file name -> attribute -> identifier string.
func loadPHI(t *testing.T) map[string]map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(xrayDir, "phi.json"))
	if err != nil {
		t.Skipf("../shared/xray-dicom absent (%v): the hospital-like corpus test needs it", err)
	}
	var phi map[string]map[string]string
	if err := json.Unmarshal(b, &phi); err != nil {
		t.Fatal(err)
	}
	return phi
}

// rawPixelData returns the Pixel Data value exactly as stored: the native
// bytes, or for encapsulated data every byte from the Basic Offset Table item
// to the end of the sequence.
func rawPixelData(t *testing.T, file []byte) []byte {
	t.Helper()
	ds, err := parseBytes(file)
	if err != nil {
		t.Fatal(err)
	}
	pe, err := ds.FindElementByTag(tag.PixelData)
	if err != nil {
		t.Fatal("no pixel data")
	}
	info := pe.Value.GetValue().(dicom.PixelDataInfo)
	if !info.IsEncapsulated {
		return info.UnprocessedValueData
	}
	at := bytes.LastIndex(file, []byte{0xE0, 0x7F, 0x10, 0x00, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF})
	end := bytes.LastIndex(file, []byte{0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0})
	if at < 0 || end < at {
		t.Fatal("encapsulated pixel data not found")
	}
	return file[at+12 : end+8]
}

// TestXRayCorpus de-identifies the 24 hospital-like files and proves that no
// identifier of phi.json survives anywhere in the output bytes, that the
// output parses (suyashkumar/dicom, dcmtk dcmdump) and that pixel data is
// byte-identical.
func TestXRayCorpus(t *testing.T) {
	phi := loadPHI(t)
	files, _ := filepath.Glob(filepath.Join(xrayDir, "files", "*.dcm"))
	if len(files) != 24 {
		t.Fatalf("%d files in %s, want 24", len(files), xrayDir)
	}
	dcmdump, _ := exec.LookPath("dcmdump")
	if dcmdump == "" {
		t.Log("dcmdump not installed: dcmtk parse check skipped")
	}
	profiles := map[string]Options{
		"basic": {},
		// The options that retain no identity must still leave none behind.
		"dates+descriptors+characteristics": {RetainLongitudinalModifiedDates: true, CleanDescriptors: true, RetainPatientCharacteristics: true},
	}
	for _, pname := range []string{"basic", "dates+descriptors+characteristics", "basic via dicomio"} {
		opts := profiles[strings.TrimSuffix(pname, " via dicomio")]
		viaDicomio := strings.HasSuffix(pname, " via dicomio")
		a, err := New(opts, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		outDir := t.TempDir()
		for _, in := range files {
			name := filepath.Base(in)
			t.Run(pname+"/"+name, func(t *testing.T) {
				strs := make([]string, 0, len(phi[name]))
				for _, s := range phi[name] {
					strs = append(strs, s)
				}
				sort.Strings(strs)
				if len(strs) == 0 {
					t.Fatalf("phi.json lists nothing for %s", name)
				}
				inBytes, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				// The search must see every identifier in the input, deflated
				// data sets included, or its silence on the output means nothing.
				if found := phiFound(searchable(inBytes), strs); len(found) != len(strs) {
					t.Fatalf("search finds %d of %d identifiers in the input", len(found), len(strs))
				}
				out := filepath.Join(outDir, name)
				var res *Result
				if viaDicomio {
					// The pipeline's path: dicomio parses and writes.
					f, err := dicomio.Parse(inBytes)
					if err != nil {
						t.Fatal(err)
					}
					if res, err = a.Apply(&f.Dataset); err != nil {
						t.Fatal(err)
					}
					if err := dicomio.WriteFile(out, f.Dataset); err != nil {
						t.Fatal(err)
					}
				} else if res, err = anonymizeFile(a, in, out); err != nil {
					t.Fatal(err)
				}
				outBytes, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				if found := phiFound(searchable(outBytes), strs); len(found) > 0 {
					t.Errorf("identifiers survive in output: %q", found)
				}
				// Nor in what the pipeline stores.
				if found := phiFound([]byte(res.StudyInstanceUID+res.SeriesInstanceUID+res.SOPInstanceUID+res.PatientPseudonym+res.Modality+res.BodyPartExamined), strs); len(found) > 0 {
					t.Errorf("identifiers in Result: %q", found)
				}
				if _, err := dicom.Parse(bytes.NewReader(outBytes), int64(len(outBytes)), nil); err != nil {
					t.Errorf("suyashkumar/dicom cannot parse output: %v", err)
				}
				if dcmdump != "" {
					var stderr bytes.Buffer
					cmd := exec.Command(dcmdump, "-dc", out)
					cmd.Stderr = &stderr
					if err := cmd.Run(); err != nil || stderr.Len() > 0 {
						t.Errorf("dcmdump: %v %s", err, bytes.TrimSpace(stderr.Bytes()))
					}
				}
				if !bytes.Equal(rawPixelData(t, inBytes), rawPixelData(t, outBytes)) {
					t.Error("pixel data differs")
				}
			})
		}
	}
}
