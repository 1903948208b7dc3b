package adobeanalytics_test

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
	"github.com/mcc-bridge/bridge/connectors/adobeanalytics"
	"github.com/mcc-bridge/bridge/connectors/adobeanalytics/adobeanalyticsfake"
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
	return callerauth.Caller{UserID: "sarah", Email: "sarah@acme.example", Tenant: "acme", Roles: []string{"marketing"}, AuthMethod: "oidc"}, nil
}

// allowAll permits everything.
type allowAll struct{}

func (allowAll) Decide(context.Context, policy.Request) policy.Decision {
	return policy.Decision{Allow: true, Policies: []string{"allow-all"}, Reason: "allowed by policy allow-all"}
}

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
	dir := t.TempDir()
	lg, err := audit.Open(t.Context(), dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{c}, Auth: oneCaller{}, Policy: allowAll{}, Audit: lg, Credentials: vault{}, Logger: logger,
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
		fake.Inject(adobeanalyticsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: "120"})
		status, out := call(t, `{"targetSystem":"adobe_analytics","operation":"run_report","payload":`+good+`}}`)
		if status != http.StatusTooManyRequests || out["type"] != dispatch.ProblemUpstreamRateLimited {
			t.Errorf("got %d %v", status, out)
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
	assertNoSecret(t, "the log", logs.String())
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			b, _ := os.ReadFile(p)
			assertNoSecret(t, "audit file "+p, string(b))
		}
		return nil
	})
}
