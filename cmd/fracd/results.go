package main

import (
	"strconv"
	"time"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

func init() { registerCommand(newResultsCmd) }

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
			f := store.ResultFilter{FlaggedOnly: flagged, ModelID: mdl, Limit: q.limit}
			var err error
			if f.Since, f.Until, err = q.window(time.Now()); err != nil {
				return err
			}
			db, err := store.OpenReadOnly(cmd.Context(), m.Config.Paths.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			var rs []store.Result
			if study.set() {
				rs, err = m.studyResults(cmd.Context(), db, study, f)
			} else {
				rs, err = db.Results(cmd.Context(), f)
			}
			if err != nil {
				return err
			}
			if rs == nil {
				rs = []store.Result{}
			}
			t := table{
				header:  []string{"predicted_at", "sop_instance_uid", "modality", "body_part", "probability", "threshold", "flagged", "model_id", "model_sha256", "preprocess_version", "instance_sha256"},
				records: rs,
			}
			for _, r := range rs {
				t.rows = append(t.rows, []string{fmtTS(r.PredictedAt), r.SOPInstanceUID, r.Modality, r.BodyPart,
					strconv.FormatFloat(r.Probability, 'f', 4, 64), strconv.FormatFloat(r.Threshold, 'f', 4, 64),
					strconv.FormatBool(r.Flagged), r.ModelID, r.ModelSHA256, r.PreprocessVersion, r.InstanceSHA256})
			}
			return t.write(m.Stdout, q.format)
		},
	}
	cmd.Flags().BoolVar(&flagged, "flagged", false, "only results at or above the threshold")
	cmd.Flags().StringVar(&mdl, "model", "", "only results of this model id")
	q.register(cmd)
	study.register(cmd)
	return cmd
}
