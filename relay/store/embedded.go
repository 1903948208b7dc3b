package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Config tunes the embedded store. The zero value is ready to use.
type Config struct {
	// Logger receives schema migration and recovery messages. Nil discards them.
	Logger *slog.Logger
	// MaxTextBytes bounds how much of a plain-text blob is read and indexed
	// for full-text search. Zero means 1 MiB.
	MaxTextBytes int64
	// BusyTimeout is how long a database connection waits for a lock held
	// by another connection. Zero means 10 seconds.
	BusyTimeout time.Duration
	// ReadConns is the number of read-only connections, which run
	// concurrently with the single writer (WAL). Zero means 4.
	ReadConns int
	// Now returns the time recorded with blobs, batches and generations.
	// Nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxTextBytes < 0 || c.BusyTimeout < 0 || c.ReadConns < 0 {
		return c, errors.New("store config: max text bytes, busy timeout and read conns must not be negative")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxTextBytes == 0 {
		c.MaxTextBytes = 1 << 20
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = 10 * time.Second
	}
	if c.ReadConns == 0 {
		c.ReadConns = 4
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Embedded is the single-machine Store: a SQLite database (relay.db) and a
// blob directory (blobs/) under one directory, which one process owns.
//
// All methods are safe for concurrent use. Writes go through one
// connection (SQLite has one writer; transactions begin IMMEDIATE so they
// queue instead of failing), reads through a pool of read-only connections.
type Embedded struct {
	dir string
	cfg Config
	log *slog.Logger
	wdb *sql.DB // the single writer connection
	rdb *sql.DB // read-only connections
	cdb *sql.DB // the checkpointer's connection

	stopCheckpoints context.CancelFunc
	checkpoints     sync.WaitGroup

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// hook, when set by tests, runs at each stage of Apply's transaction;
	// an error aborts the transaction there, as a crash would.
	hook func(stage string, i int) error
}

var _ Store = (*Embedded)(nil)

// Database and directory names under the store directory.
const (
	dbFile  = "relay.db"
	blobDir = "blobs"
	tmpDir  = "tmp"
)

// Open opens (creating if needed) the store in dir, migrating its schema to
// the current version. Leftovers of interrupted blob uploads are removed.
func Open(ctx context.Context, dir string, cfg Config) (*Embedded, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("open store %s: the path must not contain ? or #", abs)
	}
	for _, d := range []string{abs, filepath.Join(abs, blobDir), filepath.Join(abs, tmpDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	e := &Embedded{dir: abs, cfg: cfg, log: cfg.Logger}
	if err := e.cleanTmp(); err != nil {
		return nil, err
	}

	dbPath := filepath.Join(abs, dbFile)
	common := url.Values{}
	common.Set("_busy_timeout", fmt.Sprint(cfg.BusyTimeout.Milliseconds()))
	common.Set("_foreign_keys", "1")
	common.Set("_synchronous", "FULL")
	w := url.Values{}
	for k, v := range common {
		w[k] = v
	}
	w.Set("_journal_mode", "WAL")
	w.Set("_txlock", "immediate")
	// The writer's page cache holds the hot part of the indexes and the
	// full-text segments across batches: 64 MiB instead of SQLite's 2 MiB.
	w.Add("_pragma", "cache_size(-65536)")
	// Commits do not checkpoint the WAL into the database (with its
	// fsyncs); a goroutine of the store does, off the ingest path.
	w.Add("_pragma", "wal_autocheckpoint(0)")
	r := url.Values{}
	for k, v := range common {
		r[k] = v
	}
	r.Set("_query_only", "1")

	if e.wdb, err = sql.Open("sqlite", dbPath+"?"+w.Encode()); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dbPath, err)
	}
	e.wdb.SetMaxOpenConns(1)
	e.wdb.SetMaxIdleConns(1)
	e.wdb.SetConnMaxLifetime(0)
	e.wdb.SetConnMaxIdleTime(0)
	if err := e.migrate(ctx); err != nil {
		e.wdb.Close()
		return nil, fmt.Errorf("open store %s: %w", dbPath, err)
	}
	if e.rdb, err = sql.Open("sqlite", dbPath+"?"+r.Encode()); err != nil {
		e.wdb.Close()
		return nil, fmt.Errorf("open store %s: %w", dbPath, err)
	}
	e.rdb.SetMaxOpenConns(cfg.ReadConns)
	e.rdb.SetMaxIdleConns(cfg.ReadConns)
	if err := e.rdb.PingContext(ctx); err != nil {
		e.wdb.Close()
		e.rdb.Close()
		return nil, fmt.Errorf("open store %s: %w", dbPath, err)
	}
	if e.cdb, err = sql.Open("sqlite", dbPath+"?"+common.Encode()); err != nil {
		e.wdb.Close()
		e.rdb.Close()
		return nil, fmt.Errorf("open store %s: %w", dbPath, err)
	}
	e.cdb.SetMaxOpenConns(1)
	cctx, cancel := context.WithCancel(context.Background())
	e.stopCheckpoints = cancel
	e.checkpoints.Add(1)
	go e.checkpointLoop(cctx, checkpointInterval)
	return e, nil
}

// checkpointInterval is how often the WAL is copied into the database.
const checkpointInterval = time.Second

// checkpointLoop copies committed WAL frames into the database file every
// interval (a passive checkpoint: it waits for no reader or writer), so
// that commits never pay for it.
func (e *Embedded) checkpointLoop(ctx context.Context, interval time.Duration) {
	defer e.checkpoints.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, err := e.cdb.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			e.log.Warn("store checkpoint failed; the WAL grows until one succeeds", "dir", e.dir, "err", err)
			failing = true
		case err == nil && failing:
			e.log.Info("store checkpoints work again", "dir", e.dir)
			failing = false
		}
	}
}

