package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/connectors"
)

// refreshShared refreshes the connection once per process however many
// callers ask at once (singleflight); the store's lease makes it once
// across processes. The refresh runs on its own deadline
// (LeaseDuration + MaxRefreshDuration), not the first caller's, so one
// caller giving up does not fail the others; each caller waits at most
// until its own ctx ends.
func (m *Manager) refreshShared(ctx context.Context, tenant, system string, ahead time.Duration) (*row, error) {
	ch := m.flights.DoChan("r|"+tenant+"|"+system, func() (any, error) {
		if !m.enter() {
			return nil, ErrClosed
		}
		defer m.inflight.Done()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.LeaseDuration+m.cfg.MaxRefreshDuration)
		defer cancel()
		return m.refresh(fctx, tenant, system, ahead)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*row), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("refresh %s/%s: %w", tenant, system, ctx.Err())
	}
}

// refresh brings the connection's token to expire later than ahead from
// now, and returns the row to hand out. Only one goroutine of the process
// runs it for a connection at a time (refreshShared). The store's lease
// keeps other processes out:
//
//  1. read the row; if its token is not due, or another process holds
//     the lease and the token still works, return it; if another process
//     holds the lease and the token does not work, wait and read again;
//  2. take the lease: UPDATE ... SET lease_owner, lease_until,
//     version = version + 1 WHERE version = the version read (a
//     compare-and-swap; losing it means another process moved first:
//     read again);
//  3. refreshLeased: send the refresh token, then commit the new tokens
//     WHERE version = the lease's version, before the access token is
//     handed out.
func (m *Manager) refresh(ctx context.Context, tenant, system string, ahead time.Duration) (*row, error) {
	for {
		if m.closed.Load() {
			return nil, ErrClosed
		}
		r, err := m.getRow(ctx, tenant, system)
		if errors.Is(err, errNoRow) {
			return nil, fmt.Errorf("refresh %s/%s: %w", tenant, system, connectors.ErrNoCredential)
		}
		if err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
		if err := r.usable(); err != nil {
			return nil, fmt.Errorf("refresh: %w: %w", err, connectors.ErrNoCredential)
		}
		now := m.now()
		switch {
		case !r.due(now, ahead):
			return r, nil
		case r.nextAttempt > ms(now) && r.valid(now):
			return r, nil // backing off after failures; the token still works
		case r.refresh == nil:
			if r.valid(now) {
				return r, nil
			}
			if _, err := m.expire(ctx, r, r.version, "the access token expired and the provider gave no refresh token"); err != nil {
				return nil, err
			}
			continue // the next read reports the expired connection
		case r.leasedElsewhere(now, m.owner):
			if r.valid(now) {
				return r, nil
			}
			if err := sleep(ctx, m.cfg.LeasePoll); err != nil {
				return nil, &connectors.Error{Class: connectors.ClassUnavailable,
					Detail: fmt.Sprintf("the %s token of tenant %s expired and another relay process (%s) is still refreshing it", system, tenant, r.leaseOwner),
					Err:    fmt.Errorf("%w: %w", ErrRefreshFailed, err)}
			}
			continue
		}
		if r.leaseOwner != "" && r.leaseOwner != m.owner {
			m.log.Info("taking over an abandoned refresh lease", "tenant", tenant, "system", system, "owner", r.leaseOwner)
		}
		lv, ok, err := m.acquire(ctx, r, now)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // another process took the lease or wrote the row: read again
		}
		out, again, err := m.refreshLeased(ctx, r, lv)
		if again {
			continue
		}
		return out, err
	}
}

