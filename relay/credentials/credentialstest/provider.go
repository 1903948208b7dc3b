// Package credentialstest has fakes for testing code that uses package
// credentials: an OAuth 2.0 provider (authorization endpoint with PKCE,
// RFC 6749 token endpoint with rotating refresh tokens, invalid_grant,
// client credentials and the RFC 7523 JWT bearer grant, counting
// requests), a settable clock, and an alert webhook receiver.
package credentialstest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Clock is a settable clock for Config.Now. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

// NewClock returns a clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock d forward and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// Set sets the clock.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Options configure a Provider. Zero values mean the defaults given.
type Options struct {
	// ClientID and ClientSecret are the one client the provider knows;
	// zero means "bridge-client" and "bridge-client-secret".
	ClientID, ClientSecret string
	// TTL is the access tokens' lifetime (expires_in); zero means 1 hour.
	TTL time.Duration
	// Rotate issues a new refresh token with every refresh and retires
	// the one presented.
	Rotate bool
	// ReuseGrace keeps a retired refresh token working this long after
	// its rotation (zero: it stops at once).
	ReuseGrace time.Duration
	// RevokeOnReuse revokes the whole grant when a retired refresh token
	// is presented after the grace (Salesforce).
	RevokeOnReuse bool
	// OmitRefreshToken leaves refresh_token out of refresh responses.
	OmitRefreshToken bool
	// Now is the provider's clock; nil means time.Now.
	Now func() time.Time
	// JWTPublicKey verifies JWT bearer assertions, whose aud must be
	// JWTAudience (zero: https://login.salesforce.com). Nil refuses the grant.
	JWTPublicKey *rsa.PublicKey
	JWTAudience  string
	// InstanceURL is returned with JWT bearer and authorization-code
	// tokens as instance_url, when set.
	InstanceURL string
	// NoExpiresIn leaves expires_in out of JWT bearer responses, as
	// Salesforce does (other grants always carry it).
	NoExpiresIn bool
	// Slack answers in Slack's dialect (oauth.v2.access): "ok": true on
	// success, and grant and client errors as HTTP 200 with "ok": false
	// and Slack's error names (invalid_refresh_token, invalid_client_id).
	Slack bool
}

// Provider is a fake OAuth 2.0 provider on 127.0.0.1. It is safe for
// concurrent use.
type Provider struct {
	// URL is the server's base URL; AuthURL and TokenURL are its endpoints.
	URL, AuthURL, TokenURL string

	opts Options
	srv  *httptest.Server

	mu         sync.Mutex
	ttl        time.Duration
	codes      map[string]codeGrant   // guarded by mu
	refreshes  map[string]*refreshRec // by refresh token; guarded by mu
	accesses   map[string]accessRec   // by access token; guarded by mu
	revoked    map[int]bool           // grant ids; guarded by mu
	grants     int                    // guarded by mu
	secrets    []string               // guarded by mu
	requests   map[string]int         // by grant type; guarded by mu
	total      int                    // guarded by mu
	failNext   int                    // guarded by mu
	failStatus int                    // guarded by mu
	lastPKCE   string                 // guarded by mu
}

type codeGrant struct {
	redirect, challenge, method string
	expires                     time.Time
}

type refreshRec struct {
	grant   int
	retired time.Time // zero while current
}

type accessRec struct {
	grant   int
	expires time.Time
}

