package asana_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/asana"
	"github.com/mcc-bridge/bridge/connectors/asana/asanafake"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// token is the integration owner's Asana token: no part of it may appear
// in an error, a log line or a response to the caller.
const token = "Zq9asanaTok-2/1204c0ffee5eed77"

var sarah = connectors.User{ID: "sarah", Email: "sarah@acme.example", Roles: []string{"marketing"}}

func cred() connectors.Credential {
	return connectors.Credential{Pattern: connectors.IntegrationOwner, Method: "oauth2", Token: token, Subject: "owner@acme.example"}
}

// logSink collects log output and copies it to t.Log.
type logSink struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return l.b.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	fake      *asanafake.Server
	c         *asana.Connector
	workspace string
	owner     string // the owner's user gid
	sarah     string // sarah's user gid
}

func setup(t *testing.T, edit func(*asana.Config)) *env {
	t.Helper()
	fake := asanafake.New()
	t.Cleanup(fake.Close)
	e := &env{fake: fake}
	e.workspace = fake.AddWorkspace("Acme")
	e.owner = fake.AddUser("Integration Owner", "owner@acme.example")
	e.sarah = fake.AddUser("Sarah Connor", "sarah@acme.example")
	fake.AddToken(token, e.owner)
	logs := &logSink{t: t}
	cfg := asana.Config{BaseURL: fake.URL, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if edit != nil {
		edit(&cfg)
	}
	c, err := asana.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	t.Cleanup(func() { assertNoSecret(t, "the connector's log", logs.String()) })
	return e
}

func (e *env) exec(ctx context.Context, op string, payload any, cr connectors.Credential) (connectors.Result, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return e.c.Execute(ctx, op, connectors.ExecContext{User: sarah, Tenant: "acme", TraceID: "trace-1", Payload: p, Credential: cr, Attempt: 1})
}

// assertNoSecret fails when s holds the token or an 8-byte run of it.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for i := 0; i+8 <= len(token); i++ {
		if strings.Contains(s, token[i:i+8]) {
			t.Errorf("%s holds part of the token (%q): %s", what, token[i:i+8], s)
			return
		}
	}
}

