package anonymize

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fracd/fracd/dicomio"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// fuzzToken is the prefix of the identifiers FuzzAnonymize plants; each is
// 16 bytes, a multiple of every binary VR's word size.
const fuzzToken = "PHIFUZZ"

// plantIdentifiers replaces the value of every text or binary element the
// profile does not keep (all but the safe list, the transfer syntax and the
// pixel data; the basic profile keeps no row of Table E.1-1 as it is), at
// any depth, with a unique identifier, and returns them.
func plantIdentifiers(elems []*dicom.Element) []string {
	var planted []string
	var walk func(elems []*dicom.Element)
	walk = func(elems []*dicom.Element) {
		for _, e := range elems {
			if e == nil || e.Value == nil {
				continue
			}
			switch t := e.Tag; {
			case isSeq(e):
				for _, it := range e.Value.GetValue().([]*dicom.SequenceItemValue) {
					if els, ok := it.GetValue().([]*dicom.Element); ok {
						walk(els)
					}
				}
				continue
			case t == tag.PixelData, t == tag.TransferSyntaxUID, keptUnlisted[t]:
				continue
			}
			switch e.Value.ValueType() {
			case dicom.Strings, dicom.Bytes:
				tok := fmt.Sprintf("%s%09X", fuzzToken, len(planted))
				if setStrings(e, []string{tok}) == nil {
					planted = append(planted, tok)
				}
			}
		}
	}
	walk(elems)
	return planted
}

// FuzzAnonymize: for any file dicomio accepts, identifiers planted in every
// element the profile does not keep reach neither the written file (the
// pipeline's path: dicomio parse, Apply, dicomio write), nor the Result the
// pipeline stores, nor an error. Seeds: testdata/fuzz/FuzzAnonymize (run by
// every `go test`) and the generated files below.
func FuzzAnonymize(f *testing.F) {
	for _, ds := range []*dicom.Dataset{syntheticDataset("1.2.840.10008.5.1.4.1.1.1.1", "NO"), syntheticDataset("1.2.840.10008.5.1.4.1.1.7", "")} {
		var buf bytes.Buffer
		if err := dicomio.Write(&buf, *ds); err == nil {
			f.Add(buf.Bytes())
		}
	}
	a, err := New(Options{AllowBurnedIn: true, AllowUndeclaredBurnedIn: true}, testSecret)
	if err != nil {
		f.Fatal(err)
	}
	fuzzing := flag.Lookup("test.fuzz").Value.String() != ""
	f.Fuzz(func(t *testing.T, data []byte) {
		if fuzzing {
			// The fuzzer reports crashes, not hangs: keep slow inputs findable.
			slow := time.AfterFunc(3*time.Second, func() {
				os.WriteFile(filepath.Join(os.TempDir(), fmt.Sprintf("anonymize-slow-%x", sha256.Sum256(data))), data, 0o600)
			})
			defer slow.Stop()
		}
		file, err := dicomio.Parse(data, dicomio.WithMaxFileBytes(8<<20), dicomio.WithMaxPixelBytes(16<<20))
		if err != nil {
			return
		}
		// After Parse, so that a deflated input is known to inflate within limits.
		if bytes.Contains(bytes.ToLower(searchableOrRaw(data)), []byte(strings.ToLower(fuzzToken))) {
			return // the input itself holds the marker: a survivor would prove nothing
		}
		planted := plantIdentifiers(file.Dataset.Elements)
		if len(planted) == 0 {
			return
		}
		res, err := a.Apply(&file.Dataset)
		if err != nil {
			if found := phiFound([]byte(err.Error()), planted); len(found) > 0 {
				t.Fatalf("error quotes planted identifiers %q: %v", found, err)
			}
			return
		}
		if found := phiFound([]byte(fmt.Sprint(*res)), planted); len(found) > 0 {
			t.Fatalf("Result holds planted identifiers %q", found)
		}
		var buf bytes.Buffer
		if err := dicomio.Write(&buf, file.Dataset); err != nil {
			if found := phiFound([]byte(err.Error()), planted); len(found) > 0 {
				t.Fatalf("write error quotes planted identifiers %q: %v", found, err)
			}
			return
		}
		if found := phiFound(searchableOrRaw(buf.Bytes()), planted); len(found) > 0 {
			t.Fatalf("planted identifiers survive in the output: %q", found)
		}
	})
}

// searchableOrRaw is searchable() for inputs that may not inflate.
func searchableOrRaw(b []byte) (out []byte) {
	defer func() {
		if recover() != nil {
			out = b
		}
	}()
	return searchable(b)
}
