package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

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
			return printQuery(cmd.Context(), m, q, func(db *store.DB, since, until time.Time) ([]store.AuditEntry, error) {
				return db.ListAudit(cmd.Context(), store.AuditFilter{Action: action, Subject: subject, Since: since, Until: until, Limit: q.limit})
			}, []column[store.AuditEntry]{
				{"id", func(e store.AuditEntry) string { return strconv.FormatInt(e.ID, 10) }},
				{"ts", func(e store.AuditEntry) string { return e.TS.UTC().Format(time.RFC3339Nano) }},
				{"actor", func(e store.AuditEntry) string { return e.Actor }},
				{"action", func(e store.AuditEntry) string { return e.Action }},
				{"subject", func(e store.AuditEntry) string { return e.Subject }},
				{"detail", func(e store.AuditEntry) string { return string(e.Detail) }},
				{"hash", func(e store.AuditEntry) string { return e.Hash }},
			})
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
		Short: "Verify the audit chain and the results against it (exit status 2 if either fails)",
		Long: `Recomputes every row's hash from its contents and the previous row's hash.
An edited, deleted or inserted row breaks the chain at that row. Rows written
with the audit key (audit.key_file) are chained with HMAC-SHA256, so a row
forged without the key breaks the chain even with a recomputed hash.

Then compares the predictions, instances, labels, models and evaluations with
the audit rows written with them: a changed, deleted or inserted result fails.

Removing rows from the end cannot be seen from inside the database: keep the
head printed here somewhere else and pass it back with --anchor ID:HASH.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			db, err := store.OpenReadOnly(ctx, m.Config.Paths.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			keyFile := m.Config.AuditKeyFile()
			key, err := store.LoadAuditKey(keyFile)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				key = nil
			case err != nil:
				return fmt.Errorf("audit verify: %w", err)
			default:
				if err := db.UseAuditKey(key); err != nil {
					return fmt.Errorf("audit verify: %w", err)
				}
			}
			res, err := db.VerifyAudit(ctx)
			var ce *store.ChainError
			if errors.As(err, &ce) {
				return &exitError{code: 2, err: err}
			}
			if errors.Is(err, store.ErrAuditKeyNeeded) {
				return fmt.Errorf("audit verify: %w; no key at %s", err, keyFile)
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
				if err := db.SQL().QueryRowContext(ctx, `SELECT hash FROM audit WHERE id = ?`, id).Scan(&got); err != nil {
					return fmt.Errorf("audit verify: read row %d: %w", id, err)
				}
				if got != hash {
					return &exitError{code: 2, err: fmt.Errorf("audit chain broken at row %d: hash differs from the anchor", id)}
				}
			}
			fmt.Fprintf(m.Stdout, "audit chain OK: %d rows, head %d %s\n", res.Rows, res.HeadID, res.HeadHash)
			switch {
			case res.Keyed == 0 && key == nil:
				fmt.Fprintf(m.Stdout, "keyed: no rows (no audit key at %s): the chain shows edits, not forgeries by whoever can write the database\n", keyFile)
			case res.Keyed == 0:
				fmt.Fprintln(m.Stdout, "keyed: no rows yet")
			case res.FirstKeyedID == 1:
				fmt.Fprintf(m.Stdout, "keyed: all rows (HMAC-SHA256, key id %s)\n", res.KeyID)
			default:
				fmt.Fprintf(m.Stdout, "keyed: rows %d..%d (HMAC-SHA256, key id %s); rows 1..%d were written before the key and are plain SHA-256\n",
					res.FirstKeyedID, res.HeadID, res.KeyID, res.FirstKeyedID-1)
			}
			rep, err := db.VerifyRecords(ctx)
			if err != nil {
				return err
			}
			var parts []string
			for _, c := range rep.Checks {
				part := fmt.Sprintf("%s %d checked", c.Table, c.Checked)
				if c.NotCheckable > 0 {
					part += fmt.Sprintf(", %d not checkable (audited by an older fracd without the values)", c.NotCheckable)
				}
				parts = append(parts, part)
			}
			fmt.Fprintf(m.Stdout, "records: %s\n", strings.Join(parts, "; "))
			if n := len(rep.Problems); n > 0 {
				const shown = 100
				for i, p := range rep.Problems {
					if i == shown {
						fmt.Fprintf(m.Stdout, "... and %d more\n", n-shown)
						break
					}
					fmt.Fprintf(m.Stdout, "MISMATCH %s\n", p)
				}
				return &exitError{code: 2, err: fmt.Errorf("audit records: %d stored record(s) disagree with the audit trail; first: %s", n, rep.Problems[0])}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&anchor, "anchor", "", "ID:HASH of a head recorded earlier; fails if that row is gone or changed")
	return cmd
}

// openDB opens the database for writing with the audit key
// (audit.key_file): every audit row the command writes is keyed, and the
// key file is created (0600) with the first one.
func (m *Main) openDB(ctx context.Context) (*store.DB, error) {
	db, err := store.Open(ctx, m.Config.Paths.DB)
	if err != nil {
		return nil, err
	}
	if err := db.UseAuditKeyFile(m.Config.AuditKeyFile()); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
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