// acquire takes the refresh lease by compare-and-swap on r's version and
// returns the lease's version.
func (m *Manager) acquire(ctx context.Context, r *row, now time.Time) (int64, bool, error) {
	res, err := m.db.ExecContext(ctx, `UPDATE connections SET lease_owner = ?, lease_until = ?, version = version + 1,
		state = ?, updated_at = ? WHERE tenant = ? AND system = ? AND version = ?`,
		m.owner, ms(now.Add(m.cfg.LeaseDuration)), StateRefreshing, ms(now), r.tenant, r.system, r.version)
	if err != nil {
		return 0, false, fmt.Errorf("refresh %s/%s: take lease: %w", r.tenant, r.system, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, false, fmt.Errorf("refresh %s/%s: take lease: %w", r.tenant, r.system, err)
	}
	return r.version + 1, n == 1, nil
}

// refreshLeased refreshes r's token holding the lease of version lv. again
// means the store changed under the lease: the caller reads it again.
func (m *Manager) refreshLeased(ctx context.Context, r *row, lv int64) (out *row, again bool, err error) {
	// Writes after the token request are not cut short by ctx: new
	// rotating tokens must reach the store.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()

	p, ok := m.providers[r.system]
	if !ok {
		m.fail(wctx, r, lv, "no OAuth provider is configured for the system")
		return nil, false, fmt.Errorf("refresh %s/%s: %w", r.tenant, r.system, ErrUnknownSystem)
	}
	rt, err := m.vault.open(ctx, r.tenant, r.system, fieldRefresh, r.refresh)
	if err != nil {
		m.fail(wctx, r, lv, "the stored refresh token does not open")
		return nil, false, fmt.Errorf("refresh: %w", err)
	}
	if h := m.hooks.beforeTokenRequest; h != nil {
		h(r.tenant, r.system)
	}
	hctx, hcancel := context.WithTimeout(ctx, m.cfg.MaxRefreshDuration)
	tok, err := m.requestRefresh(hctx, p, rt)
	hcancel()
	if err != nil {
		desc := describeTokenError(err)
		if isInvalidGrant(err) {
			// Another process may have rotated the refresh token we sent:
			// only a row untouched since our lease makes it a real refusal.
			cur, gerr := m.getRow(wctx, r.tenant, r.system)
			if gerr == nil && cur.version != lv {
				m.release(wctx, r)
				m.met.refresh(r.system, ResultSuperseded)
				m.log.Info("refresh token refused, but the store changed meanwhile: reading it again",
					"tenant", r.tenant, "system", r.system, "lease_version", lv, "version", cur.version)
				return nil, true, nil
			}
			ok, xerr := m.expire(wctx, r, lv, "the provider refused the refresh token ("+desc+")")
			if xerr != nil {
				return nil, false, xerr
			}
			if !ok {
				return nil, true, nil
			}
			m.met.refresh(r.system, ResultInvalidGrant)
			return nil, false, fmt.Errorf("refresh %s/%s: the provider refused the refresh token: %w: %w",
				r.tenant, r.system, ErrReauthorize, connectors.ErrNoCredential)
		}
		m.met.refresh(r.system, ResultError)
		m.fail(wctx, r, lv, desc)
		if ctx.Err() == nil && r.valid(m.now()) {
			m.log.Warn("token refresh failed; the current token still works", "tenant", r.tenant, "system", r.system, "err", desc)
			return r, false, nil
		}
		m.log.Error("token refresh failed and the token expired", "tenant", r.tenant, "system", r.system, "err", desc)
		return nil, false, &connectors.Error{Class: connectors.ClassUnavailable,
			Detail: fmt.Sprintf("the %s token of tenant %s expired and could not be refreshed: %s", r.system, r.tenant, desc),
			Err:    ErrRefreshFailed}
	}
	if h := m.hooks.afterTokenResponse; h != nil {
		if err := h(r.tenant, r.system); err != nil {
			m.met.refresh(r.system, ResultAborted)
			return nil, false, fmt.Errorf("refresh %s/%s: aborted before commit: %w", r.tenant, r.system, err)
		}
	}
	nt, err := m.sealTokens(wctx, r.tenant, r.system, tok, p.ResponseValues, r.refresh, rt)
	if err != nil {
		m.met.refresh(r.system, ResultAborted)
		return nil, false, err
	}
	now := m.nowMS()
	res, err := m.db.ExecContext(wctx, `UPDATE connections SET access_token = ?, refresh_token = ?, expiry = ?, extra = ?,
		scopes = CASE WHEN ? = '' THEN scopes ELSE ? END, state = ?, version = version + 1, token_gen = token_gen + 1,
		lease_owner = '', lease_until = 0, failures = 0, next_attempt = 0, last_error = '', refreshed_at = ?, updated_at = ?
		WHERE tenant = ? AND system = ? AND version = ? AND lease_owner = ?`,
		nt.access, nt.refresh, nt.expiry, nt.extra, nt.scopes, nt.scopes, StateActive, now, now,
		r.tenant, r.system, lv, m.owner)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		m.met.refresh(r.system, ResultAborted)
		m.log.Error("new tokens could not be stored; the lease is left to expire", "tenant", r.tenant, "system", r.system, "err", err)
		return nil, false, fmt.Errorf("refresh %s/%s: commit: %w", r.tenant, r.system, err)
	}
	if n == 0 {
		// Fenced: the lease expired and another process took it (or an
		// administrator re-authorized or revoked). Our tokens are kept
		// only if nobody stored newer ones since those we refreshed.
		saved, err := m.salvage(wctx, r, nt)
		if err != nil {
			return nil, false, err
		}
		m.met.refresh(r.system, ResultFenced)
		m.log.Warn("refresh lease lost before the commit", "tenant", r.tenant, "system", r.system,
			"lease_version", lv, "kept_new_tokens", saved)
		return nil, true, nil
	}
	m.met.refresh(r.system, ResultOK)
	out, err = m.getRow(wctx, r.tenant, r.system)
	if err != nil {
		return nil, false, fmt.Errorf("refresh: %w", err)
	}
	m.log.Debug("token refreshed", "tenant", r.tenant, "system", r.system, "expires", fromMS(out.expiry))
	return out, false, nil
}

