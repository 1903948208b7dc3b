package credentials_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
)

func TestAuthorizationCodePKCE(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager()
	ctx := context.Background()

	authURL, err := m.StartAuthorization(ctx, tenantA, system, redirect)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(authURL)
	q := u.Query()
	for k, want := range map[string]string{"response_type": "code", "client_id": e.prov.ClientID(), "redirect_uri": redirect,
		"code_challenge_method": "S256", "scope": "default"} {
		if got := q.Get(k); got != want {
			t.Errorf("authorization URL %s = %q, want %q", k, got, want)
		}
	}
	if len(q.Get("state")) < 43 || len(q.Get("code_challenge")) != 43 {
		t.Errorf("got state %d chars, code_challenge %d chars; want >= 43 and 43", len(q.Get("state")), len(q.Get("code_challenge")))
	}
	if c := e.mustGet(m, tenantA, system); c.State != credentials.StateInitial {
		t.Errorf("before completion: got state %s, want INITIAL", c.State)
	}

	back := e.prov.Authorize(t, authURL)
	c, err := m.CompleteAuthorization(ctx, back.Get("state"), back.Get("code"))
	if err != nil {
		t.Fatalf("CompleteAuthorization: %v", err)
	}
	if c.State != credentials.StateActive || !c.HasAccessToken || !c.HasRefreshToken || c.Expires.IsZero() {
		t.Errorf("got %+v, want ACTIVE with both tokens and an expiry", c)
	}
	if got, want := c.Expires, t0.Add(time.Hour); !got.Equal(want) {
		t.Errorf("got expiry %v, want %v (fake clock + expires_in)", got, want)
	}
	cred, err := e.credential(m)
	if err != nil || !e.prov.Valid(cred.Token.Reveal()) || cred.Method != "oauth2" || cred.Pattern != connectors.IntegrationOwner {
		t.Fatalf("got %+v, %v; want a valid oauth2 token", cred, err)
	}
	if got := e.prov.Count("authorization_code"); got != 1 {
		t.Errorf("got %d code exchanges, want 1", got)
	}

	t.Run("state is single use", func(t *testing.T) {
		_, err := m.CompleteAuthorization(ctx, back.Get("state"), back.Get("code"))
		if !errors.Is(err, credentials.ErrInvalidState) {
			t.Fatalf("got %v, want ErrInvalidState", err)
		}
		if got := e.prov.Count("authorization_code"); got != 1 {
			t.Errorf("got %d code exchanges, want still 1: a reused state must not reach the provider", got)
		}
	})
	t.Run("unknown state", func(t *testing.T) {
		if _, err := m.CompleteAuthorization(ctx, "forged", "code"); !errors.Is(err, credentials.ErrInvalidState) {
			t.Fatalf("got %v, want ErrInvalidState", err)
		}
	})
	t.Run("state expires after 10 minutes", func(t *testing.T) {
		u, err := m.StartAuthorization(ctx, tenantA, system, redirect)
		if err != nil {
			t.Fatal(err)
		}
		back := e.prov.Authorize(t, u)
		e.clock.Advance(10*time.Minute + time.Second)
		if _, err := m.CompleteAuthorization(ctx, back.Get("state"), back.Get("code")); !errors.Is(err, credentials.ErrStateExpired) {
			t.Fatalf("got %v, want ErrStateExpired", err)
		}
		if _, err := m.CompleteAuthorization(ctx, back.Get("state"), back.Get("code")); !errors.Is(err, credentials.ErrInvalidState) {
			t.Fatalf("second try: got %v, want ErrInvalidState (consumed)", err)
		}
	})
	t.Run("the provider verifies the S256 challenge", func(t *testing.T) {
		// The code issued for authorization A, redeemed with B's state
		// (B's verifier): the provider's S256 check fails.
		ua, _ := m.StartAuthorization(ctx, tenantA, system, redirect)
		ub, _ := m.StartAuthorization(ctx, tenantA, system, redirect)
		a, b := e.prov.Authorize(t, ua), e.prov.Authorize(t, ub)
		if e.prov.LastPKCEMethod() != "S256" {
			t.Fatalf("got code_challenge_method %q, want S256", e.prov.LastPKCEMethod())
		}
		_, err := m.CompleteAuthorization(ctx, b.Get("state"), a.Get("code"))
		if !errors.Is(err, credentials.ErrExchange) || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("got %v, want ErrExchange (invalid_grant)", err)
		}
		if got := e.mustGet(m, tenantA, system); got.State != credentials.StateActive {
			t.Errorf("got state %s, want the existing connection still ACTIVE", got.State)
		}
	})
	t.Run("unknown system", func(t *testing.T) {
		if _, err := m.StartAuthorization(ctx, tenantA, "nosuch", redirect); !errors.Is(err, credentials.ErrUnknownSystem) {
			t.Fatalf("got %v, want ErrUnknownSystem", err)
		}
	})
}

