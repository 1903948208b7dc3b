package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/connectors"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// dbFile is the database's name under Config.Dir.
const dbFile = "webhooks.db"

// Event states.
const (
	stateQueued    = "queued"
	stateDelivered = "delivered"
	stateDead      = "dead"
)

// schema is the database schema, version 1. Times are Unix nanoseconds.
const schema = `
CREATE TABLE hook_secrets (
	system     TEXT NOT NULL,
	tenant     TEXT NOT NULL,
	secret     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (system, tenant)
) WITHOUT ROWID;
CREATE TABLE seen_keys (
	key        BLOB PRIMARY KEY,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_keys_by_expiry ON seen_keys (expires_at);
CREATE TABLE events (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	system          TEXT NOT NULL,
	tenant          TEXT NOT NULL,
	received_at     INTEGER NOT NULL,
	content_type    TEXT NOT NULL DEFAULT '',
	body            BLOB NOT NULL,
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	state           TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'dead')),
	last_error      TEXT NOT NULL DEFAULT '',
	updated_at      INTEGER NOT NULL
);
CREATE INDEX events_by_state ON events (state, system, tenant, id);
PRAGMA user_version = 1;
`

// store is the Hub's SQLite database. All methods are safe for concurrent
// use: they share one connection (SQLite has one writer, and every
// statement here is short), so no method may hold rows open while calling
// another.
type store struct {
	db *sql.DB
}

// openStore opens (creating if needed) dir/webhooks.db.
func openStore(ctx context.Context, dir string) (*store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open webhook store: %w", err)
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, invalidf("open webhook store %s: the path must not contain ? or #", abs)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("open webhook store: %w", err)
	}
	path := filepath.Join(abs, dbFile)
	q := url.Values{}
	q.Set("_busy_timeout", "10000")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open webhook store %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s := &store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open webhook store %s: %w", path, err)
	}
	return s, nil
}

func (s *store) migrate(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	switch v {
	case 0:
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return fmt.Errorf("migrate to version 1: %w", err)
		}
	case 1:
	default:
		return fmt.Errorf("database schema version %d is newer than this relay understands (1)", v)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

func (s *store) close() error { return s.db.Close() }

// hookSecrets returns every stored Asana hook secret.
func (s *store) hookSecrets(ctx context.Context) (map[endpointKey]connectors.Secret, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT system, tenant, secret FROM hook_secrets")
	if err != nil {
		return nil, fmt.Errorf("load hook secrets: %w", err)
	}
	defer rows.Close()
	m := make(map[endpointKey]connectors.Secret)
	for rows.Next() {
		var k endpointKey
		var secret string
		if err := rows.Scan(&k.system, &k.tenant, &secret); err != nil {
			return nil, fmt.Errorf("load hook secrets: %w", err)
		}
		m[k] = connectors.Secret(secret)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load hook secrets: %w", err)
	}
	return m, nil
}

// putHookSecret stores secret for ep unless ep has one already. It
// reports whether ep's secret is now secret: true when stored, or when
// the same secret was stored before (a repeated handshake).
func (s *store) putHookSecret(ctx context.Context, ep endpointKey, secret connectors.Secret, now time.Time) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store hook secret: %w", err)
	}
	defer tx.Rollback()
	var old string
	switch err := tx.QueryRowContext(ctx, "SELECT secret FROM hook_secrets WHERE system = ? AND tenant = ?",
		ep.system, ep.tenant).Scan(&old); {
	case err == nil:
		return secretEqual(old, secret.Reveal()), nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("store hook secret: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO hook_secrets (system, tenant, secret, created_at) VALUES (?, ?, ?, ?)",
		ep.system, ep.tenant, secret.Reveal(), now.UnixNano()); err != nil {
		return false, fmt.Errorf("store hook secret: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store hook secret: %w", err)
	}
	return true, nil
}

