package callerauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const testClient = "client-app"

// del marks a claim to remove in with.
type delMarker struct{}

var del = delMarker{}

// with returns a copy of base with mods applied (del removes a claim).
func with(base map[string]any, mods map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(mods))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range mods {
		if v == del {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	return out
}

// idClaims are a Cognito ID token's claims.
func idClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":            iss,
		"sub":            "8f1c2d3e-user",
		"aud":            testClient,
		"email":          "ada@example.com",
		"custom:tenant":  "acme",
		"cognito:groups": []string{"admins", "ops"},
		"token_use":      "id",
		"auth_time":      now.Unix(),
		"iat":            now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
	}
}

// accessClaims are a Cognito access token's claims: client_id, no aud.
func accessClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss":            iss,
		"sub":            "8f1c2d3e-user",
		"client_id":      testClient,
		"token_use":      "access",
		"scope":          "openid email",
		"username":       "ada",
		"custom:tenant":  "acme",
		"cognito:groups": []string{"admins"},
		"iat":            now.Unix(),
		"exp":            now.Add(time.Hour).Unix(),
	}
}

func b64(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// assertNoLeak fails if err's text or detail contains the token or any of
// its three parts.
func assertNoLeak(t *testing.T, err error, tok string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	canaries := []string{tok}
	for _, part := range strings.Split(tok, ".") {
		if len(part) >= 8 {
			canaries = append(canaries, part)
		}
	}
	for _, c := range canaries {
		if len(c) < 8 {
			continue
		}
		if strings.Contains(e.Error(), c) || strings.Contains(e.Detail, c) {
			t.Errorf("error %q leaks part of the token", e.Error())
		}
	}
}

type env struct {
	idp   *fakeIdP
	clock *fakeClock
	auth  *Authenticator
	rsa1  jose.JSONWebKey // published, RS256
	ec1   jose.JSONWebKey // published, ES256
}

func newEnv(t *testing.T, cfg Config, opts Options) *env {
	t.Helper()
	e := &env{clock: newFakeClock(), rsa1: rsaKey(t, "rsa-1"), ec1: ecKey(t, "ec-1")}
	e.idp = newFakeIdP(t, e.rsa1, e.ec1)
	if cfg.Issuer == "" {
		cfg.Issuer = e.idp.issuer()
	}
	if cfg.Audiences == nil {
		cfg.Audiences = []string{"other-app", testClient}
	}
	opts.Logger = testLogger(t)
	opts.HTTPClient = e.idp.srv.Client()
	opts.Now = e.clock.Now
	a, err := New(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.auth = a
	return e
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t, Config{}, Options{})
	iss := e.idp.issuer()
	now := e.clock.Now()
	id := idClaims(iss, now)
	access := accessClaims(iss, now)
	attacker := rsaKey(t, "rsa-1") // same kid as the published key
	unpublished := rsaKey(t, "rsa-unknown")
	dev, err := LoadOrCreateDevIssuer(t.TempDir()+"/dev.jwk", "https://relay.dev.local/dev-issuer")
	if err != nil {
		t.Fatal(err)
	}
	devTok, err := dev.Mint("acme", "dev-user", "dev@example.com", nil, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}

	valid := mint(t, e.rsa1, id)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(with(id, map[string]any{"custom:tenant": "evil"})) + "." + parts[2]
	algNone := b64(map[string]any{"alg": "none", "typ": "JWT", "kid": "rsa-1"}) + "." + b64(id) + "."
	hsKey := jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "rsa-1", Algorithm: string(jose.HS256)}

	wantAda := func(t *testing.T, c Caller) {
		t.Helper()
		want := Caller{
			UserID: "8f1c2d3e-user", Email: "ada@example.com", Tenant: "acme", TenantName: "acme",
			Roles: []string{"admins", "ops"}, Issuer: iss, AuthMethod: MethodOIDC,
		}
		if !callerEqual(c, want) {
			t.Errorf("got caller %+v, want %+v", c, want)
		}
	}
	wantRoles := func(roles ...string) func(*testing.T, Caller) {
		return func(t *testing.T, c Caller) {
			t.Helper()
			if !slices.Equal(c.Roles, roles) {
				t.Errorf("got roles %q, want %q", c.Roles, roles)
			}
		}
	}

	tests := []struct {
		name   string
		header http.Header
		want   Kind // "" means accepted
		check  func(*testing.T, Caller)
	}{
		{name: "valid ID token RS256", header: bearer(valid), check: wantAda},
		{name: "valid ID token ES256", header: bearer(mint(t, e.ec1, id)), check: wantAda},
		{name: "lowercase bearer scheme", header: http.Header{"Authorization": {"bearer " + valid}}, check: wantAda},
		{name: "aud array with one accepted", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"aud": []string{"x", testClient}})))},
		{name: "valid Cognito access token", header: bearer(mint(t, e.rsa1, access)), check: func(t *testing.T, c Caller) {
			if c.UserID != "8f1c2d3e-user" || c.Tenant != "acme" || c.Email != "" || !slices.Equal(c.Roles, []string{"admins"}) {
				t.Errorf("got caller %+v, want user 8f1c2d3e-user of acme with role admins and no email", c)
			}
		}},
		{name: "access token without token_use", header: bearer(mint(t, e.rsa1, with(access, map[string]any{"token_use": del})))},
		{name: "access token wrong client_id", header: bearer(mint(t, e.rsa1, with(access, map[string]any{"client_id": "evil-app"}))), want: KindAudience},
		{name: "ID token without aud", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"aud": del}))), want: KindAudience},
		{name: "no aud and no client_id", header: bearer(mint(t, e.rsa1, with(access, map[string]any{"client_id": del}))), want: KindAudience},
		{name: "missing header", header: http.Header{}, want: KindMissing},
		{name: "empty header", header: http.Header{"Authorization": {""}}, want: KindMissing},
		{name: "not Bearer", header: http.Header{"Authorization": {"Basic YWRhOnNlY3JldA=="}}, want: KindMissing},
		{name: "Bearer without token", header: http.Header{"Authorization": {"Bearer"}}, want: KindMalformed},
		{name: "two Authorization headers", header: http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, want: KindMalformed},
		{name: "malformed not a JWT", header: bearer("not-a-jwt"), want: KindMalformed},
		{name: "malformed three garbage parts", header: bearer("aaaa.bbbb.cccc"), want: KindMalformed},
		{name: "malformed payload not JSON", header: bearer(parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("hello")) + "." + parts[2]), want: KindMalformed},
		{name: "malformed JWE shape", header: bearer(valid + ".x.y"), want: KindMalformed},
		{name: "malformed oversized", header: bearer(strings.Repeat("a", maxTokenBytes+1)), want: KindMalformed},
		{name: "expired", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"exp": now.Add(-2 * time.Minute).Unix()}))), want: KindExpired},
		{name: "expired within leeway", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"exp": now.Add(-30 * time.Second).Unix()})))},
		{name: "nbf in future", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}))), want: KindNotYetValid},
		{name: "nbf within leeway", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"nbf": now.Add(30 * time.Second).Unix()})))},
		{name: "iat in future", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"iat": now.Add(10 * time.Minute).Unix()}))), want: KindNotYetValid},
		{name: "wrong issuer", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"iss": "https://evil.example.com"}))), want: KindIssuer},
		{name: "no issuer", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"iss": del}))), want: KindIssuer},
		{name: "wrong audience", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"aud": "evil-app"}))), want: KindAudience},
		{name: "bad signature same kid other key", header: bearer(mint(t, attacker, id)), want: KindSignature},
		{name: "bad signature tampered payload", header: bearer(tampered), want: KindSignature},
		{name: "no kid header", header: bearer(mint(t, rsaKeyNoGen(e.rsa1, ""), id)), check: wantAda},
		{name: "unknown kid", header: bearer(mint(t, unpublished, id)), want: KindUnknownKey},
		{name: "alg none refused", header: bearer(algNone), want: KindSignature},
		{name: "HS256 refused", header: bearer(mint(t, hsKey, id)), want: KindSignature},
		{name: "missing tenant", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"custom:tenant": del}))), want: KindClaims},
		{name: "empty tenant", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"custom:tenant": ""}))), want: KindClaims},
		{name: "unsafe tenant", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"custom:tenant": "../etc"}))), want: KindClaims},
		{name: "uppercase tenant", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"custom:tenant": "Acme"}))), want: KindClaims},
		{name: "tenant not a string", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"custom:tenant": 42}))), want: KindClaims},
		{name: "missing sub", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"sub": del}))), want: KindClaims},
		{name: "missing exp", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"exp": del}))), want: KindClaims},
		{name: "roles as array", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"cognito:groups": []string{"a", " b ", ""}}))), check: wantRoles("a", "b")},
		{name: "roles as string", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"cognito:groups": "admins, ops  dev,"}))), check: wantRoles("admins", "ops", "dev")},
		{name: "roles absent", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"cognito:groups": del}))), check: wantRoles()},
		{name: "roles wrong type", header: bearer(mint(t, e.rsa1, with(id, map[string]any{"cognito:groups": 7}))), want: KindClaims},
		{name: "dev token refused without Dev", header: bearer(devTok), want: KindIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.auth.Authenticate(t.Context(), request(tt.header))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got error %v, want success", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if got := KindOf(err); got != tt.want {
				t.Fatalf("got kind %q (err %v), want %q", got, err, tt.want)
			}
			if !callerEqual(c, Caller{}) {
				t.Errorf("got caller %+v with error, want zero Caller", c)
			}
			if vals := tt.header.Values("Authorization"); len(vals) > 0 {
				_, tok, _ := strings.Cut(vals[0], " ")
				assertNoLeak(t, err, tok)
			}
		})
	}
}

