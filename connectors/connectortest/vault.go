package connectortest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/credentials/credentialstest"
)

// Tenant is the tenant Caller belongs to.
const Tenant = "acme"

// Vault is a connectors.Credentials backed by a real credential manager
// (relay/credentials) and a fake OAuth provider. It counts the requests
// for credentials and keeps their errors, for tests that a connection the
// manager refuses stops a dispatch before the system is called. It is safe
// for concurrent use.
type Vault struct {
	// Manager is the credential manager; Provider is its OAuth provider
	// (for both the integration owner's grant and the relay's client).
	Manager  *credentials.Manager
	Provider *credentialstest.Provider

	mu   sync.Mutex
	reqs []connectors.CredentialRequest // guarded by mu
	errs []error                        // guarded by mu
}

// RevokedConnection returns a Vault for system in which tenant acme's
// integration owner authorized an OAuth connection, then revoked the
// relay's access at the provider, and the access token expired. The first
// integration-owner request makes the manager refresh the token: the
// provider answers invalid_grant, the connection goes EXPIRED, and that
// request and every later one fail with credentials.ErrReauthorize
// (wrapping connectors.ErrNoCredential). The relay's own client for the
// system (client credentials, as Adobe IMS) is refused as well
// (invalid_client), so service-to-service requests fail with
// connectors.ErrNoCredential.
func RevokedConnection(t testing.TB, system string) *Vault {
	t.Helper()
	ctx := context.Background()
	clock := credentialstest.NewClock(time.Now())
	prov := credentialstest.NewProvider(t, credentialstest.Options{Rotate: true, Now: clock.Now})
	var key [32]byte
	rand.Read(key[:])
	m, err := credentials.New(ctx, credentials.Config{
		Dir: t.TempDir(), MasterKey: connectors.Secret(base64.StdEncoding.EncodeToString(key[:])),
		Providers: []credentials.Provider{{System: system, AuthURL: prov.AuthURL, TokenURL: prov.TokenURL,
			ClientID: prov.ClientID(), ClientSecret: connectors.Secret(prov.ClientSecret()), AuthStyle: oauth2.AuthStyleInHeader}},
		Services: []credentials.Service{{System: system, Method: credentials.MethodClientCredentials, TokenURL: prov.TokenURL,
			ClientID: prov.ClientID(), ClientSecret: "the-relay-client-secret-the-provider-revoked"}},
		Now:       clock.Now,
		Logger:    slog.New(slog.NewTextHandler(tbWriter{t}, nil)),
		LeasePoll: 2 * time.Millisecond, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
		MaxRefreshDuration: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("credential manager: %v", err)
	}
	t.Cleanup(func() { m.Close() })

	u, err := m.StartAuthorization(ctx, Tenant, system, "https://relay.acme.example/v1/oauth/callback")
	if err != nil {
		t.Fatalf("start authorization: %v", err)
	}
	back := prov.Authorize(t, u)
	if _, err := m.CompleteAuthorization(ctx, back.Get("state"), back.Get("code")); err != nil {
		t.Fatalf("complete authorization: %v", err)
	}
	if _, err := m.Credential(ctx, connectors.CredentialRequest{Tenant: Tenant, System: system, Pattern: connectors.IntegrationOwner}); err != nil {
		t.Fatalf("the connection does not work before it is revoked: %v", err)
	}
	prov.RevokeAll()
	clock.Advance(2 * time.Hour) // the access token (1 h) expired
	return &Vault{Manager: m, Provider: prov}
}

// Credential implements connectors.Credentials.
func (v *Vault) Credential(ctx context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	c, err := v.Manager.Credential(ctx, req)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reqs = append(v.reqs, req)
	if err != nil {
		v.errs = append(v.errs, err)
	}
	return c, err
}

// Requests returns the credential requests made so far.
func (v *Vault) Requests() []connectors.CredentialRequest {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.reqs)
}

// Errors returns the errors the manager answered, in order.
func (v *Vault) Errors() []error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.errs)
}

// tbWriter writes log lines to t.Log.
type tbWriter struct{ t testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
