-- A lossy re-encoding gets a new SOP Instance UID and names the original in
-- Source Image Sequence; keep that (de-identified) reference so labels given
-- for the original still apply.
ALTER TABLE instances ADD COLUMN source_sop_instance_uid TEXT NOT NULL DEFAULT '';

DROP VIEW labelled_results;
DROP VIEW results;
CREATE VIEW results AS
SELECT p.id                 AS prediction_id,
       p.created_at         AS predicted_at,
       i.sha256             AS instance_sha256,
       i.study_uid, i.series_uid, i.sop_instance_uid, i.modality, i.body_part,
       p.probability, p.threshold, p.flagged,
       p.model_id, m.arch   AS model_arch, p.model_sha256, p.preprocess_version,
       p.latency_ms, i.source_sop_instance_uid
FROM predictions p
JOIN instances i ON i.sha256 = p.instance_sha256
JOIN models m ON m.id = p.model_id;

CREATE VIEW labelled_results AS
SELECT r.*, l.fractured AS label, l.source AS label_source
FROM results r JOIN labels l
  ON l.sop_instance_uid = r.sop_instance_uid
  OR (r.source_sop_instance_uid <> '' AND l.sop_instance_uid = r.source_sop_instance_uid);
