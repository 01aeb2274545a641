-- Results sent back to the hospital's PACS (DICOM SR and secondary capture).
-- The objects carry the hospital's own identifiers, so they live only in
-- spool/outbox until delivered; this table keeps what was sent and when, keyed
-- by the de-identified SOP Instance UID of the classified instance and the
-- kind of object. last_error is a reason from a fixed vocabulary, never a
-- tool's message (which could quote identifiers).
CREATE TABLE deliveries (
    sop_instance_uid TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('sr', 'sc')),
    instance_sha256  TEXT NOT NULL REFERENCES instances(sha256),
    destination      TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error       TEXT NOT NULL DEFAULT '' CHECK (last_error IN ('', 'unreachable', 'association_rejected',
                         'association_aborted', 'store_failed', 'timeout', 'interrupted', 'file_missing', 'internal')),
    queued_at        TEXT NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    delivered_at     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (sop_instance_uid, kind)
);
CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);

-- De-identification empties Accession Number; its HMAC pseudonym (site
-- secret) lets `fracd results --accession` find a study without storing it.
CREATE TABLE study_accessions (
    accession_key TEXT NOT NULL,
    study_uid     TEXT NOT NULL,
    PRIMARY KEY (accession_key, study_uid)
);