// newTokens are sealed tokens ready to store.
type newTokens struct {
	access, refresh []byte
	expiry          int64
	extra, scopes   string
}

// sealTokens seals tok for storage. A response without a refresh token (or
// with the same one) keeps oldSealed.
func (m *Manager) sealTokens(ctx context.Context, tenant, system string, tok *oauth2.Token, keep []string, oldSealed []byte, oldRT connectors.Secret) (newTokens, error) {
	var nt newTokens
	var err error
	if nt.access, err = m.vault.seal(ctx, tenant, system, fieldAccess, connectors.Secret(tok.AccessToken)); err != nil {
		return nt, err
	}
	nt.refresh = oldSealed
	if tok.RefreshToken != "" && connectors.Secret(tok.RefreshToken) != oldRT {
		if nt.refresh, err = m.vault.seal(ctx, tenant, system, fieldRefresh, connectors.Secret(tok.RefreshToken)); err != nil {
			return nt, err
		}
	}
	if life := lifetime(tok); life > 0 {
		nt.expiry = ms(m.now().Add(life))
	}
	if s, _ := tok.Extra("scope").(string); s != "" {
		nt.scopes = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }), " ")
	}
	vals := map[string]string{}
	for _, k := range keep {
		if v, ok := tok.Extra(k).(string); ok && v != "" {
			vals[k] = v
		}
	}
	if len(vals) > 0 {
		b, _ := json.Marshal(vals)
		nt.extra = string(b)
	}
	return nt, nil
}

// lifetime is the token's expires_in (zero when the provider gave none),
// to be added to the injected clock's now.
func lifetime(tok *oauth2.Token) time.Duration {
	if tok.ExpiresIn > 0 {
		return time.Duration(tok.ExpiresIn) * time.Second
	}
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		return time.Duration(v * float64(time.Second))
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	if !tok.Expiry.IsZero() { // computed by package oauth2 from the wall clock
		return time.Until(tok.Expiry)
	}
	return 0
}