// NewProvider starts a provider, closed at the test's end.
func NewProvider(t testing.TB, o Options) *Provider {
	t.Helper()
	if o.ClientID == "" {
		o.ClientID = "bridge-client"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "bridge-client-secret"
	}
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.JWTAudience == "" {
		o.JWTAudience = "https://login.salesforce.com"
	}
	p := &Provider{opts: o, ttl: o.TTL, codes: map[string]codeGrant{}, refreshes: map[string]*refreshRec{},
		accesses: map[string]accessRec{}, revoked: map[int]bool{}, requests: map[string]int{},
		secrets: []string{o.ClientSecret}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	p.URL = p.srv.URL
	p.AuthURL = p.srv.URL + "/authorize"
	p.TokenURL = p.srv.URL + "/token"
	return p
}

// ClientID is the one client's id.
func (p *Provider) ClientID() string { return p.opts.ClientID }

// ClientSecret is the one client's secret.
func (p *Provider) ClientSecret() string { return p.opts.ClientSecret }

// Requests counts requests to the token endpoint.
func (p *Provider) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// Count counts token requests of one grant type ("refresh_token",
// "authorization_code", "client_credentials", or the JWT bearer URN).
func (p *Provider) Count(grant string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[grant]
}

// FailNext makes the next n token requests fail with status (and, for
// 5xx, error temporarily_unavailable).
func (p *Provider) FailNext(n, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failNext, p.failStatus = n, status
}

// SetTTL sets the lifetime of tokens issued from now on.
func (p *Provider) SetTTL(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ttl = d
}

// RevokeAll revokes every grant: their refresh tokens get invalid_grant.
func (p *Provider) RevokeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for g := 1; g <= p.grants; g++ {
		p.revoked[g] = true
	}
}

// Valid reports whether an access token works now.
func (p *Provider) Valid(access string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.accesses[access]
	return ok && !p.revoked[a.grant] && p.opts.Now().Before(a.expires)
}

// Secrets lists the client secret and every token issued.
func (p *Provider) Secrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.secrets)
}

// LastPKCEMethod is the code_challenge_method of the last authorization.
func (p *Provider) LastPKCEMethod() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastPKCE
}

// Authorize plays the owner's browser at authURL: the provider approves
// at once and redirects; Authorize returns the redirect's query (code and
// state, or error).
func (p *Provider) Authorize(t testing.TB, authURL string) url.Values {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("authorize: got %s, Location %q; want 302 with a Location", resp.Status, resp.Header.Get("Location"))
	}
	return loc.Query()
}

