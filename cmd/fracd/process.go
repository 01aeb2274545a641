package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/fracd/fracd/pipeline"
	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

func newProcessCmd(m *Main) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "process FILE...",
		Short: "Run the pipeline once on files, without watching, and print each result",
		Long: `Takes each file through the same pipeline as serve (de-identify, archive,
classify, record with audit rows) and prints its outcome. The originals are
left where they are: a copy is processed. Exit status 1 if any file was rejected.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			unlock, err := lockSpool(m.Config.Paths.Spool)
			if errors.Is(err, errSpoolBusy) {
				return fmt.Errorf("process: %w: stop it first, or put the files in the inbox (paths.inbox) for serve to take", err)
			}
			if err != nil {
				return fmt.Errorf("process: %w", err)
			}
			defer unlock()
			db, err := m.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			p, err := m.newPipeline(db, nil, 1)
			if err != nil {
				return err
			}
			d := &daemon{m: m, db: db, p: p}
			path, id, _, err := d.resolveModel(ctx)
			if err != nil {
				return err
			}
			cm, err := loadClassifier(path, m.Config.Model.Precision)
			if err != nil {
				return err
			}
			pm, err := fromClassifier(cm, id, path, 1)
			if err != nil {
				return err
			}
			if err := p.SetModel(ctx, pm, "process"); err != nil {
				return err
			}
			var outs []pipeline.Outcome
			rejected := 0
			for _, f := range args {
				job, err := p.CopyIn(ctx, f)
				if err != nil {
					return fmt.Errorf("process: %w", err)
				}
				out, err := p.Process(ctx, job)
				if err != nil {
					return fmt.Errorf("process %s: %w", job.SHA256, err)
				}
				if out.State == store.StateRejected {
					rejected++
				}
				outs = append(outs, out)
			}
			err = writeList(m.Stdout, format, outs, []column[pipeline.Outcome]{
				{"sha256", func(o pipeline.Outcome) string { return o.SHA256 }},
				{"state", func(o pipeline.Outcome) string { return o.State }},
				{"sop_instance_uid", func(o pipeline.Outcome) string { return o.SOPInstanceUID }},
				{"probability", func(o pipeline.Outcome) string {
					if o.State != store.StateDone {
						return ""
					}
					return fmt4(o.Probability)
				}},
				{"flagged", func(o pipeline.Outcome) string { return strconv.FormatBool(o.Flagged) }},
				{"model_id", func(o pipeline.Outcome) string { return o.ModelID }},
				{"reason", func(o pipeline.Outcome) string { return o.Reason }},
			})
			if err != nil {
				return err
			}
			if rejected > 0 {
				return &exitError{code: 1, err: errors.New("process: " + strconv.Itoa(rejected) + " file(s) rejected")}
			}
			return nil
		},
	}
	addFormatFlag(cmd, &format)
	return cmd
}
