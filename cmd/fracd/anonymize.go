package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/fsutil"
	"github.com/spf13/cobra"
)

// anonymizerFromConfig builds the site's Anonymizer: the options of the
// anonymize config section and the secret file (created on first use).
func anonymizerFromConfig(c AnonymizeConfig) (*anonymize.Anonymizer, error) {
	secret, err := anonymize.LoadOrCreateSecret(c.SecretFile)
	if err != nil {
		return nil, err
	}
	return anonymize.New(anonymize.Options{
		RetainLongitudinalModifiedDates: c.RetainLongitudinalModified,
		RetainPatientCharacteristics:    c.RetainPatientCharacteristics,
		RetainDeviceIdentity:            c.RetainDeviceIdentity,
		RetainInstitutionIdentity:       c.RetainInstitutionIdentity,
		RetainUIDs:                      c.RetainUIDs,
		CleanDescriptors:                c.CleanDescriptors,
		AllowBurnedIn:                   c.AllowBurnedIn,
		AllowUndeclaredBurnedIn:         !c.RejectRiskySOPClasses,
		BurnedInSOPClasses:              nilIfEmpty(c.BurnedInSOPClasses),
		CleanVocabulary:                 c.CleanVocabulary,
		RetainSafePrivate:               c.RetainSafePrivate,
		SafePrivate:                     c.SafePrivate,
	}, secret)
}

// nilIfEmpty keeps anonymize's default list when the config gives none.
func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func newAnonymizeCmd(m *Main) *cobra.Command {
	var outDir string
	cmd := &cobra.Command{
		Use:   "anonymize IN... -o OUTDIR",
		Short: "De-identify DICOM files or folders with the site profile (PS3.15 Annex E) into OUTDIR",
		Long: `De-identify DICOM files with the site's profile and secret (config section
anonymize). Folders are walked recursively. Each result is written as
OUTDIR/<new SOP Instance UID>.dcm (OUTDIR/sha256-<content hash>.dcm when the
UID, kept with retain_uids, is not a valid UID); inputs are named by content
sha256 in the output, never by path (paths may carry patient names). Files rejected (not
DICOM, burned-in annotation, ...) are reported and skipped; the exit status
is 1 if any file failed.`,
		Example: `  fracd anonymize export/ -o research/`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if outDir == "" {
				return errors.New("-o OUTDIR is required")
			}
			if err := os.MkdirAll(outDir, 0o750); err != nil {
				return fmt.Errorf("anonymize: create output folder: %w", err)
			}
			a, err := anonymizerFromConfig(m.Config.Anonymize)
			if err != nil {
				return err
			}
			inputs, unreadable := listInputs(args)
			done, failed := 0, 0
			for _, in := range inputs {
				if err := cmd.Context().Err(); err != nil {
					return err
				}
				out, err := anonymizeOne(a, in, outDir, m.dicomOptions())
				if err != nil {
					failed++
					fmt.Fprintf(m.Stderr, "rejected: %v\n", err)
					continue
				}
				done++
				fmt.Fprintln(m.Stdout, out)
			}
			fmt.Fprintf(m.Stderr, "%d de-identified, %d rejected", done, failed)
			if unreadable > 0 {
				fmt.Fprintf(m.Stderr, ", %d folder(s) or file(s) could not be listed and were skipped", unreadable)
			}
			fmt.Fprintln(m.Stderr)
			switch {
			case failed > 0:
				return &exitError{code: 1, err: fmt.Errorf("anonymize: %d of %d files rejected", failed, len(inputs))}
			case unreadable > 0:
				return &exitError{code: 1, err: fmt.Errorf("anonymize: %d folder(s) or file(s) could not be listed (check their permissions)", unreadable)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&outDir, "output", "o", "", "output folder (created if missing)")
	return cmd
}

// readDir lists a folder; tests replace it to make one unreadable (they
// may run as root, who reads anything).
var readDir = os.ReadDir

// listInputs walks the arguments: files, and folders recursively. A folder
// (or argument) that cannot be listed is skipped and counted, never named,
// so one bad folder does not stop the run, and a folder named after a
// patient, as some exporters make them, stays out of the output. Linked
// files are inputs; linked folders are not followed (no cycles).
func listInputs(args []string) (inputs []string, unreadable int) {
	var walk func(dir string)
	walk = func(dir string) {
		es, err := readDir(dir)
		if err != nil {
			unreadable++
			return
		}
		for _, e := range es {
			p := filepath.Join(dir, e.Name())
			switch t := e.Type(); {
			case t.IsDir():
				walk(p)
			case t.IsRegular():
				inputs = append(inputs, p)
			case t&fs.ModeSymlink != 0:
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
					inputs = append(inputs, p)
				}
			}
		}
	}
	for _, a := range args {
		st, err := os.Lstat(a)
		switch {
		case err != nil:
			unreadable++
		case st.IsDir():
			walk(a)
		case st.Mode().IsRegular():
			inputs = append(inputs, a)
		case st.Mode()&fs.ModeSymlink != 0:
			if st, err := os.Stat(a); err == nil && st.Mode().IsRegular() {
				inputs = append(inputs, a)
			} else if err == nil && st.IsDir() {
				walk(a) // a linked folder named on the command line is meant
			}
		}
	}
	return inputs, unreadable
}

// anonymizeOne de-identifies one file and returns the output path. Errors
// name the input by content sha256 only.
func anonymizeOne(a *anonymize.Anonymizer, in, outDir string, opts []dicomio.Option) (string, error) {
	data, err := os.ReadFile(in)
	if err != nil {
		// The path may carry a patient's name: keep only the reason.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("read input: %w", err)
	}
	id := fsutil.HashBytes(data)
	f, err := dicomio.Parse(data, opts...)
	if err != nil {
		return "", err // a dicomio.FileError, named by sha256
	}
	res, err := a.Apply(&f.Dataset)
	if err != nil {
		return "", fmt.Errorf("file sha256 %s: %w", id, err)
	}
	// With retain_uids the UID is the file's own: only a valid UID may name
	// the output, else anything in the file could steer the path.
	name := res.SOPInstanceUID
	if checkUID(name) != nil {
		name = "sha256-" + id
	}
	out := filepath.Join(outDir, name+".dcm")
	if filepath.Dir(out) != filepath.Clean(outDir) {
		return "", fmt.Errorf("file sha256 %s: output name outside the output folder", id)
	}
	if err := dicomio.WriteFile(out, f.Dataset); err != nil {
		return "", fmt.Errorf("file sha256 %s: %w", id, err)
	}
	return out, nil
}
