-- Model lifecycle. state is candidate (registered, not in use), active (the
-- one the daemon uses) or retired (taken out of service for good). The
-- `active` column stays, because the daemon, the models_one_active index and
-- older queries read it; the triggers below refuse any write that lets the
-- two disagree, so `active = 1` and `state = 'active'` always mean the same.
ALTER TABLE models ADD COLUMN state TEXT NOT NULL DEFAULT 'candidate';
UPDATE models SET state = CASE WHEN active = 1 THEN 'active' ELSE 'candidate' END;

CREATE TRIGGER models_state_insert BEFORE INSERT ON models
WHEN NEW.state NOT IN ('candidate', 'active', 'retired') OR (NEW.state = 'active') <> (NEW.active = 1)
BEGIN SELECT RAISE(ABORT, 'models: state must be candidate, active or retired, and active = 1 exactly when state = active'); END;
CREATE TRIGGER models_state_update BEFORE UPDATE OF state, active ON models
WHEN NEW.state NOT IN ('candidate', 'active', 'retired') OR (NEW.state = 'active') <> (NEW.active = 1)
BEGIN SELECT RAISE(ABORT, 'models: state must be candidate, active or retired, and active = 1 exactly when state = active'); END;

-- Every change of the active model, oldest first: what became active, what
-- it replaced, and for a rollback the activation it undid. `fracd model
-- rollback` walks this back like a stack; the audit row of each change is
-- written in the same transaction.
CREATE TABLE model_activations (
    id          INTEGER PRIMARY KEY,
    model_id    TEXT NOT NULL REFERENCES models(id),
    previous_id TEXT REFERENCES models(id),
    kind        TEXT NOT NULL CHECK (kind IN ('promote', 'rollback')),
    undoes      INTEGER UNIQUE REFERENCES model_activations(id),
    created_at  TEXT NOT NULL,
    CHECK ((kind = 'rollback') = (undoes IS NOT NULL))
);
CREATE INDEX model_activations_model ON model_activations(model_id);

-- Activations made before this table existed, from the audit trail (every
-- promotion wrote a model.promoted row in the same transaction).
INSERT INTO model_activations(model_id, previous_id, kind, created_at)
SELECT subject, CASE WHEN prev IN (SELECT id FROM models) THEN prev END, 'promote', ts
FROM (SELECT id, ts, subject, lag(subject) OVER (ORDER BY id) AS prev FROM audit WHERE action = 'model.promoted')
WHERE subject IN (SELECT id FROM models) AND (prev IS NULL OR prev <> subject)
ORDER BY id;

-- Auditor views for monitoring (fracd report computes the same figures).
-- Weeks are ISO 8601 weeks of the UTC timestamps: iso_week as 2026-W45,
-- week_start its Monday ('weekday 0' is the coming Sunday, six days later).
-- Files by outcome and rejection reason ('' unless rejected) per week.
CREATE VIEW weekly_outcomes AS
SELECT strftime('%Y', monday, '+3 days') || '-W' || printf('%02d', (CAST(strftime('%j', monday, '+3 days') AS INTEGER) - 1) / 7 + 1) AS iso_week,
       monday AS week_start, state AS outcome, reason, count(*) AS files
FROM (SELECT state, reason, date(substr(completed_at, 1, 10), 'weekday 0', '-6 days') AS monday FROM instances)
GROUP BY monday, state, reason;

-- Per model and week: results, flagged results, flagged rate, mean probability.
CREATE VIEW weekly_model_stats AS
SELECT model_id,
       strftime('%Y', monday, '+3 days') || '-W' || printf('%02d', (CAST(strftime('%j', monday, '+3 days') AS INTEGER) - 1) / 7 + 1) AS iso_week,
       monday AS week_start, count(*) AS results, sum(flagged) AS flagged,
       avg(flagged) AS flagged_rate, avg(probability) AS mean_probability
FROM (SELECT model_id, flagged, probability, date(substr(predicted_at, 1, 10), 'weekday 0', '-6 days') AS monday FROM results)
GROUP BY model_id, monday;

-- Per model and week, on labelled results: the confusion matrix,
-- sensitivity (tp / labelled positives) and specificity (tn / labelled
-- negatives), NULL where the week has no positives or no negatives. A result
-- labelled by two sources counts once per label.
CREATE VIEW weekly_labelled_performance AS
SELECT model_id,
       strftime('%Y', monday, '+3 days') || '-W' || printf('%02d', (CAST(strftime('%j', monday, '+3 days') AS INTEGER) - 1) / 7 + 1) AS iso_week,
       monday AS week_start, count(*) AS labelled,
       sum(flagged = 1 AND label = 1) AS tp, sum(flagged = 0 AND label = 1) AS fn,
       sum(flagged = 0 AND label = 0) AS tn, sum(flagged = 1 AND label = 0) AS fp,
       CASE WHEN sum(label = 1) > 0 THEN 1.0 * sum(flagged = 1 AND label = 1) / sum(label = 1) END AS sensitivity,
       CASE WHEN sum(label = 0) > 0 THEN 1.0 * sum(flagged = 0 AND label = 0) / sum(label = 0) END AS specificity
FROM (SELECT model_id, flagged, label, date(substr(predicted_at, 1, 10), 'weekday 0', '-6 days') AS monday FROM labelled_results)
GROUP BY model_id, monday;

-- The registry's changes with who made them and why (from the audit trail).
CREATE VIEW model_history AS
SELECT a.id AS audit_id, a.ts, a.actor, a.action, a.subject AS model_id,
       json_extract(a.detail, '$.previous') AS previous_model_id,
       json_extract(a.detail, '$.forced') AS forced,
       json_extract(a.detail, '$.reason') AS reason
FROM audit a WHERE a.action IN ('model.registered', 'model.promoted', 'model.retired', 'model.rolled_back', 'model.evaluated');
