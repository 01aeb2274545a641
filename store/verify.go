package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/fracd/fracd"
)

// RecordCheck counts, for one table, the rows compared with the audit rows
// written with them.
type RecordCheck struct {
	Table   string `json:"table"`
	Checked int64  `json:"checked"`
	// NotCheckable rows have an audit row from an older fracd that lacks
	// the values compared (they are compared on what it has).
	NotCheckable int64 `json:"not_checkable"`
}

// RecordProblem is a stored row that disagrees with the audit trail, or an
// audited record that is gone. Key is the row's id (prediction, label,
// evaluation), content hash (instance) or model id: never an identifier.
type RecordProblem struct {
	Table   string `json:"table"`
	Key     string `json:"key"`
	AuditID int64  `json:"audit_id,omitempty"`
	Reason  string `json:"reason"`
}

func (p RecordProblem) String() string {
	s := p.Table + " " + p.Key + ": " + p.Reason
	if p.AuditID > 0 {
		s += fmt.Sprintf(" (audit row %d)", p.AuditID)
	}
	return s
}

// RecordsReport is what VerifyRecords found.
type RecordsReport struct {
	Checks   []RecordCheck   `json:"checks"`
	Problems []RecordProblem `json:"problems"`
}

// auditRef is one audit row that records a stored value.
type auditRef struct {
	id      int64
	actor   string
	subject string
	d       map[string]any
	used    bool
}

func (r *auditRef) has(k string) bool { _, ok := r.d[k]; return ok }

func (r *auditRef) str(k string) (string, bool) {
	s, ok := r.d[k].(string)
	return s, ok
}

func (r *auditRef) num(k string) (float64, bool) {
	n, ok := r.d[k].(json.Number)
	if !ok {
		return 0, false
	}
	// Go wrote the number in its shortest round-trip form, so parsing it
	// gives back exactly the float64 that was stored.
	f, err := strconv.ParseFloat(string(n), 64)
	return f, err == nil
}

func (r *auditRef) boolean(k string) (bool, bool) {
	b, ok := r.d[k].(bool)
	return b, ok
}

// firstUnused marks and returns the first row of refs not matched yet.
func firstUnused(refs []*auditRef) *auditRef {
	for _, r := range refs {
		if !r.used {
			r.used = true
			return r
		}
	}
	return nil
}

// recordChecker collects problems for one table.
type recordChecker struct {
	check    RecordCheck
	problems *[]RecordProblem
}

func (c *recordChecker) problem(key string, auditID int64, format string, args ...any) {
	*c.problems = append(*c.problems, RecordProblem{Table: c.check.Table, Key: key, AuditID: auditID, Reason: fmt.Sprintf(format, args...)})
}

// compare reports each audited value that differs from the stored one;
// values the audit row lacks are not compared.
func (c *recordChecker) compareStr(key string, r *auditRef, field, stored string) {
	if want, ok := r.str(field); ok {
		c.compareColumn(key, r, field, stored, want)
	}
}

// compareColumn reports a stored string that differs from the audited one:
// a detail field, or a column of the audit row itself (subject, actor).
func (c *recordChecker) compareColumn(key string, r *auditRef, field, stored, audited string) {
	if audited != stored {
		c.problem(key, r.id, "%s is %s, audited %s", field, strconv.Quote(stored), strconv.Quote(audited))
	}
}

func (c *recordChecker) compareNum(key string, r *auditRef, field string, stored float64) {
	if want, ok := r.num(field); ok && want != stored {
		c.problem(key, r.id, "%s is %v, audited %v", field, stored, want)
	} else if !ok && r.has(field) {
		c.problem(key, r.id, "audited %s is not a number", field)
	}
}

func (c *recordChecker) compareBool(key string, r *auditRef, field string, stored bool) {
	if want, ok := r.boolean(field); ok && want != stored {
		c.problem(key, r.id, "%s is %v, audited %v", field, stored, want)
	} else if !ok && r.has(field) {
		c.problem(key, r.id, "audited %s is not a boolean", field)
	}
}

