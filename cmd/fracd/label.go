package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/store"
	"github.com/mattn/go-sqlite3"
	"github.com/spf13/cobra"
)

func newLabelCmd(m *Main) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "label",
		Short: "Attach ground-truth labels to instances (for measuring and retraining models)",
	}
	cmd.AddCommand(newLabelAddCmd(m), newLabelImportCmd(m), newLabelListCmd(m))
	return cmd
}

// deidentifiedUID maps a UID as the hospital knows it to the one fracd
// stores. With retain_uids the UIDs were kept as they are.
func (m *Main) deidentifiedUID(uid string, alreadyDeidentified bool) (string, error) {
	uid = strings.TrimSpace(uid)
	if uid == "" {
		return "", errors.New("empty SOP Instance UID")
	}
	if alreadyDeidentified || m.Config.Anonymize.RetainUIDs {
		// Stored as given, then printed and exported: only a real UID.
		if err := checkUID(uid); err != nil {
			return "", err
		}
		return uid, nil
	}
	secret, err := anonymize.LoadOrCreateSecret(m.Config.Anonymize.SecretFile)
	if err != nil {
		return "", err
	}
	return anonymize.PseudonymUID(secret, uid), nil
}

// addLabels adds labels in one transaction, or none. lines[i] is the CSV
// line of labels[i] (0 for the command line), for errors. A label is one per
// instance and source: one that exists already, stored or earlier in the
// same import, is refused with a clear error instead of SQLite's.
// addLabels stores labels in one transaction; prog (nil for none) counts
// them as they are added. It returns how many name no instance received so
// far: they are kept (the study may arrive later) but the caller says so.
func addLabels(m *Main, cmd *cobra.Command, labels []store.Label, lines []int, prog *progress) (unknown int, err error) {
	db, err := m.openDB(cmd.Context())
	if err != nil {
		return 0, err
	}
	defer db.Close()
	ctx := cmd.Context()
	existing, err := db.Labels(ctx)
	if err != nil {
		return 0, err
	}
	type key struct{ uid, source string }
	seen := map[key]int{} // -1: stored
	for _, l := range existing {
		seen[key{l.SOPInstanceUID, l.Source}] = -1
	}
	at := func(line int) string {
		if line > 0 {
			return fmt.Sprintf("line %d: ", line)
		}
		return ""
	}
	dup := func(i, where int) error {
		l := labels[i]
		prev := "is stored"
		if where > 0 {
			prev = fmt.Sprintf("is on line %d", where)
		}
		return fmt.Errorf("%sinstance %s already has a label from source %q (it %s); nothing was added (use another --source for a second opinion)",
			at(lines[i]), l.SOPInstanceUID, l.Source, prev)
	}
	for i, l := range labels {
		k := key{l.SOPInstanceUID, l.Source}
		if where, ok := seen[k]; ok {
			return 0, dup(i, where)
		}
		seen[k] = lines[i]
	}
	received, err := db.ReceivedSOPInstanceUIDs(ctx)
	if err != nil {
		return 0, err
	}
	for _, l := range labels {
		if !received[l.SOPInstanceUID] {
			unknown++
		}
	}
	if prog != nil {
		defer prog.Finish()
	}
	return unknown, db.Update(ctx, func(tx *store.Tx) error {
		for i, l := range labels {
			if prog != nil {
				prog.Add(1)
			}
			id, err := tx.AddLabel(ctx, l)
			var se sqlite3.Error
			if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
				// Added by someone else since the check above.
				return dup(i, -1)
			}
			if err != nil {
				return fmt.Errorf("%slabel for %s: %w", at(lines[i]), l.SOPInstanceUID, err)
			}
			if _, err := tx.AppendAudit(ctx, l.Actor, store.ActionLabelAdded, l.SOPInstanceUID, map[string]any{
				"label_id": id, "fractured": l.Fractured, "source": l.Source,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

func newLabelAddCmd(m *Main) *cobra.Command {
	var fractured, notFractured, deid bool
	var source string
	cmd := &cobra.Command{
		Use:   "add SOP_INSTANCE_UID (--fractured | --not-fractured)",
		Short: "Label one instance, named by its original SOP Instance UID (mapped with the site secret)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if fractured == notFractured {
				return errors.New("give exactly one of --fractured or --not-fractured")
			}
			uid, err := m.deidentifiedUID(args[0], deid)
			if err != nil {
				return err
			}
			unknown, err := addLabels(m, cmd, []store.Label{{SOPInstanceUID: uid, Fractured: fractured, Source: source, Actor: actor()}}, []int{0}, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "labelled %s fractured=%v\n", uid, fractured)
			if unknown > 0 {
				fmt.Fprintln(m.Stderr, "note: fracd has received no instance with this UID yet; the label applies once it arrives (check the UID and --deidentified if it should have)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&fractured, "fractured", false, "the instance shows a fracture")
	cmd.Flags().BoolVar(&notFractured, "not-fractured", false, "the instance shows no fracture")
	cmd.Flags().BoolVar(&deid, "deidentified", false, "the UID given is already the de-identified one")
	cmd.Flags().StringVar(&source, "source", "manual", "where the label comes from (one label per source and instance)")
	return cmd
}

func newLabelImportCmd(m *Main) *cobra.Command {
	var deid bool
	var source string
	cmd := &cobra.Command{
		Use:   "import LABELS.csv",
		Short: "Import labels from a CSV with columns sop_instance_uid and fractured (0/1), as a hospital exports them",
		Long: `Reads a CSV whose header names at least sop_instance_uid and fractured (0 or 1);
other columns are ignored. UIDs are the original ones and are mapped to the
de-identified ones with the site secret, so the export never needs to reach
fracd's database. All rows are added in one transaction, or none.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			var size int64
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				size = st.Size()
			}
			reading := m.newProgress("label import: reading", "bytes", size)
			defer reading.Finish() // on an early return: ends the bar's line before the error
			r := csv.NewReader(progressReader{f, reading})
			header, err := r.Read()
			if err != nil {
				return fmt.Errorf("label import: read header: %w", err)
			}
			col := map[string]int{}
			for i, h := range header {
				col[strings.TrimSpace(strings.ToLower(h))] = i
			}
			uidCol, ok1 := col["sop_instance_uid"]
			labCol, ok2 := col["fractured"]
			if !ok1 || !ok2 {
				return errors.New("label import: the header needs sop_instance_uid and fractured columns")
			}
			var labels []store.Label
			var lines []int
			for line := 2; ; line++ {
				rec, err := r.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("label import: line %d: %w", line, err)
				}
				v, err := strconv.Atoi(strings.TrimSpace(rec[labCol]))
				if err != nil || (v != 0 && v != 1) {
					return fmt.Errorf("label import: line %d: fractured must be 0 or 1", line)
				}
				uid, err := m.deidentifiedUID(rec[uidCol], deid)
				if err != nil {
					return fmt.Errorf("label import: line %d: %w", line, err)
				}
				labels = append(labels, store.Label{SOPInstanceUID: uid, Fractured: v == 1, Source: source, Actor: actor()})
				lines = append(lines, line)
			}
			reading.Finish()
			unknown, err := addLabels(m, cmd, labels, lines, m.newProgress("label import: storing", "labels", int64(len(labels))))
			if err != nil {
				return fmt.Errorf("label import: %w", err)
			}
			fmt.Fprintf(m.Stdout, "imported %d labels\n", len(labels))
			if unknown > 0 {
				// By count only: the rows are in the caller's file.
				fmt.Fprintf(m.Stderr, "note: %d of them name no instance fracd has received yet; they apply once it arrives (check the UIDs and --deidentified if they should have)\n", unknown)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&deid, "deidentified", false, "the UIDs are already the de-identified ones")
	cmd.Flags().StringVar(&source, "source", "import", "where the labels come from")
	return cmd
}

func newLabelListCmd(m *Main) *cobra.Command {
	return newListCmd(m, "List labels (read-only)", (*store.DB).Labels, []column[store.Label]{
		{"id", func(l store.Label) string { return strconv.FormatInt(l.ID, 10) }},
		{"sop_instance_uid", func(l store.Label) string { return l.SOPInstanceUID }},
		{"fractured", func(l store.Label) string { return strconv.FormatBool(l.Fractured) }},
		{"source", func(l store.Label) string { return l.Source }},
		{"actor", func(l store.Label) string { return l.Actor }},
		{"created_at", func(l store.Label) string { return fmtTS(l.CreatedAt) }},
	})
}