func TestOperations(t *testing.T) {
	e := setup(t, nil)
	launch := e.fake.AddProject(asanafake.Project{Name: "Launch", Workspace: e.workspace})
	e.fake.AddProject(asanafake.Project{Name: "Budget", Workspace: e.workspace, Archived: true})
	other := e.fake.AddWorkspace("Globex")
	e.fake.AddProject(asanafake.Project{Name: "Not ours", Workspace: other})
	existing := e.fake.AddTask(asanafake.Task{Name: "Write brief", Notes: "two pages", Workspace: e.workspace, Projects: []string{launch}, Assignee: e.sarah, DueOn: "2026-05-01"})

	tests := []struct {
		name    string
		op      string
		payload any
		check   func(t *testing.T, data map[string]any, ids []string, req asanafake.Request)
	}{
		{
			name: "create_task", op: "create_task",
			payload: map[string]any{"name": "Book venue", "notes": "for 200", "projects": []string{launch}, "due_on": "2026-06-15", "assignee": "sarah@acme.example"},
			check: func(t *testing.T, data map[string]any, ids []string, req asanafake.Request) {
				tk := data["task"].(map[string]any)
				gid, _ := tk["gid"].(string)
				if tk["name"] != "Book venue" || tk["due_on"] != "2026-06-15" || tk["completed"] != false ||
					tk["assignee"].(map[string]any)["name"] != "Sarah Connor" || tk["workspace"].(map[string]any)["gid"] != e.workspace {
					t.Errorf("task %v", tk)
				}
				stored, ok := e.fake.Task(gid)
				if !ok || stored.Assignee != e.sarah || len(stored.Projects) != 1 || stored.Projects[0] != launch || stored.Notes != "for 200" {
					t.Errorf("stored task %+v", stored)
				}
				var body struct{ Data map[string]any }
				if json.Unmarshal(req.Body, &body) != nil || body.Data["name"] != "Book venue" {
					t.Errorf("request body %s: want the task in a data envelope", req.Body)
				}
				if req.Method != http.MethodPost || req.Path != asanafake.APIPath+"/tasks" || req.Header.Get("Authorization") != "Bearer "+token {
					t.Errorf("request %s %s: want POST /api/1.0/tasks with the bearer token", req.Method, req.Path)
				}
				uc, err := url.ParseQuery(req.Header.Get(asana.UserContextHeader))
				if err != nil || uc.Get("id") != "sarah" || uc.Get("email") != "sarah@acme.example" {
					t.Errorf("user context %q", req.Header.Get(asana.UserContextHeader))
				}
				if len(ids) != 1 || ids[0] != "task:"+gid {
					t.Errorf("ids %v", ids)
				}
			},
		},
		{
			name: "get_task", op: "get_task", payload: map[string]any{"task_gid": existing},
			check: func(t *testing.T, data map[string]any, ids []string, req asanafake.Request) {
				tk := data["task"].(map[string]any)
				if tk["gid"] != existing || tk["name"] != "Write brief" || tk["notes"] != "two pages" || tk["due_on"] != "2026-05-01" ||
					tk["assignee"].(map[string]any)["gid"] != e.sarah || tk["projects"].([]any)[0].(map[string]any)["name"] != "Launch" {
					t.Errorf("task %v", tk)
				}
				if !strings.Contains(req.Query.Get("opt_fields"), "assignee.name") || req.Header.Get(asana.UserContextHeader) != "" {
					t.Errorf("query %v, user context %q: want opt_fields and no user context on a read", req.Query, req.Header.Get(asana.UserContextHeader))
				}
				if len(ids) != 1 || ids[0] != "task:"+existing {
					t.Errorf("ids %v", ids)
				}
			},
		},
		{
			name: "list_projects", op: "list_projects", payload: map[string]any{"workspace": e.workspace, "archived": false},
			check: func(t *testing.T, data map[string]any, ids []string, req asanafake.Request) {
				ps := data["projects"].([]any)
				if data["count"] != 1.0 || len(ps) != 1 || ps[0].(map[string]any)["name"] != "Launch" || ps[0].(map[string]any)["archived"] != false || data["truncated"] != false {
					t.Errorf("projects %v: want Launch only", data)
				}
				if req.Query.Get("workspace") != e.workspace || req.Query.Get("limit") != "100" || req.Query.Get("archived") != "false" {
					t.Errorf("query %v", req.Query)
				}
				if len(ids) != 1 || ids[0] != "project:"+launch {
					t.Errorf("ids %v", ids)
				}
			},
		},
		{
			name: "batch", op: "batch",
			payload: map[string]any{"actions": []any{
				map[string]any{"relative_path": "/tasks/" + existing, "method": "get", "options": map[string]any{"fields": []string{"name", "completed"}}},
				map[string]any{"relative_path": "/tasks", "method": "post", "data": map[string]any{"name": "From batch", "workspace": e.workspace}},
				map[string]any{"relative_path": "/tasks/" + existing, "method": "put", "data": map[string]any{"completed": true}},
				map[string]any{"relative_path": "/tasks/999", "method": "get"},
			}},
			check: func(t *testing.T, data map[string]any, ids []string, req asanafake.Request) {
				rs := data["results"].([]any)
				if data["succeeded"] != 3.0 || data["failed"] != 1.0 || len(rs) != 4 {
					t.Fatalf("batch result %v: want 3 succeeded, 1 failed", data)
				}
				codes := []any{}
				for _, r := range rs {
					codes = append(codes, r.(map[string]any)["status_code"])
				}
				if fmt.Sprint(codes) != "[200 201 200 404]" {
					t.Errorf("status codes %v", codes)
				}
				if got, _ := e.fake.Task(existing); !got.Completed {
					t.Errorf("the put action did not complete the task")
				}
				if len(ids) != 3 || ids[0] != "task:"+existing {
					t.Errorf("ids %v: want the three tasks touched", ids)
				}
				var body struct {
					Data struct{ Actions []map[string]any }
				}
				if json.Unmarshal(req.Body, &body) != nil || len(body.Data.Actions) != 4 || req.Path != asanafake.APIPath+"/batch" {
					t.Errorf("request %s %s", req.Path, req.Body)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			res, err := e.exec(t.Context(), tc.op, tc.payload, cred())
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			var data map[string]any
			if err := json.Unmarshal(res.Data, &data); err != nil {
				t.Fatal(err)
			}
			reqs := e.fake.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("got %d requests, want 1", len(reqs)-before)
			}
			tc.check(t, data, res.IDs, reqs[len(reqs)-1])
		})
	}
}

