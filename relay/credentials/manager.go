package credentials

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/mcc-bridge/bridge/connectors"
)

// Manager is the relay's credential manager. It implements
// connectors.Credentials. It is safe for concurrent use, and several
// Managers (processes) may share one Config.Dir.
type Manager struct {
	cfg       Config
	log       *slog.Logger
	met       *Metrics
	db        *sql.DB
	get       *sql.Stmt // getRowSQL, the hot path's query
	vault     *vault
	providers map[string]Provider
	oauth     map[string]*oauth2.Config   // refresh configs by system; they remember auto-detected auth styles
	services  map[string]*preparedService // by serviceKey(system, tenant)
	owner     string
	tokenHTTP *http.Client // cfg.HTTPClient reading ok:false answers as RFC 6749 errors

	// flights coalesces refreshes (key "r|tenant|system") and service
	// token requests (key "s|tenant|system") in this process.
	flights singleflight.Group

	svcMu     sync.Mutex
	svcTokens map[string]svcToken // guarded by svcMu

	hooks  hooks // set by tests (export_test.go) before use
	closed atomic.Bool

	// closeMu orders flights starting (inflight.Add) before Close's
	// inflight.Wait: a refresh holding new rotating tokens finishes its
	// commit before the database closes.
	closeMu  sync.Mutex
	inflight sync.WaitGroup
}

// hooks let tests stop a refresh at its critical points.
type hooks struct {
	// beforeTokenRequest runs with the lease held, just before the
	// refresh request is sent.
	beforeTokenRequest func(tenant, system string)
	// afterTokenResponse runs after a successful token response and
	// before the commit; an error aborts the refresh there, as a crash
	// would (nothing is written, the lease is left to expire).
	afterTokenResponse func(tenant, system string) error
}

var _ connectors.Credentials = (*Manager)(nil)

// New opens (creating) Config.Dir/credentials.db with the master key and
// returns a Manager. A master key other than the one the database was
// sealed with is refused (ErrWrongMasterKey).
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	cfg = cfg.withDefaults()
	key, err := readMasterKey(cfg)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	m := &Manager{
		cfg: cfg, log: cfg.Logger, met: cfg.Metrics,
		providers: map[string]Provider{}, oauth: map[string]*oauth2.Config{}, services: map[string]*preparedService{},
		svcTokens: map[string]svcToken{}, owner: cfg.Owner, tokenHTTP: tokenClient(cfg.HTTPClient),
	}
	for _, p := range cfg.Providers {
		m.providers[p.System] = p
		m.oauth[p.System] = oauthConfig(p, "")
	}
	for _, s := range cfg.Services {
		ps, _ := s.prepare() // validated above
		m.services[serviceKey(s.System, s.Tenant)] = ps
	}
	if m.owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		m.owner = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if m.db, err = openDB(ctx, cfg.Dir, cfg.BusyTimeout); err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	if m.vault, err = newVault(ctx, m.db, key, m.nowMS); err != nil {
		m.db.Close()
		return nil, fmt.Errorf("credentials: %s: %w", cfg.Dir, err)
	}
	if m.get, err = m.db.PrepareContext(ctx, getRowSQL); err != nil {
		m.db.Close()
		return nil, fmt.Errorf("credentials: %s: %w", cfg.Dir, err)
	}
	m.recount(ctx)
	return m, nil
}

// Close waits for refreshes in flight (each is bounded by LeaseDuration +
// MaxRefreshDuration), then closes the database. It is idempotent; Run
// must have returned.
func (m *Manager) Close() error {
	m.closeMu.Lock()
	already := m.closed.Swap(true)
	m.closeMu.Unlock()
	if already {
		return nil
	}
	m.inflight.Wait()
	m.get.Close()
	return m.db.Close()
}

// enter registers a flight; false means the Manager is closed.
func (m *Manager) enter() bool {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed.Load() {
		return false
	}
	m.inflight.Add(1)
	return true
}

// Owner is this Manager's name in refresh leases.
func (m *Manager) Owner() string { return m.owner }

