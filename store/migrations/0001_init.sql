-- Models known to this site. weights_sha256 identifies the exact weights a
-- prediction came from; at most one model is active at a time.
CREATE TABLE models (
    id                 TEXT PRIMARY KEY,
    arch               TEXT NOT NULL,
    weights_sha256     TEXT NOT NULL UNIQUE,
    path               TEXT NOT NULL,
    preprocess_version TEXT NOT NULL,
    threshold          REAL NOT NULL CHECK (threshold >= 0 AND threshold <= 1),
    metadata           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    training_run_id    TEXT REFERENCES training_runs(id),
    registered_at      TEXT NOT NULL,
    active             INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1))
);
CREATE UNIQUE INDEX models_one_active ON models(active) WHERE active = 1;

-- One row per distinct file content received. Only de-identified values are
-- stored: there is deliberately no column that could hold a patient identifier.
CREATE TABLE instances (
    sha256            TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    state             TEXT NOT NULL CHECK (state IN ('done', 'rejected', 'duplicate')),
    reason            TEXT NOT NULL DEFAULT '',
    study_uid         TEXT NOT NULL DEFAULT '',
    series_uid        TEXT NOT NULL DEFAULT '',
    sop_instance_uid  TEXT NOT NULL DEFAULT '',
    modality          TEXT NOT NULL DEFAULT '',
    body_part         TEXT NOT NULL DEFAULT '',
    transfer_syntax   TEXT NOT NULL DEFAULT '',
    archive_path      TEXT NOT NULL DEFAULT '',
    duplicate_of      TEXT REFERENCES instances(sha256),
    received_at       TEXT NOT NULL,
    completed_at      TEXT NOT NULL
);
-- The same SOP instance is counted once, whatever its encoding.
CREATE UNIQUE INDEX instances_sop_done ON instances(sop_instance_uid) WHERE state = 'done';
CREATE INDEX instances_study ON instances(study_uid);

CREATE TABLE predictions (
    id                 INTEGER PRIMARY KEY,
    instance_sha256    TEXT NOT NULL REFERENCES instances(sha256),
    model_id           TEXT NOT NULL REFERENCES models(id),
    model_sha256       TEXT NOT NULL,
    preprocess_version TEXT NOT NULL,
    probability        REAL NOT NULL CHECK (probability >= 0 AND probability <= 1),
    threshold          REAL NOT NULL,
    flagged            INTEGER NOT NULL CHECK (flagged IN (0, 1)),
    latency_ms         REAL NOT NULL,
    created_at         TEXT NOT NULL,
    UNIQUE (instance_sha256, model_id)
);
CREATE INDEX predictions_created ON predictions(created_at);

-- Ground truth attached by admins, keyed by the de-identified SOP instance UID.
CREATE TABLE labels (
    id               INTEGER PRIMARY KEY,
    sop_instance_uid TEXT NOT NULL,
    fractured        INTEGER NOT NULL CHECK (fractured IN (0, 1)),
    source           TEXT NOT NULL DEFAULT '',
    actor            TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    UNIQUE (sop_instance_uid, source)
);

CREATE TABLE training_runs (
    id          TEXT PRIMARY KEY,
    arch        TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params)),
    status      TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed')),
    metrics     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT ''
);

-- Append-only, hash-chained audit trail: hash = sha256(prev_hash || canonical row).
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY,
    ts        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL CHECK (json_valid(detail)),
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE INDEX audit_ts ON audit(ts);

-- Auditor views.
CREATE VIEW results AS
SELECT p.id                 AS prediction_id,
       p.created_at         AS predicted_at,
       i.sha256             AS instance_sha256,
       i.study_uid, i.series_uid, i.sop_instance_uid, i.modality, i.body_part,
       p.probability, p.threshold, p.flagged,
       p.model_id, m.arch   AS model_arch, p.model_sha256, p.preprocess_version,
       p.latency_ms
FROM predictions p
JOIN instances i ON i.sha256 = p.instance_sha256
JOIN models m ON m.id = p.model_id;

CREATE VIEW flagged_results AS SELECT * FROM results WHERE flagged = 1;

CREATE VIEW rejections AS
SELECT sha256 AS instance_sha256, reason, received_at, completed_at
FROM instances WHERE state = 'rejected';

-- Predictions next to ground truth, for measuring a model on this site's data.
CREATE VIEW labelled_results AS
SELECT r.*, l.fractured AS label, l.source AS label_source
FROM results r JOIN labels l ON l.sop_instance_uid = r.sop_instance_uid;