func TestListPagination(t *testing.T) {
	e := setup(t, func(c *asana.Config) { c.PageSize = 3 })
	for i := range 7 {
		e.fake.AddProject(asanafake.Project{Name: fmt.Sprintf("Project %d", i), Workspace: e.workspace})
	}
	tests := []struct {
		name          string
		limit         int
		wantCount     int
		wantTruncated bool
		wantLimits    []string // the limit of each request
	}{
		{"all of them", 100, 7, false, []string{"3", "3", "3"}},
		{"exactly all", 7, 7, false, []string{"3", "3", "1"}},
		{"cut at the limit", 6, 6, true, []string{"3", "3"}},
		{"two", 2, 2, true, []string{"2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			res, err := e.exec(t.Context(), "list_projects", map[string]any{"workspace": e.workspace, "limit": tc.limit}, cred())
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Projects  []struct{ GID, Name string }
				Count     int
				Truncated bool
			}
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if out.Count != tc.wantCount || len(out.Projects) != tc.wantCount || out.Truncated != tc.wantTruncated || len(res.IDs) != tc.wantCount {
				t.Errorf("got count %d (%d projects, %d ids), truncated %v; want %d, %v", out.Count, len(out.Projects), len(res.IDs), out.Truncated, tc.wantCount, tc.wantTruncated)
			}
			for i, p := range out.Projects {
				if p.Name != fmt.Sprintf("Project %d", i) {
					t.Errorf("project %d is %q: want the vendor's order, each once", i, p.Name)
				}
			}
			var limits []string
			offsets := map[string]bool{}
			for i, r := range e.fake.Requests()[before:] {
				limits = append(limits, r.Query.Get("limit"))
				if o := r.Query.Get("offset"); (i == 0) != (o == "") || offsets[o] {
					t.Errorf("request %d has offset %q: want none first, then each next_page offset once", i, o)
				} else {
					offsets[o] = true
				}
			}
			if fmt.Sprint(limits) != fmt.Sprint(tc.wantLimits) {
				t.Errorf("got limits %v, want %v", limits, tc.wantLimits)
			}
		})
	}
}

// TestPaginationStaysOnTheBaseURL: the connector follows next_page's
// offset with its own base URL, never the uri (the token would go there),
// and stops when a page repeats its offset.
func TestPaginationStaysOnTheBaseURL(t *testing.T) {
	var calls atomic.Int32
	var elsewhere atomic.Bool
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Store(true) }))
	defer evil.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n > 10 {
			http.Error(w, "looping", 500)
			return
		}
		// Always the same offset: a vendor bug that must not loop forever.
		fmt.Fprintf(w, `{"data":[{"gid":"%d","name":"P%d"}],"next_page":{"offset":"same","path":"/projects?offset=same","uri":"%s/api/1.0/projects?offset=same"}}`, n, n, evil.URL)
	}))
	defer srv.Close()
	c, err := asana.New(asana.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Execute(t.Context(), "list_projects", connectors.ExecContext{User: sarah, Payload: json.RawMessage(`{"workspace":"1"}`), Credential: cred()})
	if err != nil {
		t.Fatal(err)
	}
	if elsewhere.Load() {
		t.Error("the connector followed next_page.uri to another host")
	}
	if n := calls.Load(); n != 2 || !strings.Contains(string(res.Data), `"truncated":true`) {
		t.Errorf("got %d calls and %s; want 2 calls (the offset repeats) and a truncated result", n, res.Data)
	}
}