// deleteHookSecret forgets ep's hook secret.
func (s *store) deleteHookSecret(ctx context.Context, ep endpointKey) error {
	if _, err := s.db.ExecContext(ctx, "DELETE FROM hook_secrets WHERE system = ? AND tenant = ?", ep.system, ep.tenant); err != nil {
		return fmt.Errorf("delete hook secret: %w", err)
	}
	return nil
}

// accept commits a verified event: it claims key until expires and, when
// the key was not claimed already, remembers sig (when set) and queues
// the event. replayed reports a claimed key (nothing queued).
func (s *store) accept(ctx context.Context, key, sig []byte, ev Event, expires time.Time) (id int64, replayed bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("queue event: %w", err)
	}
	defer tx.Rollback()
	now := ev.ReceivedAt.UnixNano()
	res, err := tx.ExecContext(ctx, `INSERT INTO seen_keys (key, expires_at) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE seen_keys.expires_at <= ?`,
		key, expires.UnixNano(), now)
	if err != nil {
		return 0, false, fmt.Errorf("queue event: claim replay key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, false, fmt.Errorf("queue event: claim replay key: %w", err)
	} else if n == 0 {
		return 0, true, tx.Commit()
	}
	if sig != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO seen_keys (key, expires_at) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`,
			sig, expires.UnixNano()); err != nil {
			return 0, false, fmt.Errorf("queue event: remember signature: %w", err)
		}
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO events
		(system, tenant, received_at, content_type, body, next_attempt_at, state, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 'queued', ?) RETURNING id`,
		ev.System, ev.Tenant, now, ev.ContentType, ev.Body, now, now).Scan(&id); err != nil {
		return 0, false, fmt.Errorf("queue event: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("queue event: %w", err)
	}
	return id, false, nil
}

// seen reports whether key is claimed and unexpired at now.
func (s *store) seen(ctx context.Context, key []byte, now time.Time) (bool, error) {
	var one int
	switch err := s.db.QueryRowContext(ctx, "SELECT 1 FROM seen_keys WHERE key = ? AND expires_at > ?",
		key, now.UnixNano()).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("look up seen key: %w", err)
	}
	return true, nil
}

// head is the oldest queued event of one endpoint.
type head struct {
	id            int64
	ep            endpointKey
	attempts      int
	nextAttemptAt time.Time
}

// heads returns the oldest queued event of every endpoint that has one.
func (s *store) heads(ctx context.Context) ([]head, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT e.id, e.system, e.tenant, e.attempts, e.next_attempt_at
		FROM (SELECT min(id) AS id FROM events WHERE state = 'queued' GROUP BY system, tenant) AS h
		JOIN events AS e ON e.id = h.id ORDER BY e.id`)
	if err != nil {
		return nil, fmt.Errorf("list queue heads: %w", err)
	}
	defer rows.Close()
	var hs []head
	for rows.Next() {
		var h head
		var next int64
		if err := rows.Scan(&h.id, &h.ep.system, &h.ep.tenant, &h.attempts, &next); err != nil {
			return nil, fmt.Errorf("list queue heads: %w", err)
		}
		h.nextAttemptAt = time.Unix(0, next)
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list queue heads: %w", err)
	}
	return hs, nil
}

// eventColumns are the columns scanEvent reads.
const eventColumns = "id, system, tenant, received_at, content_type, body, attempts, state, last_error, updated_at"

type scanner interface{ Scan(dest ...any) error }

// scanEvent reads one row of eventColumns.
func scanEvent(r scanner) (Event, string, string, time.Time, error) {
	var ev Event
	var received, updated int64
	var state, lastErr string
	if err := r.Scan(&ev.ID, &ev.System, &ev.Tenant, &received, &ev.ContentType, &ev.Body, &ev.Attempt,
		&state, &lastErr, &updated); err != nil {
		return Event{}, "", "", time.Time{}, err
	}
	ev.ReceivedAt = time.Unix(0, received)
	return ev, state, lastErr, time.Unix(0, updated), nil
}

// event loads event id, with Attempt the number of attempts made.
func (s *store) event(ctx context.Context, id int64) (Event, string, error) {
	ev, state, _, _, err := scanEvent(s.db.QueryRowContext(ctx, "SELECT "+eventColumns+" FROM events WHERE id = ?", id))
	if err != nil {
		return Event{}, "", fmt.Errorf("load event %d: %w", id, err)
	}
	return ev, state, nil
}

// finish records the outcome of attempt number attempts of queued event
// id: delivered, dead, or queued again for next.
func (s *store) finish(ctx context.Context, id int64, attempts int, state, lastErr string, next, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE events SET attempts = ?, state = ?, last_error = ?, next_attempt_at = ?, updated_at = ?
		WHERE id = ? AND state = 'queued'`,
		attempts, state, lastErr, next.UnixNano(), now.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("record delivery of event %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return fmt.Errorf("record delivery of event %d: the event is no longer queued", id)
	}
	return nil
}