func TestRevokeAndViews(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager()
	ctx := context.Background()
	e.connect(m, tenantA, system, e.prov)
	e.connect(m, "globex", system, e.prov)

	list, err := m.List(ctx, tenantA)
	if err != nil || len(list) != 1 || list[0].Tenant != tenantA || list[0].System != system {
		t.Fatalf("got %+v, %v; want acme's one connection", list, err)
	}
	b, _ := json.Marshal(list)
	for _, s := range e.prov.Secrets() {
		if strings.Contains(string(b)+fmt.Sprintf("%+v", list), s) {
			t.Fatalf("a connection view shows a secret: %s", b)
		}
	}

	c, err := m.Revoke(ctx, tenantA, system)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != credentials.StateRevoked || c.HasAccessToken || c.HasRefreshToken {
		t.Fatalf("got %+v, want REVOKED without tokens", c)
	}
	if _, err := e.credential(m); !errors.Is(err, connectors.ErrNoCredential) {
		t.Fatalf("after revoke: got %v, want ErrNoCredential", err)
	}
	if _, err := m.Credential(ctx, ownerReq("globex", system)); err != nil {
		t.Fatalf("another tenant's connection: %v", err)
	}
	if _, err := m.Revoke(ctx, tenantA, "nosuch"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	if _, err := m.Get(ctx, "nobody", system); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	// Authorizing again brings it back.
	if c := e.connect(m, tenantA, system, e.prov); c.State != credentials.StateActive {
		t.Fatalf("got %s, want ACTIVE again", c.State)
	}
}

func TestHandler(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager()
	h, err := credentials.NewHandler(m, credentials.HandlerConfig{
		RedirectURL: redirect,
		Authorize: func(r *http.Request) (string, error) {
			switch r.Header.Get("Authorization") {
			case "Bearer acme-admin":
				return tenantA, nil
			case "Bearer acme-reader":
				return "", fmt.Errorf("reader may not manage connections: %w", credentials.ErrForbidden)
			}
			return "", errors.New("no token")
		},
		Subject: func(*http.Request) string { return "owner@acme.test" },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, path, token string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, s := range e.prov.Secrets() {
			if strings.Contains(string(body), s) {
				t.Fatalf("%s %s: the response shows a secret", method, path)
			}
		}
		var v map[string]any
		json.Unmarshal(body, &v)
		return resp.StatusCode, v
	}

	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/v1/connections", "", 401},
		{"forbidden", "GET", "/v1/connections", "acme-reader", 403},
		{"unknown system", "POST", "/v1/connections/nosuch/authorize", "acme-admin", 404},
		{"no connection yet", "GET", "/v1/connections/" + system, "acme-admin", 404},
		{"callback with a forged state", "GET", "/v1/oauth/callback?state=forged&code=x", "", 400},
		{"owner declined", "GET", "/v1/oauth/callback?state=x&error=access_denied", "", 400},
		{"wrong method", "PUT", "/v1/connections/" + system, "acme-admin", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := do(tc.method, tc.path, tc.token); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}

	status, v := do("POST", "/v1/connections/"+system+"/authorize", "acme-admin")
	authURL, _ := v["authorizationUrl"].(string)
	if status != 200 || !strings.HasPrefix(authURL, e.prov.AuthURL+"?") {
		t.Fatalf("authorize: got %d %v, want 200 with the provider's URL", status, v)
	}
	back := e.prov.Authorize(t, authURL)
	status, v = do("GET", "/v1/oauth/callback?"+back.Encode(), "")
	if status != 200 || v["state"] != "ACTIVE" || v["subject"] != "owner@acme.test" || v["tenant"] != tenantA {
		t.Fatalf("callback: got %d %v, want 200 ACTIVE for acme, subject owner@acme.test", status, v)
	}
	if status, _ = do("GET", "/v1/oauth/callback?"+back.Encode(), ""); status != 400 {
		t.Fatalf("callback replayed: got %d, want 400", status)
	}
	status, v = do("GET", "/v1/connections", "acme-admin")
	if cs, _ := v["connections"].([]any); status != 200 || len(cs) != 1 {
		t.Fatalf("list: got %d %v, want one connection", status, v)
	}
	if status, v = do("GET", "/v1/connections/"+system, "acme-admin"); status != 200 || v["hasRefreshToken"] != true {
		t.Fatalf("get: got %d %v", status, v)
	}
	if status, v = do("DELETE", "/v1/connections/"+system, "acme-admin"); status != 200 || v["state"] != "REVOKED" {
		t.Fatalf("revoke: got %d %v", status, v)
	}
	if _, err := e.credential(m); !errors.Is(err, connectors.ErrNoCredential) {
		t.Fatalf("after DELETE: got %v, want ErrNoCredential", err)
	}
}
