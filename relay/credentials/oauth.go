package credentials

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/connectors"
)

// StartAuthorization begins the integration owner's authorization-code
// flow (RFC 6749 4.1, with PKCE S256, RFC 7636) for the tenant's
// connection to the system. It stores a random state with the sealed code
// verifier, valid for Config.StateTTL, and returns the provider's
// authorization URL to send the integration owner's browser to; the
// provider redirects back to redirectURL with the state and a code, for
// CompleteAuthorization.
func (m *Manager) StartAuthorization(ctx context.Context, tenant, system, redirectURL string) (string, error) {
	return m.StartAuthorizationAs(ctx, tenant, system, redirectURL, "")
}

// StartAuthorizationAs is StartAuthorization recording subject (who is
// authorizing) as the connection's Subject once it completes.
func (m *Manager) StartAuthorizationAs(ctx context.Context, tenant, system, redirectURL, subject string) (string, error) {
	if err := m.check(tenant, system); err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	p, ok := m.providers[system]
	if !ok {
		return "", fmt.Errorf("start authorization for %s/%s: %w", tenant, system, ErrUnknownSystem)
	}
	if err := checkHTTPURL(redirectURL); err != nil {
		return "", fmt.Errorf("start authorization: %w: redirect URL: %w", ErrInvalid, err)
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	state := base64.RawURLEncoding.EncodeToString(b[:])
	verifier := oauth2.GenerateVerifier()
	sealed, err := m.vault.seal(ctx, tenant, system, fieldVerifier, connectors.Secret(verifier))
	if err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	now := m.now()
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO oauth_states (state_hash, tenant, system, redirect_url, subject, verifier,
		expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		hashState(state), tenant, system, redirectURL, subject, sealed, ms(now.Add(m.cfg.StateTTL)), ms(now)); err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	// A connection that never existed, or was revoked, starts INITIAL; a
	// working one stays as it is until the new authorization completes.
	if _, err := tx.ExecContext(ctx, `INSERT INTO connections (tenant, system, method, state, scopes, token_url, client_id,
		version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
		ON CONFLICT (tenant, system) DO UPDATE SET state = excluded.state, method = excluded.method,
		version = version + 1, updated_at = excluded.updated_at WHERE state = ?`,
		tenant, system, MethodOAuth2, StateInitial, strings.Join(p.Scopes, " "), p.TokenURL, p.ClientID, ms(now), ms(now),
		StateRevoked); err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("start authorization: %w", err)
	}
	m.recount(ctx)
	return oauthConfig(p, redirectURL).AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

// dropState deletes a pending authorization (the owner declined it).
func (m *Manager) dropState(ctx context.Context, state string) {
	if state == "" || m.closed.Load() {
		return
	}
	if _, err := m.db.ExecContext(ctx, `DELETE FROM oauth_states WHERE state_hash = ?`, hashState(state)); err != nil {
		m.log.Warn("drop authorization state", "err", err)
	}
}

// hashState is how a state is stored: its SHA-256, so that the database
// does not hold a state that could complete an authorization.
func hashState(state string) string {
	h := sha256.Sum256([]byte(state))
	return hex.EncodeToString(h[:])
}

// CompleteAuthorization finishes the flow StartAuthorization began: it
// consumes the state (single use: a second call with it fails with
// ErrInvalidState; after StateTTL, ErrStateExpired), exchanges the code
// with the code verifier, and stores the tokens as the tenant's ACTIVE
// connection (fencing out any refresh in flight).
func (m *Manager) CompleteAuthorization(ctx context.Context, state, code string) (Connection, error) {
	if m.closed.Load() {
		return Connection{}, ErrClosed
	}
	if state == "" || code == "" {
		return Connection{}, fmt.Errorf("complete authorization: %w: state and code are required", ErrInvalid)
	}
	var tenant, system, redirectURL, subject string
	var sealed []byte
	var expires int64
	err := m.db.QueryRowContext(ctx, `DELETE FROM oauth_states WHERE state_hash = ?
		RETURNING tenant, system, redirect_url, subject, verifier, expires_at`, hashState(state)).
		Scan(&tenant, &system, &redirectURL, &subject, &sealed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Connection{}, fmt.Errorf("complete authorization: %w", ErrInvalidState)
	}
	if err != nil {
		return Connection{}, fmt.Errorf("complete authorization: %w", err)
	}
	if expires <= m.nowMS() {
		return Connection{}, fmt.Errorf("complete authorization for %s/%s: %w", tenant, system, ErrStateExpired)
	}
	p, ok := m.providers[system]
	if !ok {
		return Connection{}, fmt.Errorf("complete authorization for %s/%s: %w", tenant, system, ErrUnknownSystem)
	}
	verifier, err := m.vault.open(ctx, tenant, system, fieldVerifier, sealed)
	if err != nil {
		return Connection{}, fmt.Errorf("complete authorization: %w", err)
	}
	m.met.tokenRequest(system, "authorization_code")
	tok, err := oauthConfig(p, redirectURL).Exchange(context.WithValue(ctx, oauth2.HTTPClient, m.tokenHTTP),
		code, oauth2.VerifierOption(verifier.Reveal()))
	if err != nil {
		m.log.Warn("authorization code refused", "tenant", tenant, "system", system, "err", describeTokenError(err))
		return Connection{}, fmt.Errorf("complete authorization for %s/%s: %w (%s)", tenant, system, ErrExchange, describeTokenError(err))
	}
	nt, err := m.sealTokens(ctx, tenant, system, tok, p.ResponseValues, nil, "")
	if err != nil {
		return Connection{}, fmt.Errorf("complete authorization: %w", err)
	}
	if nt.scopes == "" {
		nt.scopes = strings.Join(p.Scopes, " ")
	}
	now := m.nowMS()
	_, err = m.db.ExecContext(ctx, `INSERT INTO connections (tenant, system, method, state, scopes, token_url, client_id,
		subject, access_token, refresh_token, expiry, extra, version, token_gen, created_at, updated_at, authorized_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, ?, ?, ?)
		ON CONFLICT (tenant, system) DO UPDATE SET method = excluded.method, state = excluded.state, scopes = excluded.scopes,
		token_url = excluded.token_url, client_id = excluded.client_id, subject = excluded.subject,
		access_token = excluded.access_token, refresh_token = excluded.refresh_token, expiry = excluded.expiry,
		extra = excluded.extra, header = '', rotate_by = 0, reminded_at = 0, version = version + 1, token_gen = token_gen + 1,
		lease_owner = '', lease_until = 0, failures = 0, next_attempt = 0, last_error = '',
		updated_at = excluded.updated_at, authorized_at = excluded.authorized_at`,
		tenant, system, MethodOAuth2, StateActive, nt.scopes, p.TokenURL, p.ClientID, subject,
		nt.access, nt.refresh, nt.expiry, nt.extra, now, now, now)
	if err != nil {
		return Connection{}, fmt.Errorf("complete authorization for %s/%s: store tokens: %w", tenant, system, err)
	}
	m.log.Info("connection authorized", "tenant", tenant, "system", system, "subject", subject)
	m.recount(ctx)
	return m.Get(ctx, tenant, system)
}
