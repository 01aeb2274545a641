package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// The stages of process, in order; each reads what the ones before it left
// in f and returns a rejection for a problem of the input.

func (p *Pipeline) parseStage(ctx context.Context, f *file) error {
	// f.data is read-only from here on (the sink reads it); readWork has
	// checked that its hash is the job's.
	d, err := dicomio.ParseOwned(ctx, f.data, f.job.SHA256, p.cfg.processOptions()...)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return reject(dicomio.Reason(err), err)
	}
	if !d.HasPixelData() {
		return reject(dicomio.ReasonNoPixelData, fmt.Errorf("file %s has no Pixel Data element", f.job.SHA256))
	}
	if _, err := d.ImageInfo(); err != nil {
		return reject(dicomio.Reason(err), err)
	}
	f.dcm = d
	return nil
}

func (p *Pipeline) decodeStage(_ context.Context, f *file) error {
	gray, err := f.dcm.Render8(0)
	if err != nil {
		return reject(dicomio.Reason(err), err)
	}
	f.gray = gray
	return nil
}

func (p *Pipeline) preprocessStage(_ context.Context, f *file) error {
	info := f.model.info
	size := info.InputSize
	if err := preprocess.CheckPlaneSize(size); err != nil {
		return fmt.Errorf("pipeline: model %s: %w", info.ID, err)
	}
	if f.buf.plane.Bounds().Dx() != size {
		f.buf.plane = image.NewGray(image.Rect(0, 0, size, size)) // the model's input side
	}
	if err := preprocess.PlaneInto(f.buf.plane, f.gray); err != nil {
		return reject(ReasonPreprocessFail, err)
	}
	f.geom = preprocess.PlaneGeometrySized(f.gray.Bounds().Dx(), f.gray.Bounds().Dy(), size)
	f.gray = nil // the full-size rendering is not needed any more
	f.buf.tensor = preprocess.ToTensor(f.buf.plane, info.Mean, info.Std, f.buf.tensor)
	f.out.PreprocessVersion = preprocess.VersionFor(size)
	return nil
}

func (p *Pipeline) deidentifyStage(_ context.Context, f *file) error {
	// Read before the profile removes it; only its pseudonym is kept.
	sourceUID := ""
	if orig := sourceInstanceUID(f.dcm.Dataset); orig != "" {
		sourceUID = p.anon.MapUID(orig)
	}
	res, err := p.anon.Apply(&f.dcm.Dataset)
	if err != nil {
		if errors.Is(err, anonymize.ErrBurnedIn) {
			return reject(ReasonBurnedIn, err)
		}
		return reject(ReasonDeidentify, err)
	}
	out := &f.out
	out.StudyUID, out.SeriesUID, out.SOPInstanceUID = res.StudyInstanceUID, res.SeriesInstanceUID, res.SOPInstanceUID
	out.Modality, out.BodyPart = res.Modality, res.BodyPartExamined
	f.instance = store.Instance{
		SHA256: f.job.SHA256, StudyUID: out.StudyUID, SeriesUID: out.SeriesUID, SOPInstanceUID: out.SOPInstanceUID,
		Modality: out.Modality, BodyPart: out.BodyPart, TransferSyntax: f.dcm.TransferSyntaxUID, ReceivedAt: f.job.ReceivedAt,
		SourceSOPInstanceUID: sourceUID,
	}
	return nil
}

func (p *Pipeline) archiveStage(_ context.Context, f *file) error {
	archive, err := p.archivePath(f.out.StudyUID, f.out.SeriesUID, f.out.SOPInstanceUID)
	if err != nil {
		return reject(ReasonDeidentify, err)
	}
	series := filepath.Dir(archive)
	_, err = os.Stat(series)
	created := err != nil // by this MkdirAll, or by one racing it
	if err := os.MkdirAll(series, 0o750); err != nil {
		return fmt.Errorf("pipeline: archive %s: %w", f.job.SHA256, err)
	}
	if err := dicomio.WriteFile(archive, f.dcm.Dataset); err != nil {
		return fmt.Errorf("pipeline: archive %s: %w", f.job.SHA256, err)
	}
	// New study/series folders must be durable too: each folder's entry in
	// its parent, once per folder and run, and again whenever the series
	// folder had to be created (see durableDirs).
	for _, d := range []string{series, filepath.Dir(series)} {
		if err := p.dirs.syncEntry(d, created); err != nil {
			return err
		}
	}
	f.out.ArchivePath, f.instance.ArchivePath = archive, archive
	return nil
}

func (p *Pipeline) classifyStage(ctx context.Context, f *file) error {
	probs, boxes, err := classify(ctx, f.model.m, f.buf.tensor, f.geom)
	if err != nil {
		return fmt.Errorf("pipeline: classify %s: %w", f.job.SHA256, err)
	}
	if len(probs) != 1 {
		return fmt.Errorf("pipeline: classify %s: model returned %d probabilities for 1 image", f.job.SHA256, len(probs))
	}
	info, out := f.model.info, &f.out
	out.ModelID, out.Probability, out.Threshold = info.ID, float64(probs[0]), info.Threshold
	out.Flagged = out.Probability >= out.Threshold
	out.Category, out.Boxes = thresholds(info, out.Threshold).Categorize(out.Probability), boxes
	return nil
}

var uidPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// archivePath places a de-identified instance by its (new) UIDs. UIDs are
// checked so that nothing in a file can steer the path.
func (p *Pipeline) archivePath(study, series, sop string) (string, error) {
	for _, u := range []string{study, series, sop} {
		if len(u) == 0 || len(u) > 64 || !uidPattern.MatchString(u) {
			return "", fmt.Errorf("pipeline: de-identified UID %q is not a valid UID", u)
		}
	}
	return filepath.Join(p.cfg.Archive, study, series, sop+".dcm"), nil
}

// sourceInstanceUID returns the first Referenced SOP Instance UID of Source
// Image Sequence, or "". A lossy re-encoding names its original there.
func sourceInstanceUID(ds dicom.Dataset) string {
	seq, err := ds.FindElementByTag(tag.SourceImageSequence)
	if err != nil {
		return ""
	}
	items, ok := seq.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok || len(items) == 0 {
		return ""
	}
	for _, e := range items[0].GetValue().([]*dicom.Element) {
		if e.Tag == tag.ReferencedSOPInstanceUID {
			if v, ok := e.Value.GetValue().([]string); ok && len(v) > 0 {
				uid := strings.TrimRight(v[0], "\x00 ")
				if uidPattern.MatchString(uid) {
					return uid
				}
			}
		}
	}
	return ""
}

// classify runs the model on one input; a Localiser also gives its boxes,
// mapped from the plane to the original image's pixels.
func classify(ctx context.Context, m Model, input []float32, g preprocess.Geometry) ([]float32, []fracd.Box, error) {
	l, ok := m.(Localiser)
	if !ok {
		p, err := m.Predict(ctx, input, 1)
		return p, nil, err
	}
	p, boxes, err := l.Localise(ctx, input)
	if err != nil {
		return nil, nil, err
	}
	for i, b := range boxes {
		boxes[i].X0, boxes[i].Y0 = g.ToSource(b.X0, b.Y0)
		boxes[i].X1, boxes[i].Y1 = g.ToSource(b.X1, b.Y1)
	}
	return []float32{p}, boxes, nil
}
