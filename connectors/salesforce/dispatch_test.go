package salesforce_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/connectors/salesforce"
	"github.com/mcc-bridge/bridge/connectors/salesforce/salesforcefake"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
)

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
	h := connectortest.Start(t, c, connectortest.Options{Credentials: vault{instance: fake.URL}, Logger: logger})
	call := func(t *testing.T, body string) (int, map[string]any) {
		t.Helper()
		status, b, out := h.DispatchJSON(t, body)
		assertNoSecret(t, "the response", string(b))
		return status, out
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
	for _, tc := range []struct {
		name, body   string
		fault        salesforcefake.Fault
		wantStatus   int
		wantType     string // for failures
		wantRA       float64
		wantAttempts float64 // for successes
		wantWait     time.Duration
		wantRequests int // to Salesforce
	}{
		{name: "REQUEST_LIMIT_EXCEEDED with a short Retry-After is waited for, then success",
			body:  `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id FROM Account","limit":1}}`,
			fault: salesforcefake.Fault{Status: http.StatusForbidden, RetryAfter: "1"}, wantStatus: http.StatusOK, wantAttempts: 2, wantWait: time.Second, wantRequests: 2},
		{name: "REQUEST_LIMIT_EXCEEDED with a Retry-After past the deadline reaches the caller",
			body:  `{"targetSystem":"salesforce","operation":"create_record","payload":{"sobject":"Account","fields":{"Name":"Initech"}}}`,
			fault: salesforcefake.Fault{Status: http.StatusForbidden, RetryAfter: "120"}, wantStatus: http.StatusTooManyRequests,
			wantType: dispatch.ProblemUpstreamRateLimited, wantRA: 120, wantRequests: 1},
		{name: "Salesforce's validation error reaches the caller, not retried",
			body:       `{"targetSystem":"salesforce","operation":"create_record","payload":{"sobject":"Contact","fields":{"FirstName":"Ann"}}}`,
			wantStatus: http.StatusUnprocessableEntity, wantType: dispatch.ProblemUpstreamInvalid, wantRequests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != (salesforcefake.Fault{}) {
				fake.Inject(tc.fault)
			}
			before := len(fake.Requests())
			start := time.Now()
			status, out := call(t, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("got %d %v, want %d", status, out, tc.wantStatus)
			}
			if tc.wantType != "" && (out["type"] != tc.wantType || (tc.wantRA != 0 && out["retryAfter"] != tc.wantRA)) {
				t.Errorf("got %v (retryAfter %v), want %s (retryAfter %v)", out["type"], out["retryAfter"], tc.wantType, tc.wantRA)
			}
			if tc.wantType == dispatch.ProblemUpstreamInvalid && !strings.Contains(fmt.Sprint(out["detail"]), "REQUIRED_FIELD_MISSING") {
				t.Errorf("detail %q, want Salesforce's error code", out["detail"])
			}
			if tc.wantType == "" {
				if meta, _ := out["meta"].(map[string]any); meta["attempts"] != tc.wantAttempts || time.Since(start) < tc.wantWait {
					t.Errorf("got %v attempts after %v, want %v after at least %v", meta["attempts"], time.Since(start), tc.wantAttempts, tc.wantWait)
				}
			}
			if got := len(fake.Requests()) - before; got != tc.wantRequests {
				t.Errorf("Salesforce got %d requests, want %d", got, tc.wantRequests)
			}
		})
	}
	t.Run("a revoked token asks for the owner to reconnect", func(t *testing.T) {
		before := len(fake.Requests())
		fake.Revoke(token)
		status, out := call(t, `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id FROM Account"}}`)
		if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v", status, out)
		}
		if got := len(fake.Requests()) - before; got != 1 {
			t.Errorf("Salesforce got %d requests, want 1 (a refused credential is not retried)", got)
		}
	})
	assertNoSecret(t, "the log", logs.String())
	filepath.WalkDir(h.AuditDir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			b, _ := os.ReadFile(p)
			assertNoSecret(t, "audit file "+p, string(b))
		}
		return nil
	})
}

// TestRevokedConnection: when the credential manager finds the integration
// owner's connection revoked (Salesforce revokes every token of a grant
// whose old refresh token is reused) or the relay's service token refused,
// the dispatch is refused as credential-unavailable and Salesforce is
// never called.
func TestRevokedConnection(t *testing.T) {
	fake := salesforcefake.New(salesforcefake.Options{Tokens: []string{token}})
	defer fake.Close()
	c, err := salesforce.New(salesforce.Config{BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	vault := connectortest.RevokedConnection(t, salesforce.ID)
	h := connectortest.Start(t, c, connectortest.Options{Credentials: vault})
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"the owner's write: the grant was revoked", `{"targetSystem":"salesforce","operation":"create_record","payload":{"sobject":"Account","fields":{"Name":"x"}}}`, credentials.ErrReauthorize},
		{"the owner's write again: no second refresh", `{"targetSystem":"salesforce","operation":"create_record","payload":{"sobject":"Account","fields":{"Name":"y"}}}`, credentials.ErrReauthorize},
		{"a service query: the relay's client was revoked", `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id FROM Account"}}`, connectors.ErrNoCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			status, b, out := h.DispatchJSON(t, tc.body)
			assertNoSecret(t, "the response", string(b))
			if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
				t.Errorf("got %d %v, want 503 credential-unavailable", status, out["type"])
			}
			if got := len(fake.Requests()) - before; got != 0 {
				t.Errorf("Salesforce got %d requests, want 0", got)
			}
			if errs := vault.Errors(); len(errs) == 0 || !errors.Is(errs[len(errs)-1], tc.want) {
				t.Errorf("the manager answered %v, want an error wrapping %q", errs, tc.want)
			}
		})
	}
	if got := vault.Provider.Count("refresh_token"); got != 1 {
		t.Errorf("the manager tried %d refreshes, want 1 (then the connection is marked expired)", got)
	}
}