func (m *Manager) now() time.Time { return m.cfg.Now() }
func (m *Manager) nowMS() int64   { return ms(m.cfg.Now()) }

func (m *Manager) check(tenant, system string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	if err := checkName("tenant", tenant); err != nil {
		return err
	}
	return checkName("system", system)
}

// Credential returns a credential for the request's tenant, system and
// pattern:
//
//   - connectors.IntegrationOwner (or empty): the tenant's connection to
//     the system (OAuth, refreshed first when it expires within
//     RefreshAhead, or an API key);
//   - connectors.ServiceToService: the Service configured for the system
//     (and tenant), else the tenant's API-key connection.
//
// When there is no usable connection the error wraps
// connectors.ErrNoCredential (and ErrReauthorize when the integration
// owner must authorize again).
func (m *Manager) Credential(ctx context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	if err := m.check(req.Tenant, req.System); err != nil {
		return connectors.Credential{}, fmt.Errorf("credential: %w", err)
	}
	switch req.Pattern {
	case connectors.ServiceToService:
		if s := m.service(req.System, req.Tenant); s != nil {
			return m.serviceCredential(ctx, req, s)
		}
		return m.ownerCredential(ctx, req, true)
	case connectors.IntegrationOwner, "":
		return m.ownerCredential(ctx, req, false)
	default:
		return connectors.Credential{}, fmt.Errorf("credential for tenant %s, system %s: unknown pattern %q: %w",
			req.Tenant, req.System, req.Pattern, connectors.ErrNoCredential)
	}
}

// ownerCredential serves the tenant's stored connection; apiKeyOnly is set
// for service-to-service requests, which an OAuth connection does not serve.
func (m *Manager) ownerCredential(ctx context.Context, req connectors.CredentialRequest, apiKeyOnly bool) (connectors.Credential, error) {
	r, err := m.getRow(ctx, req.Tenant, req.System)
	if errors.Is(err, errNoRow) || (err == nil && apiKeyOnly && r.method != MethodAPIKey) {
		return connectors.Credential{}, fmt.Errorf("credential for tenant %s, system %s (%s): %w",
			req.Tenant, req.System, patternName(req.Pattern), connectors.ErrNoCredential)
	}
	if err != nil {
		return connectors.Credential{}, fmt.Errorf("credential: %w", err)
	}
	if err := r.usable(); err != nil {
		return connectors.Credential{}, fmt.Errorf("credential: %w: %w", err, connectors.ErrNoCredential)
	}
	now := m.now()
	if r.due(now, m.cfg.RefreshAhead) && !(r.nextAttempt > ms(now) && r.valid(now)) {
		if r, err = m.refreshShared(ctx, req.Tenant, req.System, m.cfg.RefreshAhead); err != nil {
			return connectors.Credential{}, err
		}
	}
	return m.credentialOf(ctx, r, req.Pattern)
}

// Reject drops cred, which the system refused before its expiry (the
// vendor revoked or rotated it): a cached service token is forgotten, and
// an owner's stored access token is marked expired so that the next
// Credential refreshes it (once, across processes, as any refresh). A
// credential that was already replaced is left alone.
func (m *Manager) Reject(ctx context.Context, req connectors.CredentialRequest, cred connectors.Credential) error {
	if err := m.check(req.Tenant, req.System); err != nil {
		return fmt.Errorf("reject: %w", err)
	}
	if req.Pattern == connectors.ServiceToService {
		if s := m.service(req.System, req.Tenant); s != nil {
			key := "s|" + req.Tenant + "|" + req.System
			m.svcMu.Lock()
			if t, ok := m.svcTokens[key]; ok && t.cred.Token == cred.Token {
				delete(m.svcTokens, key)
			}
			m.svcMu.Unlock()
			m.log.Info("service token refused by the system; a new one is fetched", "tenant", req.Tenant, "system", req.System)
			return nil
		}
	}
	r, err := m.getRow(ctx, req.Tenant, req.System)
	if err != nil || r.method != MethodOAuth2 {
		return nil // nothing to refresh: an API key stays until replaced
	}
	tok, err := m.vault.open(ctx, r.tenant, r.system, fieldAccess, r.access)
	if err != nil || tok != cred.Token {
		return nil
	}
	// No version bump: a refresh in flight keeps its fencing version and
	// simply overwrites this.
	if _, err := m.db.ExecContext(ctx, `UPDATE connections SET expiry = ? WHERE tenant = ? AND system = ? AND version = ? AND expiry > ?`,
		m.nowMS()-1, req.Tenant, req.System, r.version, m.nowMS()-1); err != nil {
		return fmt.Errorf("reject: %w", err)
	}
	m.log.Info("access token refused by the system before its expiry; refreshing", "tenant", req.Tenant, "system", req.System)
	return nil
}

