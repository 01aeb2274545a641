package main

import (
	"fmt"
	"image/png"
	"io"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/spf13/cobra"

	"github.com/fracd/fracd/dicomio"
)

func newRenderCmd(m *Main) *cobra.Command {
	var out string
	var frame int
	cmd := &cobra.Command{
		Use:   "render FILE -o OUT.png",
		Short: "Write the 8-bit gray rendering of a DICOM frame (the classifier's input before preprocessing)",
		Long: "Decodes the frame and applies the Modality LUT, the VOI window (or VOI LUT, else min-max) and " +
			"MONOCHROME1 inversion exactly as the daemon does, and writes an 8-bit gray PNG.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("render: -o OUT.png is required")
			}
			if frame < 1 {
				return fmt.Errorf("render: --frame counts from 1")
			}
			opts := m.dicomOptions()
			f, err := dicomio.ParseFile(args[0], opts...)
			if err != nil {
				return fmt.Errorf("render: %w", err)
			}
			img, err := f.Render8(frame - 1)
			if err != nil {
				return fmt.Errorf("render: %w", err)
			}
			// 0600: the pixels are the patient's.
			if err := fsutil.WriteAtomic(out, 0o600, func(w io.Writer) error { return png.Encode(w, img) }); err != nil {
				return fmt.Errorf("render: write png: %w", err)
			}
			fmt.Fprintf(m.Stdout, "wrote %s: %dx%d 8-bit gray, frame %d of %d (sha256 %s)\n",
				out, img.Bounds().Dx(), img.Bounds().Dy(), frame, f.NumFrames(), f.SHA256[:16])
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "output PNG file")
	cmd.Flags().IntVar(&frame, "frame", 1, "frame number, from 1")
	return cmd
}
