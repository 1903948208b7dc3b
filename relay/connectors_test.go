package relay_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// TestConfiguredConnectors: a connector declared in connectors.custom is
// listed next to SharePoint and reached through POST /v1/dispatch, its
// policy written for it; a definition that does not validate stops the
// relay with the file named.
func TestConfiguredConnectors(t *testing.T) {
	lp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/projects/p1/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"project":"p1","state":"on track"}}`))
	}))
	t.Cleanup(lp.Close)
	dir := t.TempDir()
	def := filepath.Join(dir, "launchpad.yaml")
	os.WriteFile(def, []byte(`
id: launchpad
name: LaunchPad
base_url: `+lp.URL+`/api/v1
auth: {method: none}
operations:
  - name: project_status
    description: A project's status.
    access: read
    method: GET
    path: /projects/{project_id}/status
    result_path: data
    payload:
      type: object
      additionalProperties: false
      required: [project_id]
      properties:
        project_id: {type: string, minLength: 1, maxLength: 64}
    result: {type: object, required: [state]}
`), 0o644)
	policies := filepath.Join(dir, "policies")
	os.MkdirAll(filepath.Join(policies, "acme"), 0o755)
	os.WriteFile(filepath.Join(policies, "acme", "main.cedar"), []byte(`@id("planners") permit (principal in Role::"planner", action, resource == System::"launchpad");`), 0o644)
	r := startRelay(t, func(c *relay.Config) {
		c.API = relay.APIConfig{Listen: "127.0.0.1:0", DevTokens: true, Policies: policies, Audit: filepath.Join(dir, "audit")}
		c.Connectors.Custom = []string{def}
	})
	dev, err := callerauth.LoadOrCreateDevIssuer(r.cfg.DevIssuerPath(), relay.DevIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := dev.Mint("acme", "pat", "pat@acme.example", []string{"planner"}, time.Hour, time.Now())
	api := apiClient{t: t, base: "http://" + r.APIAddr()}
	code, _, body := api.do(http.MethodGet, "/v1/connectors", tok, nil)
	var list struct{ Connectors []struct{ ID string } }
	json.Unmarshal(body, &list)
	if code != 200 || len(list.Connectors) != 2 || list.Connectors[0].ID != "launchpad" || list.Connectors[1].ID != "sharepoint" {
		t.Errorf("connectors: %d %s", code, body)
	}
	code, _, body = api.dispatch(tok, "launchpad", "project_status", map[string]any{"project_id": "p1"})
	if code != 200 || !strings.Contains(string(body), `"state":"on track"`) {
		t.Errorf("dispatch to the custom connector: %d %s", code, body)
	}
	if code, _, body := api.dispatch(tok, "sharepoint", "crawl_status", map[string]any{}); code != 403 {
		t.Errorf("a planner reading SharePoint: %d %s, want 403", code, body)
	}

	// A broken definition stops the relay with the file named.
	os.WriteFile(def, []byte("id: Bad Id\nname: x\nbase_url: http://x\nauth: {method: none}\noperations: []\n"), 0o644)
	cfg := r.cfg
	cfg.Listen, cfg.Ops.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.PKI.CA.Listen = "127.0.0.1:0"
	cfg.Store.Dir, cfg.API.Audit = filepath.Join(dir, "store2"), filepath.Join(dir, "audit2")
	cfg.PKI.CA.Dir, cfg.PKI.StateDir = filepath.Join(dir, "ca2"), filepath.Join(dir, "state2")
	log, _ := tunneltest.Logger(t)
	if _, err := relay.New(cfg, log, "test"); err == nil || !strings.Contains(err.Error(), "launchpad.yaml") {
		t.Errorf("a broken definition: got %v, want an error naming the file", err)
	}
}
