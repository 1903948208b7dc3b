package salesforce_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/connectors/salesforce"
	"github.com/mcc-bridge/bridge/connectors/salesforce/salesforcefake"
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
	t.Run("a revoked token asks for the owner to reconnect", func(t *testing.T) {
		fake.Revoke(token)
		status, out := call(t, `{"targetSystem":"salesforce","operation":"query","payload":{"soql":"SELECT Id FROM Account"}}`)
		if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v", status, out)
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
