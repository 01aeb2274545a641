package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

// The model lifecycle: candidate -> active -> candidate (replaced) ->
// retired. Every change runs in one transaction with its audit row, and a
// refused command changes nothing (the transaction is rolled back).

// newModelLifecycleCmds are the model subcommands of this file.
func newModelLifecycleCmds(m *Main) []*cobra.Command {
	return []*cobra.Command{newModelShowCmd(m), newModelPromoteCmd(m), newModelRetireCmd(m), newModelRollbackCmd(m)}
}

// promoteOptions say how a promotion may bypass the evaluation check.
type promoteOptions struct {
	Force  bool
	Reason string
}

// promotionEvidence is one labelled set both models were measured on (or,
// with no active model, one evaluation of the candidate).
type promotionEvidence struct {
	DataSHA256          string  `json:"data_sha256"`
	N                   int     `json:"n"`
	CandidateEvaluation int64   `json:"candidate_evaluation"`
	CandidateROCAUC     float64 `json:"candidate_roc_auc"`
	ActiveEvaluation    int64   `json:"active_evaluation,omitempty"`
	ActiveROCAUC        float64 `json:"active_roc_auc,omitempty"`
}

// promotionResult is what a promotion did.
type promotionResult struct {
	Model      string
	Previous   string // "" when there was no active model
	Activation store.Activation
	Evidence   []promotionEvidence
	Overridden string // the check's refusal that --force overrode
}

// errAlreadyActive: promoting the active model is refused, so that a
// typo'd id cannot pass for a change.
var errAlreadyActive = errors.New("already the active model")

// evaluationAUC reads roc_auc from a stored evaluation's metrics.
func evaluationAUC(e store.Evaluation) (float64, bool) {
	var v struct {
		ROCAUC *float64 `json:"roc_auc"`
	}
	if err := json.Unmarshal(e.Metrics, &v); err != nil || v.ROCAUC == nil || math.IsNaN(*v.ROCAUC) {
		return 0, false
	}
	return *v.ROCAUC, true
}

// latestByData keeps, per data hash, the newest evaluation with a ROC-AUC
// (evals come newest first, as the store lists them).
func latestByData(evals []store.Evaluation) map[string]store.Evaluation {
	out := map[string]store.Evaluation{}
	for _, e := range evals {
		if _, ok := evaluationAUC(e); !ok {
			continue
		}
		if _, seen := out[e.DataSHA256]; !seen {
			out[e.DataSHA256] = e
		}
	}
	return out
}

// checkPromotion is the rule: with an active model, the candidate must have
// been evaluated on at least one labelled set (same data hash) the active
// model was evaluated on, and its ROC-AUC must not be lower on any such set
// (the newest evaluation of each model per set counts). With no active
// model, one evaluation of the candidate suffices.
func checkPromotion(candidate, active string, candEvals, activeEvals []store.Evaluation) ([]promotionEvidence, error) {
	cand := latestByData(candEvals)
	if len(cand) == 0 {
		return nil, fmt.Errorf("%s has no stored evaluation: measure it first with `fracd model evaluate %s --images DIR --labels CSV` (or --labelled)", candidate, candidate)
	}
	if active == "" {
		for _, e := range candEvals { // newest first
			if auc, ok := evaluationAUC(e); ok {
				return []promotionEvidence{{DataSHA256: e.DataSHA256, N: e.N, CandidateEvaluation: e.ID, CandidateROCAUC: auc}}, nil
			}
		}
	}
	act := latestByData(activeEvals)
	var ev []promotionEvidence
	for sha, c := range cand {
		a, ok := act[sha]
		if !ok {
			continue
		}
		ca, _ := evaluationAUC(c)
		aa, _ := evaluationAUC(a)
		ev = append(ev, promotionEvidence{DataSHA256: sha, N: c.N, CandidateEvaluation: c.ID, CandidateROCAUC: ca, ActiveEvaluation: a.ID, ActiveROCAUC: aa})
	}
	sort.Slice(ev, func(i, j int) bool { return ev[i].CandidateEvaluation > ev[j].CandidateEvaluation })
	if len(ev) == 0 {
		return nil, fmt.Errorf("%s and the active model %s were never evaluated on the same labelled set (same data sha256): run `fracd model evaluate` on the same --images/--labels for both", candidate, active)
	}
	var worse []string
	for _, e := range ev {
		if e.CandidateROCAUC < e.ActiveROCAUC {
			worse = append(worse, fmt.Sprintf("ROC-AUC %.4f < %.4f on data %s (n=%d, evaluations %d and %d)",
				e.CandidateROCAUC, e.ActiveROCAUC, e.DataSHA256[:12], e.N, e.CandidateEvaluation, e.ActiveEvaluation))
		}
	}
	if len(worse) > 0 {
		return ev, fmt.Errorf("%s is worse than the active model %s: %s", candidate, active, strings.Join(worse, "; "))
	}
	return ev, nil
}

