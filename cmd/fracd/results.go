package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

func init() { registerCommand(newResultsCmd) }

func newResultsCmd(m *Main) *cobra.Command {
	var (
		flagged           bool
		since, until, mdl string
		limit             int
		format            string
	)
	cmd := &cobra.Command{
		Use:   "results",
		Short: "List classifier results (the database is opened read-only)",
		Example: `  fracd results --flagged --since 24h
  fracd results --model resnet34-2026-11 --format csv > results.csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := store.ResultFilter{FlaggedOnly: flagged, ModelID: mdl, Limit: limit}
			var err error
			now := time.Now()
			if f.Since, err = parseTimeFlag("since", since, now); err != nil {
				return err
			}
			if f.Until, err = parseTimeFlag("until", until, now); err != nil {
				return err
			}
			if limit < 0 {
				return fmt.Errorf("--limit: must be >= 0")
			}
			db, err := store.OpenReadOnly(cmd.Context(), m.Config.Paths.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			rs, err := db.Results(cmd.Context(), f)
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
			return t.write(m.Stdout, format)
		},
	}
	cmd.Flags().BoolVar(&flagged, "flagged", false, "only results at or above the threshold")
	cmd.Flags().StringVar(&since, "since", "", "from this time (RFC 3339, YYYY-MM-DD, or a duration ago such as 24h)")
	cmd.Flags().StringVar(&until, "until", "", "before this time (same forms as --since)")
	cmd.Flags().StringVar(&mdl, "model", "", "only results of this model id")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many rows (0: all)")
	cmd.Flags().StringVar(&format, "format", "table", "table, csv or json")
	return cmd
}
