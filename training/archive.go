package training

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/store"
)

// LayoutArchive is the layout of a label set built from the database.
const LayoutArchive = "archive"

// ArchiveItem is one labelled archive instance of a training set, as
// recorded with the run (de-identified: no path, no patient key).
type ArchiveItem struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	Fractured      bool   `json:"fractured"`
	Split          string `json:"split"`
	Skipped        string `json:"skipped,omitempty"` // why it was left out before preprocessing
}

// ArchiveData is what LoadArchive found, for the run record.
type ArchiveData struct {
	Items  []ArchiveItem
	SHA256 string
	Counts Counts
	// NewPatients is how many patients got a split in this call.
	NewPatients int
}

// splitTargets are the 70/20/10 shares, in assignment preference order.
var splitTargets = []struct {
	name  string
	share float64
}{{SplitTrain, 0.7}, {SplitVal, 0.2}, {SplitTest, 0.1}}

// LoadArchive builds a label set from the de-identified archive: every done
// instance with a current label, its archive file rendered and preprocessed
// as inference does (BuildCaches reads it; no original is needed). Splits
// are per patient (the pseudonymous Patient ID, else the Study Instance
// UID): patients already in patient_splits keep theirs, new ones are
// assigned stratified by class in a seeded order and stored, so val and
// test stay fixed over retrains. Instances whose archive file is missing or
// unreadable are listed with Path "" and counted as skipped.
func LoadArchive(ctx context.Context, db *store.DB, seed int64) (*LabelSet, *ArchiveData, error) {
	rows, err := db.LabelledArchive(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("training: archive: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("training: archive: no archived instance has a label (fracd label import / label add)")
	}
	known, err := db.PatientSplits(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("training: archive: %w", err)
	}
	keys, skipped, err := patientKeys(ctx, rows)
	if err != nil {
		return nil, nil, err
	}
	// A patient is positive if any of their images is.
	patientPos := map[string]bool{}
	for i, r := range rows {
		patientPos[keys[i]] = patientPos[keys[i]] || r.Fractured
	}
	assigned := assignPatients(patientPos, known, seed)
	if len(assigned) > 0 {
		if err := db.Update(ctx, func(tx *store.Tx) error { return tx.AssignPatientSplits(ctx, assigned) }); err != nil {
			return nil, nil, fmt.Errorf("training: archive: %w", err)
		}
	}
	ls := &LabelSet{Layout: LayoutArchive}
	data := &ArchiveData{NewPatients: len(assigned)}
	h := sha256.New()
	for i, r := range rows {
		split := known[keys[i]]
		if split == "" {
			split = assigned[keys[i]]
		}
		e := Example{Row: i + 1, Fractured: r.Fractured, Split: split, DICOM: true}
		if skipped[i] == "" {
			e.Path = r.ArchivePath
		}
		if skipped[i] == SkipMissing {
			ls.Missing++
		}
		ls.Examples = append(ls.Examples, e)
		data.Items = append(data.Items, ArchiveItem{SOPInstanceUID: r.SOPInstanceUID, Fractured: r.Fractured, Split: split, Skipped: skipped[i]})
		fmt.Fprintf(h, "%s,%d,%s\n", r.SOPInstanceUID, b2i(r.Fractured), split)
	}
	data.SHA256 = hex.EncodeToString(h.Sum(nil))
	ls.SHA256 = data.SHA256
	data.Counts = ls.Counts()
	return ls, data, nil
}

// patientKeys reads each row's archive file for its pseudonymous Patient
// ID (the split key; the Study Instance UID when it is empty) and says why
// a file could not be read.
func patientKeys(ctx context.Context, rows []store.ArchivedLabel) (keys, skipped []string, err error) {
	keys = make([]string, len(rows))
	skipped = make([]string, len(rows))
	for i, r := range rows {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("training: archive: %w", err)
		}
		f, err := dicomio.ParseFile(r.ArchivePath)
		switch {
		case err != nil && os.IsNotExist(err):
			skipped[i] = SkipMissing
		case err != nil:
			skipped[i] = SkipDecode
		default:
			keys[i] = f.PatientID()
		}
		if keys[i] == "" {
			keys[i] = "study:" + r.StudyUID
		}
	}
	return keys, skipped, nil
}

// StoredArchiveSplits returns the stored split of each row's patient, ""
// for a patient no training run has assigned yet (the next one will). It
// only reads: evaluation must not assign splits.
func StoredArchiveSplits(ctx context.Context, db *store.DB, rows []store.ArchivedLabel) ([]string, error) {
	known, err := db.PatientSplits(ctx)
	if err != nil {
		return nil, fmt.Errorf("training: archive: %w", err)
	}
	keys, _, err := patientKeys(ctx, rows)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, k := range keys {
		out[i] = known[k]
	}
	return out, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// assignPatients gives each patient without a stored split one: in an
// order seeded by (seed, key), each goes to the split furthest below its
// 70/20/10 share among the patients of its class (counting those already
// assigned), so each class keeps the proportions as patients arrive.
func assignPatients(positive map[string]bool, known map[string]string, seed int64) map[string]string {
	var have [2]map[string]int
	have[0], have[1] = map[string]int{}, map[string]int{}
	var fresh []string
	for k, pos := range positive {
		if s, ok := known[k]; ok {
			have[b2i(pos)][s]++
			continue
		}
		fresh = append(fresh, k)
	}
	order := func(k string) string {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(seed))
		sum := sha256.Sum256(append(b[:], k...))
		return hex.EncodeToString(sum[:])
	}
	sort.Slice(fresh, func(i, j int) bool {
		oi, oj := order(fresh[i]), order(fresh[j])
		return oi < oj || (oi == oj && strings.Compare(fresh[i], fresh[j]) < 0)
	})
	out := map[string]string{}
	for _, k := range fresh {
		c := have[b2i(positive[k])]
		n := 1
		for _, v := range c {
			n += v
		}
		best, bestDeficit := "", 0.0
		for _, t := range splitTargets {
			if d := t.share*float64(n) - float64(c[t.name]); best == "" || d > bestDeficit+1e-12 {
				best, bestDeficit = t.name, d
			}
		}
		c[best]++
		out[k] = best
	}
	return out
}

// recordArchiveData stores the run's exact instance list with its hash and
// class counts.
func recordArchiveData(ctx context.Context, db *store.DB, runID string, data *ArchiveData) error {
	counts, err := json.Marshal(data.Counts)
	if err != nil {
		return err
	}
	items, err := json.Marshal(data.Items)
	if err != nil {
		return err
	}
	if err := db.RecordTrainingDataset(ctx, store.TrainingDataset{RunID: runID, SHA256: data.SHA256, Counts: counts, Items: items}); err != nil {
		return fmt.Errorf("training: record data: %w", err)
	}
	return nil
}
