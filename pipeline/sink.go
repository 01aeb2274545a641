package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/store"
)

// ResultSink receives each finished result together with the identified
// original, after the result is committed and before the original is removed
// (delivery of results to the hospital's PACS hangs here).
//
// Finished must be idempotent: a crash after the commit and before the
// original is removed calls it again for the same result at the next start,
// and an error leaves the file in spool/work to be retried the same way.
type ResultSink interface {
	Finished(ctx context.Context, r Finished) error
}

// Finished is one committed result. Everything but Original is
// de-identified.
type Finished struct {
	SHA256                              string
	StudyUID, SeriesUID, SOPInstanceUID string
	ModelID, ModelArch, ModelSHA256     string
	PreprocessVersion                   string
	Probability, Threshold              float64
	// Thresholds are the two operating points for fracd's category:
	// fracd.Single(Threshold) for a model with one.
	Thresholds fracd.Thresholds
	// Boxes are the model's localisations in the original image's pixels.
	Boxes []fracd.Box
	// Original is the received file, with the hospital's identifiers: the
	// sink must never log it, store it in the database or archive it.
	Original []byte
}

// SetResultSink installs the sink; call it before Run.
func (p *Pipeline) SetResultSink(s ResultSink) { p.sink = s }

func (p *Pipeline) sinkDone(ctx context.Context, out Outcome, info ModelInfo, data []byte) error {
	if p.sink == nil {
		return nil
	}
	err := p.sink.Finished(ctx, Finished{
		SHA256: out.SHA256, StudyUID: out.StudyUID, SeriesUID: out.SeriesUID, SOPInstanceUID: out.SOPInstanceUID,
		ModelID: info.ID, ModelArch: info.Arch, ModelSHA256: info.WeightsSHA256, PreprocessVersion: out.PreprocessVersion,
		Probability: out.Probability, Threshold: out.Threshold, Thresholds: thresholds(info, out.Threshold), Boxes: out.Boxes, Original: data,
	})
	if err != nil {
		return fmt.Errorf("pipeline: result sink for %s: %w", out.SHA256, err)
	}
	return nil
}

// sinkRecovered hands a result committed before a crash to the sink again.
func (p *Pipeline) sinkRecovered(ctx context.Context, in store.Instance, data []byte) error {
	if p.sink == nil || in.State != store.StateDone {
		return nil
	}
	r, err := p.db.LatestResult(ctx, in.SHA256)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pipeline: result sink for %s: %w", in.SHA256, err)
	}
	boxes, err := p.db.PredictionBoxes(ctx, r.PredictionID)
	if err != nil {
		return fmt.Errorf("pipeline: result sink for %s: %w", in.SHA256, err)
	}
	err = p.sink.Finished(ctx, Finished{
		SHA256: in.SHA256, StudyUID: in.StudyUID, SeriesUID: in.SeriesUID, SOPInstanceUID: in.SOPInstanceUID,
		ModelID: r.ModelID, ModelArch: r.ModelArch, ModelSHA256: r.ModelSHA256, PreprocessVersion: r.PreprocessVersion,
		Probability: r.Probability, Threshold: r.Threshold, Thresholds: p.recoveredThresholds(r.ModelSHA256, r.Threshold),
		Boxes: boxes, Original: data,
	})
	if err != nil {
		return fmt.Errorf("pipeline: result sink for %s: %w", in.SHA256, err)
	}
	return nil
}

// thresholds are the model's two operating points when they bracket the
// threshold in use (a threshold override can break that), else one.
func thresholds(info ModelInfo, threshold float64) fracd.Thresholds {
	t := fracd.Thresholds{Suspected: info.Suspected, Definite: info.Definite}
	if (t.Suspected != 0 || t.Definite != 0) && t.Suspected <= threshold && threshold <= t.Definite && t.Validate() == nil {
		return t
	}
	return fracd.Single(threshold)
}

// recoveredThresholds: predictions store one threshold; the operating points
// come from the model in use if it is the one that made the prediction.
func (p *Pipeline) recoveredThresholds(modelSHA string, threshold float64) fracd.Thresholds {
	if am := p.model.Load(); am != nil && am.info.WeightsSHA256 == modelSHA {
		return thresholds(am.info, threshold)
	}
	return fracd.Single(threshold)
}
