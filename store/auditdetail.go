package store

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/fracd/fracd"
)

// ArchivedDetail is the detail of the instance.archived row written with a
// done instance: every value of the instance row that verify compares (see
// VerifyRecords), plus how it was de-identified.
func ArchivedDetail(in Instance, deidentification string) map[string]any {
	d := map[string]any{
		"study_uid": in.StudyUID, "series_uid": in.SeriesUID, "sop_instance_uid": in.SOPInstanceUID,
		"archive_path": in.ArchivePath, "transfer_syntax": in.TransferSyntax, "modality": in.Modality,
		"body_part": in.BodyPart, "source_sop_instance_uid": in.SourceSOPInstanceUID,
		"deidentification": deidentification,
	}
	return d
}

// PredictedDetail is the detail of the instance.predicted row written with
// a prediction: the result as stored, so that verify can tell when a stored
// prediction no longer matches what was audited.
func PredictedDetail(sopInstanceUID string, p Prediction) map[string]any {
	return map[string]any{
		"sop_instance_uid": sopInstanceUID, "model_id": p.ModelID, "weights_sha256": p.ModelSHA256,
		"preprocess_version": p.PreprocessVersion, "probability": p.Probability, "threshold": p.Threshold,
		"flagged": p.Flagged, "category": p.Category, "boxes": len(p.Boxes), "boxes_sha256": BoxesDigest(p.Boxes),
	}
}

// BoxesDigest is the sha256 (hex) of a prediction's boxes in rank order, each
// value in Go's shortest round-trip form, so that the digest computed from
// the stored REALs equals the one computed when they were written.
func BoxesDigest(boxes []fracd.Box) string {
	var b strings.Builder
	for _, x := range boxes {
		for i, v := range []float64{x.X0, x.Y0, x.X1, x.Y1, x.Score} {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
		b.WriteByte('\n')
	}
	s := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(s[:])
}