func patternName(p connectors.AuthPattern) string {
	if p == "" {
		return string(connectors.IntegrationOwner)
	}
	return string(p)
}

// credentialOf opens r's token into a Credential.
func (m *Manager) credentialOf(ctx context.Context, r *row, p connectors.AuthPattern) (connectors.Credential, error) {
	if p == "" {
		p = connectors.IntegrationOwner
	}
	field := fieldAccess
	if r.method == MethodAPIKey {
		field = fieldAPIKey
	}
	tok, err := m.vault.open(ctx, r.tenant, r.system, field, r.access)
	if err != nil {
		return connectors.Credential{}, fmt.Errorf("credential: %w", err)
	}
	if tok == "" {
		return connectors.Credential{}, fmt.Errorf("credential for tenant %s, system %s: no token stored: %w", r.tenant, r.system, connectors.ErrNoCredential)
	}
	c := connectors.Credential{Pattern: p, Method: string(r.method), Token: tok, Subject: r.subject}
	if r.method == MethodOAuth2 {
		c.Expires = fromMS(r.expiry)
	}
	if v := r.values(); len(v) > 0 {
		c.Values = make(map[string]connectors.Secret, len(v))
		for k, s := range v {
			c.Values[k] = connectors.Secret(s)
		}
	}
	if r.header != "" {
		if c.Values == nil {
			c.Values = map[string]connectors.Secret{}
		}
		c.Values["header"] = connectors.Secret(r.header)
	}
	return c, nil
}

// List returns the tenant's connections, ordered by system. Views carry no
// secret.
func (m *Manager) List(ctx context.Context, tenant string) ([]Connection, error) {
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkName("tenant", tenant); err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	rows, err := m.db.QueryContext(ctx, `SELECT `+rowColumns+` FROM connections WHERE tenant = ? ORDER BY system`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list connections of tenant %s: %w", tenant, err)
	}
	defer rows.Close()
	out := []Connection{}
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, fmt.Errorf("list connections of tenant %s: %w", tenant, err)
		}
		out = append(out, r.view())
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list connections of tenant %s: %w", tenant, err)
	}
	return out, nil
}

// Get returns the tenant's connection to the system (ErrNotFound when
// there is none). The view carries no secret.
func (m *Manager) Get(ctx context.Context, tenant, system string) (Connection, error) {
	if err := m.check(tenant, system); err != nil {
		return Connection{}, fmt.Errorf("get connection: %w", err)
	}
	r, err := m.getRow(ctx, tenant, system)
	if errors.Is(err, errNoRow) {
		return Connection{}, fmt.Errorf("get connection %s/%s: %w", tenant, system, ErrNotFound)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("get connection: %w", err)
	}
	return r.view(), nil
}

