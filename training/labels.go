package training

import (
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Split names.
const (
	SplitTrain = "train"
	SplitVal   = "val"
	SplitTest  = "test"
)

// Label-file layouts LoadLabels recognises.
const (
	// LayoutFracAtlas is FracAtlas's split.csv: image_id, split, fractured;
	// the image lies at DIR/Fractured/<id>, DIR/Non_fractured/<id> or DIR/<id>.
	LayoutFracAtlas = "fracatlas"
	// LayoutGeneric has a path column (relative to DIR) and fractured, with
	// an optional split column.
	LayoutGeneric = "generic"
)

// Example is one labelled image of a label file.
type Example struct {
	Row       int    // 1-based data row in the CSV (the header is row 0)
	Path      string // resolved file, "" when no candidate exists
	Fractured bool
	Split     string // SplitTrain, SplitVal or SplitTest
	DICOM     bool   // Path is a (de-identified archive) DICOM file, not PNG/JPEG
	// Outlines are the fracture outlines' boxes (fractions of the image;
	// Outlines.Attach), for CAM supervision.
	Outlines []Rect
}

// LabelSet is a parsed label file with every example assigned to a split.
type LabelSet struct {
	Layout        string
	Examples      []Example // in file order
	SplitAssigned bool      // true when the file had no split column and Split made one
	Missing       int       // rows whose image file does not exist (still listed, Path "")
	SHA256        string    // of the label file's bytes, to tie a run to its labels
}

// Counts is the number of examples per split and class.
type Counts map[string][2]int // split -> [negatives, positives]

// Counts tallies the examples (those with a file) per split and class.
func (ls *LabelSet) Counts() Counts {
	c := Counts{}
	for _, e := range ls.Examples {
		if e.Path == "" {
			continue
		}
		v := c[e.Split]
		if e.Fractured {
			v[1]++
		} else {
			v[0]++
		}
		c[e.Split] = v
	}
	return c
}

// LoadLabels reads a label CSV (with a header row) whose images lie under
// imagesDir. Without a split column the examples get a stratified, seeded
// 70/20/10 train/val/test split (see AssignSplits).
func LoadLabels(csvPath, imagesDir string, seed int64) (*LabelSet, error) {
	raw, err := os.ReadFile(csvPath)
	if err != nil {
		return nil, fmt.Errorf("training: labels: %w", err)
	}
	sum := sha256.Sum256(raw)
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(raw), "\ufeff")))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("training: labels: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	ls := &LabelSet{SHA256: hex.EncodeToString(sum[:])}
	pathCol, ok := -1, false
	if pathCol, ok = col["image_id"]; ok {
		ls.Layout = LayoutFracAtlas
	} else {
		for _, name := range []string{"path", "file", "filename", "image"} {
			if pathCol, ok = col[name]; ok {
				break
			}
		}
		if !ok {
			return nil, errors.New("training: labels: no image_id or path column in the header")
		}
		ls.Layout = LayoutGeneric
	}
	labelCol, ok := col["fractured"]
	if !ok {
		if labelCol, ok = col["label"]; !ok {
			return nil, errors.New("training: labels: no fractured (or label) column in the header")
		}
	}
	splitCol, hasSplit := col["split"]
	ls.SplitAssigned = !hasSplit
	for row := 1; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("training: labels: row %d: %w", row, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			row--
			continue // blank line
		}
		get := func(c int) string {
			if c < len(rec) {
				return strings.TrimSpace(rec[c])
			}
			return ""
		}
		name := get(pathCol)
		if name == "" {
			return nil, fmt.Errorf("training: labels: row %d: empty image column", row)
		}
		// Only paths inside imagesDir: a label file must not reach elsewhere.
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return nil, fmt.Errorf("training: labels: row %d: image path must be relative and inside the images directory", row)
		}
		y, err := parseLabel(get(labelCol))
		if err != nil {
			return nil, fmt.Errorf("training: labels: row %d: %w", row, err)
		}
		ex := Example{Row: row, Fractured: y}
		if hasSplit {
			if ex.Split, err = parseSplit(get(splitCol)); err != nil {
				return nil, fmt.Errorf("training: labels: row %d: %w", row, err)
			}
		}
		ex.Path = resolve(imagesDir, filepath.FromSlash(name), ls.Layout, y)
		if ex.Path == "" {
			ls.Missing++
		}
		ls.Examples = append(ls.Examples, ex)
	}
	if len(ls.Examples) == 0 {
		return nil, errors.New("training: labels: no rows")
	}
	if !hasSplit {
		AssignSplits(ls.Examples, seed)
	}
	return ls, nil
}

func parseLabel(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "y", "fractured":
		return true, nil
	case "0", "false", "no", "n", "non_fractured":
		return false, nil
	}
	return false, fmt.Errorf("fractured value %q: want 0/1, true/false or yes/no", s)
}

func parseSplit(s string) (string, error) {
	switch strings.ToLower(s) {
	case "train", "training":
		return SplitTrain, nil
	case "val", "valid", "validation":
		return SplitVal, nil
	case "test", "testing":
		return SplitTest, nil
	}
	return "", fmt.Errorf("split %q: want train, val or test", s)
}

// resolve finds the image file of a row, or "" when none exists.
func resolve(dir, name, layout string, fractured bool) string {
	cands := []string{filepath.Join(dir, name)}
	if layout == LayoutFracAtlas {
		// The class folder matching the label first; the other one too, so a
		// relabelled image (FracAtlas has one) is still found.
		f, n := filepath.Join(dir, "Fractured", name), filepath.Join(dir, "Non_fractured", name)
		if fractured {
			cands = []string{f, n, cands[0]}
		} else {
			cands = []string{n, f, cands[0]}
		}
	}
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			return c
		}
	}
	return ""
}

// Split fractions of AssignSplits.
const (
	TrainFraction = 0.7
	ValFraction   = 0.2
)

// AssignSplits gives each example a split: per class, the examples are
// shuffled with a generator seeded by seed and the first round(0.7 n) go to
// train, the next round(0.2 n) to val and the rest to test. The same file
// and seed always give the same split (math/rand's seeded source is stable).
func AssignSplits(ex []Example, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	for _, class := range []bool{false, true} {
		var idx []int
		for i := range ex {
			if ex[i].Fractured == class {
				idx = append(idx, i)
			}
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		n := len(idx)
		nTrain := int(float64(n)*TrainFraction + 0.5)
		nVal := int(float64(n)*ValFraction + 0.5)
		if nTrain+nVal > n {
			nVal = n - nTrain
		}
		for k, i := range idx {
			switch {
			case k < nTrain:
				ex[i].Split = SplitTrain
			case k < nTrain+nVal:
				ex[i].Split = SplitVal
			default:
				ex[i].Split = SplitTest
			}
		}
	}
}

// String renders counts as "train 100/50 val 30/14" (negatives/positives).
func (c Counts) String() string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	order := map[string]int{SplitTrain: 0, SplitVal: 1, SplitTest: 2}
	sort.Slice(keys, func(i, j int) bool { return order[keys[i]] < order[keys[j]] })
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s %d neg/%d pos", k, c[k][0], c[k][1])
	}
	return b.String()
}
