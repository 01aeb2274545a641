package main

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // JPEG input
	"image/png"
	"os"
	"path/filepath"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/spf13/cobra"

	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/preprocess"
)

func newPreprocessCmd(m *Main) *cobra.Command {
	var out, steps string
	var frame int
	cmd := &cobra.Command{
		Use:   "preprocess IMAGE|DICOM -o OUT.png",
		Short: "Write the classifier's 224x224 input plane of a PNG/JPEG image or a DICOM file",
		Long: "Runs the seed's preprocessing (gray, CLAHE 2.0/8x8, Pillow-compatible LANCZOS thumbnail, " +
			"centred black pad) and writes the 224x224 plane as PNG. DICOM files are first rendered to " +
			"8-bit gray as the daemon does (modality LUT, VOI window, MONOCHROME1 inversion).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return fmt.Errorf("preprocess: -o OUT.png is required")
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("preprocess: read input: %w", err)
			}
			img, kind, err := decodeInput(data, frame, m.dicomOptions())
			if err != nil {
				return err
			}
			plane, err := preprocess.Plane(img)
			if err != nil {
				return fmt.Errorf("preprocess: input sha256 %s: %w", fsutil.HashBytes(data), err)
			}
			if err := writePNG(out, plane); err != nil {
				return err
			}
			if steps != "" {
				if err := writeSteps(steps, img); err != nil {
					return err
				}
			}
			fmt.Fprintf(m.Stdout, "wrote %s: %dx%d plane from %s %dx%d (%s)\n", out, preprocess.Size, preprocess.Size,
				kind, img.Bounds().Dx(), img.Bounds().Dy(), preprocess.Version)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "output PNG file (required)")
	cmd.Flags().IntVar(&frame, "frame", 0, "DICOM frame to render (0-based)")
	cmd.Flags().StringVar(&steps, "steps", "", "also write gray.png, clahe.png, thumb.png and final.png of every step into this directory")
	return cmd
}

// decodeInput renders a DICOM file (preamble + "DICM") to 8-bit gray, or
// decodes a PNG/JPEG image.
func decodeInput(data []byte, frame int, opts []dicomio.Option) (image.Image, string, error) {
	if len(data) >= 132 && string(data[128:132]) == "DICM" {
		f, err := dicomio.Parse(data, opts...)
		if err != nil {
			return nil, "", fmt.Errorf("preprocess: %w", err)
		}
		img, err := f.Render8(frame)
		if err != nil {
			return nil, "", fmt.Errorf("preprocess: render frame %d: %w", frame, err)
		}
		return img, "DICOM", nil
	}
	img, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("preprocess: input sha256 %s is neither DICOM nor a PNG/JPEG image: %w", fsutil.HashBytes(data), err)
	}
	return img, format, nil
}

// writeSteps writes every intermediate image of the chain.
func writeSteps(dir string, img image.Image) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("preprocess: steps directory: %w", err)
	}
	gray := preprocess.Gray(img)
	clahe := preprocess.CLAHE(gray, preprocess.ClipLimit, preprocess.TilesX, preprocess.TilesY)
	thumb := preprocess.Thumbnail(clahe, preprocess.Size)
	final := preprocess.Pad(thumb, preprocess.Size)
	for name, g := range map[string]*image.Gray{"gray.png": gray, "clahe.png": clahe, "thumb.png": thumb, "final.png": final} {
		if err := writePNG(filepath.Join(dir, name), g); err != nil {
			return err
		}
	}
	return nil
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("preprocess: create output: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("preprocess: encode PNG: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("preprocess: write output: %w", err)
	}
	return nil
}