// counted adds one row to Checked, or to NotCheckable when its audit row
// lacks one of the fields that make it fully checkable.
func (c *recordChecker) counted(r *auditRef, fields ...string) {
	for _, f := range fields {
		if !r.has(f) {
			c.check.NotCheckable++
			return
		}
	}
	c.check.Checked++
}

// The audit actions whose rows record stored values.
var recordActions = []string{ActionPredicted, ActionArchived, ActionRejected, ActionDuplicate, ActionLabelAdded,
	ActionModelAdded, ActionModelPromoted, ActionModelRolledBack, ActionModelRetired, ActionModelEvaluated}

// VerifyRecords compares the result tables with the audit rows written in
// the same transactions: every prediction, instance, label, model and
// evaluation must have its audit row and agree with the values it recorded,
// and every such audit row must still have its record. The chain proves the
// audit rows are as written (VerifyAudit); this proves the tables still say
// what the audit rows say. Problems are reported, not returned as errors;
// an error means the check could not run.
func (db *DB) VerifyRecords(ctx context.Context) (RecordsReport, error) {
	var rep RecordsReport
	byAction := map[string][]*auditRef{}
	q := `SELECT id, actor, action, subject, detail FROM audit WHERE action IN (?` + strings.Repeat(", ?", len(recordActions)-1) + `) ORDER BY id`
	args := make([]any, len(recordActions))
	for i, a := range recordActions {
		args[i] = a
	}
	err := queryEach(ctx, db.sql, "verify records", func(scan func(...any) error) error {
		var r auditRef
		var action, detail string
		if err := scan(&r.id, &r.actor, &action, &r.subject, &detail); err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(detail)))
		dec.UseNumber()
		if err := dec.Decode(&r.d); err != nil {
			r.d = map[string]any{} // not an object: nothing to compare, and VerifyAudit says why
		}
		byAction[action] = append(byAction[action], &r)
		return nil
	}, q, args...)
	if err != nil {
		return rep, err
	}
	for _, t := range []struct {
		table  string
		verify func(context.Context, map[string][]*auditRef, *recordChecker) error
	}{
		{"predictions", db.verifyPredictions}, {"instances", db.verifyInstances}, {"labels", db.verifyLabels},
		{"models", db.verifyModels}, {"evaluations", db.verifyEvaluations},
	} {
		c := recordChecker{check: RecordCheck{Table: t.table}, problems: &rep.Problems}
		if err := t.verify(ctx, byAction, &c); err != nil {
			return rep, err
		}
		rep.Checks = append(rep.Checks, c.check)
	}
	return rep, nil
}

