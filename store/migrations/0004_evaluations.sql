-- Measured performance of a model on a labelled data set (fracd model
-- evaluate). data_sha256 is the sha256 of the sorted "key,label" lines, so
-- two evaluations on the same images and labels can be compared; keys are
-- image paths or de-identified UIDs, and only their hash is kept here.
-- metrics is the evaluate package's report without its curves.
CREATE TABLE evaluations (
    id          INTEGER PRIMARY KEY,
    model_id    TEXT NOT NULL REFERENCES models(id),
    dataset     TEXT NOT NULL,
    data_sha256 TEXT NOT NULL CHECK (length(data_sha256) = 64),
    n           INTEGER NOT NULL CHECK (n > 0),
    metrics     TEXT NOT NULL CHECK (json_valid(metrics)),
    created_at  TEXT NOT NULL
);
CREATE INDEX evaluations_model ON evaluations(model_id, created_at);
