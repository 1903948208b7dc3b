package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// canary is a secret a caller puts in a payload: it must never reach the
// audit log.
const canary = "Zq9-canary-7f3e1d"

// fakeAuth maps bearer tokens to callers.
type fakeAuth map[string]callerauth.Caller

func (f fakeAuth) Authenticate(_ context.Context, r *http.Request) (callerauth.Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return callerauth.Caller{}, &callerauth.Error{Kind: callerauth.KindMissing, Detail: "no bearer token"}
	}
	c, ok := f[strings.TrimPrefix(h, "Bearer ")]
	if !ok {
		return callerauth.Caller{}, &callerauth.Error{Kind: callerauth.KindExpired, Detail: "the token has expired"}
	}
	return c, nil
}

// rolePolicy permits an operation to callers with the role it names.
type rolePolicy map[string]string // "system/operation" -> role

func (p rolePolicy) Decide(_ context.Context, r policy.Request) policy.Decision {
	role := p[r.TargetSystem+"/"+r.Operation]
	for _, have := range r.Roles {
		if have == role {
			return policy.Decision{Allow: true, Policies: []string{"allow-" + role}, Reason: "allowed by policy allow-" + role}
		}
	}
	return policy.Decision{Reason: "denied: no policy permits it (default deny)"}
}

// flakyAudit wraps a real audit log and can be made to fail.
type flakyAudit struct {
	*audit.Log
	fail atomic.Bool
}

func (f *flakyAudit) Append(ctx context.Context, r audit.Record) (audit.Record, error) {
	if f.fail.Load() {
		return r, errors.New("disk full")
	}
	return f.Log.Append(ctx, r)
}

// fakeConnector is a connector whose operations the test scripts.
type fakeConnector struct {
	mu    sync.Mutex
	calls map[string]int
	// run scripts each operation: it gets the attempt number.
	run map[string]func(ctx context.Context, attempt int, ec connectors.ExecContext) (connectors.Result, error)
}

func (f *fakeConnector) ID() string                                      { return "fake" }
func (f *fakeConnector) Name() string                                    { return "Fake" }
func (f *fakeConnector) AuthMethod() string                              { return "mtls-tunnel" }
func (f *fakeConnector) HealthCheck(ctx context.Context, t string) error { return nil }
func (f *fakeConnector) Operations() []connectors.Operation {
	return []connectors.Operation{
		{Name: "echo", Access: connectors.Read, Payload: json.RawMessage(`{"type":"object","required":["text"],"properties":{"text":{"type":"string","maxLength":20},"api_key":{"type":"string"}}}`),
			Result: json.RawMessage(`{"type":"object","required":["text"]}`)},
		{Name: "create", Access: connectors.Write, Attributed: true},
		{Name: "slow", Access: connectors.Read, Timeout: 200 * time.Millisecond},
		{Name: "file", Access: connectors.Read},
		{Name: "once", Access: connectors.Read, Retry: &connectors.RetryConfig{MaxAttempts: 1}},
	}
}
func (f *fakeConnector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	f.mu.Unlock()
	return f.run[op](ctx, n, ec)
}
func (f *fakeConnector) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

type harness struct {
	srv   *httptest.Server
	conn  *fakeConnector
	audit *flakyAudit
	dir   string
}