// salvage stores tokens whose commit was fenced when nobody stored newer
// ones since the tokens r was read with (token_gen unchanged): the
// provider has just rotated the refresh token, so the stored one may no
// longer work and ours are the newest. A lease another process holds is
// left alone: its refresh will be fenced or superseded in turn.
func (m *Manager) salvage(ctx context.Context, r *row, nt newTokens) (bool, error) {
	now := m.nowMS()
	res, err := m.db.ExecContext(ctx, `UPDATE connections SET access_token = ?, refresh_token = ?, expiry = ?, extra = ?,
		scopes = CASE WHEN ? = '' THEN scopes ELSE ? END,
		state = CASE WHEN state = ? THEN state ELSE ? END, version = version + 1, token_gen = token_gen + 1,
		failures = 0, next_attempt = 0, last_error = '', refreshed_at = ?, updated_at = ?
		WHERE tenant = ? AND system = ? AND token_gen = ? AND state <> ?`,
		nt.access, nt.refresh, nt.expiry, nt.extra, nt.scopes, nt.scopes, StateRefreshing, StateActive, now, now,
		r.tenant, r.system, r.tokenGen, StateRevoked)
	if err != nil {
		return false, fmt.Errorf("refresh %s/%s: store fenced tokens: %w", r.tenant, r.system, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// release gives up this process's lease on r's connection, whatever the
// row's version: only this process's one refresh of the connection
// (refreshShared) can hold it.
func (m *Manager) release(ctx context.Context, r *row) {
	_, err := m.db.ExecContext(ctx, `UPDATE connections SET lease_owner = '', lease_until = 0,
		state = CASE WHEN state = ? THEN ? ELSE state END, version = version + 1, updated_at = ?
		WHERE tenant = ? AND system = ? AND lease_owner = ?`,
		StateRefreshing, StateActive, m.nowMS(), r.tenant, r.system, m.owner)
	if err != nil {
		m.log.Warn("release refresh lease", "tenant", r.tenant, "system", r.system, "err", err)
	}
}

// fail records a failed refresh and releases the lease: the connection is
// tried again after a backoff that doubles with each failure in a row.
func (m *Manager) fail(ctx context.Context, r *row, lv int64, desc string) {
	f := r.failures + 1
	wait := m.cfg.BackoffBase << min(f-1, 20)
	if wait <= 0 || wait > m.cfg.BackoffMax {
		wait = m.cfg.BackoffMax
	}
	now := m.now()
	_, err := m.db.ExecContext(ctx, `UPDATE connections SET state = ?, lease_owner = '', lease_until = 0,
		version = version + 1, failures = ?, next_attempt = ?, last_error = ?, updated_at = ?
		WHERE tenant = ? AND system = ? AND version = ?`,
		StateActive, f, ms(now.Add(wait)), desc, ms(now), r.tenant, r.system, lv)
	if err != nil {
		m.log.Warn("record refresh failure", "tenant", r.tenant, "system", r.system, "err", err)
	}
}

// expire moves the connection (at version v) to EXPIRED, deleting its
// tokens, then alerts. ok is false when the row moved on meanwhile.
func (m *Manager) expire(ctx context.Context, r *row, v int64, reason string) (bool, error) {
	now := m.nowMS()
	res, err := m.db.ExecContext(ctx, `UPDATE connections SET state = ?, access_token = NULL, refresh_token = NULL,
		lease_owner = '', lease_until = 0, version = version + 1, last_error = ?, updated_at = ?
		WHERE tenant = ? AND system = ? AND version = ?`, StateExpired, reason, now, r.tenant, r.system, v)
	if err != nil {
		return false, fmt.Errorf("expire %s/%s: %w", r.tenant, r.system, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	m.log.Error("connection expired; its integration owner must authorize it again", "tenant", r.tenant, "system", r.system, "reason", reason)
	m.recount(ctx)
	m.alertExpired(ctx, r.tenant, r.system)
	return true, nil
}

// alertExpired sends the alert of an EXPIRED connection and moves it to
// ALERT. The move is claimed first (compare-and-swap), so that processes
// sharing the store send one alert; a failed send moves it back to
// EXPIRED, for the scanner to try again.
func (m *Manager) alertExpired(ctx context.Context, tenant, system string) {
	var v int64
	var reason string
	err := m.db.QueryRowContext(ctx, `UPDATE connections SET state = ?, version = version + 1, updated_at = ?
		WHERE tenant = ? AND system = ? AND state = ? RETURNING version, last_error`,
		StateAlert, m.nowMS(), tenant, system, StateExpired).Scan(&v, &reason)
	if err != nil {
		return // another process claimed it, or the row moved on
	}
	text := fmt.Sprintf("MCC Bridge: the %s connection of tenant %s stopped working: %s. "+
		"Its integration owner must authorize it again (POST /v1/connections/%s/authorize).", system, tenant, reason, system)
	if err := m.alert(ctx, text); err != nil {
		m.log.Warn("alert not sent; the scanner tries again", "tenant", tenant, "system", system, "err", err)
		m.db.ExecContext(ctx, `UPDATE connections SET state = ?, version = version + 1 WHERE tenant = ? AND system = ? AND version = ?`,
			StateExpired, tenant, system, v)
	}
	m.recount(ctx)
}

// requestRefresh sends the refresh token to the provider, retrying
// transient failures with full-jitter exponential backoff while ctx allows.
func (m *Manager) requestRefresh(ctx context.Context, p Provider, rt connectors.Secret) (*oauth2.Token, error) {
	conf := m.oauth[p.System]
	hctx := context.WithValue(ctx, oauth2.HTTPClient, m.tokenHTTP)
	var last error // the last answer, reported when time runs out mid-request
	for attempt := 0; ; attempt++ {
		m.met.tokenRequest(p.System, "refresh_token")
		tok, err := conf.TokenSource(hctx, &oauth2.Token{RefreshToken: rt.Reveal()}).Token()
		if err == nil {
			return tok, nil
		}
		if ctx.Err() != nil && last != nil {
			return nil, last
		}
		if !transient(err) || ctx.Err() != nil {
			return nil, err
		}
		last = err
		d := m.retryDelay(attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return nil, err
		}
		m.log.Debug("token request failed; trying again", "system", p.System, "attempt", attempt+1, "err", describeTokenError(err), "delay", d)
		if sleep(ctx, d) != nil {
			return nil, err
		}
	}
}

// retryDelay is the full-jitter backoff before retry attempt+1.
func (m *Manager) retryDelay(attempt int) time.Duration {
	ceil := m.cfg.RetryBaseDelay << min(attempt, 20)
	if ceil <= 0 || ceil > m.cfg.RetryMaxDelay {
		ceil = m.cfg.RetryMaxDelay
	}
	return ceil/2 + rand.N(ceil/2+1)
}

func oauthConfig(p Provider, redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     p.ClientID,
		ClientSecret: p.ClientSecret.Reveal(),
		Endpoint:     oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL, AuthStyle: p.AuthStyle},
		RedirectURL:  redirectURL,
		Scopes:       p.Scopes,
	}
}

// isInvalidGrant reports whether the provider refused the grant itself.
func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// transient reports whether a token request may succeed if sent again:
// connection errors, 429 and 5xx, and RFC 6749's server_error and
// temporarily_unavailable.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		var ue *url.Error
		return errors.As(err, &ue) // could not reach the endpoint
	}
	switch re.ErrorCode {
	case "server_error", "temporarily_unavailable":
		return true
	case "":
		return re.Response != nil && (re.Response.StatusCode == 429 || re.Response.StatusCode >= 500)
	}
	return false
}

// describeTokenError describes a token-endpoint failure without quoting
// the response body or the request (either might echo a secret).
func describeTokenError(err error) string {
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re) && re.ErrorCode != "":
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Sprintf("%s, HTTP %d", sanitizeCode(re.ErrorCode), status)
	case errors.As(err, &re) && re.Response != nil:
		return "HTTP " + re.Response.Status
	case errors.Is(err, context.DeadlineExceeded):
		return "the token endpoint did not answer in time"
	case errors.As(err, &ue):
		return "the token endpoint could not be reached: " + ue.Err.Error()
	default:
		return "the token endpoint's answer was not understood"
	}
}

// sanitizeCode keeps an RFC 6749 error code's characters (%x20-21 /
// %x23-5B / %x5D-7E), cut to 64 bytes.
func sanitizeCode(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
