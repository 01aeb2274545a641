// Package store keeps fracd's results, models, labels, training runs and the
// hash-chained audit trail in SQLite (github.com/mattn/go-sqlite3).
//
// Every state change goes through Update, which runs one IMMEDIATE
// transaction: the change and its audit row commit together or not at all.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// TimeFormat is how every timestamp is stored: fixed width so that text order
// is time order.
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// DB is an open fracd database.
type DB struct {
	sql      *sql.DB
	readOnly bool
	// writer admits one write transaction of this process at a time: the
	// others queue here and start the moment it commits, instead of in
	// SQLite's busy handler, which polls by sleeping 1, 2, 5, 10 ms and
	// more (other processes, such as the CLI, still meet that one).
	writer chan struct{}
	// auditKey, when set (UseAuditKey), keys the audit chain; auditKeyFile
	// is where to create it on the first write (UseAuditKeyFile).
	keyMu        sync.Mutex
	auditKey     []byte
	auditKeyFile string
	// Now is the clock; tests replace it.
	Now func() time.Time
}

// Open opens (creating if needed) the database at path and applies pending
// migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	// Create the file ourselves, 0600: SQLite would use 0644 less the umask,
	// and gives its -wal and -shm files the database file's mode.
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("store: create %s: %w", path, err)
	}
	db, err := open(ctx, path, false)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenReadOnly opens an existing database for queries only: auditors' tools
// use it so that they can never change what they inspect.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store: no database at %s (set paths.db or --db; fracd serve creates it): %w", path, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db, err := open(ctx, path, true)
	if err != nil {
		return nil, err
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'schema_migrations'`).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if n == 0 {
		db.Close()
		return nil, fmt.Errorf("store: %s is not a fracd database (no schema_migrations table)", path)
	}
	return db, nil
}

func open(ctx context.Context, path string, readOnly bool) (*DB, error) {
	q := url.Values{}
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", "10000")
	if readOnly {
		q.Set("mode", "ro")
	} else {
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "FULL")
		// IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue
		// on the busy timeout instead of failing on lock upgrade.
		q.Set("_txlock", "immediate")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	sqlDB, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Connections stay open between uses: database/sql keeps 2 idle by
	// default, and the daemon's workers, its HTTP server and its pollers
	// may use more at once; connections beyond the idle limit are closed
	// after each use and opened again (files, pragmas) on the next.
	sqlDB.SetMaxIdleConns(16)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &DB{sql: sqlDB, readOnly: readOnly, writer: make(chan struct{}, 1), Now: time.Now}, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

// SQL exposes the handle for read-only ad-hoc queries (tests, exports).
func (db *DB) SQL() *sql.DB { return db.sql }

func (db *DB) now() string { return db.Now().UTC().Format(TimeFormat) }

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: migration %q must start with a number and '_'", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies, each in its own transaction, the migrations newer than the
// recorded version.
func (db *DB) migrate(ctx context.Context) error {
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("store: create schema_migrations: %w", err)
	}
	ms, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := db.update(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`, m.version, m.name, db.now())
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
	}
	return nil
}

// SchemaVersion is the newest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := db.sql.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	return int(v.Int64), err
}

func (db *DB) update(ctx context.Context, fn func(*sql.Tx) error) error {
	if db.readOnly {
		return errors.New("store: database opened read-only")
	}
	select {
	case db.writer <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-db.writer }()
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Tx is one write transaction. Each change made through it should append its
// audit row through the same Tx.
type Tx struct {
	tx *sql.Tx
	db *DB
}

// Update runs fn in one write transaction, committing if fn returns nil.
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	return db.update(ctx, func(tx *sql.Tx) error { return fn(&Tx{tx: tx, db: db}) })
}