func newHarness(t *testing.T, edit func(*dispatch.Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	lg, err := audit.Open(t.Context(), dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	h := &harness{audit: &flakyAudit{Log: lg}, dir: dir, conn: &fakeConnector{calls: map[string]int{}}}
	h.conn.run = map[string]func(context.Context, int, connectors.ExecContext) (connectors.Result, error){
		"echo": func(_ context.Context, _ int, ec connectors.ExecContext) (connectors.Result, error) {
			var p struct{ Text string }
			json.Unmarshal(ec.Payload, &p)
			b, _ := json.Marshal(map[string]string{"text": p.Text, "user": ec.User.ID, "tenant": ec.Tenant})
			return connectors.Result{Data: b, IDs: []string{"id-" + p.Text}}, nil
		},
		"create": func(context.Context, int, connectors.ExecContext) (connectors.Result, error) {
			return connectors.Result{Data: json.RawMessage(`{"id":"new-1"}`), IDs: []string{"new-1"}}, nil
		},
		"slow": func(ctx context.Context, _ int, _ connectors.ExecContext) (connectors.Result, error) {
			<-ctx.Done()
			return connectors.Result{}, ctx.Err()
		},
		"once": func(_ context.Context, _ int, ec connectors.ExecContext) (connectors.Result, error) {
			if ec.Retry.MaxAttempts != 1 || ec.Retry.BaseDelay != time.Millisecond {
				return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "retry config %+v: want the operation's over the dispatcher's", ec.Retry)
			}
			return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "HTTP 503")
		},
		"file": func(context.Context, int, connectors.ExecContext) (connectors.Result, error) {
			return connectors.Result{Body: io.NopCloser(strings.NewReader("file content")), Size: 12, ContentType: "text/plain"}, nil
		},
	}
	cfg := dispatch.Config{
		Connectors: []connectors.Connector{h.conn},
		Auth: fakeAuth{
			"sarah": {UserID: "sarah", Email: "sarah@acme.example", Tenant: "acme", TenantName: "Acme", Roles: []string{"reader", "writer"}, AuthMethod: "oidc"},
			"bob":   {UserID: "bob", Email: "bob@globex.example", Tenant: "globex", Roles: []string{"reader", "auditor"}, AuthMethod: "oidc"},
			"eve":   {UserID: "eve", Email: "eve@acme.example", Tenant: "acme", Roles: []string{"intern"}, AuthMethod: "oidc"},
		},
		Policy: rolePolicy{"fake/echo": "reader", "fake/create": "writer", "fake/slow": "reader", "fake/file": "reader", "audit/query": "auditor"},
		Audit:  h.audit,
		Retry:  dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := dispatch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(d.Handler())
	t.Cleanup(h.srv.Close)
	return h
}

// call POSTs body to /v1/dispatch as token ("" for none).
func (h *harness) call(t *testing.T, token, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/dispatch", strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// records reads every audit record of tenant.
func (h *harness) records(t *testing.T, tenant string) []audit.Record {
	t.Helper()
	recs, err := h.audit.Query(t.Context(), audit.Query{Tenant: tenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestDispatchSuccess(t *testing.T) {
	h := newHarness(t, nil)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, body := h.call(t, "sarah", `{"targetSystem":"fake","operation":"echo","payload":{"text":"hello","api_key":"`+canary+`"}}`, "traceparent", tp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var out dispatch.Response
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if out.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || resp.Header.Get("X-Trace-Id") != out.TraceID {
		t.Errorf("trace id %q (header %q), want the traceparent's", out.TraceID, resp.Header.Get("X-Trace-Id"))
	}
	if !strings.Contains(resp.Header.Get("traceparent"), out.TraceID) {
		t.Errorf("response traceparent %q lacks the trace id", resp.Header.Get("traceparent"))
	}
	if string(out.Result) != `{"tenant":"acme","text":"hello","user":"sarah"}` || out.Meta.Attempts != 1 || out.Meta.AuthPattern != "s2s" {
		t.Errorf("got %s", body)
	}
	recs := h.records(t, "acme")
	if len(recs) != 1 {
		t.Fatalf("%d audit records, want 1", len(recs))
	}
	r := recs[0]
	if r.TraceID != out.TraceID || r.EventType != "dispatch" || r.TargetSystem != "fake" || r.Operation != "echo" ||
		r.User.ID != "sarah" || r.User.Email != "sarah@acme.example" || r.Tenant.ID != "acme" || r.Tenant.Name != "Acme" ||
		!r.Response.Success || len(r.Response.IDs) != 1 || r.Response.IDs[0] != "id-hello" || r.Policy.Effect != "allow" ||
		!strings.HasPrefix(r.AuthMethod, "oidc; s2s via mtls-tunnel") {
		t.Errorf("audit record %+v", r)
	}
	if !strings.Contains(string(r.Request), `"text":"hello"`) || strings.Contains(string(r.Request), "Zq9") {
		t.Errorf("audit request %s: want the payload with the api_key redacted", r.Request)
	}
	assertNoCanary(t, h.dir)
}

// assertNoCanary fails when the canary secret is anywhere under dir.
func assertNoCanary(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("Zq9")) {
				t.Errorf("%s holds (part of) the canary secret", p)
			}
		}
		return nil
	})
}

func TestDispatchTraceID(t *testing.T) {
	h := newHarness(t, nil)
	for _, tc := range []struct {
		name, header, value string
		want                func(string) bool
	}{
		{"x-trace-id", "X-Trace-Id", "req-42.a_b", func(s string) bool { return s == "req-42.a_b" }},
		{"bad x-trace-id replaced", "X-Trace-Id", "bad id!", func(s string) bool { return len(s) == 32 }},
		{"invalid traceparent replaced", "traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", func(s string) bool { return len(s) == 32 && s != strings.Repeat("0", 32) }},
		{"none", "X-Other", "x", func(s string) bool { return len(s) == 32 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.call(t, "sarah", `{"targetSystem":"fake","operation":"echo","payload":{"text":"x"}}`, tc.header, tc.value)
			if got := resp.Header.Get("X-Trace-Id"); !tc.want(got) || !strings.Contains(string(body), got) {
				t.Errorf("trace id %q in %s", got, body)
			}
		})
	}
}

func TestDispatchRefusals(t *testing.T) {
	h := newHarness(t, nil)
	big := `{"targetSystem":"fake","operation":"echo","payload":{"text":"` + strings.Repeat("a", 2<<20) + `"}}`
	for _, tc := range []struct {
		name, token, body string
		status            int
		typ               string
		check             func(t *testing.T, p map[string]any)
		tenant            string // whose audit log gets the record
	}{
		{"no token", "", `{}`, 401, "missing-token", nil, dispatch.AnonymousTenant},
		{"expired token", "stale", `{}`, 401, "expired-token", nil, dispatch.AnonymousTenant},
		{"not json", "sarah", `{"targetSystem":`, 400, "invalid-json", nil, "acme"},
		{"unknown field", "sarah", `{"targetSystem":"fake","operation":"echo","tenant":"globex"}`, 400, "invalid-json", nil, "acme"},
		{"two values", "sarah", `{"targetSystem":"fake","operation":"echo"} {}`, 400, "invalid-json", nil, "acme"},
		{"missing operation", "sarah", `{"targetSystem":"fake"}`, 400, "invalid-request", nil, "acme"},
		{"too large", "sarah", big, 413, "body-too-large", nil, "acme"},
		{"unknown system", "sarah", `{"targetSystem":"nope","operation":"echo"}`, 404, "unknown-system", nil, "acme"},
		{"unknown operation", "sarah", `{"targetSystem":"fake","operation":"nope"}`, 404, "unknown-operation", nil, "acme"},
		{"invalid payload", "sarah", `{"targetSystem":"fake","operation":"echo","payload":{"text":"this text is far too long for it"}}`, 400, "invalid-payload",
			func(t *testing.T, p map[string]any) {
				if p["pointer"] != "/text" {
					t.Errorf("pointer %v, want /text", p["pointer"])
				}
			}, "acme"},
		{"missing payload field", "sarah", `{"targetSystem":"fake","operation":"echo","payload":{}}`, 400, "invalid-payload", nil, "acme"},
		{"denied", "eve", `{"targetSystem":"fake","operation":"echo","payload":{"text":"x"}}`, 403, "denied",
			func(t *testing.T, p map[string]any) {
				if !strings.Contains(p["reason"].(string), "default deny") {
					t.Errorf("reason %v", p["reason"])
				}
			}, "acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.records(t, tc.tenant))
			calls := h.conn.count("echo")
			resp, body := h.call(t, tc.token, tc.body)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("got %d %s %s, want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status)
			}
			var p map[string]any
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p["type"] != dispatch.ProblemBase+tc.typ || p["traceId"] != resp.Header.Get("X-Trace-Id") || p["title"] == "" || int(p["status"].(float64)) != tc.status {
				t.Errorf("problem %s: want type %s with the trace id", body, tc.typ)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
			if h.conn.count("echo") != calls {
				t.Error("the connector was called")
			}
			recs := h.records(t, tc.tenant)
			if len(recs) != before+1 {
				t.Fatalf("%d new audit records in %s, want 1", len(recs)-before, tc.tenant)
			}
			if r := recs[len(recs)-1]; r.Response.Success || r.Response.Error != dispatch.ProblemBase+tc.typ || r.TraceID != p["traceId"] {
				t.Errorf("audit record %+v", r)
			}
		})
	}
}

func TestDispatchConnectorErrors(t *testing.T) {
	h := newHarness(t, nil)
	h.conn.run["echo"] = func(_ context.Context, attempt int, ec connectors.ExecContext) (connectors.Result, error) {
		var p struct{ Text string }
		json.Unmarshal(ec.Payload, &p)
		switch p.Text {
		case "limited-twice":
			if attempt%3 != 0 {
				return connectors.Result{}, &connectors.Error{Class: connectors.ClassRateLimited, Detail: "429", RetryAfter: 30 * time.Millisecond}
			}
		case "limited-long":
			return connectors.Result{}, &connectors.Error{Class: connectors.ClassRateLimited, Detail: "429", RetryAfter: time.Hour}
		case "offline":
			return connectors.Result{}, connectors.Errorf(connectors.ClassAgentOffline, "no agent of tenant acme is connected")
		case "down":
			return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "HTTP 503")
		case "missing":
			return connectors.Result{}, connectors.Errorf(connectors.ClassNotFound, "no such record")
		case "raw":
			return connectors.Result{}, errors.New("dial tcp: password=" + canary)
		case "bad-result":
			return connectors.Result{Data: json.RawMessage(`{"other":1}`)}, nil
		}
		return connectors.Result{Data: json.RawMessage(`{"text":"ok"}`)}, nil
	}
	for _, tc := range []struct {
		text     string
		status   int
		typ      string
		attempts int
	}{
		{"limited-twice", 200, "", 3},
		{"limited-long", 429, "upstream-rate-limited", 1},
		{"offline", 503, "agent-offline", 1},
		{"down", 502, "connector-unavailable", 3},
		{"missing", 404, "not-found", 1},
		{"raw", 502, "connector-unavailable", 1},
		{"bad-result", 502, "bad-connector-response", 1},
	} {
		t.Run(tc.text, func(t *testing.T) {
			h.conn.mu.Lock()
			h.conn.calls["echo"] = 0
			h.conn.mu.Unlock()
			start := time.Now()
			resp, body := h.call(t, "sarah", `{"targetSystem":"fake","operation":"echo","payload":{"text":"`+tc.text+`"}}`)
			if resp.StatusCode != tc.status || (tc.typ != "" && !strings.Contains(string(body), dispatch.ProblemBase+tc.typ+`"`)) {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, tc.status, tc.typ)
			}
			if got := h.conn.count("echo"); got != tc.attempts {
				t.Errorf("%d attempts, want %d", got, tc.attempts)
			}
			if tc.text == "limited-twice" && time.Since(start) < 60*time.Millisecond {
				t.Errorf("retried after %v: Retry-After (30ms, twice) not honoured", time.Since(start))
			}
			if tc.text == "limited-long" && resp.Header.Get("Retry-After") != "3600" {
				t.Errorf("Retry-After %q, want 3600", resp.Header.Get("Retry-After"))
			}
			if strings.Contains(string(body), "Zq9") {
				t.Errorf("the problem reveals the connector's raw error: %s", body)
			}
		})
	}
	assertNoCanary(t, h.dir)
}