func randToken(prefix string) string {
	var b [24]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || q.Get("client_id") != p.opts.ClientID {
		http.Error(w, "bad client_id or redirect_uri", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	p.mu.Lock()
	p.lastPKCE = q.Get("code_challenge_method")
	p.mu.Unlock()
	switch {
	case q.Get("response_type") != "code":
		back.Set("error", "unsupported_response_type")
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		back.Set("error", "invalid_request") // PKCE S256 is required
	default:
		code := randToken("code-")
		p.mu.Lock()
		p.codes[code] = codeGrant{redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
			method: q.Get("code_challenge_method"), expires: p.opts.Now().Add(10 * time.Minute)}
		p.mu.Unlock()
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (p *Provider) oauthError(w http.ResponseWriter, status int, code string) {
	if p.opts.Slack && status < 500 && status != http.StatusTooManyRequests {
		slack := map[string]string{"invalid_grant": "invalid_refresh_token", "invalid_client": "invalid_client_id"}[code]
		if slack == "" {
			slack = code
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": slack})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		p.oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	grant := r.PostForm.Get("grant_type")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total++
	p.requests[grant]++
	if p.failNext > 0 {
		p.failNext--
		if p.failStatus >= 500 {
			p.oauthError(w, p.failStatus, "temporarily_unavailable")
		} else {
			w.WriteHeader(p.failStatus)
		}
		return
	}
	now := p.opts.Now()
	if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		p.jwtBearer(w, r.PostForm.Get("assertion"), now)
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.opts.ClientID || secret != p.opts.ClientSecret {
		p.oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch grant {
	case "authorization_code":
		code := r.PostForm.Get("code")
		c, ok := p.codes[code]
		delete(p.codes, code) // single use
		if !ok || now.After(c.expires) || c.redirect != r.PostForm.Get("redirect_uri") {
			p.oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			p.oauthError(w, http.StatusBadRequest, "invalid_grant") // PKCE verification failed
			return
		}
		p.grants++
		p.issue(w, p.grants, true, now)
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		rec, ok := p.refreshes[rt]
		if !ok || p.revoked[rec.grant] {
			p.oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		if !rec.retired.IsZero() && (p.opts.ReuseGrace == 0 || now.Sub(rec.retired) > p.opts.ReuseGrace) {
			if p.opts.RevokeOnReuse {
				p.revoked[rec.grant] = true
			}
			p.oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		newRT := p.opts.Rotate && !p.opts.OmitRefreshToken
		if newRT && rec.retired.IsZero() {
			rec.retired = now
		}
		p.issue(w, rec.grant, newRT, now)
	case "client_credentials":
		p.grants++
		p.issue(w, p.grants, false, now)
	default:
		p.oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// issue writes a token response for grant; called with mu held.
func (p *Provider) issue(w http.ResponseWriter, grant int, withRefresh bool, now time.Time) {
	at := randToken("at-")
	p.accesses[at] = accessRec{grant: grant, expires: now.Add(p.ttl)}
	p.secrets = append(p.secrets, at)
	body := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(p.ttl / time.Second), "scope": "read write"}
	if withRefresh {
		rt := randToken("rt-")
		p.refreshes[rt] = &refreshRec{grant: grant}
		p.secrets = append(p.secrets, rt)
		body["refresh_token"] = rt
	}
	if p.opts.InstanceURL != "" {
		body["instance_url"] = p.opts.InstanceURL
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if p.opts.Slack {
		body["ok"] = true
	}
	json.NewEncoder(w).Encode(body)
}

// jwtBearer checks an RFC 7523 assertion as Salesforce does: RS256 signed
// by the registered key, iss the client id, sub set, aud the login URL,
// exp in the future and at most 3 minutes away. Called with mu held.
func (p *Provider) jwtBearer(w http.ResponseWriter, assertion string, now time.Time) {
	if p.opts.JWTPublicKey == nil {
		p.oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.RS256})
	var c jwt.Claims
	if err != nil || tok.Claims(p.opts.JWTPublicKey, &c) != nil {
		p.oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	if c.Issuer != p.opts.ClientID {
		p.oauthError(w, http.StatusBadRequest, "invalid_client")
		return
	}
	if c.Subject == "" || !c.Audience.Contains(p.opts.JWTAudience) || c.Expiry == nil ||
		!c.Expiry.Time().After(now) || c.Expiry.Time().After(now.Add(3*time.Minute)) {
		p.oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	p.grants++
	at := randToken("at-")
	p.accesses[at] = accessRec{grant: p.grants, expires: now.Add(p.ttl)}
	p.secrets = append(p.secrets, at)
	body := map[string]any{"access_token": at, "token_type": "Bearer", "scope": "api", "instance_url": p.opts.InstanceURL,
		"id": p.URL + "/id/" + c.Subject}
	if !p.opts.NoExpiresIn {
		body["expires_in"] = int(p.ttl / time.Second)
	}
	w.Header().Set("Content-Type", "application/json")
	if p.opts.Slack {
		body["ok"] = true
	}
	json.NewEncoder(w).Encode(body)
}

// Webhook receives alerts (Slack incoming-webhook JSON) on 127.0.0.1.
type Webhook struct {
	// URL receives POSTs.
	URL string

	mu     sync.Mutex
	bodies []string // guarded by mu
	status int      // guarded by mu
}

// NewWebhook starts a receiver, closed at the test's end.
func NewWebhook(t testing.TB) *Webhook {
	wh := &Webhook{status: http.StatusOK}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		wh.mu.Lock()
		wh.bodies = append(wh.bodies, string(b))
		st := wh.status
		wh.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(srv.Close)
	wh.URL = srv.URL + "/services/T000/B000/hook-key"
	return wh
}

// Bodies returns the bodies received, in order.
func (wh *Webhook) Bodies() []string {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return slices.Clone(wh.bodies)
}

// SetStatus sets the status the receiver answers.
func (wh *Webhook) SetStatus(status int) {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	wh.status = status
}
