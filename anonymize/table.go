package anonymize

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/suyashkumar/dicom/pkg/tag"
)

// Edition is the edition of DICOM PS3.15 whose Table E.1-1 is embedded.
const Edition = "2024b"

// annexE is PS3.15 Table E.1-1 as data (see README.md for provenance). The
// profile is data rather than code so that moving to a newer edition is a
// file swap that the table-driven tests re-verify.
//
//go:embed annex_e.csv
var annexE []byte

// option indexes the option columns of the table, in CSV order.
type option int

const (
	optSafePrivate option = iota
	optUIDs
	optDeviceIdentity
	optInstitutionIdentity
	optPatientCharacteristics
	optLongFullDates
	optLongModifiedDates
	optCleanDescriptors
	optCleanStructuredContent
	optCleanGraphics
	numOptions
)

var optionColumns = [numOptions]string{
	"rtnSafePrivOpt", "rtnUIDsOpt", "rtnDevIdOpt", "rtnInstIdOpt", "rtnPatCharsOpt",
	"rtnLongFullDatesOpt", "rtnLongModifDatesOpt", "cleanDescOpt", "cleanStructContOpt", "cleanGraphOpt",
}

// Rule is one row of Table E.1-1.
type Rule struct {
	Tag  tag.Tag
	Name string
	// Basic is the basic-profile action code: D, Z, X, K, C, U or a
	// combination such as X/Z/D or X/Z/U*.
	Basic string
	// Options maps an option column name (as in the CSV header, e.g.
	// "rtnDevIdOpt") to its action code, for the columns that have one.
	Options map[string]string
}

// table is the parsed profile: exact tags plus the wildcard rows.
type table struct {
	exact   map[tag.Tag]*Rule
	curve   *Rule // (50xx,xxxx)
	ovlData *Rule // (60xx,3000)
	ovlCmt  *Rule // (60xx,4000)
	private *Rule // (gggg,eeee) where gggg is odd
	rows    []*Rule
}

var (
	tableOnce sync.Once
	theTable  *table
	tableErr  error
)

func profileTable() (*table, error) {
	tableOnce.Do(func() { theTable, tableErr = parseTable(bytes.NewReader(annexE)) })
	return theTable, tableErr
}

// Rules returns the rows of the embedded Table E.1-1, in table order.
func Rules() ([]Rule, error) {
	t, err := profileTable()
	if err != nil {
		return nil, err
	}
	out := make([]Rule, len(t.rows))
	for i, r := range t.rows {
		out[i] = *r
	}
	return out, nil
}

func parseTable(r io.Reader) (*table, error) {
	cr := csv.NewReader(r)
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("anonymize: read annex E header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, need := range append([]string{"tag", "name", "basicProfile"}, optionColumns[:]...) {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("anonymize: annex E table lacks column %q", need)
		}
	}
	t := &table{exact: map[tag.Tag]*Rule{}}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("anonymize: annex E line %d: %w", line, err)
		}
		rule := &Rule{Name: rec[col["name"]], Basic: rec[col["basicProfile"]], Options: map[string]string{}}
		if !validCode(rule.Basic) {
			return nil, fmt.Errorf("anonymize: annex E line %d: unknown action %q", line, rule.Basic)
		}
		for _, c := range optionColumns {
			if v := rec[col[c]]; v != "" {
				if !validCode(v) {
					return nil, fmt.Errorf("anonymize: annex E line %d: unknown %s action %q", line, c, v)
				}
				rule.Options[c] = v
			}
		}
		key := strings.ToUpper(strings.Trim(rec[col["tag"]], "() "))
		switch key {
		case "50XX,XXXX":
			t.curve = rule
		case "60XX,3000":
			t.ovlData = rule
		case "60XX,4000":
			t.ovlCmt = rule
		case "GGGG,EEEE) WHERE GGGG IS ODD":
			t.private = rule
		default:
			g, e, ok := strings.Cut(key, ",")
			gv, err1 := strconv.ParseUint(g, 16, 16)
			ev, err2 := strconv.ParseUint(e, 16, 16)
			if !ok || err1 != nil || err2 != nil {
				return nil, fmt.Errorf("anonymize: annex E line %d: bad tag %q", line, rec[col["tag"]])
			}
			rule.Tag = tag.Tag{Group: uint16(gv), Element: uint16(ev)}
			if _, dup := t.exact[rule.Tag]; dup {
				return nil, fmt.Errorf("anonymize: annex E line %d: duplicate tag %v", line, rule.Tag)
			}
			t.exact[rule.Tag] = rule
		}
		t.rows = append(t.rows, rule)
	}
	if t.curve == nil || t.ovlData == nil || t.ovlCmt == nil || t.private == nil {
		return nil, fmt.Errorf("anonymize: annex E table lacks a wildcard row")
	}
	return t, nil
}

func validCode(s string) bool {
	for _, part := range strings.Split(s, "/") {
		switch part {
		case "D", "Z", "X", "K", "C", "U", "U*":
		default:
			return false
		}
	}
	return true
}

// lookup returns the rule for a (non-private) tag, including the wildcard
// rows, or nil when the table does not list it.
func (t *table) lookup(tg tag.Tag) *Rule {
	if r, ok := t.exact[tg]; ok {
		return r
	}
	switch {
	case tg.Group&0xFF00 == 0x5000 && tg.Group%2 == 0:
		return t.curve
	case tg.Group&0xFF00 == 0x6000 && tg.Group%2 == 0 && tg.Element == 0x3000:
		return t.ovlData
	case tg.Group&0xFF00 == 0x6000 && tg.Group%2 == 0 && tg.Element == 0x4000:
		return t.ovlCmt
	}
	return nil
}
