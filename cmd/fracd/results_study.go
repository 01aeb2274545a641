package main

import (
	"context"
	"errors"
	"strings"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

// studyFlags select one study by the identifiers the hospital knows. They
// are mapped with the site secret, as `fracd label import` maps UIDs; the
// original values are never stored or printed.
type studyFlags struct {
	studyUID, accession string
}

func (s *studyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.studyUID, "study-uid", "", "only the study with this ORIGINAL Study Instance UID (mapped with the site secret)")
	cmd.Flags().StringVar(&s.accession, "accession", "", "only the study with this ORIGINAL accession number (mapped with the site secret)")
	cmd.MarkFlagsMutuallyExclusive("study-uid", "accession")
}

func (s studyFlags) set() bool { return s.studyUID != "" || s.accession != "" }

// studyResults returns the results of the selected study, with the other
// filters of f applied.
func (m *Main) studyResults(ctx context.Context, db *store.DB, s studyFlags, f store.ResultFilter) ([]store.Result, error) {
	var studies []string
	if uid := strings.TrimSpace(s.studyUID); uid != "" {
		if !uidPatternOK(uid) {
			return nil, errors.New("results: --study-uid is not a UID (digits and dots)")
		}
		mapped, err := m.deidentifiedUID(uid, false)
		if err != nil {
			return nil, err
		}
		studies = []string{mapped}
	} else {
		acc := strings.TrimSpace(s.accession)
		if acc == "" {
			return nil, errors.New("results: --accession is empty")
		}
		secret, err := anonymize.LoadOrCreateSecret(m.Config.Anonymize.SecretFile)
		if err != nil {
			return nil, err
		}
		if studies, err = db.StudiesByAccession(ctx, anonymize.PseudonymAccession(secret, acc)); err != nil {
			return nil, err
		}
	}
	rs, err := db.ResultsForStudies(ctx, studies)
	if err != nil {
		return nil, err
	}
	var out []store.Result
	for _, r := range rs {
		if (f.FlaggedOnly && !r.Flagged) || (f.ModelID != "" && r.ModelID != f.ModelID) ||
			(!f.Since.IsZero() && r.PredictedAt.Before(f.Since)) || (!f.Until.IsZero() && !r.PredictedAt.Before(f.Until)) {
			continue
		}
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		out = append(out, r)
	}
	return out, nil
}

func uidPatternOK(s string) bool {
	if len(s) > 64 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || strings.Trim(part, "0123456789") != "" {
			return false
		}
	}
	return true
}