// migrate brings the schema to len(migrations), one transaction per step,
// and checks that the database runs in WAL mode.
func (e *Embedded) migrate(ctx context.Context) error {
	var mode string
	if err := e.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	if _, err := e.wdb.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	for {
		done, err := e.migrateOne(ctx)
		if err != nil || done {
			return err
		}
	}
}

func (e *Embedded) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := e.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	switch err := tx.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (0)"); err != nil {
			return false, fmt.Errorf("migrate: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("migrate: read version: %w", err)
	}
	if v > len(migrations) {
		return false, fmt.Errorf("database schema version %d is newer than this relay understands (%d)", v, len(migrations))
	}
	if v == len(migrations) {
		return true, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE schema_version SET version = ?", v+1); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migrate to version %d: %w", v+1, err)
	}
	e.log.Info("store schema migrated", "dir", e.dir, "version", v+1)
	return false, nil
}

// cleanTmp removes temp files of blob uploads that a crash interrupted.
func (e *Embedded) cleanTmp() error {
	d := filepath.Join(e.dir, tmpDir)
	ents, err := os.ReadDir(d)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	for _, ent := range ents {
		if err := os.Remove(filepath.Join(d, ent.Name())); err != nil {
			return fmt.Errorf("open store: remove leftover upload: %w", err)
		}
		e.log.Warn("removed an interrupted blob upload", "file", ent.Name())
	}
	return nil
}

// Close closes the database. It is idempotent.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		e.stopCheckpoints()
		e.checkpoints.Wait()
		e.closeErr = errors.Join(e.rdb.Close(), e.cdb.Close(), e.wdb.Close())
	})
	return e.closeErr
}

// Dir is the store's directory.
func (e *Embedded) Dir() string { return e.dir }

// begin checks that the store is open and the tenant well formed.
func (e *Embedded) begin(tenant string) error {
	if e.closed.Load() {
		return ErrClosed
	}
	return checkTenant(tenant)
}

// checkTenant accepts what tunnel.Identity accepts: a DNS label of
// lowercase letters, digits and inner hyphens, 1 to 63 characters. Tenants
// name directories, so nothing else may pass.
func checkTenant(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("%w: tenant must be 1 to 63 characters", ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%w: tenant: only lowercase letters, digits and inner hyphens are allowed", ErrInvalid)
		}
	}
	return nil
}

// ctxReader fails reads once ctx is done, so a cancelled upload stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
