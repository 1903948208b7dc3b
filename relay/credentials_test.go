package relay_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/credentials/credentialstest"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// TestIntegrationOwnerThroughTheRelay: an admin of acme connects a system
// with the OAuth authorization-code flow through the relay's API; a write
// dispatched to that system then carries the connection's access token; the
// connection is listed without secrets; once revoked, dispatches are
// refused with credential-unavailable; another tenant never gets acme's
// token.
func TestIntegrationOwnerThroughTheRelay(t *testing.T) {
	prov := credentialstest.NewProvider(t, credentialstest.Options{Rotate: true})
	var lastAuth string
	sys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		lastAuth = tok
		if !prov.Valid(tok) {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid token"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":{"id":"note-1"}}`))
	}))
	t.Cleanup(sys.Close)
	dir := t.TempDir()
	def := filepath.Join(dir, "notes.yaml")
	os.WriteFile(def, []byte(`
id: notes
name: Notes
base_url: `+sys.URL+`
auth: {method: bearer}
operations:
  - name: create_note
    description: Creates a note.
    access: write
    attributed: true
    method: POST
    path: /notes
    body: json
    result_path: data
    payload: {type: object, additionalProperties: false, required: [text], properties: {text: {type: string}}}
    result: {type: object, required: [id]}
`), 0o644)
	key := make([]byte, 32)
	rand.Read(key)
	os.WriteFile(filepath.Join(dir, "master.key"), []byte(base64.StdEncoding.EncodeToString(key)), 0o600)
	os.WriteFile(filepath.Join(dir, "client.secret"), []byte(prov.ClientSecret()), 0o600)
	policies := filepath.Join(dir, "policies")
	for _, tenant := range []string{"acme", "globex"} {
		os.MkdirAll(filepath.Join(policies, tenant), 0o755)
		os.WriteFile(filepath.Join(policies, tenant, policy.ExampleFile), policy.Example(tenant), 0o644)
	}
	r := startRelay(t, func(c *relay.Config) {
		c.API = relay.APIConfig{Listen: "127.0.0.1:0", DevTokens: true, Policies: policies, Audit: filepath.Join(dir, "audit")}
		c.Connectors.Custom = []string{def}
		c.Credentials = relay.CredentialsConfig{Dir: filepath.Join(dir, "credentials"), MasterKeyFile: filepath.Join(dir, "master.key"),
			RedirectURL: "http://127.0.0.1/v1/oauth/callback",
			Providers: []relay.ProviderConfig{{System: "notes", AuthURL: prov.AuthURL, TokenURL: prov.TokenURL,
				ClientID: prov.ClientID(), ClientSecretFile: filepath.Join(dir, "client.secret")}}}
	})
	dev, err := callerauth.LoadOrCreateDevIssuer(r.cfg.DevIssuerPath(), relay.DevIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := dev.Mint("acme", "owner", "owner@acme.example", []string{"admin"}, time.Hour, time.Now())
	reader, _ := dev.Mint("acme", "sam", "sam@acme.example", []string{"campaign-manager"}, time.Hour, time.Now())
	outsider, _ := dev.Mint("globex", "gil", "gil@globex.example", []string{"admin"}, time.Hour, time.Now())
	api := apiClient{t: t, base: "http://" + r.APIAddr()}

	// Before any connection: refused, clearly.
	if code, _, body := api.dispatch(admin, "notes", "create_note", map[string]any{"text": "hi"}); code != 503 || !strings.Contains(string(body), "credential-unavailable") {
		t.Fatalf("before connecting: %d %s", code, body)
	}
	// Only an admin may connect.
	if code, _, _ := api.do(http.MethodPost, "/v1/connections/notes/authorize", reader, nil); code != 403 {
		t.Errorf("a campaign manager starting an authorization: %d, want 403", code)
	}
	code, _, body := api.do(http.MethodPost, "/v1/connections/notes/authorize", admin, nil)
	var start struct{ AuthorizationURL string }
	if err := json.Unmarshal(body, &start); code != 200 || err != nil || start.AuthorizationURL == "" {
		t.Fatalf("authorize: %d %s", code, body)
	}
	q := prov.Authorize(t, start.AuthorizationURL)
	if code, _, body := api.do(http.MethodGet, "/v1/oauth/callback?"+q.Encode(), "", nil); code != 200 {
		t.Fatalf("callback: %d %s", code, body)
	}
	if code, _, body := api.do(http.MethodGet, "/v1/oauth/callback?"+q.Encode(), "", nil); code < 400 {
		t.Errorf("the state was used twice: %d %s", code, body)
	}

	// A write carries the connection's token.
	code, _, body = api.dispatch(admin, "notes", "create_note", map[string]any{"text": "hi"})
	if code != 200 || !strings.Contains(string(body), `"id":"note-1"`) || !prov.Valid(lastAuth) {
		t.Fatalf("dispatch after connecting: %d %s", code, body)
	}
	// Listed without secrets.
	code, _, body = api.do(http.MethodGet, "/v1/connections", admin, nil)
	if code != 200 || !strings.Contains(string(body), "notes") || strings.Contains(string(body), lastAuth) {
		t.Errorf("connections: %d %s", code, body)
	}
	for _, s := range prov.Secrets() {
		if strings.Contains(string(body), s) || strings.Contains(r.logs(), s) {
			t.Error("a token or secret is in the connection listing or the relay's log")
		}
	}
	// The dashboard shows the connection, never its token.
	dash := getText(t, "http://"+r.OpsAddr()+"/status?format=json")
	if !strings.Contains(dash, "notes oauth2 (acme)") || strings.Contains(dash, lastAuth) {
		t.Errorf("the dashboard's credentials: %s", dash)
	}
	// Another tenant has no connection of its own.
	if code, _, body := api.dispatch(outsider, "notes", "create_note", map[string]any{"text": "hi"}); code != 503 {
		t.Errorf("another tenant: %d %s, want 503 credential-unavailable", code, body)
	}
	// Revoked: refused again.
	if code, _, body := api.do(http.MethodDelete, "/v1/connections/notes", admin, nil); code >= 300 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _, body := api.dispatch(admin, "notes", "create_note", map[string]any{"text": "hi"}); code != 503 || !strings.Contains(string(body), "credential-unavailable") {
		t.Errorf("after revoking: %d %s", code, body)
	}
	// Every admin request is in acme's audit log, the refused one too.
	code, _, body = api.do(http.MethodGet, "/v1/audit?system=credentials&limit=100", admin, nil)
	var recs struct {
		Records []struct {
			EventType string
			Operation string
			User      struct{ ID string }
			Response  struct{ Success bool }
		}
	}
	json.Unmarshal(body, &recs)
	seen := map[string]bool{}
	for _, rec := range recs.Records {
		seen[fmt.Sprintf("%s %s %s %v", rec.EventType, rec.Operation, rec.User.ID, rec.Response.Success)] = true
	}
	for _, want := range []string{"credentials.authorize notes owner true", "credentials.authorize notes sam false", "credentials.list  owner true", "credentials.revoke notes owner true"} {
		if !seen[want] {
			t.Errorf("no audit record %q in %d: %s", want, code, body)
		}
	}
}
