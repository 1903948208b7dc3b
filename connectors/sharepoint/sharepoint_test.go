package sharepoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/connectors/sharepoint"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/store"
	"github.com/mcc-bridge/bridge/relay/store/storetest"
)

// fakeAgents serves each agent's requests with a handler of the test.
type fakeAgents struct {
	mu       sync.Mutex
	handlers map[string]http.HandlerFunc // agent -> handler
	asked    []string
}

func (f *fakeAgents) Connected(tenant string) []string {
	if tenant != storetest.TenantA {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, a := range []string{"agent-1", "agent-2"} {
		if f.handlers[a] != nil {
			out = append(out, a)
		}
	}
	return out
}

func (f *fakeAgents) Do(ctx context.Context, tenant, agent string, req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	h := f.handlers[agent]
	f.asked = append(f.asked, agent+" "+req.URL.Path)
	f.mu.Unlock()
	rec := httptest.NewRecorder()
	h(rec, req)
	return rec.Result(), nil
}

func setup(t *testing.T) (*sharepoint.Connector, *fakeAgents, ingestapi.Document) {
	t.Helper()
	return setupReaders(t)
}

// setupReaders is setup with the first document also readable by readers.
func setupReaders(t *testing.T, readers ...string) (*sharepoint.Connector, *fakeAgents, ingestapi.Document) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	content := []byte("quarterly budget for the aardvark campaign")
	doc := storetest.Doc(1, "/sites/marketing/Shared Documents/budget.txt")
	doc.ContentSHA256, doc.Size = storetest.SHA256(content), int64(len(content))
	for _, r := range readers {
		doc.ACL = append(doc.ACL, ingestapi.ACE{Kind: "user", Email: r})
	}
	hidden := storetest.Doc(2, "/sites/marketing/Shared Documents/hidden budget.txt")
	hidden.ACL = []ingestapi.ACE{{Kind: "user", Email: "john@corp.example"}}
	storetest.Apply(t, st, storetest.TenantA, ingestapi.Batch{ID: "b1", Upserts: []ingestapi.Document{doc, hidden},
		Blobs: []ingestapi.InlineBlob{{SHA256: doc.ContentSHA256, Data: content}}})
	agents := &fakeAgents{handlers: map[string]http.HandlerFunc{}}
	c, err := sharepoint.New(sharepoint.Config{Store: st, Agents: agents})
	if err != nil {
		t.Fatal(err)
	}
	return c, agents, doc
}

func exec(t *testing.T, c *sharepoint.Connector, op, tenant, email string, payload any) (connectors.Result, error) {
	t.Helper()
	p, _ := json.Marshal(payload)
	return c.Execute(t.Context(), op, connectors.ExecContext{Tenant: tenant, User: connectors.User{ID: "u", Email: email}, Payload: p})
}

func TestSearchAndGetTrimByACLAndTenant(t *testing.T) {
	c, _, doc := setup(t)
	res, err := exec(t, c, "search_documents", storetest.TenantA, "Sarah@Corp.Example", map[string]any{"query": "budget"})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(res.Data); !strings.Contains(s, `"count":1`) || !strings.Contains(s, "budget.txt") || strings.Contains(s, "hidden") || strings.Contains(s, "acl") {
		t.Errorf("sarah's search: %s", s)
	}
	if res, err := exec(t, c, "search_documents", storetest.TenantB, "sarah@corp.example", map[string]any{"query": "budget"}); err != nil || !strings.Contains(string(res.Data), `"count":0`) {
		t.Errorf("another tenant's search: %s %v", res.Data, err)
	}
	key := map[string]any{"site": doc.Site, "list_id": doc.ListID, "item_id": 2}
	if _, err := exec(t, c, "get_document", storetest.TenantA, "sarah@corp.example", key); connectors.ClassOf(err) != connectors.ClassNotFound {
		t.Errorf("a document sarah may not read: got %v, want not-found", err)
	}
	key["item_id"] = 1
	res, err = exec(t, c, "get_document", storetest.TenantA, "sarah@corp.example", map[string]any{"site": doc.Site, "list_id": doc.ListID, "item_id": 1, "content": "stored"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "quarterly budget for the aardvark campaign" || res.Size != int64(len(b)) {
		t.Errorf("stored content %q (size %d)", b, res.Size)
	}
}

func TestLiveContentThroughAgents(t *testing.T) {
	c, agents, doc := setup(t)
	payload := map[string]any{"site": doc.Site, "list_id": doc.ListID, "item_id": 1, "content": "live"}
	// No agent connected.
	if _, err := exec(t, c, "get_document", storetest.TenantA, "sarah@corp.example", payload); connectors.ClassOf(err) != connectors.ClassAgentOffline {
		t.Fatalf("no agent: got %v, want agent-offline", err)
	}
	// The first agent does not serve the site; the second does.
	agents.handlers["agent-1"] = func(w http.ResponseWriter, r *http.Request) { http.Error(w, "site not served by this agent", 404) }
	agents.handlers["agent-2"] = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("path") != doc.Path || r.URL.Query().Get("site") != doc.Site {
			http.Error(w, "wrong file", 400)
			return
		}
		io.WriteString(w, "live bytes")
	}
	res, err := exec(t, c, "get_document", storetest.TenantA, "sarah@corp.example", payload)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "live bytes" {
		t.Errorf("live content %q", b)
	}
	// SharePoint fails behind the only agent that serves the site.
	agents.handlers["agent-2"] = func(w http.ResponseWriter, r *http.Request) { http.Error(w, "SharePoint failed", 502) }
	_, err = exec(t, c, "get_document", storetest.TenantA, "sarah@corp.example", payload)
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Class != connectors.ClassUnavailable {
		t.Errorf("SharePoint failing: got %v, want unavailable", err)
	}
	// Health: an agent that answers its ping.
	agents.handlers["agent-1"] = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) }
	if err := c.HealthCheck(t.Context(), storetest.TenantA); err != nil {
		t.Errorf("health: %v", err)
	}
	if err := c.HealthCheck(t.Context(), storetest.TenantB); connectors.ClassOf(err) != connectors.ClassAgentOffline {
		t.Errorf("health of a tenant without agents: %v", err)
	}
}

