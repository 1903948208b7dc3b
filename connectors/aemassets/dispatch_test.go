package aemassets_test

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/aemassets"
	"github.com/mcc-bridge/bridge/connectors/aemassets/aemassetsfake"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
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
	assertNoSecret(t, "the log", logs.String())
	filepath.WalkDir(h.AuditDir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			b, _ := os.ReadFile(p)
			assertNoSecret(t, "audit file "+p, string(b))
		}
		return nil
	})
}