func (db *DB) verifyPredictions(ctx context.Context, audit map[string][]*auditRef, c *recordChecker) error {
	byKey := map[[2]string][]*auditRef{}  // instance sha256, model id
	bySubject := map[string][]*auditRef{} // rows from before model_id was recorded
	for _, r := range audit[ActionPredicted] {
		if m, ok := r.str("model_id"); ok {
			byKey[[2]string{r.subject, m}] = append(byKey[[2]string{r.subject, m}], r)
		} else {
			bySubject[r.subject] = append(bySubject[r.subject], r)
		}
	}
	boxes := map[int64][]fracd.Box{}
	err := queryEach(ctx, db.sql, "verify predictions", func(scan func(...any) error) error {
		var id int64
		var b fracd.Box
		if err := scan(&id, &b.X0, &b.Y0, &b.X1, &b.Y1, &b.Score); err != nil {
			return err
		}
		boxes[id] = append(boxes[id], b)
		return nil
	}, `SELECT prediction_id, x0, y0, x1, y1, score FROM prediction_boxes ORDER BY prediction_id, rank`)
	if err != nil {
		return err
	}
	err = queryEach(ctx, db.sql, "verify predictions", func(scan func(...any) error) error {
		var p Prediction
		if err := scan(&p.ID, &p.InstanceSHA256, &p.ModelID, &p.ModelSHA256, &p.PreprocessVersion,
			&p.Probability, &p.Threshold, &p.Flagged, &p.Category); err != nil {
			return err
		}
		key := strconv.FormatInt(p.ID, 10)
		r := firstUnused(byKey[[2]string{p.InstanceSHA256, p.ModelID}])
		if r == nil {
			r = firstUnused(bySubject[p.InstanceSHA256])
		}
		if r == nil {
			c.problem(key, 0, "no instance.predicted audit row records this prediction (instance %s, model %s): it was written outside fracd", p.InstanceSHA256, strconv.Quote(p.ModelID))
			return nil
		}
		c.compareStr(key, r, "weights_sha256", p.ModelSHA256)
		c.compareStr(key, r, "preprocess_version", p.PreprocessVersion)
		c.compareNum(key, r, "probability", p.Probability)
		c.compareNum(key, r, "threshold", p.Threshold)
		c.compareBool(key, r, "flagged", p.Flagged)
		c.compareStr(key, r, "category", p.Category)
		bs := boxes[p.ID]
		c.compareNum(key, r, "boxes", float64(len(bs)))
		if want, ok := r.str("boxes_sha256"); ok && want != BoxesDigest(bs) {
			c.problem(key, r.id, "boxes differ from the audited ones")
		}
		c.counted(r, "model_id", "weights_sha256", "probability", "threshold", "flagged", "boxes_sha256")
		return nil
	}, `SELECT id, instance_sha256, model_id, model_sha256, preprocess_version,
		probability, threshold, flagged, category FROM predictions ORDER BY id`)
	if err != nil {
		return err
	}
	for _, refs := range [][]*auditRef{flatten(byKey), flatten(bySubject)} {
		for _, r := range refs {
			if !r.used {
				m, _ := r.str("model_id")
				c.problem("-", r.id, "the prediction this audit row records (instance %s, model %s) is missing: it was deleted", r.subject, strconv.Quote(m))
			}
		}
	}
	return nil
}

