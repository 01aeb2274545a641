package anonymize

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

const corpusDir = "../../shared/dicom/files"

// csvRule is a row of the shared Annex E table, parsed independently of the
// package's own loader so that the test checks the code against the data.
type csvRule struct {
	name, basic string
	opts        map[string]string
}

type csvTable struct {
	exact                           map[[2]uint16]csvRule
	curve, ovlData, ovlCmt, private csvRule
}

func loadSharedTable(t *testing.T) *csvTable {
	t.Helper()
	f, err := os.Open("../../shared/deid/annex_e.csv")
	if err != nil {
		t.Skipf("../shared/deid/annex_e.csv absent (%v)", err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := recs[0]
	tb := &csvTable{exact: map[[2]uint16]csvRule{}}
	for _, rec := range recs[1:] {
		r := csvRule{name: rec[1], basic: rec[3], opts: map[string]string{}}
		for i := 4; i < len(rec); i++ {
			if rec[i] != "" {
				r.opts[head[i]] = rec[i]
			}
		}
		key := strings.Trim(rec[0], "()")
		switch {
		case strings.HasPrefix(key, "50XX"):
			tb.curve = r
		case key == "60XX,3000":
			tb.ovlData = r
		case key == "60XX,4000":
			tb.ovlCmt = r
		case strings.HasPrefix(key, "GGGG"):
			tb.private = r
		default:
			g, _ := strconv.ParseUint(key[:4], 16, 16)
			e, _ := strconv.ParseUint(key[5:], 16, 16)
			tb.exact[[2]uint16{uint16(g), uint16(e)}] = r
		}
	}
	return tb
}

func (tb *csvTable) rule(g, e uint16) (csvRule, bool) {
	if r, ok := tb.exact[[2]uint16{g, e}]; ok {
		return r, true
	}
	switch {
	case g%2 == 1:
		return tb.private, true
	case g&0xFF00 == 0x5000:
		return tb.curve, true
	case g&0xFF00 == 0x6000 && e == 0x3000:
		return tb.ovlData, true
	case g&0xFF00 == 0x6000 && e == 0x4000:
		return tb.ovlCmt, true
	}
	return csvRule{}, false
}

var pathTagRE = regexp.MustCompile(`\(([0-9A-F]{4}),([0-9A-F]{4})\)$`)

// parentPath is the path of the element holding the item p sits in.
func parentPath(p string) string {
	p = pathTagRE.ReplaceAllString(p, "")
	if i := strings.LastIndex(p, "["); i >= 0 {
		return p[:i]
	}
	return ""
}

// outcome classifies what happened to one input element.
func outcome(in, out *dicom.Element, ok bool) string {
	switch {
	case !ok:
		return "absent"
	case isSeq(out):
		return "sequence"
	case valueString(in) == valueString(out):
		return "same"
	case isEmptyValue(out):
		return "empty"
	}
	return "changed"
}

type tableCase struct {
	name string
	opts Options
	// columns of the options switched on
	cols []string
}

// TestTableDrivenCorpus checks, for every parseable file of ../shared/dicom
// and every element (nested sequences and private tags included) that the
// Annex E table lists, that the output is what the table's action says.
func TestTableDrivenCorpus(t *testing.T) {
	tb := loadSharedTable(t)
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*"))
	if len(files) == 0 {
		t.Skip("../shared/dicom absent: corpus table test skipped")
	}
	sort.Strings(files)
	allow := Options{AllowBurnedIn: true, AllowUndeclaredBurnedIn: true}
	all := allow
	all.RetainLongitudinalModifiedDates, all.RetainPatientCharacteristics, all.RetainDeviceIdentity = true, true, true
	all.RetainInstitutionIdentity, all.RetainUIDs, all.CleanDescriptors = true, true, true
	cases := []tableCase{
		{"basic", allow, nil},
		{"all options", all, []string{"rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt", "rtnPatCharsOpt", "rtnLongModifDatesOpt", "cleanDescOpt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(tc.opts, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			uidMap := map[string]string{}
			stats := map[string]int{}
			parsed, unparseable := 0, 0
			for _, path := range files {
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				in, err1 := parseBytes(data)
				out, err2 := parseBytes(data)
				if err1 != nil || err2 != nil {
					unparseable++
					continue
				}
				parsed++
				if _, err := a.Apply(out); err != nil {
					t.Errorf("%s: %v", filepath.Base(path), err)
					continue
				}
				checkTable(t, filepath.Base(path), tb, tc, in, out, uidMap, stats)
			}
			t.Logf("%d files parsed, %d unparseable; outcomes checked: %v", parsed, unparseable, stats)
			if parsed < 100 {
				t.Errorf("only %d parseable files", parsed)
			}
		})
	}
}

func checkTable(t *testing.T, file string, tb *csvTable, tc tableCase, in, out *dicom.Dataset, uidMap map[string]string, stats map[string]int) {
	inF, outF := flatten(in.Elements), flatten(out.Elements)
	key := topString(in.Elements, tag.PatientID)
	if key == "" {
		key = topString(in.Elements, tag.PatientName)
	}
	pseudo := PseudonymPatientID(testSecret, key)
	// Items that still have elements in the output.
	outItems := map[string]bool{}
	for k := range outF {
		for i := strings.Index(k, "]"); i >= 0; {
			outItems[k[:i+1]] = true
			j := strings.Index(k[i+1:], "]")
			if j < 0 {
				break
			}
			i += j + 1
		}
	}
	for _, p := range sortedKeys(inF) {
		ie := inF[p]
		g, e := ie.elem.Tag.Group, ie.elem.Tag.Element
		if pp := parentPath(p); pp != "" {
			if _, ok := outF[pp]; !ok {
				continue // the enclosing sequence was removed
			}
			if isEmptyValue(outF[pp].elem) || !outItems[p[:strings.LastIndex(p, "]")+1]] {
				continue // the enclosing sequence was emptied (Z) or replaced by a dummy item (D)
			}
		}
		oe, ok := outF[p]
		got := outcome(ie.elem, oe.elem, ok)
		if g == 0x0002 && e != 0x0003 || e == 0x0000 || g == 0x7FE0 {
			continue // file meta and group lengths: not in Table E.1-1
		}
		if strings.HasPrefix(p, "(0012,0062)") || strings.HasPrefix(p, "(0012,0063)") || strings.HasPrefix(p, "(0012,0064)") || p == "(0028,0303)" {
			continue // the de-identification marking, replaced on purpose
		}
		rule, listed := tb.rule(g, e)
		if !listed {
			if why := unlistedWrong(ie, oe, got, tc); why != "" && !(g >= 0x6000 && g <= 0x601E) {
				t.Errorf("%s %s: not in the table but %s (%s)", file, p, got, why)
			}
			continue
		}
		codes := expectedCodes(rule, tc)
		matched := ""
		for _, c := range codes {
			if satisfies(c, got, ie, oe, pseudo) {
				matched = c
				break
			}
		}
		if matched == "" {
			t.Errorf("%s %s (%s): action %v but %s (%q -> %q)", file, p, rule.name, codes, got, valueString(ie.elem), valueIf(oe, ok))
			continue
		}
		stats[matched]++
		if matched == "U" {
			for i, orig := range stringValues(ie.elem) {
				nu := stringValues(oe.elem)[i]
				if orig == "" {
					continue
				}
				if len(nu) > 64 || !uidRE.MatchString(nu) {
					t.Errorf("%s %s: invalid UID %q", file, p, nu)
				}
				if prev, seen := uidMap[orig]; seen && prev != nu {
					t.Errorf("%s %s: UID mapped inconsistently across files", file, p)
				}
				uidMap[orig] = nu
			}
		}
	}
}

// unlistedWrong says what is wrong with the outcome for an attribute the
// table does not list, or "": it is removed, kept unchanged only from the
// explicit safe list, or, for a UI, remapped (kept under Retain UIDs).
func unlistedWrong(in, out flat, got string, tc tableCase) string {
	uidVR := in.elem.RawValueRepresentation == "UI"
	retain := slices.Contains(tc.cols, "rtnUIDsOpt")
	switch got {
	case "absent":
		return ""
	case "same", "sequence":
		if keptUnlisted[in.elem.Tag] || uidVR && retain {
			return ""
		}
		return "kept without being on the safe list"
	case "changed":
		if !uidVR {
			return "changed, not removed"
		}
		iv, ov := stringValues(in.elem), stringValues(out.elem)
		for i := range iv {
			want := iv[i]
			if want != "" && (!retain || !isUID(want)) {
				want = PseudonymUID(testSecret, want)
			}
			if i >= len(ov) || ov[i] != want {
				return "UI not mapped to its pseudonym"
			}
		}
		return ""
	}
	return "emptied, not removed"
}

var digitsAndDots = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// isUID: digits in dot-separated components, at most 64 characters (leading
// zeros, invalid but common, still make a UID, not a name).
func isUID(s string) bool { return len(s) <= 64 && digitsAndDots.MatchString(s) }

func valueIf(f flat, ok bool) string {
	if !ok {
		return "<absent>"
	}
	return valueString(f.elem)
}

// expectedCodes are the acceptable single actions for an element: the
// option's K wins; an option's C allows cleaning or the basic action;
// otherwise the basic code's alternatives.
func expectedCodes(r csvRule, tc tableCase) []string {
	var cs []string
	for _, col := range tc.cols {
		switch r.opts[col] {
		case "K":
			return []string{"K"}
		case "C":
			cs = append(cs, "C")
		}
	}
	return append(cs, strings.Split(r.basic, "/")...)
}

func satisfies(code, got string, in, out flat, pseudo string) bool {
	switch code {
	case "X":
		return got == "absent"
	case "Z":
		if in.top && (in.elem.Tag == tag.PatientName || in.elem.Tag == tag.PatientID) {
			return got == "changed" && strings.Contains(valueString(out.elem), pseudo)
		}
		return got != "absent" && isEmptyValue(out.elem)
	case "D":
		if in.top && (in.elem.Tag == tag.PatientName || in.elem.Tag == tag.PatientID) {
			return got == "changed"
		}
		return got == "changed" || got == "sequence" && !isEmptyValue(out.elem) || got == "same" && valueString(in.elem) != "" && isDummy(in.elem)
	case "U":
		if got == "absent" || got == "sequence" {
			return false
		}
		iv, ov := stringValues(in.elem), stringValues(out.elem)
		if len(iv) != len(ov) {
			return false
		}
		for i := range iv {
			if iv[i] != "" && ov[i] != PseudonymUID(testSecret, iv[i]) {
				return false
			}
		}
		return true
	case "K", "U*":
		if got == "changed" && in.elem.RawValueRepresentation == "UI" {
			// Retain UIDs retains UIDs: text in a UI element (a name, a
			// hash, "REM SAMPLES 1") is mapped like any other value.
			iv, ov := stringValues(in.elem), stringValues(out.elem)
			for i := range iv {
				want := iv[i]
				if !isUID(want) && want != "" {
					want = PseudonymUID(testSecret, want)
				}
				if i >= len(ov) || ov[i] != want {
					return false
				}
			}
			return len(iv) == len(ov)
		}
		return got == "same" || got == "sequence"
	case "C":
		// Cleaning keeps a value proven clean, shifts a date, or keeps a
		// sequence whose content the profile cleans.
		vr := in.elem.RawValueRepresentation
		switch {
		case got == "same" && textVRs[vr]:
			return vocabularyOnly(valueString(in.elem))
		case got == "same" || got == "sequence":
			return true
		}
		return got == "changed" && (vr == "DA" || vr == "DT")
	}
	return false
}

func isDummy(e *dicom.Element) bool {
	return dummyStrings[e.RawValueRepresentation] == valueString(e)
}

// TestCorpusConsistency: with one secret, every run gives the same result
// and a UID seen in several files maps to one new UID; another secret gives
// different UIDs throughout.
func TestCorpusConsistency(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*"))
	if len(files) == 0 {
		t.Skip("../shared/dicom absent: corpus consistency test skipped")
	}
	sort.Strings(files)
	opts := Options{AllowBurnedIn: true, AllowUndeclaredBurnedIn: true}
	other := []byte("a different site secret for this test")
	run := func(secret []byte) (map[string]string, map[string]map[string]bool, int) {
		a, err := New(opts, secret)
		if err != nil {
			t.Fatal(err)
		}
		dumps := map[string]string{}
		newByOrig := map[string]map[string]bool{}
		encodeFailures := 0
		for _, path := range files {
			data, _ := os.ReadFile(path)
			in, err1 := parseBytes(data)
			ds, err2 := parseBytes(data)
			if err1 != nil || err2 != nil {
				continue
			}
			if _, err := a.Apply(ds); err != nil {
				t.Fatal(err)
			}
			inF, outF := flatten(in.Elements), flatten(ds.Elements)
			var b strings.Builder
			for _, k := range sortedKeys(outF) {
				b.WriteString(k + " " + valueString(outF[k].elem) + "\n")
				if outF[k].elem.RawValueRepresentation == "UI" {
					if ie, ok := inF[k]; ok && valueString(ie.elem) != valueString(outF[k].elem) {
						for i, o := range stringValues(ie.elem) {
							if newByOrig[o] == nil {
								newByOrig[o] = map[string]bool{}
							}
							newByOrig[o][stringValues(outF[k].elem)[i]] = true
						}
					}
				}
			}
			dumps[path] = b.String()
			var buf bytes.Buffer
			if err := encode(&buf, ds); err != nil {
				encodeFailures++
				t.Logf("%s: not encodable by suyashkumar/dicom: %v", filepath.Base(path), err)
			} else if _, err := parseBytes(buf.Bytes()); err != nil {
				t.Errorf("%s: output does not parse back: %v", filepath.Base(path), err)
			}
		}
		return dumps, newByOrig, encodeFailures
	}
	d1, m1, fails := run(testSecret)
	d2, _, _ := run(testSecret)
	d3, m3, _ := run(other)
	multi := 0
	for orig, news := range m1 {
		if len(news) != 1 {
			t.Errorf("one UID mapped to %d UIDs", len(news))
		}
		for nu := range news {
			if m3[orig][nu] {
				t.Errorf("UID maps to the same pseudonym under another secret")
			}
		}
		multi++
	}
	for k := range d1 {
		if d1[k] != d2[k] {
			t.Errorf("%s: second run differs", filepath.Base(k))
		}
		if d1[k] == d3[k] && strings.Contains(d1[k], " 2.25.") {
			t.Errorf("%s: another secret gives the same result", filepath.Base(k))
		}
	}
	t.Logf("%d files, %d distinct original UIDs replaced; %d outputs suyashkumar/dicom could not encode", len(d1), multi, fails)
}

var textVRs = map[string]bool{"LO": true, "SH": true, "ST": true, "LT": true, "UT": true, "UC": true, "CS": true, "PN": true, "AE": true}

// vocabularyOnly: the test's own reading of the clean rule, so that a kept
// free text is accepted only when it really is made of vocabulary words.
func vocabularyOnly(v string) bool {
	words := map[string]bool{}
	for _, w := range builtinVocabulary {
		words[w] = true
	}
	for _, w := range strings.FieldsFunc(strings.ToUpper(v), func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		if !words[w] && !(len(w) == 1 && w[0] >= '0' && w[0] <= '9') {
			return false
		}
	}
	return true
}