func TestErrors(t *testing.T) {
	later := time.Now().Add(45 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name    string
		setup   func(e *env)
		op      string
		payload func(e *env) any
		cred    connectors.Credential
		short   bool // run with a 100ms deadline
		want    connectors.Class
		wantRA  time.Duration
	}{
		{name: "429 with Retry-After seconds", op: "get_task", want: connectors.ClassRateLimited, wantRA: 30 * time.Second,
			setup: func(e *env) { e.fake.Inject(asanafake.Fault{Status: 429, RetryAfter: "30"}) }},
		{name: "429 with Retry-After date", op: "list_projects", want: connectors.ClassRateLimited, wantRA: 45 * time.Second,
			setup: func(e *env) { e.fake.Inject(asanafake.Fault{Status: 429, RetryAfter: later}) }},
		{name: "429 on the third page", op: "list_projects", want: connectors.ClassRateLimited, wantRA: 2 * time.Second,
			setup: func(e *env) {
				for range 8 {
					e.fake.AddProject(asanafake.Project{Name: "P", Workspace: e.workspace})
				}
				// Two pages are served, the third is throttled.
				e.fake.Inject(asanafake.Fault{Path: "/projects", Delay: time.Millisecond, Times: 2})
				e.fake.Inject(asanafake.Fault{Path: "/projects", Status: 429, RetryAfter: "2"})
			}},
		{name: "500", op: "get_task", want: connectors.ClassUnavailable,
			setup: func(e *env) { e.fake.Inject(asanafake.Fault{Status: 500}) }},
		{name: "503 on a batch", op: "batch", want: connectors.ClassUnavailable,
			setup: func(e *env) { e.fake.Inject(asanafake.Fault{Status: 503}) }},
		{name: "expired token", op: "create_task", want: connectors.ClassUnauthorized,
			setup: func(e *env) { e.fake.ExpireToken(token) }},
		{name: "revoked token", op: "batch", want: connectors.ClassUnauthorized,
			setup: func(e *env) { e.fake.RevokeToken(token) }},
		{name: "credential without a token", op: "get_task", cred: connectors.Credential{Pattern: connectors.ServiceToService, Method: "oauth2"}, want: connectors.ClassUnauthorized},
		{name: "unknown task", op: "get_task", want: connectors.ClassNotFound,
			payload: func(e *env) any { return map[string]any{"task_gid": "42"} }},
		{name: "unknown assignee", op: "create_task", want: connectors.ClassInvalid,
			payload: func(e *env) any {
				return map[string]any{"name": "N", "workspace": e.workspace, "assignee": "nobody@acme.example"}
			}},
		{name: "an error that echoes the token", op: "create_task", want: connectors.ClassInvalid,
			setup: func(e *env) {
				e.fake.Inject(asanafake.Fault{Status: 400, Message: "token " + token[3:15] + "... is malformed"})
			}},
		{name: "slow answer", op: "get_task", short: true, want: connectors.ClassTimeout,
			setup: func(e *env) { e.fake.Inject(asanafake.Fault{Delay: 2 * time.Second}) }},
		{name: "unreachable", op: "list_projects", want: connectors.ClassUnavailable,
			setup: func(e *env) { e.fake.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, func(c *asana.Config) { c.PageSize = 3 })
			task := e.fake.AddTask(asanafake.Task{Name: "T", Workspace: e.workspace})
			if tc.setup != nil {
				tc.setup(e)
			}
			var payload any = map[string]any{
				"get_task":      map[string]any{"task_gid": task},
				"create_task":   map[string]any{"name": "N", "workspace": e.workspace},
				"list_projects": map[string]any{"workspace": e.workspace},
				"batch":         map[string]any{"actions": []any{map[string]any{"relative_path": "/tasks/" + task, "method": "get"}}},
			}[tc.op]
			if tc.payload != nil {
				payload = tc.payload(e)
			}
			cr := cred()
			if tc.cred.Pattern != "" {
				cr = tc.cred
			}
			ctx := t.Context()
			if tc.short {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
			}
			_, err := e.exec(ctx, tc.op, payload, cr)
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Class != tc.want {
				t.Fatalf("got %v, want class %s", err, tc.want)
			}
			if d := ce.RetryAfter - tc.wantRA; tc.wantRA != 0 && (d < -2*time.Second || d > time.Second) {
				t.Errorf("got RetryAfter %v, want %v", ce.RetryAfter, tc.wantRA)
			}
			assertNoSecret(t, "the error", err.Error())
			assertNoSecret(t, "the error printed with %+v and %#v", fmt.Sprintf("%+v %#v", err, ce))
		})
	}
}

