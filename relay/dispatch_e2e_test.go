package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
	"github.com/mcc-bridge/bridge/tunnel"
)

// Canaries: the agent's SharePoint password and a secret a caller puts in
// a payload. Neither may reach a log or an audit record.
const (
	spPassword    = "Zq9-sp-password-51c2"
	payloadSecret = "Zq9-payload-secret-8d1e"
)

// apiClient calls the relay's dispatch API.
type apiClient struct {
	t    *testing.T
	base string
}

func (c apiClient) do(method, path, token string, body any) (int, http.Header, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (c apiClient) dispatch(token, system, op string, payload any) (int, http.Header, []byte) {
	c.t.Helper()
	return c.do(http.MethodPost, "/v1/dispatch", token, map[string]any{"targetSystem": system, "operation": op, "payload": payload})
}

// TestDispatchEndToEnd: the agent crawls the SharePoint emulator through a
// real tunnel -> a caller with a valid JWT searches, reads metadata, stored
// and live content, recent changes and the crawl status -> the audit
// records are there, queryable by an admin of the tenant only, and their
// hash chains verify. Then every refusal: no token, expired token, a token
// of another issuer, denied by policy, another tenant, invalid payload,
// agent offline; each a clear problem, each audited. The canary secrets
// appear in no log and no audit record.
func TestDispatchEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	emu := spemu.New(spemu.Options{Auth: spemu.AuthNTLM, Users: map[string]string{`CONTOSO\crawler`: spPassword}})
	if err := emu.Generate(spemu.Spec{Sites: 1, SiteNames: []string{"mkt"}, ItemsPerList: 60, Lists: 1, PlainNames: true}); err != nil {
		t.Fatal(err)
	}
	emuURL, err := emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })

	var policies, auditDir string
	r := startRelay(t, func(c *relay.Config) {
		dir := filepath.Dir(c.Store.Dir)
		policies, auditDir = filepath.Join(dir, "policies"), filepath.Join(dir, "audit")
		c.API = relay.APIConfig{Listen: "127.0.0.1:0", DevTokens: true, Policies: policies, Audit: auditDir, Timeout: 10 * time.Second, Rate: 1000, Burst: 1000}
		for _, tenant := range []string{"acme", "globex"} {
			os.MkdirAll(filepath.Join(policies, tenant), 0o755)
			os.WriteFile(filepath.Join(policies, tenant, policy.ExampleFile), policy.Example(tenant), 0o644)
		}
	})
	api := apiClient{t: t, base: "http://" + r.APIAddr()}
	st := enrollAgent(t, r, "acme", "agent-01")
	a := startAgentWith(t, st, tunnel.ProtocolQUIC, []string{r.addr}, func(c *agent.Config) {
		c.SharePoint.Sites = []string{emuURL + "/sites/mkt"}
		c.SharePoint.Auth.Method = "ntlm"
		c.SharePoint.Auth.Username = `CONTOSO\crawler`
		c.SharePoint.Auth.PasswordEnv = "SP_PASSWORD"
		c.SharePoint.PollInterval = time.Second
		c.SharePoint.StateDir = filepath.Join(st.Dir, "crawl")
	}, func(k string) string {
		if k == "SP_PASSWORD" {
			return spPassword
		}
		return ""
	})
	entries := emu.Snapshot()
	waitFor(t, 60*time.Second, "the crawl to store every item", func() bool {
		s, err := r.Store().Stats(context.Background(), "acme")
		return err == nil && s.Documents == int64(len(entries))
	})

	// A reader: someone who may read some files but not all (the fewest).
	counts := map[string]int{}
	for _, e := range entries {
		for _, m := range e.ReaderEmails {
			counts[m]++
		}
	}
	var reader string
	for m, n := range counts {
		if n < len(entries) && (reader == "" || n < counts[reader] || n == counts[reader] && m < reader) {
			reader = m
		}
	}
	readable := map[string]spemu.Entry{} // by FileRef
	for _, e := range entries {
		if slices.Contains(e.ReaderEmails, reader) {
			readable[e.FileRef] = e
		}
	}
	if reader == "" || len(readable) == len(entries) {
		t.Fatalf("fixture: want a reader who may read some but not all of %d items (reader %q reads %d)", len(entries), reader, len(readable))
	}
	dev, err := callerauth.LoadOrCreateDevIssuer(r.cfg.DevIssuerPath(), relay.DevIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(tenant, user, email string, roles []string, ttl time.Duration, now time.Time) string {
		tok, err := dev.Mint(tenant, user, email, roles, ttl, now)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	sarah := mint("acme", "sarah", reader, []string{"campaign-manager"}, time.Hour, time.Now())
	admin := mint("acme", "root", "root@acme.example", []string{"admin"}, time.Hour, time.Now())
	intern := mint("acme", "ivan", reader, []string{"intern"}, time.Hour, time.Now())
	outsider := mint("globex", "gina", reader, []string{"admin"}, time.Hour, time.Now())

	// search_documents: every hit is a document the reader may read.
	var target spemu.Entry
	for _, e := range readable {
		if e.Kind == spemu.KindFile && (target.FileRef == "" || e.FileRef < target.FileRef) {
			target = e
		}
	}
	word := strings.Fields(strings.NewReplacer(".", " ", "-", " ", "_", " ").Replace(target.Name))[0]
	code, hdr, body := api.dispatch(sarah, "sharepoint", "search_documents", map[string]any{"query": word, "limit": 100})
	if code != 200 {
		t.Fatalf("search: %d %s", code, body)
	}
	var search struct {
		TraceID string
		Result  struct {
			Count int
			Hits  []struct{ Document map[string]any }
		}
	}
	json.Unmarshal(body, &search)
	if search.Result.Count == 0 || search.TraceID != hdr.Get("X-Trace-Id") {
		t.Fatalf("search for %q found nothing: %s", word, body)
	}
	found := false
	for _, h := range search.Result.Hits {
		p, _ := h.Document["path"].(string)
		if _, ok := readable[p]; !ok {
			t.Errorf("search returned %s, which %s may not read", p, reader)
		}
		found = found || p == target.FileRef
	}
	if !found {
		t.Errorf("search for %q did not return %s", word, target.FileRef)
	}

	// get_document: metadata, stored content and live content.
	key := map[string]any{"site": emuURL + "/sites/mkt", "list_id": target.ListID, "item_id": target.ItemID}
	with := func(content string) map[string]any {
		m := map[string]any{"content": content}
		for k, v := range key {
			m[k] = v
		}
		return m
	}
	if code, _, body := api.dispatch(sarah, "sharepoint", "get_document", key); code != 200 || !strings.Contains(string(body), `"path":"`+target.FileRef+`"`) || strings.Contains(string(body), `"acl"`) {
		t.Errorf("get_document: %d %s", code, body)
	}
	for _, content := range []string{"stored", "live"} {
		code, _, body := api.dispatch(sarah, "sharepoint", "get_document", with(content))
		sum := sha256.Sum256(body)
		if code != 200 || hex.EncodeToString(sum[:]) != target.SHA256 {
			t.Errorf("get_document content %s: %d, %d bytes, sha256 %x; want the source's %s", content, code, len(body), sum, target.SHA256)
		}
	}
	// list_changes and crawl_status.
	if code, _, body := api.dispatch(sarah, "sharepoint", "list_changes", map[string]any{"limit": 5}); code != 200 || !strings.Contains(string(body), `"count":5`) {
		t.Errorf("list_changes: %d %s", code, body)
	}
	if code, _, body := api.dispatch(sarah, "sharepoint", "crawl_status", map[string]any{}); code != 200 || !strings.Contains(string(body), `"agent":"agent-01"`) {
		t.Errorf("crawl_status: %d %s", code, body)
	}
	if code, _, body := api.do(http.MethodGet, "/v1/connectors/sharepoint/health", sarah, nil); code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("health: %d %s", code, body)
	}

	// The dashboard counts the calls and shows the agent.
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.OpsAddr()+"/status", nil)
	req.Header.Set("Accept", "text/html")
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"sharepoint", "agent-01", "relay certificate", "documents stored for acme"} {
			if !strings.Contains(string(page), want) {
				t.Errorf("the dashboard page lacks %q", want)
			}
		}
	}
	if !strings.Contains(getText(t, "http://"+r.OpsAddr()+"/status?format=json"), `"calls_1h":`) {
		t.Error("the dashboard's JSON lacks call counts")
	}

	// Refusals, each a problem of its own type, none reaching the agent.
	other, err := callerauth.LoadOrCreateDevIssuer(filepath.Join(t.TempDir(), "other.json"), relay.DevIssuerName)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := other.Mint("acme", "sarah", reader, []string{"admin"}, time.Hour, time.Now())
	for _, tc := range []struct {
		name, token, op string
		payload         any
		status          int
		typ             string
	}{
		{"no token", "", "search_documents", map[string]any{"query": word}, 401, "missing-token"},
		{"expired token", mint("acme", "sarah", reader, []string{"campaign-manager"}, time.Minute, time.Now().Add(-time.Hour)), "search_documents", map[string]any{"query": word}, 401, "expired-token"},
		{"forged token", forged, "search_documents", map[string]any{"query": word}, 401, ""},
		{"denied by policy", intern, "search_documents", map[string]any{"query": word}, 403, "denied"},
		{"invalid payload", sarah, "get_document", map[string]any{"site": "x", "list_id": "nope", "item_id": 1}, 400, "invalid-payload"},
		{"unknown field with a secret", sarah, "search_documents", map[string]any{"query": word, "password": payloadSecret}, 400, "invalid-payload"},
		{"another tenant's document", outsider, "get_document", key, 404, "not-found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, body := api.dispatch(tc.token, "sharepoint", tc.op, tc.payload)
			if code != tc.status || hdr.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), dispatch.ProblemBase+tc.typ) {
				t.Errorf("got %d %s %s, want %d %s", code, hdr.Get("Content-Type"), body, tc.status, tc.typ)
			}
			if strings.Contains(string(body), payloadSecret) {
				t.Errorf("the problem echoes the secret: %s", body)
			}
		})
	}
	// Another tenant finds nothing of acme's.
	if code, _, body := api.dispatch(outsider, "sharepoint", "search_documents", map[string]any{"query": word}); code != 200 || !strings.Contains(string(body), `"count":0`) {
		t.Errorf("globex searching acme's words: %d %s", code, body)
	}

	// The audit trail: the admin of acme reads acme's records only.
	code, _, body = api.do(http.MethodGet, "/v1/audit?trace="+search.TraceID, admin, nil)
	var recs struct{ Records []audit.Record }
	if err := json.Unmarshal(body, &recs); code != 200 || err != nil || len(recs.Records) != 1 {
		t.Fatalf("audit query: %d %s", code, body)
	}
	if rec := recs.Records[0]; rec.User.ID != "sarah" || rec.User.Email != reader || rec.Tenant.ID != "acme" || rec.Operation != "search_documents" ||
		!rec.Response.Success || len(rec.Response.IDs) != search.Result.Count || rec.Policy.Effect != "allow" || rec.AuthMethod == "" {
		t.Errorf("audit record %+v", rec)
	}
	if code, _, body := api.do(http.MethodGet, "/v1/audit", sarah, nil); code != 403 {
		t.Errorf("a campaign manager reads the audit log: %d %s", code, body)
	}
	code, _, body = api.do(http.MethodGet, "/v1/audit?limit=1000", outsider, nil)
	if code != 200 || strings.Contains(string(body), `"id":"acme"`) {
		t.Errorf("globex's admin reads acme's records: %d %s", code, body)
	}

	// Agent offline: live content needs the agent; stored content does not.
	a.stop()
	waitFor(t, 10*time.Second, "the agent to be gone", func() bool { return len(r.Server().Agents()) == 0 })
	if code, _, body := api.dispatch(sarah, "sharepoint", "get_document", with("live")); code != 503 || !strings.Contains(string(body), dispatch.ProblemAgentOffline) {
		t.Errorf("live content with the agent offline: %d %s", code, body)
	}
	if code, _, _ := api.dispatch(sarah, "sharepoint", "get_document", with("stored")); code != 200 {
		t.Errorf("stored content with the agent offline: %d", code)
	}

	// The chains verify, and no canary is in a log or an audit record.
	res, err := audit.Verify(context.Background(), auditDir)
	if err != nil || res.Records < 15 {
		t.Errorf("audit verify: %+v, %v", res, err)
	}
	logs := r.logs() + a.logs()
	for _, canary := range []string{spPassword, payloadSecret, sarah[strings.LastIndex(sarah, ".")+1:]} {
		if strings.Contains(logs, canary[:12]) {
			t.Errorf("a log holds (part of) a secret %q...", canary[:8])
		}
		filepath.WalkDir(auditDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(canary[:12])) {
					t.Errorf("audit file %s holds (part of) a secret", p)
				}
			}
			return nil
		})
	}
}
