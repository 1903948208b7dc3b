package credentials_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/credentials/credentialstest"
)

const (
	tenantA  = "acme"
	system   = "asana"
	redirect = "https://relay.example.test/v1/oauth/callback"
)

// t0 is the fake clock's start.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// lockedBuffer collects logs from every goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is one test's world: a directory, a master key, a fake clock, a fake
// provider and an alert receiver. Managers made from it share the
// directory, as relay processes on one machine would.
type env struct {
	t     testing.TB
	dir   string
	key   connectors.Secret
	clock *credentialstest.Clock
	prov  *credentialstest.Provider
	hook  *credentialstest.Webhook
	logs  *lockedBuffer
}

func newKey() connectors.Secret {
	var b [32]byte
	rand.Read(b[:])
	return connectors.Secret(base64.StdEncoding.EncodeToString(b[:]))
}

func newEnv(t testing.TB, o credentialstest.Options) *env {
	t.Helper()
	clock := credentialstest.NewClock(t0)
	o.Now = clock.Now
	e := &env{t: t, dir: t.TempDir(), key: newKey(), clock: clock, prov: credentialstest.NewProvider(t, o),
		hook: credentialstest.NewWebhook(t), logs: &lockedBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("manager logs:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) provider(system string, p *credentialstest.Provider) credentials.Provider {
	return credentials.Provider{System: system, AuthURL: p.AuthURL, TokenURL: p.TokenURL, ClientID: p.ClientID(),
		ClientSecret: connectors.Secret(p.ClientSecret()), Scopes: []string{"default"}, AuthStyle: oauth2.AuthStyleInHeader}
}

// config is a test configuration: fast lease polling and retries.
func (e *env) config() credentials.Config {
	return credentials.Config{
		Dir: e.dir, MasterKey: e.key,
		Providers:      []credentials.Provider{e.provider(system, e.prov)},
		Now:            e.clock.Now,
		AlertURL:       connectors.Secret(e.hook.URL),
		LeasePoll:      2 * time.Millisecond,
		RetryBaseDelay: 5 * time.Millisecond, RetryMaxDelay: 20 * time.Millisecond,
		MaxRefreshDuration: 5 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func (e *env) manager(mod ...func(*credentials.Config)) *credentials.Manager {
	e.t.Helper()
	cfg := e.config()
	for _, f := range mod {
		f(&cfg)
	}
	m, err := credentials.New(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { m.Close() })
	return m
}

// connect runs the authorization-code flow for tenant's connection to system.
func (e *env) connect(m *credentials.Manager, tenant, sys string, p *credentialstest.Provider) credentials.Connection {
	e.t.Helper()
	ctx := context.Background()
	u, err := m.StartAuthorization(ctx, tenant, sys, redirect)
	if err != nil {
		e.t.Fatalf("StartAuthorization: %v", err)
	}
	back := p.Authorize(e.t, u)
	if back.Get("error") != "" {
		e.t.Fatalf("provider refused the authorization: %s", back.Get("error"))
	}
	c, err := m.CompleteAuthorization(ctx, back.Get("state"), back.Get("code"))
	if err != nil {
		e.t.Fatalf("CompleteAuthorization: %v", err)
	}
	return c
}

func ownerReq(tenant, sys string) connectors.CredentialRequest {
	return connectors.CredentialRequest{Tenant: tenant, System: sys, Pattern: connectors.IntegrationOwner, UserID: "u1"}
}

func (e *env) credential(m *credentials.Manager) (connectors.Credential, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return m.Credential(ctx, ownerReq(tenantA, system))
}

func (e *env) mustGet(m *credentials.Manager, tenant, sys string) credentials.Connection {
	e.t.Helper()
	c, err := m.Get(context.Background(), tenant, sys)
	if err != nil {
		e.t.Fatalf("Get: %v", err)
	}
	return c
}

// testOptions is the default fake provider: rotating refresh tokens that
// stop working at once when rotated, as Slack's do.
func testOptions() credentialstest.Options { return credentialstest.Options{Rotate: true} }

// openRaw opens credentials.db directly, as an attacker with the file would.
func openRaw(t testing.TB, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, credentials.DBFile)+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}
