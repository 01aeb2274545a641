package evaluate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fracd/fracd/internal/fsutil"
)

// Files written by WriteDir.
const (
	MarkdownFile    = "report.md"
	JSONFile        = "report.json"
	ROCFile         = "roc.png"
	PRFile          = "pr.png"
	ReliabilityFile = "reliability.png"
)

// WriteJSON writes the whole report, curves included, as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("evaluate: write JSON: %w", err)
	}
	return nil
}

func f4(v float64) string { return fmt.Sprintf("%.4f", v) }

func opt4(v *float64) string {
	if v == nil {
		return "—"
	}
	return f4(*v)
}

// mdCell keeps free text from breaking a Markdown table.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

// WriteMarkdown writes the report as a Markdown page (no curves).
func WriteMarkdown(w io.Writer, r *Report) error {
	var b bytes.Buffer
	title := "Evaluation"
	if r.Model != "" {
		title += " of " + r.Model
	}
	fmt.Fprintf(&b, "# %s\n\n", mdCell(title))
	if r.Dataset != "" {
		fmt.Fprintf(&b, "Data: %s  \n", mdCell(r.Dataset))
	}
	fmt.Fprintf(&b, "%d images: %d positive (fractured), %d negative; prevalence %s  \n", r.N, r.Positives, r.Negatives,
		f4(float64(r.Positives)/float64(r.N)))
	fmt.Fprintf(&b, "Data sha256 (sorted key,label list): `%s`\n\n", r.DataSHA256)

	b.WriteString("## Discrimination\n\n| metric | value |\n|---|---|\n")
	auc := f4(r.ROCAUC)
	if ci := r.ROCAUCCI; ci != nil {
		auc += fmt.Sprintf(" (%.0f%% CI %s–%s; %d bootstrap resamples, %s, seed %d)",
			ci.Level*100, f4(ci.Lower), f4(ci.Upper), ci.Resamples, ci.Method, ci.Seed)
	}
	fmt.Fprintf(&b, "| ROC-AUC | %s |\n", auc)
	fmt.Fprintf(&b, "| PR-AUC (average precision) | %s |\n\n", f4(r.AveragePrecision))

	m := r.AtThreshold
	fmt.Fprintf(&b, "## At threshold %s (flagged when p >= threshold)\n\n", f4(m.Threshold))
	b.WriteString("| accuracy | sensitivity | specificity | PPV | NPV | F1 |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n\n", f4(m.Accuracy), f4(m.Sensitivity), f4(m.Specificity),
		opt4(m.PPV), opt4(m.NPV), f4(m.F1))
	b.WriteString("Confusion matrix:\n\n| | flagged | not flagged |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| positive | %d (TP) | %d (FN) |\n", m.TP, m.FN)
	fmt.Fprintf(&b, "| negative | %d (FP) | %d (TN) |\n\n", m.FP, m.TN)

	b.WriteString("## Operating points\n\nThe highest threshold reaching each sensitivity on this set.\n\n")
	b.WriteString("| target sensitivity | threshold | sensitivity | specificity | PPV |\n|---|---|---|---|---|\n")
	for _, op := range r.OperatingPoints {
		fmt.Fprintf(&b, "| %.2f | %s | %s | %s | %s |\n", op.TargetSensitivity, f4(op.Threshold), f4(op.Sensitivity),
			f4(op.Specificity), opt4(op.PPV))
	}

	b.WriteString("\nThe lowest threshold keeping each specificity on this set.\n\n")
	b.WriteString("| target specificity | threshold | sensitivity | specificity | PPV |\n|---|---|---|---|---|\n")
	for _, op := range r.SpecificityPoints {
		fmt.Fprintf(&b, "| %.2f | %s | %s | %s | %s |\n", op.TargetSpecificity, f4(op.Threshold), f4(op.Sensitivity),
			f4(op.Specificity), opt4(op.PPV))
	}
	fmt.Fprintf(&b, "\nFlagged at the threshold: %s of the cases.\n", f4(r.FlaggedRate))

	c := r.Calibration
	fmt.Fprintf(&b, "\n## Calibration\n\nBrier score %s; expected calibration error (%d equal-width bins) %s.\n\n",
		f4(c.Brier), len(c.Bins), f4(c.ECE))
	b.WriteString("| bin | n | mean predicted | observed rate |\n|---|---|---|---|\n")
	for i, bin := range c.Bins {
		open := "("
		if i == 0 {
			open = "["
		}
		fmt.Fprintf(&b, "| %s%.1f, %.1f] | %d | %s | %s |\n", open, bin.Lo, bin.Hi, bin.Count, opt4(bin.MeanPredicted), opt4(bin.ObservedRate))
	}

	if len(r.Groups) > 0 {
		fmt.Fprintf(&b, "\n## By group (threshold %s)\n\n", f4(m.Threshold))
		b.WriteString("| group | n | positives | ROC-AUC | sensitivity | specificity |\n|---|---|---|---|---|---|\n")
		for _, g := range r.Groups {
			fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s |\n", mdCell(g.Group), g.N, g.Positives, opt4(g.ROCAUC),
				opt4(g.Sensitivity), opt4(g.Specificity))
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("evaluate: write Markdown: %w", err)
	}
	return nil
}

// Render returns every file of WriteDir, by name, without touching the
// disk: a caller can check that everything renders before it records or
// writes anything.
func Render(r *Report) (map[string][]byte, error) {
	out := map[string][]byte{}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		return nil, err
	}
	out[MarkdownFile] = bytes.Clone(b.Bytes())
	b.Reset()
	if err := WriteJSON(&b, r); err != nil {
		return nil, err
	}
	out[JSONFile] = bytes.Clone(b.Bytes())
	for name, plot := range map[string]func(io.Writer, *Report) error{ROCFile: WriteROC, PRFile: WritePR, ReliabilityFile: WriteReliability} {
		b.Reset()
		if err := plot(&b, r); err != nil {
			return nil, err
		}
		out[name] = bytes.Clone(b.Bytes())
	}
	return out, nil
}

// WriteDir writes report.md, report.json, roc.png, pr.png and
// reliability.png into dir (created if needed). Each file is written to a
// temporary name and renamed, so a reader never sees half a file.
func WriteDir(dir string, r *Report) error {
	files, err := Render(r)
	if err != nil {
		return err
	}
	return WriteFiles(dir, files)
}

// WriteFiles writes rendered files (see Render) into dir.
func WriteFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("evaluate: report directory: %w", err)
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := fsutil.WriteFileAtomic(path, data, 0o640); err != nil {
			return fmt.Errorf("evaluate: write %s: %w", name, err)
		}
	}
	return nil
}
