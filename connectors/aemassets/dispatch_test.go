package aemassets_test

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/aemassets"
	"github.com/mcc-bridge/bridge/connectors/aemassets/aemassetsfake"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
)

// vault hands out the test token for AEM, for either pattern.
type vault struct{}

func (vault) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	if req.System != aemassets.ID || req.Tenant != "acme" {
		return connectors.Credential{}, connectors.ErrNoCredential
	}
	c := cred()
	c.Pattern = req.Pattern
	return c, nil
}

func TestThroughTheDispatcher(t *testing.T) {
	fake := aemassetsfake.New(aemassetsfake.Options{Tokens: []string{token}, MinPartSize: 64 << 10})
	defer fake.Close()
	fake.AddAsset(aemassetsfake.Asset{Path: "/content/dam/marketing/logo.png", Title: "Logo", Content: []byte("png")})
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := aemassets.New(aemassets.Config{BaseURL: fake.URL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h := connectortest.Start(t, c, connectortest.Options{Credentials: vault{}, Logger: logger, MaxBody: 2 << 20})
	call := func(t *testing.T, body string) (int, map[string]any) {
		t.Helper()
		status, b, out := h.DispatchJSON(t, body)
		assertNoSecret(t, "the response", string(b))
		return status, out
	}

	t.Run("a 503 is retried, then the metadata arrives", func(t *testing.T) {
		fake.Inject(aemassetsfake.Fault{Path: "/api/assets/", Status: http.StatusServiceUnavailable})
		status, out := call(t, `{"targetSystem":"aem_assets","operation":"get_metadata","payload":{"path":"/content/dam/marketing/logo.png"}}`)
		meta, _ := out["meta"].(map[string]any)
		result, _ := out["result"].(map[string]any)
		if status != http.StatusOK || meta["attempts"] != float64(2) || meta["authPattern"] != "s2s" || result["kind"] != "asset" {
			t.Errorf("got %d %v; want 200 after 2 attempts, s2s, an asset", status, out)
		}
	})
	t.Run("an upload of a megabyte in parts, with the integration owner's token", func(t *testing.T) {
		data := content(1 << 20)
		status, out := call(t, `{"targetSystem":"aem_assets","operation":"upload_asset","payload":{"folder":"/content/dam/marketing","fileName":"deck.bin","content":"`+
			base64.StdEncoding.EncodeToString(data)+`","sha256":"`+sum(data)+`"}}`)
		meta, _ := out["meta"].(map[string]any)
		result, _ := out["result"].(map[string]any)
		if status != http.StatusOK || meta["authPattern"] != "integration-owner" || result["parts"] != float64(10) || result["sha256"] != sum(data) {
			t.Errorf("got %d %v", status, out)
		}
		if a, ok := fake.Asset("/content/dam/marketing/deck.bin"); !ok || sum(a.Content) != sum(data) {
			t.Errorf("stored asset %v with SHA-256 %s, want %s", ok, sum(a.Content), sum(data))
		}
	})
	for _, tc := range []struct{ name, op, payload, pointer string }{
		{"path outside the DAM", "get_metadata", `{"path":"/etc/passwd"}`, "/path"},
		{"file name with a slash", "upload_asset", `{"folder":"/content/dam/marketing","fileName":"a/b.png","content":"aGVsbG8="}`, "/fileName"},
		{"content not base64", "upload_asset", `{"folder":"/content/dam/marketing","fileName":"b.png","content":"hello world!"}`, "/content"},
		{"unknown property", "search_assets", `{"fulltext":"logo","query":"type:all"}`, ""},
		{"limit too high", "search_assets", `{"limit":5000}`, "/limit"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			status, out := call(t, `{"targetSystem":"aem_assets","operation":"`+tc.op+`","payload":`+tc.payload+`}`)
			if status != http.StatusBadRequest || out["type"] != dispatch.ProblemInvalidPayload {
				t.Fatalf("got %d %v, want 400 %s", status, out, dispatch.ProblemInvalidPayload)
			}
			if tc.pointer != "" && out["pointer"] != tc.pointer {
				t.Errorf("pointer %v, want %s", out["pointer"], tc.pointer)
			}
			if len(fake.Requests()) != before {
				t.Error("AEM was called")
			}
		})
	}
	countPath := func(from int, part string) int {
		n := 0
		for _, r := range fake.Requests()[from:] {
			if strings.Contains(r.Path, part) {
				n++
			}
		}
		return n
	}
	for _, tc := range []struct {
		name, op, payload string
		fault             aemassetsfake.Fault
		wantStatus        int
		wantType          string  // for failures
		wantRA            float64 // for rate limits
		wantAttempts      float64 // for successes
		wantWait          time.Duration
		wantRequests      int    // to AEM
		wantNot           string // a path AEM must not see
	}{
		{name: "a 429 with a short Retry-After is waited for, then the metadata arrives", op: "get_metadata", payload: `{"path":"/content/dam/marketing/logo.png"}`,
			fault:      aemassetsfake.Fault{Path: "/api/assets/", Status: http.StatusTooManyRequests, RetryAfter: "1"},
			wantStatus: http.StatusOK, wantAttempts: 2, wantWait: time.Second, wantRequests: 2},
		{name: "a 429 with a Retry-After past the deadline reaches the caller", op: "search_assets", payload: `{"fulltext":"logo"}`,
			fault:      aemassetsfake.Fault{Path: "/bin/querybuilder.json", Status: http.StatusTooManyRequests, RetryAfter: "120"},
			wantStatus: http.StatusTooManyRequests, wantType: dispatch.ProblemUpstreamRateLimited, wantRA: 120, wantRequests: 1},
		{name: "AEM refuses the upload: not retried, nothing stored", op: "upload_asset", payload: `{"folder":"/content/dam/marketing","fileName":"refused.png","content":"aGVsbG8="}`,
			fault:      aemassetsfake.Fault{Path: ".initiateUpload.json", Status: http.StatusBadRequest},
			wantStatus: http.StatusUnprocessableEntity, wantType: dispatch.ProblemUpstreamInvalid, wantRequests: 1, wantNot: "/blob/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.Inject(tc.fault)
			before := len(fake.Requests())
			start := time.Now()
			status, out := call(t, `{"targetSystem":"aem_assets","operation":"`+tc.op+`","payload":`+tc.payload+`}`)
			if status != tc.wantStatus {
				t.Fatalf("got %d %v, want %d", status, out, tc.wantStatus)
			}
			if tc.wantType != "" && (out["type"] != tc.wantType || (tc.wantRA != 0 && out["retryAfter"] != tc.wantRA)) {
				t.Errorf("got %v (retryAfter %v), want %s (retryAfter %v)", out["type"], out["retryAfter"], tc.wantType, tc.wantRA)
			}
			if tc.wantType == "" {
				if meta, _ := out["meta"].(map[string]any); meta["attempts"] != tc.wantAttempts || time.Since(start) < tc.wantWait {
					t.Errorf("got %v attempts after %v, want %v after at least %v", meta["attempts"], time.Since(start), tc.wantAttempts, tc.wantWait)
				}
			}
			if got := len(fake.Requests()) - before; got != tc.wantRequests {
				t.Errorf("AEM got %d requests, want %d", got, tc.wantRequests)
			}
			if tc.wantNot != "" && countPath(before, tc.wantNot) != 0 {
				t.Errorf("AEM got requests to %s", tc.wantNot)
			}
		})
	}
	t.Run("an expired token asks for the owner to reconnect", func(t *testing.T) {
		before := len(fake.Requests())
		fake.Revoke(token)
		status, out := call(t, `{"targetSystem":"aem_assets","operation":"get_metadata","payload":{"path":"/content/dam/marketing/logo.png"}}`)
		if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v, want 503 %s", status, out, dispatch.ProblemCredentialUnavailable)
		}
		if got := len(fake.Requests()) - before; got != 1 {
			t.Errorf("AEM got %d requests, want 1 (a refused credential is not retried)", got)
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

// TestRevokedConnection: when the credential manager finds the
// integration owner's connection revoked, or cannot get the relay's own
// IMS token, the dispatch is refused as credential-unavailable and AEM is
// never called.
func TestRevokedConnection(t *testing.T) {
	fake := aemassetsfake.New(aemassetsfake.Options{Tokens: []string{token}})
	defer fake.Close()
	fake.AddAsset(aemassetsfake.Asset{Path: "/content/dam/marketing/logo.png", Title: "Logo", Content: []byte("png")})
	c, err := aemassets.New(aemassets.Config{BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	vault := connectortest.RevokedConnection(t, aemassets.ID)
	h := connectortest.Start(t, c, connectortest.Options{Credentials: vault})
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"the owner's upload: the grant was revoked", `{"targetSystem":"aem_assets","operation":"upload_asset","payload":{"folder":"/content/dam/marketing","fileName":"a.png","content":"aGVsbG8="}}`, credentials.ErrReauthorize},
		{"the owner's upload again: no second refresh", `{"targetSystem":"aem_assets","operation":"upload_asset","payload":{"folder":"/content/dam/marketing","fileName":"b.png","content":"aGVsbG8="}}`, credentials.ErrReauthorize},
		{"a service read: the relay's client was revoked", `{"targetSystem":"aem_assets","operation":"get_metadata","payload":{"path":"/content/dam/marketing/logo.png"}}`, connectors.ErrNoCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fake.Requests())
			status, b, out := h.DispatchJSON(t, tc.body)
			assertNoSecret(t, "the response", string(b))
			if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable {
				t.Errorf("got %d %v, want 503 credential-unavailable", status, out["type"])
			}
			if got := len(fake.Requests()) - before; got != 0 {
				t.Errorf("AEM got %d requests, want 0", got)
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
