package anonymize

import (
	"fmt"
	"sort"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// embeddedTable is the embedded profile in the test's own representation.
func embeddedTable(t *testing.T) *csvTable {
	rules, err := Rules()
	if err != nil {
		t.Fatal(err)
	}
	tb := &csvTable{exact: map[[2]uint16]csvRule{}}
	for _, r := range rules {
		cr := csvRule{name: r.Name, basic: r.Basic, opts: r.Options}
		switch r.Name {
		case "Curve Data":
			tb.curve = cr
		case "Overlay Data":
			tb.ovlData = cr
		case "Overlay Comments":
			tb.ovlCmt = cr
		case "Private Attributes":
			tb.private = cr
		default:
			tb.exact[[2]uint16{r.Tag.Group, r.Tag.Element}] = cr
		}
	}
	return tb
}

// sampleValue is an original-looking value of the VR.
func sampleValue(vr string, n int) any {
	switch vr {
	case "UI":
		return []string{fmt.Sprintf("1.2.826.0.1.3680043.2.1125.%d", n)}
	case "DA":
		return []string{"20200131"}
	case "TM":
		return []string{"101112"}
	case "DT":
		return []string{"20200131101112"}
	case "AS":
		return []string{"030Y"}
	case "DS", "IS":
		return []string{"7"}
	case "US", "SS", "UL", "SL", "AT", "UV", "SV":
		return []int{7}
	case "FL", "FD":
		return []float64{7.5}
	case "OB", "OW", "UN", "OF", "OD", "OL", "OV":
		return []byte{7, 7}
	case "SQ":
		return [][]*dicom.Element{{mustElem(tag.PatientName, "PN", []string{fmt.Sprintf("Nested%d^Name", n)})}}
	}
	return []string{fmt.Sprintf("ORIG%d", n)}
}

// rowsDataset holds one element for every exact row of the table whose tag
// the dictionary knows, plus curve, overlay and private elements.
func rowsDataset(tb *csvTable) (*dicom.Dataset, int) {
	var keys [][2]uint16
	for k := range tb.exact {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0] < keys[j][0] || keys[i][0] == keys[j][0] && keys[i][1] < keys[j][1]
	})
	ds := &dicom.Dataset{}
	skipped := 0
	for n, k := range keys {
		tg := tag.Tag{Group: k[0], Element: k[1]}
		info, err := tag.Find(tg)
		if err != nil || tg.Group == 0x7FE0 {
			skipped++
			continue
		}
		vr := info.VRs[0]
		ds.Elements = append(ds.Elements, mustElem(tg, vr, sampleValue(vr, n)))
		if tg == tag.PatientWeight { // keep tag order: private block after group 0010
			ds.Elements = append(ds.Elements,
				mustElem(tag.Tag{Group: 0x0011, Element: 0x0010}, "LO", []string{"ACME"}),
				mustElem(tag.Tag{Group: 0x0011, Element: 0x1001}, "LO", []string{"private value"}))
		}
	}
	ds.Elements = append(ds.Elements,
		mustElem(tag.Tag{Group: 0x5002, Element: 0x3000}, "OB", []byte{1, 2}),
		mustElem(tag.Tag{Group: 0x6002, Element: 0x3000}, "OW", []byte{1, 2}),
		mustElem(tag.Tag{Group: 0x6002, Element: 0x4000}, "LT", []string{"overlay comment"}))
	sort.SliceStable(ds.Elements, func(i, j int) bool { return ds.Elements[i].Tag.Compare(ds.Elements[j].Tag) < 0 })
	return ds, skipped
}

// TestEveryTableRow is the always-on table test: one element per row of
// the embedded table, each checked against its action, basic profile and
// with all options.
func TestEveryTableRow(t *testing.T) {
	tb := embeddedTable(t)
	all := Options{RetainLongitudinalModifiedDates: true, RetainPatientCharacteristics: true, RetainDeviceIdentity: true,
		RetainInstitutionIdentity: true, RetainUIDs: true, CleanDescriptors: true}
	for _, tc := range []tableCase{
		{"basic", Options{}, nil},
		{"all options", all, []string{"rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt", "rtnPatCharsOpt", "rtnLongModifDatesOpt", "cleanDescOpt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(tc.opts, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			in, skipped := rowsDataset(tb)
			out, _ := rowsDataset(tb)
			if _, err := a.Apply(out); err != nil {
				t.Fatal(err)
			}
			stats := map[string]int{}
			checkTable(t, "rows", tb, tc, in, out, map[string]string{}, stats)
			total := 0
			for _, n := range stats {
				total += n
			}
			t.Logf("%d elements checked %v; %d rows not in suyashkumar's dictionary", total, stats, skipped)
			if total < 550 {
				t.Errorf("only %d rows exercised", total)
			}
		})
	}
}
