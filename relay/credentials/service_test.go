package credentials_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/credentials/credentialstest"
)

func s2sReq(tenant, sys string) connectors.CredentialRequest {
	return connectors.CredentialRequest{Tenant: tenant, System: sys, Pattern: connectors.ServiceToService}
}

// concurrentS2S calls Credential n times at once and checks that every
// call got the same token.
func concurrentS2S(t *testing.T, m *credentials.Manager, n int, req connectors.CredentialRequest) connectors.Credential {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	creds, errs := make([]connectors.Credential, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { creds[i], errs[i] = m.Credential(ctx, req) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || creds[i].Token != creds[0].Token {
			t.Fatalf("call %d: %v (same token %v)", i, errs[i], creds[i].Token == creds[0].Token)
		}
	}
	return creds[0]
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, credentialstest.Options{TTL: 24 * time.Hour}) // Adobe IMS: expires_in 86399
	m := e.manager(func(c *credentials.Config) {
		c.Services = []credentials.Service{{System: "adobeanalytics", Method: credentials.MethodClientCredentials,
			TokenURL: e.prov.TokenURL, ClientID: e.prov.ClientID(), ClientSecret: connectors.Secret(e.prov.ClientSecret()),
			Scopes: []string{"openid,AdobeID,read_organizations"}}}
	})
	c := concurrentS2S(t, m, 100, s2sReq(tenantA, "adobeanalytics"))
	if got := e.prov.Count("client_credentials"); got != 1 {
		t.Fatalf("100 concurrent callers made %d token requests, want 1", got)
	}
	if c.Method != "client-credentials" || c.Pattern != connectors.ServiceToService || !e.prov.Valid(c.Token.Reveal()) ||
		c.Values["client_id"].Reveal() != e.prov.ClientID() || !c.Expires.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("got %+v, want a valid client-credentials token with client_id, expiring in 24 h", c)
	}
	// Cached until expiry - TokenMargin (5 min).
	e.clock.Advance(24*time.Hour - 5*time.Minute - time.Second)
	if c2, _ := m.Credential(context.Background(), s2sReq(tenantA, "adobeanalytics")); c2.Token != c.Token {
		t.Fatal("the token was not reused before expiry - margin")
	}
	e.clock.Advance(2 * time.Second)
	c3, err := m.Credential(context.Background(), s2sReq(tenantA, "adobeanalytics"))
	if err != nil || c3.Token == c.Token || e.prov.Count("client_credentials") != 2 {
		t.Fatalf("at expiry - margin: got %v, new token %v, %d requests; want a second request", err, c3.Token != c.Token, e.prov.Count("client_credentials"))
	}
	// Each tenant gets its own token.
	if c4, _ := m.Credential(context.Background(), s2sReq("globex", "adobeanalytics")); c4.Token == c3.Token {
		t.Fatal("two tenants share a cached token")
	}
	// An integration-owner request does not get the service's token.
	if _, err := m.Credential(context.Background(), ownerReq(tenantA, "adobeanalytics")); !errors.Is(err, connectors.ErrNoCredential) {
		t.Fatalf("owner request: got %v, want ErrNoCredential", err)
	}
}

func TestClientCredentialsRefused(t *testing.T) {
	e := newEnv(t, credentialstest.Options{})
	m := e.manager(func(c *credentials.Config) {
		c.Services = []credentials.Service{{System: "adobeanalytics", Method: credentials.MethodClientCredentials,
			TokenURL: e.prov.TokenURL, ClientID: e.prov.ClientID(), ClientSecret: "wrong-secret-value"}}
	})
	_, err := m.Credential(context.Background(), s2sReq(tenantA, "adobeanalytics"))
	if !errors.Is(err, connectors.ErrNoCredential) || !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("got %v, want ErrNoCredential naming invalid_client, without the secret", err)
	}
	e.prov.FailNext(1000, 503)
	m2 := e.manager(func(c *credentials.Config) {
		c.MaxRefreshDuration = 200 * time.Millisecond
		c.Services = []credentials.Service{{System: "adobeanalytics", Method: credentials.MethodClientCredentials,
			TokenURL: e.prov.TokenURL, ClientID: e.prov.ClientID(), ClientSecret: connectors.Secret(e.prov.ClientSecret())}}
	})
	_, err = m2.Credential(context.Background(), s2sReq(tenantA, "adobeanalytics"))
	if connectors.ClassOf(err) != connectors.ClassUnavailable || errors.Is(err, connectors.ErrNoCredential) {
		t.Fatalf("provider down: got %v, want an unavailable error", err)
	}
}