// Revoke deletes the connection's tokens (and pending authorizations) and
// marks it REVOKED; a refresh in flight elsewhere is fenced out. It does
// not revoke the grant at the provider.
func (m *Manager) Revoke(ctx context.Context, tenant, system string) (Connection, error) {
	if err := m.check(tenant, system); err != nil {
		return Connection{}, fmt.Errorf("revoke connection: %w", err)
	}
	now := m.nowMS()
	res, err := m.db.ExecContext(ctx, `UPDATE connections SET state = ?, access_token = NULL, refresh_token = NULL,
		expiry = 0, extra = '', version = version + 1, token_gen = token_gen + 1, lease_owner = '', lease_until = 0, failures = 0, next_attempt = 0,
		last_error = '', updated_at = ? WHERE tenant = ? AND system = ?`, StateRevoked, now, tenant, system)
	if err != nil {
		return Connection{}, fmt.Errorf("revoke connection %s/%s: %w", tenant, system, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Connection{}, fmt.Errorf("revoke connection %s/%s: %w", tenant, system, ErrNotFound)
	}
	if _, err := m.db.ExecContext(ctx, `DELETE FROM oauth_states WHERE tenant = ? AND system = ?`, tenant, system); err != nil {
		return Connection{}, fmt.Errorf("revoke connection %s/%s: %w", tenant, system, err)
	}
	m.log.Info("connection revoked", "tenant", tenant, "system", system)
	m.recount(ctx)
	return m.Get(ctx, tenant, system)
}

// APIKey describes an API key given to SetAPIKey.
type APIKey struct {
	// Key is the key.
	Key connectors.Secret
	// Header, when set, is the HTTP header the key goes in; it is handed
	// out as Values["header"].
	Header string
	// RotateBy is when the key must be rotated; an alert is sent
	// Config.APIKeyReminder before it. Zero means no reminder.
	RotateBy time.Time
	// Subject is who the key acts as, for the audit record.
	Subject string
}

// SetAPIKey stores (or replaces) the tenant's API key for the system, as
// an ACTIVE api-key connection.
func (m *Manager) SetAPIKey(ctx context.Context, tenant, system string, k APIKey) (Connection, error) {
	if err := m.check(tenant, system); err != nil {
		return Connection{}, fmt.Errorf("set API key: %w", err)
	}
	if k.Key == "" {
		return Connection{}, fmt.Errorf("set API key for %s/%s: %w: the key is empty", tenant, system, ErrInvalid)
	}
	sealed, err := m.vault.seal(ctx, tenant, system, fieldAPIKey, k.Key)
	if err != nil {
		return Connection{}, fmt.Errorf("set API key for %s/%s: %w", tenant, system, err)
	}
	now := m.nowMS()
	_, err = m.db.ExecContext(ctx, `INSERT INTO connections (tenant, system, method, state, subject, access_token, header,
		rotate_by, version, token_gen, created_at, updated_at, authorized_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 1, ?, ?, ?)
		ON CONFLICT (tenant, system) DO UPDATE SET method = excluded.method, state = excluded.state, subject = excluded.subject,
		access_token = excluded.access_token, refresh_token = NULL, expiry = 0, extra = '', scopes = '', token_url = '',
		client_id = '', header = excluded.header, rotate_by = excluded.rotate_by, reminded_at = 0, version = version + 1,
		token_gen = token_gen + 1, lease_owner = '', lease_until = 0, failures = 0, next_attempt = 0, last_error = '', updated_at = excluded.updated_at,
		authorized_at = excluded.authorized_at`,
		tenant, system, MethodAPIKey, StateActive, k.Subject, sealed, k.Header, ms(k.RotateBy), now, now, now)
	if err != nil {
		return Connection{}, fmt.Errorf("set API key for %s/%s: %w", tenant, system, err)
	}
	m.recount(ctx)
	return m.Get(ctx, tenant, system)
}

// recount sets bridge_credentials_connections from the store.
func (m *Manager) recount(ctx context.Context) {
	if m.met == nil {
		return
	}
	rows, err := m.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM connections GROUP BY state`)
	if err != nil {
		m.log.Warn("count connections", "err", err)
		return
	}
	defer rows.Close()
	counts := map[State]int{}
	for rows.Next() {
		var s State
		var n int
		if rows.Scan(&s, &n) == nil {
			counts[s] = n
		}
	}
	m.met.setConnections(counts)
}

// copyValues gives each caller its own Values map.
func copyValues(c connectors.Credential) connectors.Credential {
	if c.Values != nil {
		c.Values = maps.Clone(c.Values)
	}
	return c
}
