-- Results and their history are written once (issue 14, item 8). fracd
-- never updates or deletes these rows; the triggers refuse anyone else who
-- tries through SQL. They stop mistakes and casual edits, not the owner of
-- the file (who can drop a trigger): `fracd audit verify` compares these
-- tables with the audit rows written with them for that.
CREATE TRIGGER predictions_no_update BEFORE UPDATE ON predictions
BEGIN SELECT RAISE(ABORT, 'predictions are append-only'); END;
CREATE TRIGGER predictions_no_delete BEFORE DELETE ON predictions
BEGIN SELECT RAISE(ABORT, 'predictions are append-only'); END;
CREATE TRIGGER prediction_boxes_no_update BEFORE UPDATE ON prediction_boxes
BEGIN SELECT RAISE(ABORT, 'prediction_boxes are append-only'); END;
CREATE TRIGGER prediction_boxes_no_delete BEFORE DELETE ON prediction_boxes
BEGIN SELECT RAISE(ABORT, 'prediction_boxes are append-only'); END;

-- An instance row is written at its terminal state (done, rejected,
-- duplicate) and that outcome is final.
CREATE TRIGGER instances_no_update BEFORE UPDATE ON instances
BEGIN SELECT RAISE(ABORT, 'instances record a final outcome and are append-only'); END;
CREATE TRIGGER instances_no_delete BEFORE DELETE ON instances
BEGIN SELECT RAISE(ABORT, 'instances record a final outcome and are append-only'); END;

-- Labels are a history: a second opinion is a new row (another source).
CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only: add a label from another source instead'); END;
CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only: add a label from another source instead'); END;

-- A registered model is what its predictions name: only its state changes,
-- and only as the lifecycle allows (candidate <-> active, candidate ->
-- retired; retired is for good).
CREATE TRIGGER models_immutable BEFORE UPDATE ON models
WHEN NEW.id IS NOT OLD.id OR NEW.arch IS NOT OLD.arch OR NEW.weights_sha256 IS NOT OLD.weights_sha256
  OR NEW.path IS NOT OLD.path OR NEW.preprocess_version IS NOT OLD.preprocess_version
  OR NEW.threshold IS NOT OLD.threshold OR NEW.metadata IS NOT OLD.metadata
  OR NEW.training_run_id IS NOT OLD.training_run_id OR NEW.registered_at IS NOT OLD.registered_at
BEGIN SELECT RAISE(ABORT, 'models: only the state of a registered model changes'); END;
CREATE TRIGGER models_state_transition BEFORE UPDATE OF state ON models
WHEN NEW.state IS NOT OLD.state AND (OLD.state = 'retired' OR (OLD.state = 'active' AND NEW.state = 'retired'))
BEGIN SELECT RAISE(ABORT, 'models: a retired model stays retired, and the active model is replaced before it is retired'); END;
CREATE TRIGGER models_no_delete BEFORE DELETE ON models
BEGIN SELECT RAISE(ABORT, 'models are never removed from the registry: retire them'); END;

CREATE TRIGGER model_activations_no_update BEFORE UPDATE ON model_activations
BEGIN SELECT RAISE(ABORT, 'model_activations are append-only'); END;
CREATE TRIGGER model_activations_no_delete BEFORE DELETE ON model_activations
BEGIN SELECT RAISE(ABORT, 'model_activations are append-only'); END;

CREATE TRIGGER evaluations_no_update BEFORE UPDATE ON evaluations
BEGIN SELECT RAISE(ABORT, 'evaluations are append-only'); END;
CREATE TRIGGER evaluations_no_delete BEFORE DELETE ON evaluations
BEGIN SELECT RAISE(ABORT, 'evaluations are append-only'); END;

-- A training run is updated while it runs; once finished or failed it
-- changes only by being resumed (`fracd train --resume` sets it running
-- again). Rewriting it with the same values is harmless and allowed.
CREATE TRIGGER training_runs_final BEFORE UPDATE ON training_runs
WHEN NEW.id IS NOT OLD.id OR NEW.arch IS NOT OLD.arch OR NEW.started_at IS NOT OLD.started_at
  OR (OLD.status <> 'running' AND NEW.status <> 'running' AND (NEW.params IS NOT OLD.params
      OR NEW.status IS NOT OLD.status OR NEW.metrics IS NOT OLD.metrics OR NEW.finished_at IS NOT OLD.finished_at))
BEGIN SELECT RAISE(ABORT, 'training_runs: a finished or failed run changes only by being resumed'); END;
CREATE TRIGGER training_runs_no_delete BEFORE DELETE ON training_runs
BEGIN SELECT RAISE(ABORT, 'training_runs are never removed'); END;
CREATE TRIGGER training_datasets_no_update BEFORE UPDATE ON training_datasets
BEGIN SELECT RAISE(ABORT, 'training_datasets are append-only'); END;
CREATE TRIGGER training_datasets_no_delete BEFORE DELETE ON training_datasets
BEGIN SELECT RAISE(ABORT, 'training_datasets are append-only'); END;
-- A patient's split is assigned once and kept across retrains.
CREATE TRIGGER patient_splits_no_update BEFORE UPDATE ON patient_splits
BEGIN SELECT RAISE(ABORT, 'patient_splits are assigned once'); END;
CREATE TRIGGER patient_splits_no_delete BEFORE DELETE ON patient_splits
BEGIN SELECT RAISE(ABORT, 'patient_splits are assigned once'); END;

CREATE TRIGGER study_accessions_no_update BEFORE UPDATE ON study_accessions
BEGIN SELECT RAISE(ABORT, 'study_accessions are append-only'); END;
CREATE TRIGGER study_accessions_no_delete BEFORE DELETE ON study_accessions
BEGIN SELECT RAISE(ABORT, 'study_accessions are append-only'); END;

-- A delivery's state moves (pending, sending, failed, retried) until it is
-- delivered; a delivery is never undone, and what it delivers never changes.
CREATE TRIGGER deliveries_keys BEFORE UPDATE ON deliveries
WHEN NEW.sop_instance_uid IS NOT OLD.sop_instance_uid OR NEW.kind IS NOT OLD.kind
  OR NEW.instance_sha256 IS NOT OLD.instance_sha256 OR NEW.queued_at IS NOT OLD.queued_at
BEGIN SELECT RAISE(ABORT, 'deliveries: what is delivered never changes'); END;
CREATE TRIGGER deliveries_delivered_final BEFORE UPDATE ON deliveries
WHEN OLD.state = 'delivered'
BEGIN SELECT RAISE(ABORT, 'deliveries: a delivered result stays delivered'); END;
CREATE TRIGGER deliveries_no_delete BEFORE DELETE ON deliveries
BEGIN SELECT RAISE(ABORT, 'deliveries are never removed'); END;

-- The keyed chain: keyed = 1 marks a row whose hash is HMAC-SHA256 with the
-- audit key (kept outside the database) instead of plain SHA-256. Rows
-- written before the key existed stay as they are (keyed = 0).
ALTER TABLE audit ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0 CHECK (keyed IN (0, 1));