// TestThroughDispatcher runs the connector behind a real dispatcher. The
// agent's mutual-TLS tunnel is the credential (the dispatcher asks no
// vault), and SharePoint's throttling (429/503 with Retry-After) is the
// agent's to wait out: the agent answers the relay 502 when SharePoint
// keeps failing, 404 when it does not serve the site, and is absent when
// its tunnel is down (its certificate expired or was revoked).
func TestThroughDispatcher(t *testing.T) {
	c, agents, doc := setupReaders(t, "sarah@acme.example")
	h := connectortest.Start(t, c, connectortest.Options{})
	key := `"site":"` + doc.Site + `","list_id":"` + doc.ListID + `","item_id":1`
	live := `{"targetSystem":"sharepoint","operation":"get_document","payload":{` + key + `,"content":"live"}}`
	var served atomic.Int32
	serveAfter := func(failures int32) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if served.Add(1) <= failures {
				http.Error(w, "SharePoint failed: sharepoint keeps throttling (5 retries)", http.StatusBadGateway)
				return
			}
			io.WriteString(w, "live bytes")
		}
	}
	for _, tc := range []struct {
		name, body   string
		agent        http.HandlerFunc // agent-1; nil means no agent connected
		wantStatus   int
		wantType     string // for failures
		wantBody     string // for successes: a part of it
		wantAttempts int    // the agent's requests
	}{
		{name: "search, trimmed to the caller", body: `{"targetSystem":"sharepoint","operation":"search_documents","payload":{"query":"budget"}}`,
			wantStatus: http.StatusOK, wantBody: `"count":1`},
		{name: "live content: a 502 from the agent is retried", body: live, agent: serveAfter(1),
			wantStatus: http.StatusOK, wantBody: "live bytes", wantAttempts: 2},
		{name: "live content: SharePoint keeps failing behind the agent", body: live, agent: serveAfter(100),
			wantStatus: http.StatusBadGateway, wantType: dispatch.ProblemConnectorUnavailable, wantAttempts: 3},
		{name: "live content: no agent connected (tunnel down, certificate expired or revoked)", body: live,
			wantStatus: http.StatusServiceUnavailable, wantType: dispatch.ProblemAgentOffline},
		{name: "bad payload: list id not a GUID", body: `{"targetSystem":"sharepoint","operation":"get_document","payload":{"site":"` + doc.Site + `","list_id":"../x","item_id":1,"content":"live"}}`,
			agent: serveAfter(0), wantStatus: http.StatusBadRequest, wantType: dispatch.ProblemInvalidPayload},
		{name: "bad payload: a tenant in the payload", body: `{"targetSystem":"sharepoint","operation":"search_documents","payload":{"query":"budget","tenant":"globex"}}`,
			wantStatus: http.StatusBadRequest, wantType: dispatch.ProblemInvalidPayload},
		{name: "bad payload: empty query", body: `{"targetSystem":"sharepoint","operation":"search_documents","payload":{"query":""}}`,
			wantStatus: http.StatusBadRequest, wantType: dispatch.ProblemInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served.Store(0)
			agents.mu.Lock()
			agents.handlers["agent-1"], agents.asked = tc.agent, nil
			agents.mu.Unlock()
			status, body := h.Dispatch(t, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("got %d %s, want %d", status, body, tc.wantStatus)
			}
			if tc.wantType != "" {
				var p dispatch.Problem
				if err := json.Unmarshal(body, &p); err != nil || p.Type != tc.wantType {
					t.Errorf("got %s, want a %s problem", body, tc.wantType)
				}
			} else if !strings.Contains(string(body), tc.wantBody) || strings.Contains(string(body), "hidden") {
				t.Errorf("got %s, want %q and nothing hidden", body, tc.wantBody)
			}
			agents.mu.Lock()
			asked := len(agents.asked)
			agents.mu.Unlock()
			if asked != tc.wantAttempts {
				t.Errorf("the agent got %d requests, want %d", asked, tc.wantAttempts)
			}
		})
	}
}
