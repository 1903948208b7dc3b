// Package connectortest runs a connector behind a real dispatcher for the
// connectors' tests: a caller that authenticates with one bearer token as
// sarah of tenant acme, a policy that allows everything, a real audit log
// in the test's temporary directory, and fast retries. RevokedConnection
// gives it a real credential manager whose connection to the system was
// revoked, for tests that the dispatch stops before the system is called.
package connectortest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// CallerToken is the bearer token Caller accepts.
const CallerToken = "caller-token"

// Caller authenticates requests bearing CallerToken as sarah of acme.
type Caller struct{}

// Authenticate implements dispatch.Authenticator.
func (Caller) Authenticate(_ context.Context, r *http.Request) (callerauth.Caller, error) {
	if r.Header.Get("Authorization") != "Bearer "+CallerToken {
		return callerauth.Caller{}, &callerauth.Error{Kind: callerauth.KindMissing, Detail: "no bearer token"}
	}
	return callerauth.Caller{UserID: "sarah", Email: "sarah@acme.example", Tenant: Tenant, Roles: []string{"marketing"}, AuthMethod: "oidc"}, nil
}

// AllowAll is a policy that permits everything.
type AllowAll struct{}

// Decide implements dispatch.Decider.
func (AllowAll) Decide(context.Context, policy.Request) policy.Decision {
	return policy.Decision{Allow: true, Policies: []string{"allow-all"}, Reason: "allowed by policy allow-all"}
}

// Options tunes Start. The zero value of every field means its default.
type Options struct {
	// Credentials gives the connector its credential; nil means none.
	Credentials connectors.Credentials
	// Logger receives the dispatcher's logs; nil means none.
	Logger *slog.Logger
	// MaxBody is the dispatcher's body limit; zero means its default.
	MaxBody int64
}

// Harness is a dispatcher serving one connector on loopback.
type Harness struct {
	// URL is the dispatcher's base URL.
	URL string
	// Audit is its audit log, kept in AuditDir.
	Audit    *audit.Log
	AuditDir string
}

// Start serves c behind a dispatcher until the test ends.
func Start(t testing.TB, c connectors.Connector, o Options) *Harness {
	t.Helper()
	dir := t.TempDir()
	lg, err := audit.Open(context.Background(), dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{c}, Auth: Caller{}, Policy: AllowAll{}, Audit: lg,
		Credentials: o.Credentials, Logger: o.Logger, MaxBody: o.MaxBody,
		Retry: dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return &Harness{URL: srv.URL, Audit: lg, AuditDir: dir}
}

// Dispatch POSTs body to /v1/dispatch as the Caller and returns the status
// and the raw answer.
func (h *Harness) Dispatch(t testing.TB, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/v1/dispatch", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+CallerToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// DispatchJSON is Dispatch with the answer decoded as a JSON object.
func (h *Harness) DispatchJSON(t testing.TB, body string) (int, []byte, map[string]any) {
	t.Helper()
	status, b := h.Dispatch(t, body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%d %s", status, b)
	}
	return status, b, out
}
