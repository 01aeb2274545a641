package main

import (
	"errors"
	"fmt"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/preprocess"

	"github.com/spf13/cobra"
)

func newModelExportCmd(m *Main) *cobra.Command {
	var (
		out, id, tta                   string
		half                           bool
		threshold, suspected, definite float64
		inputSize                      int
	)
	cmd := &cobra.Command{
		Use:   "export MODEL -o FILE [--f16]",
		Short: "Write a registered model (by id) or a weights file to FILE, optionally as F16",
		Long: `Loads MODEL (a registry id, else a safetensors path), checks it, and writes
it to FILE with its metadata (threshold, TTA, input size, normalisation).
--f16 stores the weights as binary16: half the size, how fracd ships its
model; evaluate the exported file, since rounding can move its figures.
--id sets the model id recorded in the file, --threshold its operating
threshold (chosen on validation data, e.g. from model evaluate's operating
points), --suspected and --definite the two operating points of the
three categories (fracture, doubt, no fracture). --input-size records
another input side (the preprocessing then makes planes of that side):
a ResNet accepts any side, but its figures change, so evaluate the file.
--tta none drops the flip test-time augmentation (one pass per image
instead of two: faster, but the threshold was chosen with it, so evaluate
the file and set --threshold from its operating points); --tta hflip adds it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("model export: -o FILE is required")
			}
			cm, err := loadModelArg(cmd.Context(), m, args[0])
			if err != nil {
				return fmt.Errorf("model export: %w", err)
			}
			info := cm.Info()
			if id != "" {
				info.ID = id
			}
			if cmd.Flags().Changed("threshold") {
				if !(threshold > 0 && threshold < 1) {
					return fmt.Errorf("model export: --threshold %v: want a number in (0,1)", threshold)
				}
				info.Threshold = threshold
			}
			if cmd.Flags().Changed("suspected") || cmd.Flags().Changed("definite") {
				info.Suspected, info.Definite = suspected, definite
				if !(suspected > 0 && suspected <= info.Threshold && info.Threshold <= definite && definite < 1) {
					return fmt.Errorf("model export: need 0 < --suspected (%v) <= threshold (%v) <= --definite (%v) < 1", suspected, info.Threshold, definite)
				}
			}
			if cmd.Flags().Changed("input-size") {
				if err := preprocess.CheckPlaneSize(inputSize); err != nil {
					return fmt.Errorf("model export: --input-size: %w", err)
				}
				info.InputSize, info.PreprocessVersion = inputSize, preprocess.VersionFor(inputSize)
			}
			if cmd.Flags().Changed("tta") {
				switch tta {
				case "none":
					info.TTA = ""
				case classifier.TTAFlip:
					info.TTA = classifier.TTAFlip
				default:
					return fmt.Errorf("model export: --tta %q: want none or %s", tta, classifier.TTAFlip)
				}
			}
			save := cm.Save
			if half {
				save = cm.SaveF16
			}
			if err := save(out, info); err != nil {
				return fmt.Errorf("model export: %w", err)
			}
			info = cm.Info()
			fmt.Fprintf(m.Stdout, "wrote %s (%s, %s, weights %s)\n", out, info.ID, info.Arch, info.WeightsSHA256)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output safetensors file")
	cmd.Flags().BoolVar(&half, "f16", false, "store weights as F16")
	cmd.Flags().StringVar(&id, "id", "", "model id to record (default: the model's own)")
	cmd.Flags().StringVar(&tta, "tta", "", "test-time augmentation to record: none or hflip (default: the model's own)")
	cmd.Flags().IntVar(&inputSize, "input-size", 0, "input side in pixels to record (default: the model's own)")
	cmd.Flags().Float64Var(&threshold, "threshold", 0, "operating threshold to record (default: the model's own)")
	cmd.Flags().Float64Var(&suspected, "suspected", 0, "high-sensitivity threshold: at or above it a result is at least 'doubt' (with --definite)")
	cmd.Flags().Float64Var(&definite, "definite", 0, "high-specificity threshold: at or above it a result is 'fracture' (with --suspected)")
	return cmd
}