func callerEqual(a, b Caller) bool {
	return a.UserID == b.UserID && a.Email == b.Email && a.Tenant == b.Tenant &&
		a.TenantName == b.TenantName && slices.Equal(a.Roles, b.Roles) &&
		a.Issuer == b.Issuer && a.AuthMethod == b.AuthMethod
}

func TestCustomClaimMap(t *testing.T) {
	e := newEnv(t, Config{
		Claims: ClaimMap{UserID: "username", Email: "mail", Tenant: "org", TenantName: "org_name", Roles: "roles"},
		Leeway: 5 * time.Second,
	}, Options{})
	now := e.clock.Now()
	base := map[string]any{
		"iss": e.idp.issuer(), "aud": testClient, "exp": now.Add(time.Minute).Unix(),
		"username": "ada", "mail": "ada@example.com", "org": "acme-eu", "org_name": "Acme Europe", "roles": "reader writer",
	}
	tests := []struct {
		name   string
		claims map[string]any
		want   Caller
		kind   Kind
	}{
		{name: "all mapped", claims: base, want: Caller{
			UserID: "ada", Email: "ada@example.com", Tenant: "acme-eu", TenantName: "Acme Europe",
			Roles: []string{"reader", "writer"}, Issuer: e.idp.issuer(), AuthMethod: MethodOIDC,
		}},
		{name: "tenant name absent falls back to tenant", claims: with(base, map[string]any{"org_name": del}), want: Caller{
			UserID: "ada", Email: "ada@example.com", Tenant: "acme-eu", TenantName: "acme-eu",
			Roles: []string{"reader", "writer"}, Issuer: e.idp.issuer(), AuthMethod: MethodOIDC,
		}},
		{name: "default tenant claim ignored", claims: with(base, map[string]any{"org": del, "custom:tenant": "acme"}), kind: KindClaims},
		{name: "leeway is configurable", claims: with(base, map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), kind: KindExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.auth.AuthenticateToken(t.Context(), mint(t, e.rsa1, tt.claims))
			if got := KindOf(err); got != tt.kind {
				t.Fatalf("got kind %q (err %v), want %q", got, err, tt.kind)
			}
			if tt.kind == "" && !callerEqual(c, tt.want) {
				t.Errorf("got caller %+v, want %+v", c, tt.want)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t, Config{}, Options{})
	rsa2 := rsaKey(t, "rsa-2")
	tok := func(k jose.JSONWebKey) string { return mint(t, k, idClaims(e.idp.issuer(), e.clock.Now())) }
	steps := []struct {
		name      string
		do        func()
		key       jose.JSONWebKey
		want      Kind
		wantJWKS  int64 // JWKS fetches so far
		wantDisco int64 // discovery fetches so far
	}{
		{name: "old key accepted", key: e.rsa1, wantJWKS: 1, wantDisco: 1},
		{name: "cached: no refetch", key: e.rsa1, wantJWKS: 1, wantDisco: 1},
		{name: "IdP rotates; new kid within refetch interval is unknown", do: func() { e.idp.setKeys(rsa2) },
			key: rsa2, want: KindUnknownKey, wantJWKS: 1, wantDisco: 1},
		{name: "after the interval the kid miss refetches and succeeds", do: func() { e.clock.Advance(MinRefetchInterval) },
			key: rsa2, wantJWKS: 2, wantDisco: 1},
		{name: "withdrawn old key is unknown", key: e.rsa1, want: KindUnknownKey, wantJWKS: 2, wantDisco: 1},
		{name: "random kids do not hammer the IdP", key: rsaKeyNoGen(e.rsa1, "random"), want: KindUnknownKey, wantJWKS: 2, wantDisco: 1},
		{name: "stale key set is refetched", do: func() { e.clock.Advance(MaxKeyAge) }, key: rsa2, wantJWKS: 3, wantDisco: 1},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		_, err := e.auth.AuthenticateToken(t.Context(), tok(s.key))
		if got := KindOf(err); got != s.want {
			t.Fatalf("%s: got kind %q (err %v), want %q", s.name, got, err, s.want)
		}
		if got := e.idp.jwksHits.Load(); got != s.wantJWKS {
			t.Errorf("%s: got %d JWKS fetches, want %d", s.name, got, s.wantJWKS)
		}
		if got := e.idp.discoveryHits.Load(); got != s.wantDisco {
			t.Errorf("%s: got %d discovery fetches, want %d", s.name, got, s.wantDisco)
		}
	}
}

// rsaKeyNoGen relabels key with another kid (avoids generating a key).
func rsaKeyNoGen(key jose.JSONWebKey, kid string) jose.JSONWebKey {
	key.KeyID = kid
	return key
}

func TestIdPUnavailable(t *testing.T) {
	e := newEnv(t, Config{}, Options{})
	e.idp.setStatus(http.StatusServiceUnavailable)
	tok := mint(t, e.rsa1, idClaims(e.idp.issuer(), e.clock.Now()))

	steps := []struct {
		name      string
		do        func()
		want      Kind
		wantDisco int64
		wantJWKS  int64
	}{
		{name: "IdP down at first use", want: KindUnavailable, wantDisco: 1},
		{name: "retry waits for backoff", want: KindUnavailable, wantDisco: 1},
		{name: "retry after backoff, still down", do: func() { e.clock.Advance(retryBackoffMin) }, want: KindUnavailable, wantDisco: 2},
		{name: "backoff doubled", do: func() { e.clock.Advance(retryBackoffMin); e.idp.setStatus(0) }, want: KindUnavailable, wantDisco: 2},
		{name: "IdP back", do: func() { e.clock.Advance(retryBackoffMin) }, wantDisco: 3, wantJWKS: 1},
		{name: "IdP down again: cached keys keep working", do: func() { e.idp.setStatus(http.StatusInternalServerError) }, wantDisco: 3, wantJWKS: 1},
		{name: "stale keys kept when refetch fails", do: func() { e.clock.Advance(MaxKeyAge) }, wantDisco: 3, wantJWKS: 2},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		tok := tok
		if s.name == "stale keys kept when refetch fails" {
			tok = mint(t, e.rsa1, idClaims(e.idp.issuer(), e.clock.Now()))
		}
		_, err := e.auth.AuthenticateToken(t.Context(), tok)
		if got := KindOf(err); got != s.want {
			t.Fatalf("%s: got kind %q (err %v), want %q", s.name, got, err, s.want)
		}
		if got := e.idp.discoveryHits.Load(); got != s.wantDisco {
			t.Errorf("%s: got %d discovery fetches, want %d", s.name, got, s.wantDisco)
		}
		if got := e.idp.jwksHits.Load(); got != s.wantJWKS {
			t.Errorf("%s: got %d JWKS fetches, want %d", s.name, got, s.wantJWKS)
		}
		if err != nil {
			assertNoLeak(t, err, tok)
		}
	}
	if got, want := KindUnavailable.HTTPStatus(), http.StatusServiceUnavailable; got != want {
		t.Errorf("got status %d for %s, want %d", got, KindUnavailable, want)
	}
}

func TestIdPUnreachableAtStart(t *testing.T) {
	idp := newFakeIdP(t)
	issuer := idp.issuer()
	client := idp.srv.Client()
	idp.srv.Close() // nothing listens any more
	a, err := New(t.Context(), Config{Issuer: issuer, Audiences: []string{testClient}},
		Options{Logger: testLogger(t), HTTPClient: client})
	if err != nil {
		t.Fatalf("New with unreachable IdP: got %v, want success (lazy discovery)", err)
	}
	_, err = a.AuthenticateToken(t.Context(), mint(t, ecKey(t, "k"), idClaims(issuer, time.Now())))
	if got := KindOf(err); got != KindUnavailable {
		t.Fatalf("got kind %q (err %v), want %q", got, err, KindUnavailable)
	}
}

func TestConfiguredJWKSURLSkipsDiscovery(t *testing.T) {
	clock := newFakeClock()
	key := ecKey(t, "ec-1")
	idp := newFakeIdP(t, key)
	a, err := New(t.Context(), Config{
		Issuer:    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
		Audiences: []string{testClient},
		JWKSURL:   idp.issuer() + "/.well-known/jwks.json",
	}, Options{Logger: testLogger(t), HTTPClient: idp.srv.Client(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.AuthenticateToken(t.Context(), mint(t, key, idClaims("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123", clock.Now())))
	if err != nil {
		t.Fatalf("got %v, want success", err)
	}
	if c.Tenant != "acme" {
		t.Errorf("got tenant %q, want acme", c.Tenant)
	}
	if got := idp.discoveryHits.Load(); got != 0 {
		t.Errorf("got %d discovery fetches, want 0", got)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	clock := newFakeClock()
	key := ecKey(t, "ec-1")
	idp := newFakeIdP(t, key)
	iss := idp.issuer() + "/"
	a, err := New(t.Context(), Config{Issuer: iss, Audiences: []string{testClient}},
		Options{Logger: testLogger(t), HTTPClient: idp.srv.Client(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.AuthenticateToken(t.Context(), mint(t, key, idClaims(iss, clock.Now())))
	if got := KindOf(err); got != KindUnavailable {
		t.Fatalf("got kind %q (err %v), want %q", got, err, KindUnavailable)
	}
}

func TestConcurrentAuthenticate(t *testing.T) {
	e := newEnv(t, Config{}, Options{})
	tok := mint(t, e.ec1, idClaims(e.idp.issuer(), e.clock.Now()))
	bad := mint(t, rsaKeyNoGen(e.ec1, "nope"), idClaims(e.idp.issuer(), e.clock.Now()))
	ctx := t.Context()
	errs := make(chan error, 64)
	for i := range cap(errs) {
		go func() {
			if i%2 == 0 {
				_, err := e.auth.AuthenticateToken(ctx, tok)
				errs <- err
				return
			}
			_, err := e.auth.AuthenticateToken(ctx, bad)
			if KindOf(err) != KindUnknownKey {
				errs <- err
				return
			}
			errs <- nil
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("got %v, want success or unknown-key", err)
		}
	}
	if got := e.idp.jwksHits.Load(); got > 2 {
		t.Errorf("got %d JWKS fetches for concurrent requests, want at most 2", got)
	}
}

func TestCanceledContext(t *testing.T) {
	e := newEnv(t, Config{}, Options{})
	tok := mint(t, e.rsa1, idClaims(e.idp.issuer(), e.clock.Now()))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.auth.AuthenticateToken(ctx, tok)
	if got := KindOf(err); got != KindUnavailable {
		t.Fatalf("got kind %q (err %v), want %q", got, err, KindUnavailable)
	}
	// A caller giving up does not put the IdP into backoff.
	if _, err := e.auth.AuthenticateToken(t.Context(), tok); err != nil {
		t.Fatalf("after a canceled request: got %v, want success", err)
	}
}

// TestErrorsDoNotEchoTokenContent checks that decoded header and payload
// values never reach Error(), even where go-jose or encoding/json would
// quote them.
func TestErrorsDoNotEchoTokenContent(t *testing.T) {
	e := newEnv(t, Config{}, Options{})
	iss := e.idp.issuer()
	now := e.clock.Now()
	const canary = "CANARY7c1e"
	sig := base64.RawURLEncoding.EncodeToString([]byte("signature-bytes-" + canary))
	hdr := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	payload := func(p string) string { return base64.RawURLEncoding.EncodeToString([]byte(p)) }
	tests := []struct {
		name string
		tok  string
		want Kind
	}{
		{name: "kid not a string", tok: hdr(`{"alg":"RS256","kid":["`+canary+`"]}`) + "." + b64(idClaims(iss, now)) + "." + sig, want: KindMalformed},
		{name: "alg not a string", tok: hdr(`{"alg":{"`+canary+`":1}}`) + "." + b64(idClaims(iss, now)) + "." + sig, want: KindSignature},
		{name: "unknown alg", tok: hdr(`{"alg":"`+canary+`"}`) + "." + b64(idClaims(iss, now)) + "." + sig, want: KindSignature},
		{name: "header not JSON", tok: hdr(canary) + "." + b64(idClaims(iss, now)) + "." + sig, want: KindMalformed},
		{name: "exp wrong type", tok: hdr(`{"alg":"RS256","kid":"rsa-1"}`) + "." + payload(`{"iss":"`+iss+`","exp":"`+canary+`"}`) + "." + sig, want: KindMalformed},
		{name: "exp huge number", tok: hdr(`{"alg":"RS256","kid":"rsa-1"}`) + "." + payload(`{"iss":"`+iss+`","exp":1e999`+`}`) + "." + sig, want: KindMalformed},
		{name: "payload not JSON", tok: hdr(`{"alg":"RS256","kid":"rsa-1"}`) + "." + payload(canary) + "." + sig, want: KindMalformed},
		{name: "bad signature", tok: hdr(`{"alg":"RS256","kid":"rsa-1"}`) + "." + b64(idClaims(iss, now)) + "." + sig, want: KindSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.auth.AuthenticateToken(t.Context(), tt.tok)
			if got := KindOf(err); got != tt.want {
				t.Fatalf("got kind %q (err %v), want %q", got, err, tt.want)
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "1e999") {
				t.Errorf("error %q echoes token content", err)
			}
			assertNoLeak(t, err, tt.tok)
		})
	}
}

// TestVerifiedCache: a verified token is remembered for at most VerifiedTTL
// and never past its exp; within that, its signature is not checked again.
func TestVerifiedCache(t *testing.T) {
	e := newEnv(t, Config{Leeway: time.Second}, Options{})
	long := mint(t, e.rsa1, idClaims(e.idp.issuer(), e.clock.Now()))
	short := mint(t, e.rsa1, with(idClaims(e.idp.issuer(), e.clock.Now()), map[string]any{"exp": e.clock.Now().Add(10 * time.Second).Unix()}))
	for _, tok := range []string{long, short} {
		if _, err := e.auth.AuthenticateToken(t.Context(), tok); err != nil {
			t.Fatal(err)
		}
	}
	remembered := func(tok string) bool {
		_, ok := e.auth.verified.get(sha256.Sum256([]byte(tok)), e.clock.Now())
		return ok
	}
	if !remembered(long) || !remembered(short) {
		t.Fatal("verified tokens are not remembered")
	}
	e.clock.Advance(VerifiedTTL - time.Second)
	if !remembered(long) {
		t.Error("a token is forgotten before VerifiedTTL")
	}
	if remembered(short) {
		t.Error("a token is remembered past its exp")
	}
	if _, err := e.auth.AuthenticateToken(t.Context(), short); KindOf(err) != KindExpired {
		t.Errorf("a token past its exp: got %v, want %s", err, KindExpired)
	}
	e.clock.Advance(2 * time.Second)
	if remembered(long) {
		t.Error("a token is remembered past VerifiedTTL")
	}
}
