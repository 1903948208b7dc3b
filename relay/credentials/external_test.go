package credentials_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/relay/credentials"
)

// oauthServerDir holds the real OAuth 2.0 server: oauth2-mock-server,
// installed by `cd relay/credentials/testdata/oauthserver && npm ci`.
const oauthServerDir = "testdata/oauthserver"

// startOAuthServer starts `node server.js` and returns its base URL. It
// skips (fails, with BRIDGE_REQUIRE_EXTERNAL=1) without node or the
// installed package.
func startOAuthServer(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(oauthServerDir, "node_modules", "oauth2-mock-server", "package.json"))
	}
	if err != nil {
		msg := "the real OAuth server test needs node and `cd relay/credentials/testdata/oauthserver && npm ci`: " + err.Error()
		if os.Getenv("BRIDGE_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(node, "server.js")
	cmd.Dir = oauthServerDir
	stdin, _ := cmd.StdinPipe() // closing it stops the server
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("node server.js: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "PORT "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		return "http://127.0.0.1:" + p
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("oauth2-mock-server did not start: %s", stderr.String())
	}
	return ""
}

// TestRealOAuthServer runs the authorization-code flow with PKCE S256 and
// a refresh against oauth2-mock-server, a real OAuth 2.0 / OIDC server:
// it auto-approves /authorize, verifies the code verifier against the
// challenge, and signs access tokens, which are checked against its JWKS.
func TestRealOAuthServer(t *testing.T) {
	base := startOAuthServer(t)
	e := newEnv(t, testOptions())
	m := e.manager(func(c *credentials.Config) {
		c.Providers = []credentials.Provider{{System: "mock", AuthURL: base + "/authorize", TokenURL: base + "/token",
			ClientID: "bridge-client", ClientSecret: "bridge-client-secret", Scopes: []string{"openid", "offline_access"},
			AuthStyle: oauth2.AuthStyleInHeader}}
	})
	ctx := context.Background()
	authorize := func() url.Values {
		t.Helper()
		u, err := m.StartAuthorization(ctx, tenantA, "mock", redirect)
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode/100 != 3 || err != nil || !strings.HasPrefix(loc.String(), redirect) {
			t.Fatalf("authorize: got %s to %q, want a redirect to the callback", resp.Status, resp.Header.Get("Location"))
		}
		sent, _ := url.Parse(u)
		if loc.Query().Get("state") != sent.Query().Get("state") || loc.Query().Get("code") == "" {
			t.Fatalf("callback query %v: want the state sent and a code", loc.Query())
		}
		return loc.Query()
	}

	// A code redeemed with another authorization's verifier is refused
	// by the server's PKCE check.
	a, b := authorize(), authorize()
	if _, err := m.CompleteAuthorization(ctx, b.Get("state"), a.Get("code")); !errors.Is(err, credentials.ErrExchange) {
		t.Fatalf("swapped verifier: got %v, want ErrExchange", err)
	}

	back := authorize()
	c, err := m.CompleteAuthorization(ctx, back.Get("state"), back.Get("code"))
	if err != nil {
		t.Fatalf("CompleteAuthorization: %v", err)
	}
	if c.State != credentials.StateActive || !c.HasRefreshToken || c.Expires.IsZero() {
		t.Fatalf("got %+v, want ACTIVE with a refresh token and an expiry", c)
	}
	first, err := m.Credential(ctx, ownerReq(tenantA, "mock"))
	if err != nil {
		t.Fatal(err)
	}
	keys := fetchJWKS(t, base)
	verifyJWT(t, keys, first.Token.Reveal())

	e.clock.Advance(time.Hour - 2*time.Minute) // within RefreshAhead of the server's 1 h tokens
	second, err := m.Credential(ctx, ownerReq(tenantA, "mock"))
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.Token == first.Token {
		t.Fatal("the token was not refreshed")
	}
	verifyJWT(t, keys, second.Token.Reveal())
	after := e.mustGet(m, tenantA, "mock")
	if after.State != credentials.StateActive || after.RefreshedAt.IsZero() || !after.Expires.After(c.Expires) {
		t.Fatalf("after refresh: got %+v", after)
	}
	t.Logf("code exchanged and refreshed at %s; tokens verified against its JWKS", base)
}

func fetchJWKS(t *testing.T, base string) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(base + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&ks); err != nil || len(ks.Keys) == 0 {
		t.Fatalf("jwks: %v (%d keys)", err, len(ks.Keys))
	}
	return ks
}

func verifyJWT(t *testing.T, ks jose.JSONWebKeySet, raw string) {
	t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("access token is not a JWS: %v", err)
	}
	var c jwt.Claims
	if err := tok.Claims(ks, &c); err != nil || c.Subject == "" {
		t.Fatalf("access token does not verify against the server's JWKS: %v", err)
	}
}
