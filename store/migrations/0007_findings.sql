-- What each prediction tells the reader: its category (fracture, doubt,
-- no_fracture from the model's two operating points) and where it looks:
-- at most a few boxes in the original image's pixel coordinates.
ALTER TABLE predictions ADD COLUMN category TEXT NOT NULL DEFAULT ''
    CHECK (category IN ('', 'fracture', 'doubt', 'no_fracture'));

CREATE TABLE prediction_boxes (
    prediction_id INTEGER NOT NULL REFERENCES predictions(id),
    rank          INTEGER NOT NULL CHECK (rank >= 1),
    x0 REAL NOT NULL, y0 REAL NOT NULL, x1 REAL NOT NULL, y1 REAL NOT NULL,
    score         REAL NOT NULL CHECK (score >= 0 AND score <= 1),
    PRIMARY KEY (prediction_id, rank)
);

-- For auditors and viewers: each result with its category and boxes.
CREATE VIEW result_findings AS
SELECT r.prediction_id, r.sop_instance_uid, r.study_uid, r.probability, r.threshold, r.flagged, r.model_id,
       p.category, b.rank, b.x0, b.y0, b.x1, b.y1, b.score
FROM results r
JOIN predictions p ON p.id = r.prediction_id
LEFT JOIN prediction_boxes b ON b.prediction_id = r.prediction_id;