// checkReason bounds the free text that goes into the audit trail.
func checkReason(reason string) error {
	if len(reason) > 500 {
		return errors.New("--reason: at most 500 characters")
	}
	for _, r := range reason {
		if unicode.IsControl(r) || isBidiControl(r) {
			return errors.New("--reason: no control characters or line breaks")
		}
	}
	return nil
}

// promoteModel makes id the active model, with its model.promoted audit row,
// inside tx. Unknown, retired and already active models are refused even
// with Force; Force (which needs a Reason) skips only the evaluation check,
// and the check's refusal is audited with the reason.
func promoteModel(ctx context.Context, tx *store.Tx, id string, opt promoteOptions) (promotionResult, error) {
	res := promotionResult{Model: id}
	if opt.Force && strings.TrimSpace(opt.Reason) == "" {
		return res, errors.New("--force needs --reason TEXT: why the evaluation check is skipped (audited)")
	}
	if err := checkReason(opt.Reason); err != nil {
		return res, err
	}
	cand, err := tx.Model(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return res, fmt.Errorf("no model %q is registered (see fracd model list)", id)
	}
	if err != nil {
		return res, err
	}
	switch cand.State {
	case store.ModelRetired:
		return res, fmt.Errorf("%s is retired, and a retired model is never promoted again", id)
	case store.ModelActive:
		return res, fmt.Errorf("%s is %w; nothing changed", id, errAlreadyActive)
	}
	active, err := tx.ActiveModel(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return res, err
	}
	res.Previous = active.ID
	candEvals, err := tx.Evaluations(ctx, id)
	if err != nil {
		return res, err
	}
	var activeEvals []store.Evaluation
	if active.ID != "" {
		if activeEvals, err = tx.Evaluations(ctx, active.ID); err != nil {
			return res, err
		}
	}
	res.Evidence, err = checkPromotion(id, active.ID, candEvals, activeEvals)
	if err != nil {
		if !opt.Force {
			return res, fmt.Errorf("%w (--force --reason TEXT overrides)", err)
		}
		res.Overridden = err.Error()
	}
	if res.Activation, err = tx.PromoteModel(ctx, id); err != nil {
		return res, err
	}
	detail := map[string]any{"previous": active.ID, "forced": opt.Force, "activation_id": res.Activation.ID,
		"weights_sha256": cand.WeightsSHA256}
	if opt.Reason != "" {
		detail["reason"] = opt.Reason
	}
	if res.Evidence != nil {
		detail["evidence"] = res.Evidence
	}
	if res.Overridden != "" {
		detail["overridden"] = res.Overridden
	}
	_, err = tx.AppendAudit(ctx, actor(), store.ActionModelPromoted, id, detail)
	return res, err
}

// writeDBUpdate opens the database for writing and runs fn in one
// transaction.
func (m *Main) writeDBUpdate(ctx context.Context, fn func(*store.Tx) error) error {
	db, err := m.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(ctx, fn)
}

func printPromotion(w io.Writer, res promotionResult) {
	fmt.Fprintf(w, "promoted %s: now the active model (activation #%d)\n", res.Model, res.Activation.ID)
	if res.Previous != "" {
		fmt.Fprintf(w, "%s, active until now, is a candidate again (not retired; `fracd model rollback` re-activates it)\n", res.Previous)
	}
	for _, e := range res.Evidence {
		if e.ActiveEvaluation != 0 {
			fmt.Fprintf(w, "evidence: data %s (n=%d): ROC-AUC %.4f vs %.4f\n", e.DataSHA256[:12], e.N, e.CandidateROCAUC, e.ActiveROCAUC)
		} else {
			fmt.Fprintf(w, "evidence: data %s (n=%d): ROC-AUC %.4f\n", e.DataSHA256[:12], e.N, e.CandidateROCAUC)
		}
	}
	if res.Overridden != "" {
		fmt.Fprintf(w, "forced past: %s\n", escapeControls(res.Overridden))
	}
}