// deadLetters lists dead events matching f, oldest first.
func (s *store) deadLetters(ctx context.Context, f Filter) ([]DeadLetter, error) {
	where, args := []string{"state = 'dead'", "id > ?"}, []any{f.AfterID}
	if f.System != "" {
		where, args = append(where, "system = ?"), append(args, f.System)
	}
	if f.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, f.Tenant)
	}
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(ctx, "SELECT "+eventColumns+" FROM events WHERE "+strings.Join(where, " AND ")+
		" ORDER BY id LIMIT ?", args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var dls []DeadLetter
	for rows.Next() {
		ev, _, lastErr, updated, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		dls = append(dls, DeadLetter{Event: ev, LastError: lastErr, DiedAt: updated})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return dls, nil
}

// replay queues again the dead events sel selects, for delivery from now
// with a fresh count of attempts, and returns how many there were.
func (s *store) replay(ctx context.Context, sel Selection, now time.Time) (int, error) {
	where, args := []string{"state = 'dead'"}, []any{now.UnixNano(), now.UnixNano()}
	if sel.System != "" {
		where, args = append(where, "system = ?"), append(args, sel.System)
	}
	if sel.Tenant != "" {
		where, args = append(where, "tenant = ?"), append(args, sel.Tenant)
	}
	if len(sel.IDs) > 0 {
		where = append(where, "id IN (SELECT value FROM json_each(?))")
		ids := make([]string, len(sel.IDs))
		for i, id := range sel.IDs {
			ids[i] = fmt.Sprint(id)
		}
		args = append(args, "["+strings.Join(ids, ",")+"]")
	}
	res, err := s.db.ExecContext(ctx, `UPDATE events SET state = 'queued', attempts = 0, last_error = '',
		next_attempt_at = ?, updated_at = ? WHERE `+strings.Join(where, " AND "), args...)
	if err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("replay dead letters: %w", err)
	}
	return int(n), nil
}

// prune deletes expired seen keys and the delivered events last updated
// before deliveredBefore, in batches so that the writer is never held long.
func (s *store) prune(ctx context.Context, now, deliveredBefore time.Time) (int64, error) {
	var total int64
	for _, q := range []struct {
		stmt string
		arg  int64
	}{
		{"DELETE FROM seen_keys WHERE key IN (SELECT key FROM seen_keys WHERE expires_at <= ? LIMIT 1000)", now.UnixNano()},
		{"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE state = 'delivered' AND updated_at <= ? LIMIT 1000)", deliveredBefore.UnixNano()},
	} {
		for {
			res, err := s.db.ExecContext(ctx, q.stmt, q.arg)
			if err != nil {
				return total, fmt.Errorf("prune webhook store: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return total, fmt.Errorf("prune webhook store: %w", err)
			}
			total += n
			if n < 1000 {
				break
			}
		}
	}
	return total, nil
}
