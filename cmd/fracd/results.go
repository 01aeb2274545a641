package main

import (
	"strconv"
	"time"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

func newResultsCmd(m *Main) *cobra.Command {
	var (
		flagged bool
		mdl     string
		q       queryFlags
		study   studyFlags // results_study.go
	)
	cmd := &cobra.Command{
		Use:   "results",
		Short: "List classifier results (the database is opened read-only)",
		Example: `  fracd results --flagged --since 24h
  fracd results --model resnet34-2026-11 --format csv > results.csv
  fracd results --accession ACC000005161`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return printQuery(cmd.Context(), m, q, func(db *store.DB, since, until time.Time) ([]store.Result, error) {
				f := store.ResultFilter{FlaggedOnly: flagged, Since: since, Until: until, ModelID: mdl, Limit: q.limit}
				if study.set() {
					return m.studyResults(cmd.Context(), db, study, f)
				}
				return db.Results(cmd.Context(), f)
			}, []column[store.Result]{
				{"predicted_at", func(r store.Result) string { return fmtTS(r.PredictedAt) }},
				{"sop_instance_uid", func(r store.Result) string { return r.SOPInstanceUID }},
				{"modality", func(r store.Result) string { return r.Modality }},
				{"body_part", func(r store.Result) string { return r.BodyPart }},
				{"probability", func(r store.Result) string { return fmt4(r.Probability) }},
				{"threshold", func(r store.Result) string { return fmt4(r.Threshold) }},
				{"flagged", func(r store.Result) string { return strconv.FormatBool(r.Flagged) }},
				{"model_id", func(r store.Result) string { return r.ModelID }},
				{"model_sha256", func(r store.Result) string { return r.ModelSHA256 }},
				{"preprocess_version", func(r store.Result) string { return r.PreprocessVersion }},
				{"instance_sha256", func(r store.Result) string { return r.InstanceSHA256 }},
			})
		},
	}
	cmd.Flags().BoolVar(&flagged, "flagged", false, "only results at or above the threshold")
	cmd.Flags().StringVar(&mdl, "model", "", "only results of this model id")
	q.register(cmd)
	study.register(cmd)
	return cmd
}
