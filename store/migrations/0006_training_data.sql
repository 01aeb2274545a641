-- Train/val/test by de-identified patient, assigned once and kept, so a
-- retrain next month keeps the same patients in val and test.
CREATE TABLE patient_splits (
    patient_key TEXT PRIMARY KEY CHECK (length(patient_key) > 0),
    split       TEXT NOT NULL CHECK (split IN ('train', 'val', 'test')),
    assigned_at TEXT NOT NULL
);

-- The exact instance/label list a training run learnt from, so it can be
-- reproduced: its hash, class counts per split, and the list itself
-- (de-identified SOP Instance UIDs, labels, splits).
CREATE TABLE training_datasets (
    run_id     TEXT PRIMARY KEY,
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64),
    counts     TEXT NOT NULL CHECK (json_valid(counts)),
    items      TEXT NOT NULL CHECK (json_valid(items)),
    created_at TEXT NOT NULL
);