func TestHealthCheck(t *testing.T) {
	e := setup(t, nil)
	if err := e.c.HealthCheck(t.Context(), "acme"); err != nil {
		t.Errorf("healthy Asana (answering 401): got %v", err)
	}
	if got := e.fake.Requests()[0]; got.Header.Get("Authorization") != "" || got.Path != asanafake.APIPath+"/users/me" {
		t.Errorf("the health check sent %s with Authorization set %v", got.Path, got.Header.Get("Authorization") != "")
	}
	e.fake.Inject(asanafake.Fault{Status: 429, RetryAfter: "5"})
	if err := e.c.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassRateLimited {
		t.Errorf("Asana throttling: got %v, want rate-limited", err)
	}
	e.fake.Close()
	if err := e.c.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("Asana unreachable: got %v, want unavailable", err)
	}
	var asked string
	c, err := asana.New(asana.Config{Health: func(_ context.Context, tenant string) error { asked = tenant; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.HealthCheck(t.Context(), "globex"); err != nil || asked != "globex" {
		t.Errorf("Config.Health: got %v for %q, want it called for globex", err, asked)
	}
}

func TestNewChecksConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  asana.Config
		ok   bool
	}{
		{"defaults", asana.Config{}, true},
		{"a base URL", asana.Config{BaseURL: "https://app.asana.com/"}, true},
		{"not a URL", asana.Config{BaseURL: "app.asana.com"}, false},
		{"a path", asana.Config{BaseURL: "https://app.asana.com/api/1.0"}, false},
		{"page size too big", asana.Config{PageSize: 101}, false},
		{"negative page size", asana.Config{PageSize: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := asana.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestOperationsDeclared(t *testing.T) {
	c, err := asana.New(asana.Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		access     connectors.Access
		attributed bool
		auth       connectors.AuthPattern
	}{
		"create_task":   {connectors.Write, true, connectors.IntegrationOwner},
		"get_task":      {connectors.Read, false, connectors.ServiceToService},
		"list_projects": {connectors.Read, false, connectors.ServiceToService},
		"batch":         {connectors.Write, false, connectors.IntegrationOwner},
	}
	ops := c.Operations()
	if len(ops) != len(want) {
		t.Fatalf("got %d operations, want %d", len(ops), len(want))
	}
	for _, op := range ops {
		w, ok := want[op.Name]
		if !ok || op.Access != w.access || op.Attributed != w.attributed || connectors.ChooseAuth(op) != w.auth {
			t.Errorf("%s: got access %s, attributed %v, auth %s; want %+v", op.Name, op.Access, op.Attributed, connectors.ChooseAuth(op), w)
		}
	}
	if c.ID() != "asana" {
		t.Errorf("got id %q", c.ID())
	}
}

// Dispatcher plumbing: a fixed caller, a permissive policy, and the
// owner's token for every pattern.

type oneCaller struct{}

func (oneCaller) Authenticate(_ context.Context, r *http.Request) (callerauth.Caller, error) {
	if r.Header.Get("Authorization") != "Bearer sarah" {
		return callerauth.Caller{}, &callerauth.Error{Kind: callerauth.KindMissing, Detail: "no bearer token"}
	}
	return callerauth.Caller{UserID: sarah.ID, Email: sarah.Email, Tenant: "acme", Roles: sarah.Roles, AuthMethod: "oidc"}, nil
}

type allowAll struct{}

func (allowAll) Decide(context.Context, policy.Request) policy.Decision {
	return policy.Decision{Allow: true, Policies: []string{"allow-all"}, Reason: "allowed by policy allow-all"}
}

type ownerToken struct{}

func (ownerToken) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	if req.System != asana.ID || req.Tenant != "acme" {
		return connectors.Credential{}, connectors.ErrNoCredential
	}
	c := cred()
	c.Pattern = req.Pattern
	return c, nil
}

func newDispatcher(t *testing.T, c connectors.Connector) *httptest.Server {
	t.Helper()
	lg, err := audit.Open(t.Context(), t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{c}, Auth: oneCaller{}, Policy: allowAll{}, Audit: lg, Credentials: ownerToken{},
		Retry: dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/dispatch", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sarah")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	assertNoSecret(t, "the dispatcher's response", string(b))
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("status %d, body %s: %v", resp.StatusCode, b, err)
	}
	return resp.StatusCode, out
}

func TestThroughDispatcher(t *testing.T) {
	e := setup(t, nil)
	srv := newDispatcher(t, e.c)
	task := e.fake.AddTask(asanafake.Task{Name: "Write brief", Workspace: e.workspace})

	t.Run("5xx retried, then success", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.Inject(asanafake.Fault{Status: 502})
		status, out := post(t, srv, `{"targetSystem":"asana","operation":"get_task","payload":{"task_gid":"`+task+`"}}`)
		if status != 200 {
			t.Fatalf("got status %d (%v), want 200", status, out)
		}
		if meta := out["meta"].(map[string]any); meta["attempts"] != 2.0 {
			t.Errorf("meta %v: want 2 attempts", meta)
		}
		if got := len(e.fake.Requests()) - before; got != 2 {
			t.Errorf("Asana got %d requests, want 2", got)
		}
		if tk := out["result"].(map[string]any)["task"].(map[string]any); tk["gid"] != task || tk["name"] != "Write brief" {
			t.Errorf("result %v", tk)
		}
	})
	t.Run("bad payload refused by the schema", func(t *testing.T) {
		before := len(e.fake.Requests())
		eleven := strings.TrimSuffix(strings.Repeat(`{"relative_path":"/tasks/1","method":"get"},`, 11), ",")
		for _, body := range []string{
			`{"targetSystem":"asana","operation":"get_task","payload":{"task_gid":"abc"}}`,
			`{"targetSystem":"asana","operation":"create_task","payload":{"name":"Nowhere"}}`,
			`{"targetSystem":"asana","operation":"create_task","payload":{"name":"X","workspace":"1","followers":["a"]}}`,
			`{"targetSystem":"asana","operation":"list_projects","payload":{"limit":5}}`,
			`{"targetSystem":"asana","operation":"batch","payload":{"actions":[` + eleven + `]}}`,
			`{"targetSystem":"asana","operation":"batch","payload":{"actions":[{"relative_path":"/tasks?opt_pretty=1","method":"get"}]}}`,
			`{"targetSystem":"asana","operation":"batch","payload":{"actions":[{"relative_path":"/../admin","method":"get"}]}}`,
		} {
			status, out := post(t, srv, body)
			if status != 400 || out["type"] != dispatch.ProblemInvalidPayload {
				t.Errorf("%s: got %d %v, want 400 invalid-payload", body, status, out["type"])
			}
		}
		if got := len(e.fake.Requests()) - before; got != 0 {
			t.Errorf("Asana got %d requests for refused payloads, want 0", got)
		}
	})
	t.Run("a batch through the dispatcher", func(t *testing.T) {
		status, out := post(t, srv, `{"targetSystem":"asana","operation":"batch","payload":{"actions":[{"relative_path":"/tasks/`+task+`","method":"put","data":{"completed":true}}]}}`)
		if status != 200 || out["result"].(map[string]any)["succeeded"] != 1.0 || out["meta"].(map[string]any)["authPattern"] != "integration-owner" {
			t.Errorf("got %d %v", status, out)
		}
	})
	t.Run("429 with a short Retry-After is waited for, then success", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.Inject(asanafake.Fault{Status: 429, RetryAfter: "1"})
		start := time.Now()
		status, out := post(t, srv, `{"targetSystem":"asana","operation":"get_task","payload":{"task_gid":"`+task+`"}}`)
		if status != 200 || out["meta"].(map[string]any)["attempts"] != 2.0 {
			t.Fatalf("got %d %v, want 200 after 2 attempts", status, out)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("the retry came after %v, want at least the 1s Retry-After", waited)
		}
		if got := len(e.fake.Requests()) - before; got != 2 {
			t.Errorf("Asana got %d requests, want 2", got)
		}
	})
	t.Run("429 with a Retry-After past the deadline reaches the caller", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.Inject(asanafake.Fault{Status: 429, RetryAfter: "90"})
		status, out := post(t, srv, `{"targetSystem":"asana","operation":"list_projects","payload":{"workspace":"`+e.workspace+`"}}`)
		if status != 429 || out["type"] != dispatch.ProblemUpstreamRateLimited || out["retryAfter"] != 90.0 {
			t.Errorf("got %d %v (retryAfter %v), want 429 upstream-rate-limited with retryAfter 90", status, out["type"], out["retryAfter"])
		}
		if got := len(e.fake.Requests()) - before; got != 1 {
			t.Errorf("Asana got %d requests, want 1 (no retry that cannot finish in time)", got)
		}
	})
	t.Run("Asana's validation error reaches the caller", func(t *testing.T) {
		before := len(e.fake.Requests())
		status, out := post(t, srv, `{"targetSystem":"asana","operation":"create_task","payload":{"name":"N","workspace":"`+e.workspace+`","assignee":"nobody@acme.example"}}`)
		if status != 422 || out["type"] != dispatch.ProblemUpstreamInvalid || !strings.Contains(fmt.Sprint(out["detail"]), "assignee") {
			t.Errorf("got %d %v %q, want 422 upstream-invalid naming the assignee", status, out["type"], out["detail"])
		}
		if got := len(e.fake.Requests()) - before; got != 1 {
			t.Errorf("Asana got %d requests, want 1 (a refused write is not retried)", got)
		}
	})
	t.Run("expired token: the owner must reconnect", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.ExpireToken(token)
		status, out := post(t, srv, `{"targetSystem":"asana","operation":"create_task","payload":{"name":"Late","workspace":"`+e.workspace+`"}}`)
		if status != 503 || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v, want 503 credential-unavailable", status, out["type"])
		}
		if got := len(e.fake.Requests()) - before; got != 1 {
			t.Errorf("Asana got %d requests, want 1 (a refused credential is not retried)", got)
		}
	})
}

