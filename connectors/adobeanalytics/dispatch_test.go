package adobeanalytics_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/adobeanalytics"
	"github.com/mcc-bridge/bridge/connectors/adobeanalytics/adobeanalyticsfake"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/relay/dispatch"
)

// vault hands out the test credential for Adobe Analytics.
type vault struct{}

func (vault) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	if req.System != adobeanalytics.ID || req.Tenant != "acme" || req.Pattern != connectors.ServiceToService {
		return connectors.Credential{}, connectors.ErrNoCredential
	}
	return cred(), nil
}

func TestThroughTheDispatcher(t *testing.T) {
	fake := adobeanalyticsfake.New(adobeanalyticsfake.Options{Tokens: []string{token}})
	defer fake.Close()
	fake.SetRows("acme.prod", pages(7))
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := adobeanalytics.New(adobeanalytics.Config{BaseURL: fake.URL, Logger: logger, PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	h := connectortest.Start(t, c, connectortest.Options{Credentials: vault{}, Logger: logger})
	call := func(t *testing.T, body string) (int, map[string]any) {
		t.Helper()
		status, b, out := h.DispatchJSON(t, body)
		assertNoSecret(t, "the response", string(b))
		return status, out
	}
	const good = `{"rsid":"acme.prod","dateRange":"2024-01-01T00:00:00.000/2024-02-01T00:00:00.000","metrics":["metrics/pageviews"],"dimension":"variables/page"`

	t.Run("a 503 is retried, then the report succeeds across pages", func(t *testing.T) {
		fake.Inject(adobeanalyticsfake.Fault{Status: http.StatusServiceUnavailable})
		status, out := call(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":`+good+`}}`)
		if status != http.StatusOK {
			t.Fatalf("status %d: %v", status, out)
		}
		meta, _ := out["meta"].(map[string]any)
		result, _ := out["result"].(map[string]any)
		if meta["attempts"] != float64(2) || meta["authPattern"] != "s2s" || result["count"] != float64(7) || result["truncated"] != false {
			t.Errorf("got meta %v result %v; want 2 attempts, s2s, 7 rows", meta, result)
		}
	})
	t.Run("a 429 reaches the caller with its Retry-After when it does not fit", func(t *testing.T) {
		before := len(fake.Requests())
		fake.Inject(adobeanalyticsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: "120"})
		status, out := call(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":`+good+`}}`)
		if status != http.StatusTooManyRequests || out["type"] != dispatch.ProblemUpstreamRateLimited || out["retryAfter"] != float64(120) {
			t.Errorf("got %d %v", status, out)
		}
		if got := len(fake.Requests()) - before; got != 1 {
			t.Errorf("Adobe got %d requests, want 1 (no retry that cannot finish in time)", got)
		}
	})
	t.Run("a 429 with a short Retry-After is waited for, then the report succeeds", func(t *testing.T) {
		before := len(fake.Requests())
		fake.Inject(adobeanalyticsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"})
		start := time.Now()
		status, out := call(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":`+good+`,"limit":3}}`)
		meta, _ := out["meta"].(map[string]any)
		if status != http.StatusOK || meta["attempts"] != float64(2) {
			t.Fatalf("got %d %v, want 200 after 2 attempts", status, out)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("the retry came after %v, want at least the 1s Retry-After", waited)
		}
		if got := len(fake.Requests()) - before; got != 2 {
			t.Errorf("Adobe got %d requests, want 2", got)
		}
	})
	t.Run("Adobe's refusal of the request reaches the caller, not retried", func(t *testing.T) {
		before := len(fake.Requests())
		status, out := call(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":{"rsid":"nope","dateRange":"2024-01-01T00:00:00/2024-02-01T00:00:00","metrics":["metrics/visits"],"dimension":"variables/page"}}`)
		if status != http.StatusUnprocessableEntity || out["type"] != dispatch.ProblemUpstreamInvalid {
			t.Errorf("got %d %v, want 422 %s", status, out, dispatch.ProblemUpstreamInvalid)
		}
		if got := len(fake.Requests()) - before; got != 1 {
			t.Errorf("Adobe got %d requests, want 1", got)
		}
	})
	for _, tc := range []struct{ name, payload, pointer string }{
		{"no metrics", `{"rsid":"acme.prod","dateRange":"2024-01-01T00:00:00/2024-02-01T00:00:00","metrics":[],"dimension":"variables/page"}`, "/metrics"},
		{"dimension not a variable", good[:len(good)-len(`"variables/page"`)] + `"../reports"}`, "/dimension"},
		{"date range not a range", `{"rsid":"acme.prod","dateRange":"last week","metrics":["metrics/visits"],"dimension":"variables/page"}`, "/dateRange"},
		{"unknown property", good + `,"globalCompanyId":"other"}`, ""},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			status, out := call(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":`+tc.payload+`}`)
			if status != http.StatusBadRequest || out["type"] != dispatch.ProblemInvalidPayload {
				t.Fatalf("got %d %v, want 400 %s", status, out, dispatch.ProblemInvalidPayload)
			}
			if tc.pointer != "" && out["pointer"] != tc.pointer {
				t.Errorf("pointer %v, want %s", out["pointer"], tc.pointer)
			}
			if len(fake.Requests()) != before {
				t.Error("Adobe was called")
			}
		})
	}
	t.Run("an expired token asks for the integration to be reconnected", func(t *testing.T) {
		before := len(fake.Requests())
		fake.Revoke(token)
		status, out := call(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":`+good+`}}`)
		if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v, want 503 %s", status, out, dispatch.ProblemCredentialUnavailable)
		}
		if got := len(fake.Requests()) - before; got != 1 {
			t.Errorf("Adobe got %d requests, want 1 (a refused credential is not retried)", got)
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

// TestRevokedConnection: when the credential manager cannot get the
// relay's IMS token (the integration's client credentials were revoked in
// the Adobe Developer Console: invalid_client), the dispatch is refused
// as credential-unavailable and Adobe Analytics is never called.
func TestRevokedConnection(t *testing.T) {
	fake := adobeanalyticsfake.New(adobeanalyticsfake.Options{Tokens: []string{token}})
	defer fake.Close()
	fake.SetRows("acme.prod", pages(3))
	c, err := adobeanalytics.New(adobeanalytics.Config{BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	vault := connectortest.RevokedConnection(t, adobeanalytics.ID)
	h := connectortest.Start(t, c, connectortest.Options{Credentials: vault})
	for range 2 {
		status, b, out := h.DispatchJSON(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":{"rsid":"acme.prod",`+
			`"dateRange":"2024-01-01T00:00:00/2024-02-01T00:00:00","metrics":["metrics/visits"],"dimension":"variables/page"}}`)
		assertNoSecret(t, "the response", string(b))
		if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v, want 503 credential-unavailable", status, out["type"])
		}
	}
	if got := len(fake.Requests()); got != 0 {
		t.Errorf("Adobe got %d requests, want 0", got)
	}
	errs := vault.Errors()
	if len(errs) != 2 || !errors.Is(errs[0], connectors.ErrNoCredential) || !errors.Is(errs[1], connectors.ErrNoCredential) {
		t.Errorf("the manager answered %v, want two errors wrapping %q", errs, connectors.ErrNoCredential)
	}
	if got := vault.Provider.Count("client_credentials"); got != 2 {
		t.Errorf("the manager asked for %d client-credentials tokens, want 2 (a refusal is not cached as a token)", got)
	}
}
