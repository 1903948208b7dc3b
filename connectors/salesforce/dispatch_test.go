package salesforce_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/salesforce"
	"github.com/mcc-bridge/bridge/connectors/salesforce/salesforcefake"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// oneCaller authenticates every request with a bearer token as sarah of acme.
type oneCaller struct{}

func (oneCaller) Authenticate(_ context.Context, r *http.Request) (callerauth.Caller, error) {
	if r.Header.Get("Authorization") != "Bearer caller-token" {
		return callerauth.Caller{}, &callerauth.Error{Kind: callerauth.KindMissing, Detail: "no bearer token"}
	}
	return callerauth.Caller{UserID: "sarah", Email: "sarah@acme.example", Tenant: "acme", Roles: []string{"sales"}, AuthMethod: "oidc"}, nil
}

// allowAll permits everything.
type allowAll struct{}

func (allowAll) Decide(context.Context, policy.Request) policy.Decision {
	return policy.Decision{Allow: true, Policies: []string{"allow-all"}, Reason: "allowed by policy allow-all"}
}

// vault hands out the test token for Salesforce, with the instance URL.
type vault struct{ instance string }

func (v vault) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	if req.System != salesforce.ID || req.Tenant != "acme" {
		return connectors.Credential{}, connectors.ErrNoCredential
	}
	return connectors.Credential{Pattern: req.Pattern, Method: "oauth2", Token: token, Subject: "integration@acme.example",
		Values: map[string]connectors.Secret{"instance_url": connectors.Secret(v.instance)}}, nil
}

func TestThroughTheDispatcher(t *testing.T) {
	fake := salesforcefake.New(salesforcefake.Options{Tokens: []string{token}, PageSize: 2})
	defer fake.Close()
	fake.Add("Account", accounts(5)...)
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// BaseURL is a host nobody listens on: the credential's instance_url wins.
	c, err := salesforce.New(salesforce.Config{BaseURL: "https://acme.my.salesforce.com", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lg, err := audit.Open(t.Context(), dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{c}, Auth: oneCaller{}, Policy: allowAll{}, Audit: lg,
		Credentials: vault{instance: fake.URL}, Logger: logger,
		Retry: dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	call := func(t *testing.T, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/dispatch", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer caller-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assertNoSecret(t, "the response", string(b))
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return resp.StatusCode, out
	}

	t.Run("a 503 is retried, then the query succeeds across pages", func(t *testing.T) {
		fake.Inject(salesforcefake.Fault{Status: http.StatusServiceUnavailable})
		status, out := call(t, `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id, Name FROM Account","limit":5}}`)
		if status != http.StatusOK {
			t.Fatalf("status %d: %v", status, out)
		}
		meta, _ := out["meta"].(map[string]any)
		result, _ := out["result"].(map[string]any)
		if meta["attempts"] != float64(2) || meta["authPattern"] != "s2s" || result["count"] != float64(5) || result["done"] != true {
			t.Errorf("got meta %v result count %v done %v; want 2 attempts, s2s, 5 records, done", meta, result["count"], result["done"])
		}
	})
	t.Run("a write is attributed to the integration owner's connection", func(t *testing.T) {
		status, out := call(t, `{"targetSystem":"salesforce","operation":"create_record","payload":{"sobject":"Account","fields":{"Name":"Globex"}}}`)
		meta, _ := out["meta"].(map[string]any)
		if status != http.StatusOK || meta["authPattern"] != "integration-owner" {
			t.Errorf("status %d: %v", status, out)
		}
	})
	for _, tc := range []struct{ name, body, pointer string }{
		{"sobject with a path", `{"targetSystem":"salesforce","operation":"create_record","payload":{"sobject":"Account/../x","fields":{"Name":"x"}}}`, "/sobject"},
		{"nested field value", `{"targetSystem":"salesforce","operation":"create_record","payload":{"sobject":"Account","fields":{"Name":{"x":1}}}}`, "/fields/Name"},
		{"not a SELECT", `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"DELETE FROM Account"}}`, "/soql"},
		{"unknown property", `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id FROM Account","tenant":"globex"}}`, ""},
		{"limit too high", `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id FROM Account","limit":5000}}`, "/limit"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			status, out := call(t, tc.body)
			if status != http.StatusBadRequest || out["type"] != dispatch.ProblemInvalidPayload {
				t.Fatalf("got %d %v, want 400 %s", status, out, dispatch.ProblemInvalidPayload)
			}
			if tc.pointer != "" && out["pointer"] != tc.pointer {
				t.Errorf("pointer %v, want %s", out["pointer"], tc.pointer)
			}
			if len(fake.Requests()) != before {
				t.Error("Salesforce was called")
			}
		})
	}
	t.Run("a revoked token asks for the owner to reconnect", func(t *testing.T) {
		fake.Revoke(token)
		status, out := call(t, `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id FROM Account"}}`)
		if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v", status, out)
		}
	})
	assertNoSecret(t, "the log", logs.String())
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			b, _ := os.ReadFile(p)
			assertNoSecret(t, "audit file "+p, string(b))
		}
		return nil
	})
}