func TestJWTBearer(t *testing.T) {
	key, pemKey := rsaKey(t)
	e := newEnv(t, credentialstest.Options{JWTPublicKey: &key.PublicKey, InstanceURL: "https://acme.my.salesforce.test",
		NoExpiresIn: true, ClientID: "3MVG9-consumer-key"})
	svc := credentials.Service{System: "salesforce", Method: credentials.MethodJWTBearer, TokenURL: e.prov.TokenURL,
		ClientID: e.prov.ClientID(), Subject: "integration@acme.test", PrivateKeyPEM: pemKey}
	m := e.manager(func(c *credentials.Config) { c.Services = []credentials.Service{svc} })
	c := concurrentS2S(t, m, 50, s2sReq(tenantA, "salesforce"))
	if got := e.prov.Count(credentials.JWTBearerGrant); got != 1 {
		t.Fatalf("50 concurrent callers made %d JWT bearer requests, want 1", got)
	}
	if c.Method != "jwt-bearer" || c.Subject != "integration@acme.test" || !e.prov.Valid(c.Token.Reveal()) ||
		c.Values["instance_url"].Reveal() != "https://acme.my.salesforce.test" {
		t.Fatalf("got %+v (instance_url %q), want a valid token with the instance URL", c, c.Values["instance_url"].Reveal())
	}
	// No expires_in: assumed 15 minutes, reused for 10.
	if !c.Expires.Equal(t0.Add(15 * time.Minute)) {
		t.Errorf("got expiry %v, want now + 15 min (TokenTTL default)", c.Expires)
	}
	e.clock.Advance(10*time.Minute + time.Second)
	if _, err := m.Credential(context.Background(), s2sReq(tenantA, "salesforce")); err != nil || e.prov.Count(credentials.JWTBearerGrant) != 2 {
		t.Fatalf("after 10 min: %v, %d requests; want a second assertion", err, e.prov.Count(credentials.JWTBearerGrant))
	}

	t.Run("assertion signed with another key is refused", func(t *testing.T) {
		_, other := rsaKey(t)
		svc := svc
		svc.PrivateKeyPEM = other
		m := e.manager(func(c *credentials.Config) { c.Services = []credentials.Service{svc} })
		_, err := m.Credential(context.Background(), s2sReq(tenantA, "salesforce"))
		if !errors.Is(err, connectors.ErrNoCredential) || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("got %v, want ErrNoCredential (invalid_grant)", err)
		}
	})
}

func TestSTSBaseKeys(t *testing.T) {
	e := newEnv(t, credentialstest.Options{})
	m := e.manager(func(c *credentials.Config) {
		c.Services = []credentials.Service{{System: "s3", Method: credentials.MethodSTSAssumeRole,
			AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "base-secret-key", RoleARN: "arn:aws:iam::123456789012:role/bridge-acme",
			ExternalID: "acme-ext"}}
	})
	c, err := m.Credential(context.Background(), s2sReq(tenantA, "s3"))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"access_key_id": "AKIAEXAMPLE", "secret_access_key": "base-secret-key",
		"role_arn": "arn:aws:iam::123456789012:role/bridge-acme", "external_id": "acme-ext"} {
		if got := c.Values[k].Reveal(); got != want {
			t.Errorf("Values[%s] = %q, want %q", k, got, want)
		}
	}
	if _, ok := c.Values["session_token"]; ok || c.Method != "sts-assume-role" || c.Token != "" {
		t.Errorf("got %+v, want no session token, method sts-assume-role, no bearer token", c)
	}
	// Values are the caller's own: changing them does not leak into the next call.
	c.Values["access_key_id"] = "changed"
	if c2, _ := m.Credential(context.Background(), s2sReq(tenantA, "s3")); c2.Values["access_key_id"].Reveal() != "AKIAEXAMPLE" {
		t.Fatal("a caller's change reached another caller")
	}
}

func TestAPIKey(t *testing.T) {
	e := newEnv(t, credentialstest.Options{})
	m := e.manager()
	ctx := context.Background()
	const key = "quip-key-0123456789abcdef"
	c, err := m.SetAPIKey(ctx, tenantA, "quip", credentials.APIKey{Key: key, Header: "Authorization",
		RotateBy: t0.Add(20 * 24 * time.Hour), Subject: "bot@acme.test"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Method != credentials.MethodAPIKey || c.State != credentials.StateActive || !c.RotateBy.Equal(t0.Add(20*24*time.Hour)) {
		t.Fatalf("got %+v", c)
	}
	for _, p := range []connectors.AuthPattern{connectors.IntegrationOwner, connectors.ServiceToService} {
		cred, err := m.Credential(ctx, connectors.CredentialRequest{Tenant: tenantA, System: "quip", Pattern: p})
		if err != nil || cred.Token.Reveal() != key || cred.Values["header"].Reveal() != "Authorization" || cred.Method != "api-key" || cred.Subject != "bot@acme.test" {
			t.Fatalf("%s: got %+v, %v", p, cred, err)
		}
	}
	if _, err := m.SetAPIKey(ctx, tenantA, "quip", credentials.APIKey{}); !errors.Is(err, credentials.ErrInvalid) {
		t.Fatalf("empty key: got %v, want ErrInvalid", err)
	}

	// Reminder 14 days ahead of the rotation date: none yet, then one, once.
	m.Scan(ctx)
	if n := len(e.hook.Bodies()); n != 0 {
		t.Fatalf("20 days ahead: got %d reminders, want 0", n)
	}
	e.clock.Advance(7 * 24 * time.Hour)
	m.Scan(ctx)
	m.Scan(ctx)
	bodies := e.hook.Bodies()
	if len(bodies) != 1 || !strings.Contains(bodies[0], "quip API key of tenant acme must be rotated by") || strings.Contains(bodies[0], key) {
		t.Fatalf("13 days ahead: got %q, want one reminder without the key", bodies)
	}
	// A new key with a new date re-arms the reminder.
	m.SetAPIKey(ctx, tenantA, "quip", credentials.APIKey{Key: "quip-key-new", RotateBy: e.clock.Now().Add(24 * time.Hour)})
	m.Scan(ctx)
	if n := len(e.hook.Bodies()); n != 2 {
		t.Fatalf("after rotation: got %d reminders, want 2", n)
	}
}
