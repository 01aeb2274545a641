package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

func init() { registerCommand(newAuditCmd) }

func newAuditCmd(m *Main) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Inspect and verify the hash-chained audit trail",
	}
	cmd.AddCommand(newAuditListCmd(m), newAuditVerifyCmd(m))
	return cmd
}

func newAuditListCmd(m *Main) *cobra.Command {
	var (
		action, subject string
		q               queryFlags
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit rows (the database is opened read-only)",
		Example: `  fracd audit list --since 2026-11-01 --action instance.
  fracd audit list --format json --limit 100`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := store.AuditFilter{Action: action, Subject: subject, Limit: q.limit}
			var err error
			if f.Since, f.Until, err = q.window(time.Now()); err != nil {
				return err
			}
			db, err := store.OpenReadOnly(cmd.Context(), m.Config.Paths.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			es, err := db.ListAudit(cmd.Context(), f)
			if err != nil {
				return err
			}
			if es == nil {
				es = []store.AuditEntry{}
			}
			t := table{header: []string{"id", "ts", "actor", "action", "subject", "detail", "hash"}, records: es}
			for _, e := range es {
				t.rows = append(t.rows, []string{strconv.FormatInt(e.ID, 10), e.TS.UTC().Format(time.RFC3339Nano), e.Actor,
					e.Action, e.Subject, string(e.Detail), e.Hash})
			}
			return t.write(m.Stdout, q.format)
		},
	}
	cmd.Flags().StringVar(&action, "action", "", "only this action, or a prefix ending in '.' (instance.)")
	cmd.Flags().StringVar(&subject, "subject", "", "only rows about this subject (content hash, UID, model id)")
	q.register(cmd)
	return cmd
}

func newAuditVerifyCmd(m *Main) *cobra.Command {
	var anchor string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk the audit chain and name the first row that breaks it (exit status 2 if broken)",
		Long: `Recomputes every row's hash from its contents and the previous row's hash.
An edited, deleted or inserted row breaks the chain at that row. Removing rows
from the end cannot be seen from inside the database: keep the head printed here
somewhere else and pass it back with --anchor ID:HASH.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			db, err := store.OpenReadOnly(cmd.Context(), m.Config.Paths.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := db.VerifyAudit(cmd.Context())
			var ce *store.ChainError
			if errors.As(err, &ce) {
				return &exitError{code: 2, err: err}
			}
			if err != nil {
				return err
			}
			if anchor != "" {
				id, hash, err := parseAnchor(anchor)
				if err != nil {
					return err
				}
				if id > res.HeadID {
					return &exitError{code: 2, err: fmt.Errorf("audit chain ends at row %d but the anchor names row %d: rows were removed from the end", res.HeadID, id)}
				}
				// The walk above proved ids 1..HeadID contiguous, so the
				// row exists; read only its hash.
				var got string
				if err := db.SQL().QueryRowContext(cmd.Context(), `SELECT hash FROM audit WHERE id = ?`, id).Scan(&got); err != nil {
					return fmt.Errorf("audit verify: read row %d: %w", id, err)
				}
				if got != hash {
					return &exitError{code: 2, err: fmt.Errorf("audit chain broken at row %d: hash differs from the anchor", id)}
				}
			}
			fmt.Fprintf(m.Stdout, "audit chain OK: %d rows, head %d %s\n", res.Rows, res.HeadID, res.HeadHash)
			return nil
		},
	}
	cmd.Flags().StringVar(&anchor, "anchor", "", "ID:HASH of a head recorded earlier; fails if that row is gone or changed")
	return cmd
}

// parseAnchor reads ID:HASH as printed by verify: a row id from 1 and a
// sha256 in hex (either case).
func parseAnchor(anchor string) (int64, string, error) {
	idStr, hash, ok := strings.Cut(anchor, ":")
	id, err := strconv.ParseInt(idStr, 10, 64)
	hash = strings.ToLower(hash)
	if _, herr := hex.DecodeString(hash); !ok || err != nil || id < 1 || len(hash) != 64 || herr != nil {
		return 0, "", fmt.Errorf("--anchor: %q is not ID:HASH (a row id from 1 and a 64-digit hex sha256)", anchor)
	}
	return id, hash, nil
}