func newModelPromoteCmd(m *Main) *cobra.Command {
	var opt promoteOptions
	cmd := &cobra.Command{
		Use:   "promote ID [--force --reason TEXT]",
		Short: "Make a candidate the active model, if its evaluation is not worse than the active one's",
		Long: `Makes a registered candidate the active model; a running daemon switches to
it between files. The model active until now becomes a candidate again
(nothing is retired by a promotion; fracd model rollback undoes it).

The candidate must have a stored evaluation (fracd model evaluate) on the
same labelled set (same data sha256) as the active model, and its ROC-AUC
must not be lower on any set both were evaluated on. With no active model,
one stored evaluation of the candidate is enough. --force --reason TEXT
skips this check; the reason, the actor and what the check said go into the
audit row. Do not name patients in the reason.

Unknown, retired or already active models are refused, with or without
--force. A refused promotion changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res promotionResult
			err := m.writeDBUpdate(cmd.Context(), func(tx *store.Tx) (err error) {
				res, err = promoteModel(cmd.Context(), tx, args[0], opt)
				return err
			})
			if err != nil {
				return fmt.Errorf("model promote: %w", err)
			}
			printPromotion(m.Stdout, res)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opt.Force, "force", false, "promote even without (or against) the evaluation evidence; needs --reason")
	cmd.Flags().StringVar(&opt.Reason, "reason", "", "why (audited; required with --force)")
	return cmd
}

// newModelActivateCmd is the old name of promote --force, kept so that
// scripts keep working; it says so on every use.
func newModelActivateCmd(m *Main) *cobra.Command {
	reason := "model activate (deprecated alias of promote --force)"
	cmd := &cobra.Command{
		Use:        "activate ID",
		Short:      "Deprecated: fracd model promote ID --force --reason TEXT",
		Deprecated: "use `fracd model promote ID`, which checks the evaluations (--force --reason TEXT skips that)",
		Args:       cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res promotionResult
			err := m.writeDBUpdate(cmd.Context(), func(tx *store.Tx) (err error) {
				res, err = promoteModel(cmd.Context(), tx, args[0], promoteOptions{Force: true, Reason: reason})
				return err
			})
			if err != nil {
				return fmt.Errorf("model activate: %w", err)
			}
			printPromotion(m.Stdout, res)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", reason, "why (audited)")
	return cmd
}

func newModelRetireCmd(m *Main) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "retire ID [--reason TEXT]",
		Short: "Take a candidate out of service for good (never the active model)",
		Long: `Marks a registered model retired: it can no longer be promoted or rolled
back to. Its weights, predictions and evaluations stay. The active model is
refused: promote another one first. A refused retirement changes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReason(reason); err != nil {
				return fmt.Errorf("model retire: %w", err)
			}
			id := args[0]
			var was store.Model
			err := m.writeDBUpdate(cmd.Context(), func(tx *store.Tx) error {
				var err error
				if was, err = tx.RetireModel(cmd.Context(), id); err != nil {
					return err
				}
				detail := map[string]any{"previous_state": was.State}
				if reason != "" {
					detail["reason"] = reason
				}
				_, err = tx.AppendAudit(cmd.Context(), actor(), store.ActionModelRetired, id, detail)
				return err
			})
			switch {
			case errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("model retire: no model %q is registered (see fracd model list)", id)
			case errors.Is(err, store.ErrModelIsActive):
				return fmt.Errorf("model retire: %s is the active model: promote another one first (fracd model promote ID), then retire it", id)
			case errors.Is(err, store.ErrModelRetired):
				return fmt.Errorf("model retire: %s is already retired; nothing changed", id)
			case err != nil:
				return fmt.Errorf("model retire: %w", err)
			}
			fmt.Fprintf(m.Stdout, "retired %s (was %s)\n", id, was.State)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (audited)")
	return cmd
}

func newModelRollbackCmd(m *Main) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "rollback [--reason TEXT]",
		Short: "Re-activate the model that was active before the latest promotion",
		Long: `Undoes the latest promotion not yet undone: the model active before it is
active again, and the one it replaces becomes a candidate (nothing is
retired). Repeated rollbacks walk further back, one promotion at a time. A
retired previous model is refused. The running daemon switches between files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkReason(reason); err != nil {
				return fmt.Errorf("model rollback: %w", err)
			}
			var plan store.RollbackPlan
			var act store.Activation
			err := m.writeDBUpdate(cmd.Context(), func(tx *store.Tx) error {
				var err error
				if plan, act, err = tx.RollbackModel(cmd.Context()); err != nil {
					return err
				}
				detail := map[string]any{"previous": plan.From, "activation_id": act.ID, "undoes_activation": plan.Undo.ID}
				if reason != "" {
					detail["reason"] = reason
				}
				_, err = tx.AppendAudit(cmd.Context(), actor(), store.ActionModelRolledBack, plan.To, detail)
				return err
			})
			if err != nil {
				return fmt.Errorf("model rollback: %w", err)
			}
			fmt.Fprintf(m.Stdout, "rolled back the promotion of %s (activation #%d, %s): %s is the active model again\n",
				plan.From, plan.Undo.ID, fmtTS(plan.Undo.CreatedAt), plan.To)
			fmt.Fprintf(m.Stdout, "%s is now a candidate (not retired; `fracd model retire %s` retires it)\n", plan.From, plan.From)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (audited)")
	return cmd
}

// modelReport is model show's JSON.
type modelReport struct {
	Model       store.Model        `json:"model"`
	Evaluations []store.Evaluation `json:"evaluations"`
	Activations []store.Activation `json:"activations"`
	Audit       []store.AuditEntry `json:"audit"`
}

func newModelShowCmd(m *Main) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "A model with its evaluations, activations and audit rows (read-only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("model show: --format %q is not one of table, json", format)
			}
			ctx := cmd.Context()
			db, err := store.OpenReadOnly(ctx, m.Config.Paths.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			var r modelReport
			if r.Model, err = db.Model(ctx, args[0]); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("model show: no model %q is registered (see fracd model list)", args[0])
			} else if err != nil {
				return fmt.Errorf("model show: %w", err)
			}
			if r.Evaluations, err = db.Evaluations(ctx, r.Model.ID, 0); err != nil {
				return fmt.Errorf("model show: %w", err)
			}
			if r.Activations, err = db.Activations(ctx, r.Model.ID); err != nil {
				return fmt.Errorf("model show: %w", err)
			}
			if r.Audit, err = db.ModelAudit(ctx, r.Model.ID); err != nil {
				return fmt.Errorf("model show: %w", err)
			}
			if format == "json" {
				for _, p := range []any{&r.Evaluations, &r.Activations, &r.Audit} {
					emptyNotNull(p)
				}
				return table{records: r}.write(m.Stdout, "json")
			}
			return writeModelShow(m.Stdout, r)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

// emptyNotNull turns a nil slice into an empty one, so JSON says [] not null.
func emptyNotNull(p any) {
	switch s := p.(type) {
	case *[]store.Evaluation:
		if *s == nil {
			*s = []store.Evaluation{}
		}
	case *[]store.Activation:
		if *s == nil {
			*s = []store.Activation{}
		}
	case *[]store.AuditEntry:
		if *s == nil {
			*s = []store.AuditEntry{}
		}
	}
}

func writeModelShow(w io.Writer, r modelReport) error {
	x := r.Model
	info := table{header: []string{"field", "value"}, rows: [][]string{
		{"id", x.ID}, {"state", x.State}, {"arch", x.Arch}, {"weights_sha256", x.WeightsSHA256}, {"path", x.Path},
		{"threshold", strconv.FormatFloat(x.Threshold, 'f', 4, 64)}, {"preprocess_version", x.PreprocessVersion},
		{"training_run", x.TrainingRunID}, {"registered_at", fmtTS(x.RegisteredAt)}, {"metadata", string(x.Metadata)},
	}}
	if err := info.write(w, "table"); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nevaluations (%d, newest first)\n", len(r.Evaluations))
	ev := table{header: []string{"id", "created_at", "n", "roc_auc", "data_sha256", "dataset"}}
	for _, e := range r.Evaluations {
		auc := "-"
		if v, ok := evaluationAUC(e); ok {
			auc = strconv.FormatFloat(v, 'f', 4, 64)
		}
		ev.rows = append(ev.rows, []string{strconv.FormatInt(e.ID, 10), fmtTS(e.CreatedAt), strconv.Itoa(e.N), auc, e.DataSHA256, e.Dataset})
	}
	if err := ev.write(w, "table"); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nactivations (%d)\n", len(r.Activations))
	at := table{header: []string{"id", "created_at", "kind", "previous", "active", "undoes"}}
	for _, a := range r.Activations {
		und := ""
		if a.Undoes != 0 {
			und = "#" + strconv.FormatInt(a.Undoes, 10)
		}
		at.rows = append(at.rows, []string{strconv.FormatInt(a.ID, 10), fmtTS(a.CreatedAt), a.Kind, a.PreviousID, a.ModelID, und})
	}
	if err := at.write(w, "table"); err != nil {
		return err
	}
	fmt.Fprintf(w, "\naudit (%d)\n", len(r.Audit))
	au := table{header: []string{"id", "ts", "actor", "action", "subject", "detail"}}
	for _, e := range r.Audit {
		au.rows = append(au.rows, []string{strconv.FormatInt(e.ID, 10), fmtTS(e.TS), e.Actor, e.Action, e.Subject, string(e.Detail)})
	}
	return au.write(w, "table")
}