// flatten lists a map's rows in audit id order.
func flatten[K comparable](m map[K][]*auditRef) []*auditRef {
	var out []*auditRef
	for _, rs := range m {
		out = append(out, rs...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (db *DB) verifyInstances(ctx context.Context, audit map[string][]*auditRef, c *recordChecker) error {
	group := func(action string, keep func(*auditRef) bool) map[string][]*auditRef {
		m := map[string][]*auditRef{}
		for _, r := range audit[action] {
			if keep(r) {
				m[r.subject] = append(m[r.subject], r)
			}
		}
		return m
	}
	all := func(*auditRef) bool { return true }
	terminal := map[string]map[string][]*auditRef{
		StateDone:     group(ActionArchived, all),
		StateRejected: group(ActionRejected, all),
		// A duplicate of a file in flight or of the same bytes already
		// recorded makes no instance row; only the others do.
		StateDuplicate: group(ActionDuplicate, func(r *auditRef) bool { return !r.has("in_flight") && !r.has("earlier_state") }),
	}
	action := map[string]string{StateDone: ActionArchived, StateRejected: ActionRejected, StateDuplicate: ActionDuplicate}
	err := queryEach(ctx, db.sql, "verify instances", func(scan func(...any) error) error {
		var in Instance
		if err := scan(&in.SHA256, &in.State, &in.Reason, &in.StudyUID, &in.SeriesUID, &in.SOPInstanceUID, &in.Modality,
			&in.BodyPart, &in.TransferSyntax, &in.ArchivePath, &in.DuplicateOf, &in.SourceSOPInstanceUID); err != nil {
			return err
		}
		key := in.SHA256
		r := firstUnused(terminal[in.State][in.SHA256])
		if r == nil {
			c.problem(key, 0, "no %s audit row records this %s instance: it was written or changed outside fracd", action[in.State], strconv.Quote(in.State))
			return nil
		}
		switch in.State {
		case StateDone:
			c.compareStr(key, r, "study_uid", in.StudyUID)
			c.compareStr(key, r, "series_uid", in.SeriesUID)
			c.compareStr(key, r, "sop_instance_uid", in.SOPInstanceUID)
			c.compareStr(key, r, "archive_path", in.ArchivePath)
			c.compareStr(key, r, "transfer_syntax", in.TransferSyntax)
			c.compareStr(key, r, "modality", in.Modality)
			c.compareStr(key, r, "body_part", in.BodyPart)
			c.compareStr(key, r, "source_sop_instance_uid", in.SourceSOPInstanceUID)
			c.counted(r, "sop_instance_uid", "archive_path", "modality", "body_part")
		case StateRejected:
			code, ok1 := r.str("reason")
			detail, ok2 := r.str("detail")
			if ok1 && ok2 && code+": "+detail != in.Reason {
				c.problem(key, r.id, "reason is %s, audited %s", strconv.Quote(in.Reason), strconv.Quote(code+": "+detail))
			}
			c.counted(r, "reason", "detail")
		case StateDuplicate:
			c.compareStr(key, r, "duplicate_of", in.DuplicateOf)
			c.compareStr(key, r, "sop_instance_uid", in.SOPInstanceUID)
			c.counted(r, "duplicate_of", "sop_instance_uid")
		}
		return nil
	}, `SELECT sha256, state, reason, study_uid, series_uid, sop_instance_uid, modality, body_part,
		transfer_syntax, archive_path, coalesce(duplicate_of, ''), source_sop_instance_uid FROM instances ORDER BY sha256`)
	if err != nil {
		return err
	}
	for _, state := range []string{StateDone, StateRejected, StateDuplicate} {
		for _, r := range flatten(terminal[state]) {
			if !r.used {
				c.problem(r.subject, r.id, "this audit row records the instance as %s, but the instances table does not: it was deleted or changed", strconv.Quote(state))
			}
		}
	}
	return nil
}

func (db *DB) verifyLabels(ctx context.Context, audit map[string][]*auditRef, c *recordChecker) error {
	var l Label
	return c.byID(ctx, db.sql, audit, ActionLabelAdded, "label_id", "label",
		`SELECT id, sop_instance_uid, fractured, source, actor FROM labels ORDER BY id`,
		func(scan func(...any) error) (int64, error) {
			err := scan(&l.ID, &l.SOPInstanceUID, &l.Fractured, &l.Source, &l.Actor)
			return l.ID, err
		},
		func(key string, r *auditRef) {
			c.compareColumn(key, r, "sop_instance_uid", l.SOPInstanceUID, r.subject)
			c.compareColumn(key, r, "actor", l.Actor, r.actor)
			c.compareBool(key, r, "fractured", l.Fractured)
			c.compareStr(key, r, "source", l.Source)
			c.counted(r, "fractured", "source")
		})
}

// byID checks a table whose audit rows (of action) name the stored row's
// id in the detail field idField: every stored row must have its audit
// row, compared by check, and every such audit row its stored row. scan
// reads one stored row of query and returns its id; noun names a row in
// the problems.
func (c *recordChecker) byID(ctx context.Context, q querier, audit map[string][]*auditRef, action, idField, noun, query string,
	scan func(func(...any) error) (int64, error), check func(key string, r *auditRef)) error {
	byID := map[int64][]*auditRef{}
	for _, r := range audit[action] {
		if id, ok := r.num(idField); ok {
			byID[int64(id)] = append(byID[int64(id)], r)
		}
	}
	err := queryEach(ctx, q, "verify "+c.check.Table, func(s func(...any) error) error {
		id, err := scan(s)
		if err != nil {
			return err
		}
		key := strconv.FormatInt(id, 10)
		if r := firstUnused(byID[id]); r != nil {
			check(key, r)
		} else {
			c.problem(key, 0, "no %s audit row records this %s: it was written outside fracd", action, noun)
		}
		return nil
	}, query)
	if err != nil {
		return err
	}
	for _, r := range flatten(byID) {
		if !r.used {
			id, _ := r.num(idField)
			c.problem(strconv.FormatInt(int64(id), 10), r.id, "the %s this audit row records is missing: it was deleted", noun)
		}
	}
	return nil
}

func (db *DB) verifyModels(ctx context.Context, audit map[string][]*auditRef, c *recordChecker) error {
	registered := map[string][]*auditRef{}
	for _, r := range audit[ActionModelAdded] {
		registered[r.subject] = append(registered[r.subject], r)
	}
	// The state each model should have, replaying the lifecycle rows in
	// order: a promotion or rollback makes its subject the active model
	// (the one it replaces becomes a candidate), a retirement is for good.
	var lifecycle []*auditRef
	for _, a := range []string{ActionModelPromoted, ActionModelRolledBack, ActionModelRetired} {
		lifecycle = append(lifecycle, audit[a]...)
	}
	sort.Slice(lifecycle, func(i, j int) bool { return lifecycle[i].id < lifecycle[j].id })
	retired := map[string]int64{}
	retiredSet := map[int64]bool{}
	for _, r := range audit[ActionModelRetired] {
		retiredSet[r.id] = true
	}
	active, activeRow := "", int64(0)
	for _, r := range lifecycle {
		if retiredSet[r.id] {
			retired[r.subject] = r.id
			continue
		}
		active, activeRow = r.subject, r.id
	}
	err := queryEach(ctx, db.sql, "verify models", func(scan func(...any) error) error {
		var m Model
		if err := scan(&m.ID, &m.Arch, &m.WeightsSHA256, &m.PreprocessVersion, &m.Threshold, &m.State); err != nil {
			return err
		}
		key := strconv.Quote(m.ID)
		want, at := ModelCandidate, int64(0)
		switch {
		case retired[m.ID] > 0:
			want, at = ModelRetired, retired[m.ID]
		case m.ID == active:
			want, at = ModelActive, activeRow
		}
		if m.State != want {
			c.problem(key, at, "state is %s, but the audited lifecycle leaves it %s", m.State, want)
		}
		r := firstUnused(registered[m.ID])
		if r == nil {
			c.problem(key, 0, "no model.registered audit row records this model: it was written outside fracd")
			return nil
		}
		c.compareStr(key, r, "weights_sha256", m.WeightsSHA256)
		c.compareStr(key, r, "arch", m.Arch)
		c.compareStr(key, r, "preprocess_version", m.PreprocessVersion)
		c.compareNum(key, r, "threshold", m.Threshold)
		c.counted(r, "weights_sha256", "arch", "threshold")
		return nil
	}, `SELECT id, arch, weights_sha256, preprocess_version, threshold, state FROM models ORDER BY id`)
	if err != nil {
		return err
	}
	for _, r := range flatten(registered) {
		if !r.used {
			c.problem(strconv.Quote(r.subject), r.id, "the model this audit row registers is missing from the registry: it was deleted")
		}
	}
	return nil
}

func (db *DB) verifyEvaluations(ctx context.Context, audit map[string][]*auditRef, c *recordChecker) error {
	var e Evaluation
	return c.byID(ctx, db.sql, audit, ActionModelEvaluated, "evaluation_id", "evaluation",
		`SELECT id, model_id, dataset, data_sha256, n FROM evaluations ORDER BY id`,
		func(scan func(...any) error) (int64, error) {
			err := scan(&e.ID, &e.ModelID, &e.Dataset, &e.DataSHA256, &e.N)
			return e.ID, err
		},
		func(key string, r *auditRef) {
			c.compareColumn(key, r, "model", e.ModelID, r.subject)
			c.compareStr(key, r, "dataset", e.Dataset)
			c.compareStr(key, r, "data_sha256", e.DataSHA256)
			c.compareNum(key, r, "n", float64(e.N))
			c.counted(r, "data_sha256", "n")
		})
}
