package credentials

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DBFile is the database's file name in Config.Dir.
const DBFile = "credentials.db"

// schema is applied at every open; statements are idempotent.
const schema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS data_keys (
	tenant     TEXT PRIMARY KEY,
	wrapped    BLOB NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS connections (
	tenant        TEXT NOT NULL,
	system        TEXT NOT NULL,
	method        TEXT NOT NULL,
	state         TEXT NOT NULL,
	scopes        TEXT NOT NULL DEFAULT '',
	token_url     TEXT NOT NULL DEFAULT '',
	client_id     TEXT NOT NULL DEFAULT '',
	subject       TEXT NOT NULL DEFAULT '',
	access_token  BLOB,
	refresh_token BLOB,
	expiry        INTEGER NOT NULL DEFAULT 0,
	extra         TEXT NOT NULL DEFAULT '',
	header        TEXT NOT NULL DEFAULT '',
	rotate_by     INTEGER NOT NULL DEFAULT 0,
	reminded_at   INTEGER NOT NULL DEFAULT 0,
	version       INTEGER NOT NULL DEFAULT 0,
	token_gen     INTEGER NOT NULL DEFAULT 0,
	lease_owner   TEXT NOT NULL DEFAULT '',
	lease_until   INTEGER NOT NULL DEFAULT 0,
	failures      INTEGER NOT NULL DEFAULT 0,
	next_attempt  INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL,
	authorized_at INTEGER NOT NULL DEFAULT 0,
	refreshed_at  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, system)
);
CREATE INDEX IF NOT EXISTS connections_expiry ON connections(state, expiry);
CREATE TABLE IF NOT EXISTS oauth_states (
	state_hash   TEXT PRIMARY KEY,
	tenant       TEXT NOT NULL,
	system       TEXT NOT NULL,
	redirect_url TEXT NOT NULL,
	subject      TEXT NOT NULL DEFAULT '',
	verifier     BLOB NOT NULL,
	expires_at   INTEGER NOT NULL,
	created_at   INTEGER NOT NULL
);
`

// openDB opens (creating) dir/credentials.db: WAL, so readers never wait
// for the writer; synchronous=FULL, so a committed token survives a power
// cut; a busy timeout, so processes sharing the file queue for its write
// lock; and immediate transactions, so a read-then-write never fails on a
// lock upgrade.
func openDB(ctx context.Context, dir string, busy time.Duration) (*sql.DB, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(abs, "?#") {
		return nil, fmt.Errorf("%w: the path %s must not contain ? or #", ErrConfig, abs)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	path := filepath.Join(abs, DBFile)
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	tx, err := db.BeginTx(ctx, nil)
	if err == nil {
		if _, err = tx.ExecContext(ctx, schema); err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: schema: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// row is one connection as stored. Secrets are sealed.
type row struct {
	tenant, system  string
	method          Method
	state           State
	scopes          string
	tokenURL        string
	clientID        string
	subject         string
	access, refresh []byte
	expiry          int64 // unix ms; 0: unknown or never
	extra           string
	header          string
	rotateBy        int64
	remindedAt      int64
	version         int64 // fencing version, bumped by every write
	tokenGen        int64 // bumped by every write of new tokens
	leaseOwner      string
	leaseUntil      int64
	failures        int
	nextAttempt     int64
	lastError       string
	createdAt       int64
	updatedAt       int64
	authorizedAt    int64
	refreshedAt     int64
}

const rowColumns = `tenant, system, method, state, scopes, token_url, client_id, subject, access_token, refresh_token,
	expiry, extra, header, rotate_by, reminded_at, version, token_gen, lease_owner, lease_until, failures, next_attempt,
	last_error, created_at, updated_at, authorized_at, refreshed_at`

type scanner interface{ Scan(dest ...any) error }

func scanRow(s scanner) (*row, error) {
	r := &row{}
	err := s.Scan(&r.tenant, &r.system, &r.method, &r.state, &r.scopes, &r.tokenURL, &r.clientID, &r.subject,
		&r.access, &r.refresh, &r.expiry, &r.extra, &r.header, &r.rotateBy, &r.remindedAt, &r.version,
		&r.tokenGen, &r.leaseOwner, &r.leaseUntil, &r.failures, &r.nextAttempt, &r.lastError, &r.createdAt, &r.updatedAt,
		&r.authorizedAt, &r.refreshedAt)
	return r, err
}

var errNoRow = errors.New("no such connection")

// getRowSQL reads one connection; Manager.get is it prepared.
const getRowSQL = `SELECT ` + rowColumns + ` FROM connections WHERE tenant = ? AND system = ?`

func (m *Manager) getRow(ctx context.Context, tenant, system string) (*row, error) {
	r, err := scanRow(m.get.QueryRowContext(ctx, tenant, system))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoRow
	}
	if err != nil {
		return nil, fmt.Errorf("read connection %s/%s: %w", tenant, system, err)
	}
	return r, nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// usable reports whether the connection can give out a credential.
func (r *row) usable() error {
	switch r.state {
	case StateActive, StateRefreshing:
		return nil
	case StateInitial:
		return fmt.Errorf("the connection of tenant %s to %s was never authorized", r.tenant, r.system)
	case StateExpired, StateAlert:
		return fmt.Errorf("the connection of tenant %s to %s expired (%s): %w", r.tenant, r.system, r.lastError, ErrReauthorize)
	case StateRevoked:
		return fmt.Errorf("the connection of tenant %s to %s was revoked", r.tenant, r.system)
	default:
		return fmt.Errorf("the connection of tenant %s to %s is in unknown state %q", r.tenant, r.system, r.state)
	}
}

// expirySkew: a token that expires within it is no longer handed out as
// valid, leaving the caller time to use it.
const expirySkew = 10 * time.Second

// valid reports whether the access token still works at now.
func (r *row) valid(now time.Time) bool {
	return r.access != nil && (r.expiry == 0 || r.expiry > ms(now.Add(expirySkew)))
}

// due reports whether the token should be refreshed: it expires within ahead.
func (r *row) due(now time.Time, ahead time.Duration) bool {
	return r.method == MethodOAuth2 && r.expiry != 0 && r.expiry <= ms(now.Add(ahead))
}

// leasedElsewhere reports whether another process holds the refresh lease.
func (r *row) leasedElsewhere(now time.Time, owner string) bool {
	return r.leaseOwner != "" && r.leaseOwner != owner && r.leaseUntil > ms(now)
}

func (r *row) values() map[string]string {
	if r.extra == "" {
		return nil
	}
	var v map[string]string
	if json.Unmarshal([]byte(r.extra), &v) != nil {
		return nil
	}
	return v
}

// Connection is what admin operations show of a connection: metadata
// only. It has no field that could hold a secret.
type Connection struct {
	Tenant string `json:"tenant"`
	System string `json:"system"`
	Method Method `json:"method"`
	State  State  `json:"state"`
	// Scopes are those granted (or requested, when the provider did not say).
	Scopes []string `json:"scopes,omitempty"`
	// TokenURL and ClientID name the provider configuration used.
	TokenURL string `json:"tokenUrl,omitempty"`
	ClientID string `json:"clientId,omitempty"`
	// Subject is who authorized the connection (or the key's owner).
	Subject string `json:"subject,omitempty"`
	// HasAccessToken and HasRefreshToken say whether the secrets are stored.
	HasAccessToken  bool `json:"hasAccessToken"`
	HasRefreshToken bool `json:"hasRefreshToken"`
	// Expires is when the access token expires; zero means unknown or never.
	Expires time.Time `json:"expires,omitzero"`
	// RotateBy is an API key's rotation date.
	RotateBy time.Time `json:"rotateBy,omitzero"`
	// Version is the fencing version, bumped by every write.
	Version int64 `json:"version"`
	// LeaseOwner and LeaseUntil name the process refreshing the token.
	LeaseOwner string    `json:"leaseOwner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitzero"`
	// Failures counts refreshes failed in a row; NextAttempt is when the
	// next is tried while the token is still valid.
	Failures    int       `json:"failures,omitempty"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	// LastError is the last refresh failure (an error code, never a secret).
	LastError    string    `json:"lastError,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
	AuthorizedAt time.Time `json:"authorizedAt,omitzero"`
	RefreshedAt  time.Time `json:"refreshedAt,omitzero"`
}

func (r *row) view() Connection {
	c := Connection{
		Tenant: r.tenant, System: r.system, Method: r.method, State: r.state,
		TokenURL: r.tokenURL, ClientID: r.clientID, Subject: r.subject,
		HasAccessToken: r.access != nil, HasRefreshToken: r.refresh != nil,
		Expires: fromMS(r.expiry), RotateBy: fromMS(r.rotateBy), Version: r.version,
		LeaseOwner: r.leaseOwner, LeaseUntil: fromMS(r.leaseUntil), Failures: r.failures,
		NextAttempt: fromMS(r.nextAttempt), LastError: r.lastError,
		CreatedAt: fromMS(r.createdAt), UpdatedAt: fromMS(r.updatedAt),
		AuthorizedAt: fromMS(r.authorizedAt), RefreshedAt: fromMS(r.refreshedAt),
	}
	if r.scopes != "" {
		c.Scopes = strings.Fields(r.scopes)
	}
	return c
}
