package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/pipeline"
	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

func init() { registerCommand(newProcessCmd) }

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
			p, err := m.newPipeline(db, nil)
			if err != nil {
				return err
			}
			d := &daemon{m: m, db: db, p: p}
			path, id, _, err := d.resolveModel(ctx)
			if err != nil {
				return err
			}
			cm, err := classifier.Load(path)
			if err != nil {
				return err
			}
			if err := p.SetModel(ctx, fromClassifier(cm, id, path), "process"); err != nil {
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
			t := table{header: []string{"sha256", "state", "sop_instance_uid", "probability", "flagged", "model_id", "reason"}, records: outs}
			for _, o := range outs {
				prob := ""
				if o.State == store.StateDone {
					prob = strconv.FormatFloat(o.Probability, 'f', 4, 64)
				}
				t.rows = append(t.rows, []string{o.SHA256, o.State, o.SOPInstanceUID, prob, strconv.FormatBool(o.Flagged), o.ModelID, o.Reason})
			}
			if err := t.write(m.Stdout, format); err != nil {
				return err
			}
			if rejected > 0 {
				return &exitError{code: 1, err: errors.New("process: " + strconv.Itoa(rejected) + " file(s) rejected")}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, csv or json")
	return cmd
}