// TestRevokedConnection: when the credential manager finds the
// integration owner's connection revoked, the dispatch is refused as
// credential-unavailable and Asana is never called.
func TestRevokedConnection(t *testing.T) {
	e := setup(t, nil)
	task := e.fake.AddTask(asanafake.Task{Name: "T", Workspace: e.workspace})
	vault := connectortest.RevokedConnection(t, asana.ID)
	h := connectortest.Start(t, e.c, connectortest.Options{Credentials: vault})
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"the owner's write: the grant was revoked", `{"targetSystem":"asana","operation":"create_task","payload":{"name":"N","workspace":"` + e.workspace + `"}}`, credentials.ErrReauthorize},
		{"the owner's batch again: no second refresh", `{"targetSystem":"asana","operation":"batch","payload":{"actions":[{"relative_path":"/tasks/` + task + `","method":"get"}]}}`, credentials.ErrReauthorize},
		{"a service read: the relay's client was revoked", `{"targetSystem":"asana","operation":"get_task","payload":{"task_gid":"` + task + `"}}`, connectors.ErrNoCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			status, b, out := h.DispatchJSON(t, tc.body)
			assertNoSecret(t, "the response", string(b))
			if status != 503 || out["type"] != dispatch.ProblemCredentialUnavailable {
				t.Errorf("got %d %v, want 503 credential-unavailable", status, out["type"])
			}
			if got := len(e.fake.Requests()) - before; got != 0 {
				t.Errorf("Asana got %d requests, want 0", got)
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
