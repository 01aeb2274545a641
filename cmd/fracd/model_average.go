package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fracd/fracd/classifier"
)

func newModelAverageCmd(m *Main) *cobra.Command {
	var (
		out, id string
		half    bool
	)
	cmd := &cobra.Command{
		Use:   "average MODEL MODEL... -o FILE [--f16] [--id ID]",
		Short: "Write the weight average of models fine-tuned from one starting point (a model soup)",
		Long: `Loads each MODEL (a registry id, else a safetensors path; one architecture)
and writes the mean of their weights and BatchNorm statistics to FILE, with
the first model's metadata (input size, normalisation, TTA, threshold).
Models fine-tuned from the same weights usually average into a model as good
as their ensemble at the cost of one network; evaluate the result (model
evaluate) and set its threshold (model export --threshold) before using it.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("model average: -o FILE is required")
			}
			var models []*classifier.Model
			for _, a := range args {
				cm, err := loadModelArg(cmd.Context(), m, a)
				if err != nil {
					return fmt.Errorf("model average: %w", err)
				}
				if len(models) > 0 && cm.Info().InputSize != models[0].Info().InputSize {
					return fmt.Errorf("model average: %s takes %d px, the first model %d", a, cm.Info().InputSize, models[0].Info().InputSize)
				}
				models = append(models, cm)
			}
			avg, err := classifier.Average(models...)
			if err != nil {
				return fmt.Errorf("model average: %w", err)
			}
			info := avg.Info()
			if id != "" {
				info.ID = id
			}
			save := avg.Save
			if half {
				save = avg.SaveF16
			}
			if err := save(out, info); err != nil {
				return fmt.Errorf("model average: %w", err)
			}
			info = avg.Info()
			fmt.Fprintf(m.Stdout, "wrote %s (%s, average of %d, weights %s)\n", out, info.ID, len(models), info.WeightsSHA256)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output safetensors file")
	cmd.Flags().BoolVar(&half, "f16", false, "store weights as F16")
	cmd.Flags().StringVar(&id, "id", "", "model id to record (default: the first model's)")
	return cmd
}