func TestDispatchTimeout(t *testing.T) {
	h := newHarness(t, nil)
	start := time.Now()
	resp, body := h.call(t, "sarah", `{"targetSystem":"fake","operation":"slow"}`)
	if resp.StatusCode != 504 || !strings.Contains(string(body), dispatch.ProblemTimeout) {
		t.Fatalf("got %d %s, want 504 timeout", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v; the operation's timeout is 200ms", d)
	}
	if n := h.conn.count("slow"); n != 1 {
		t.Errorf("%d attempts; a timed-out request has no time left for another", n)
	}
}

func TestDispatchWritesAndAuditFailure(t *testing.T) {
	h := newHarness(t, nil)
	// A write is recorded before it runs, and after.
	resp, body := h.call(t, "sarah", `{"targetSystem":"fake","operation":"create"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"authPattern":"integration-owner"`) {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	recs := h.records(t, "acme")
	if len(recs) != 2 || recs[0].EventType != "dispatch.started" || recs[1].EventType != "dispatch" || recs[1].Response.IDs[0] != "new-1" {
		t.Fatalf("audit records %+v, want started then dispatch", recs)
	}
	// The audit log fails: a write is refused before anything is done, a
	// read's result is withheld.
	h.audit.fail.Store(true)
	resp, body = h.call(t, "sarah", `{"targetSystem":"fake","operation":"create"}`)
	if resp.StatusCode != 503 || !strings.Contains(string(body), dispatch.ProblemAuditUnavailable) || h.conn.count("create") != 1 {
		t.Errorf("write with audit down: got %d %s, %d executions; want 503 audit-unavailable and no execution", resp.StatusCode, body, h.conn.count("create"))
	}
	resp, body = h.call(t, "sarah", `{"targetSystem":"fake","operation":"echo","payload":{"text":"secret result"}}`)
	if resp.StatusCode != 503 || strings.Contains(string(body), "secret result") {
		t.Errorf("read with audit down: got %d %s; want 503 without the result", resp.StatusCode, body)
	}
}

func TestDispatchRateLimit(t *testing.T) {
	h := newHarness(t, func(c *dispatch.Config) { c.Rate, c.Burst = 1, 2 })
	var codes []int
	for range 3 {
		resp, _ := h.call(t, "sarah", `{"targetSystem":"fake","operation":"echo","payload":{"text":"x"}}`)
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Errorf("status codes %v, want 200 200 429 (burst 2)", codes)
	}
	// Another tenant has its own budget.
	if resp, body := h.call(t, "bob", `{"targetSystem":"fake","operation":"echo","payload":{"text":"x"}}`); resp.StatusCode != 200 {
		t.Errorf("other tenant: %d %s", resp.StatusCode, body)
	}
}

func TestDispatchStreamsContent(t *testing.T) {
	h := newHarness(t, nil)
	resp, body := h.call(t, "sarah", `{"targetSystem":"fake","operation":"file"}`)
	if resp.StatusCode != 200 || string(body) != "file content" || resp.Header.Get("Content-Type") != "text/plain" || resp.Header.Get("Content-Length") != "12" {
		t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestConnectorsHealthAndAuditQuery(t *testing.T) {
	h := newHarness(t, nil)
	get := func(token, path string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, body := get("sarah", "/v1/connectors")
	var list struct{ Connectors []dispatch.ConnectorInfo }
	if err := json.Unmarshal(body, &list); code != 200 || err != nil || len(list.Connectors) != 1 || len(list.Connectors[0].Operations) != 5 ||
		!strings.Contains(string(list.Connectors[0].Operations[0].Payload), `"maxLength":20`) || list.Connectors[0].Operations[1].AuthPattern != "integration-owner" {
		t.Errorf("connectors: %d %s", code, body)
	}
	if code, _ := get("", "/v1/connectors"); code != 401 {
		t.Errorf("connectors without a token: %d, want 401", code)
	}
	if code, body := get("sarah", "/v1/connectors/fake/health"); code != 200 || !strings.Contains(string(body), `"status":"ok"`) {
		t.Errorf("health: %d %s", code, body)
	}
	if code, _ := get("sarah", "/v1/connectors/nope/health"); code != 404 {
		t.Errorf("health of an unknown connector: %d, want 404", code)
	}

	// Records of both tenants; bob (globex's auditor) reads only globex's.
	h.call(t, "sarah", `{"targetSystem":"fake","operation":"echo","payload":{"text":"acme-only"}}`)
	h.call(t, "bob", `{"targetSystem":"fake","operation":"echo","payload":{"text":"globex-1"}}`)
	code, body = get("bob", "/v1/audit?system=fake&limit=50")
	var res struct{ Records []audit.Record }
	if err := json.Unmarshal(body, &res); code != 200 || err != nil || len(res.Records) != 1 || res.Records[0].Tenant.ID != "globex" {
		t.Errorf("bob's audit query: %d %s", code, body)
	}
	if strings.Contains(string(body), "acme-only") {
		t.Error("a globex auditor sees acme's records")
	}
	if code, body := get("sarah", "/v1/audit"); code != 403 || !strings.Contains(string(body), dispatch.ProblemDenied) {
		t.Errorf("audit query without the auditor role: %d %s, want 403", code, body)
	}
	if code, _ := get("bob", "/v1/audit?since=yesterday"); code != 400 {
		t.Errorf("bad since: %d, want 400", code)
	}
}

func TestNewRefusesBadConnectors(t *testing.T) {
	base := dispatch.Config{Auth: fakeAuth{}, Policy: rolePolicy{}, Audit: &flakyAudit{}}
	for _, tc := range []struct {
		name string
		cfg  func() dispatch.Config
		want string
	}{
		{"no auth", func() dispatch.Config { c := base; c.Auth = nil; return c }, "required"},
		{"duplicate", func() dispatch.Config {
			c := base
			c.Connectors = []connectors.Connector{&fakeConnector{}, &fakeConnector{}}
			return c
		}, "two connectors"},
		{"bad schema", func() dispatch.Config {
			c := base
			c.Connectors = []connectors.Connector{badSchema{&fakeConnector{}}}
			return c
		}, "schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dispatch.New(tc.cfg()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

type badSchema struct{ *fakeConnector }

func (badSchema) Operations() []connectors.Operation {
	return []connectors.Operation{{Name: "x", Access: connectors.Read, Payload: json.RawMessage(`{"type": 12}`)}}
}

func TestOperationRetryOverride(t *testing.T) {
	h := newHarness(t, func(c *dispatch.Config) { c.Policy = rolePolicy{"fake/once": "reader"} })
	resp, body := h.call(t, "sarah", `{"targetSystem":"fake","operation":"once"}`)
	if resp.StatusCode != 502 || !strings.Contains(string(body), dispatch.ProblemConnectorUnavailable) {
		t.Fatalf("got %d %s, want 502 connector-unavailable", resp.StatusCode, body)
	}
	if n := h.conn.count("once"); n != 1 {
		t.Errorf("%d attempts, want the operation's 1", n)
	}
}

func TestChooseAuth(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   connectors.Operation
		want connectors.AuthPattern
	}{
		{"aggregated read", connectors.Operation{Access: connectors.Read}, connectors.ServiceToService},
		{"attributed read", connectors.Operation{Access: connectors.Read, Attributed: true}, connectors.IntegrationOwner},
		{"write", connectors.Operation{Access: connectors.Write}, connectors.IntegrationOwner},
		{"explicit", connectors.Operation{Access: connectors.Write, Auth: connectors.ServiceToService}, connectors.ServiceToService},
	} {
		if got := connectors.ChooseAuth(tc.op); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}
