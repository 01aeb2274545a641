package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fracd/fracd/dicomio"
)

func newInspectCmd(m *Main) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect FILE...",
		Short: "Show how a DICOM file is encoded and whether fracd can decode it (identifying attributes masked)",
		Long: "For each file: transfer syntax, size, photometric interpretation, bits, frames, pixel data " +
			"layout, codec, and whether every frame decodes and frame 1 renders, with the rejection reason " +
			"the daemon would record. Identifying attributes are only named, never shown.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("inspect: --format: %q is not one of text, json", format)
			}
			opts := m.dicomOptions()
			failed := 0
			var reports []dicomio.Report
			for _, path := range args {
				data, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("inspect: %w", err)
				}
				r := dicomio.Inspect(cmd.Context(), data, opts...)
				if r.Reason != "" {
					failed++
				}
				if format == "json" {
					reports = append(reports, r)
					continue
				}
				printReport(m.Stdout, path, r)
			}
			if format == "json" {
				enc := json.NewEncoder(m.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(reports); err != nil {
					return err
				}
			}
			if failed > 0 {
				return fmt.Errorf("inspect: %d of %d files would be rejected", failed, len(args))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

func printReport(w io.Writer, path string, r dicomio.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	yn := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	fmt.Fprintf(tw, "%s\n", path)
	row("sha256", r.SHA256)
	row("size", fmt.Sprintf("%d bytes", r.Size))
	if r.ParseError != "" {
		row("result", "REJECTED ("+r.Reason+")")
		row("error", r.ParseError)
		return
	}
	ts := fmt.Sprintf("%s (%s)", r.TransferSyntaxUID, r.TransferSyntaxName)
	if r.TSInferred {
		ts += ", inferred: no file meta"
	}
	row("transfer syntax", ts)
	row("preamble / file meta", yn(r.HasPreamble)+" / "+yn(r.HasFileMeta))
	row("modality", r.Modality)
	row("SOP class", r.SOPClassUID)
	if r.ImageError != "" && r.PixelData == "none" {
		row("pixel data", "none")
	} else {
		row("image", fmt.Sprintf("%d x %d, %d frame(s), %d sample(s)/pixel, %s", r.Columns, r.Rows, r.Frames, r.SamplesPerPixel, r.Photometric))
		row("bits", fmt.Sprintf("allocated %d, stored %d, %s", r.BitsAllocated, r.BitsStored, map[int]string{0: "unsigned", 1: "signed"}[r.PixelRepresentation]))
		row("pixel data", r.PixelData+", codec "+r.Codec)
	}
	if r.ImageError != "" {
		row("image error", r.ImageError)
	}
	if r.FramesDecoded > 0 {
		row("decode", fmt.Sprintf("%d of %d frame(s) in %.1f ms, stored values %d..%d", r.FramesDecoded, r.Frames, r.DecodeMillis, r.Min, r.Max))
	}
	if r.DecodeError != "" {
		row("decode error", r.DecodeError)
	}
	if r.RenderError != "" {
		row("render error", r.RenderError)
	}
	if r.Reason != "" {
		row("result", "REJECTED ("+r.Reason+")")
	} else {
		row("result", "ok: decodes and renders")
	}
	masked := "none"
	if len(r.Identifying) > 0 {
		masked = strings.Join(r.Identifying, ", ") + " (values masked)"
	}
	row("identifying attributes", masked)
	row("private elements", fmt.Sprintf("%d (values masked)", r.PrivateElements))
}
