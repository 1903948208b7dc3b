package workfront_test

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
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/connectors/workfront"
	"github.com/mcc-bridge/bridge/connectors/workfront/workfrontfake"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// The secrets: no part of them may appear in an error, a log line or a
// response to the caller.
const (
	oauthToken = "Zq9wfOAuthTok-7c1e5f0d2b8a4e69"
	apiKey     = "Zq9wfApiKey-3b7d91aa0c5e4f12"
)

var sarah = connectors.User{ID: "sarah", Email: "sarah@acme.example", Roles: []string{"marketing"}}

func oauthCred() connectors.Credential {
	return connectors.Credential{Pattern: connectors.IntegrationOwner, Method: "oauth2", Token: oauthToken, Subject: "owner@acme.example"}
}

func keyCred() connectors.Credential {
	return connectors.Credential{Pattern: connectors.ServiceToService, Method: "api-key", Token: apiKey, Subject: "api-user@acme.example"}
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
	fake *workfrontfake.Server
	c    *workfront.Connector
	logs *logSink
}

func setup(t *testing.T, edit func(*workfront.Config)) *env {
	t.Helper()
	fake := workfrontfake.New(0)
	t.Cleanup(fake.Close)
	fake.AddToken(oauthToken)
	fake.AddAPIKey(apiKey)
	logs := &logSink{t: t}
	cfg := workfront.Config{BaseURL: fake.URL, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if edit != nil {
		edit(&cfg)
	}
	c, err := workfront.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fake: fake, c: c, logs: logs}
	t.Cleanup(func() { assertNoSecret(t, "the connector's log", logs.String()) })
	return e
}

func (e *env) exec(ctx context.Context, op string, payload any, cred connectors.Credential) (connectors.Result, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return e.c.Execute(ctx, op, connectors.ExecContext{User: sarah, Tenant: "acme", TraceID: "trace-1", Payload: p, Credential: cred, Attempt: 1})
}

// assertNoSecret fails when s holds a secret or an 8-byte run of one.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{oauthToken, apiKey} {
		for i := 0; i+8 <= len(secret); i++ {
			if strings.Contains(s, secret[i:i+8]) {
				t.Errorf("%s holds part of a secret (%q): %s", what, secret[i:i+8], s)
				return
			}
		}
	}
}

func seedProject(f *workfrontfake.Server, name, campaign string) string {
	return f.AddProject(workfrontfake.Object{
		"name": name, "status": "CUR", "percentComplete": 40.0, "description": "the " + name + " project",
		"plannedStartDate": "2026-03-01T09:00:00:000-0600", "DE:MCC_Campaign_ID": campaign,
	})
}

func TestOperations(t *testing.T) {
	e := setup(t, nil)
	existing := seedProject(e.fake, "Spring launch", "CMP-1")
	seedProject(e.fake, "Autumn launch", "CMP-2")
	seedProject(e.fake, "Budget review", "CMP-3")
	taskID := e.fake.AddTask(workfrontfake.Object{"name": "Draft brief", "projectID": existing})

	tests := []struct {
		name    string
		op      string
		payload any
		cred    connectors.Credential
		check   func(t *testing.T, data map[string]any, ids []string, req workfrontfake.Request)
	}{
		{
			name: "create_project", op: "create_project", cred: oauthCred(),
			payload: map[string]any{"name": "Summer campaign", "campaign_id": "CMP-42", "description": "beach", "planned_start_date": "2026-06-01"},
			check: func(t *testing.T, data map[string]any, ids []string, req workfrontfake.Request) {
				p := data["project"].(map[string]any)
				if p["name"] != "Summer campaign" || p["campaign_id"] != "CMP-42" || p["status"] != "PLN" || p["planned_start_date"] != "2026-06-01T00:00:00Z" {
					t.Errorf("project %v", p)
				}
				if len(ids) != 1 || ids[0] != "PROJ:"+p["id"].(string) {
					t.Errorf("ids %v, want the new project's", ids)
				}
				stored, ok := e.fake.Project(p["id"].(string))
				if !ok || stored["DE:MCC_Campaign_ID"] != "CMP-42" {
					t.Errorf("stored project %v: want DE:MCC_Campaign_ID CMP-42", stored)
				}
				if req.Method != http.MethodPost || req.Path != workfrontfake.APIPath+"/proj" {
					t.Errorf("request %s %s, want POST .../proj", req.Method, req.Path)
				}
				uc, err := url.ParseQuery(req.Header.Get(workfront.UserContextHeader))
				if err != nil || uc.Get("id") != "sarah" || uc.Get("email") != "sarah@acme.example" {
					t.Errorf("user context %q, want sarah's id and email", req.Header.Get(workfront.UserContextHeader))
				}
				if req.Header.Get("sessionID") != oauthToken || req.Header.Get("apiKey") != "" {
					t.Errorf("auth headers: want the OAuth token in sessionID only")
				}
			},
		},
		{
			name: "get_project", op: "get_project", cred: keyCred(),
			payload: map[string]any{"project_id": existing},
			check: func(t *testing.T, data map[string]any, ids []string, req workfrontfake.Request) {
				p := data["project"].(map[string]any)
				if p["id"] != existing || p["name"] != "Spring launch" || p["campaign_id"] != "CMP-1" || p["percent_complete"] != 40.0 ||
					p["planned_start_date"] != "2026-03-01T09:00:00-06:00" || p["description"] != "the Spring launch project" {
					t.Errorf("project %v", p)
				}
				if len(ids) != 1 || ids[0] != "PROJ:"+existing {
					t.Errorf("ids %v", ids)
				}
				if !strings.Contains(req.Query.Get("fields"), "DE:MCC_Campaign_ID") {
					t.Errorf("fields %q: want the campaign field", req.Query.Get("fields"))
				}
			},
		},
		{
			name: "search_projects", op: "search_projects", cred: keyCred(),
			payload: map[string]any{"name_contains": "LAUNCH", "status": "CUR", "updated_since": "2020-01-01T00:00:00Z"},
			check: func(t *testing.T, data map[string]any, ids []string, req workfrontfake.Request) {
				ps := data["projects"].([]any)
				if data["count"] != 2.0 || len(ps) != 2 || data["truncated"] != false {
					t.Fatalf("search result %v: want the two launches", data)
				}
				for _, p := range ps {
					if !strings.Contains(p.(map[string]any)["name"].(string), "launch") {
						t.Errorf("project %v does not match", p)
					}
				}
				if len(ids) != 2 {
					t.Errorf("ids %v", ids)
				}
				if req.Header.Get("apiKey") != apiKey || req.Header.Get("sessionID") != "" || req.Query.Get("apiKey") != "" {
					t.Errorf("auth: want the API key in the apiKey header only, never in the URL")
				}
				if req.Query.Get("name_Mod") != "cicontains" || req.Query.Get("lastUpdateDate_Mod") != "gte" || req.Query.Get("$$FIRST") != "0" {
					t.Errorf("query %v", req.Query)
				}
			},
		},
		{
			name: "update_task", op: "update_task", cred: oauthCred(),
			payload: map[string]any{"task_id": taskID, "status": "INP", "percent_complete": 25, "description": "started"},
			check: func(t *testing.T, data map[string]any, ids []string, req workfrontfake.Request) {
				tk := data["task"].(map[string]any)
				if tk["id"] != taskID || tk["status"] != "INP" || tk["percent_complete"] != 25.0 || tk["project_id"] != existing || tk["description"] != "started" {
					t.Errorf("task %v", tk)
				}
				stored, _ := e.fake.Task(taskID)
				if stored["status"] != "INP" || stored["percentComplete"] != 25.0 {
					t.Errorf("stored task %v", stored)
				}
				if req.Method != http.MethodPut || req.Path != workfrontfake.APIPath+"/task/"+taskID || req.Header.Get(workfront.UserContextHeader) == "" {
					t.Errorf("request %s %s with user context %q", req.Method, req.Path, req.Header.Get(workfront.UserContextHeader))
				}
				if len(ids) != 1 || ids[0] != "TASK:"+taskID {
					t.Errorf("ids %v", ids)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			res, err := e.exec(t.Context(), tc.op, tc.payload, tc.cred)
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

func TestBearerHeader(t *testing.T) {
	e := setup(t, func(c *workfront.Config) { c.OAuthHeader = workfront.OAuthBearer })
	id := seedProject(e.fake, "P", "C")
	if _, err := e.exec(t.Context(), "get_project", map[string]any{"project_id": id}, oauthCred()); err != nil {
		t.Fatal(err)
	}
	req := e.fake.Requests()[0]
	if req.Header.Get("Authorization") != "Bearer "+oauthToken || req.Header.Get("sessionID") != "" {
		t.Errorf("got a bearer Authorization header %v and sessionID set %v, want the bearer header only",
			strings.HasPrefix(req.Header.Get("Authorization"), "Bearer "), req.Header.Get("sessionID") != "")
	}
}

func TestSearchPagination(t *testing.T) {
	e := setup(t, func(c *workfront.Config) { c.PageSize = 3 })
	for i := range 7 {
		seedProject(e.fake, fmt.Sprintf("Project %d", i), fmt.Sprintf("CMP-%d", i))
	}
	tests := []struct {
		name          string
		limit         int
		wantCount     int
		wantTruncated bool
		wantPages     []string // $$FIRST/$$LIMIT of each request
	}{
		{"all of them", 100, 7, false, []string{"0/3", "3/3", "6/3"}},
		{"exactly all", 7, 7, false, []string{"0/3", "3/3", "6/2"}},
		{"cut at the limit", 5, 5, true, []string{"0/3", "3/3"}},
		{"one", 1, 1, true, []string{"0/2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			res, err := e.exec(t.Context(), "search_projects", map[string]any{"limit": tc.limit}, keyCred())
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Projects []struct {
					ID, Name string
				}
				Count     int
				Truncated bool
			}
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if out.Count != tc.wantCount || len(out.Projects) != tc.wantCount || out.Truncated != tc.wantTruncated || len(res.IDs) != tc.wantCount {
				t.Errorf("got count %d (%d projects, %d ids), truncated %v; want %d, %v", out.Count, len(out.Projects), len(res.IDs), out.Truncated, tc.wantCount, tc.wantTruncated)
			}
			seen := map[string]bool{}
			for _, p := range out.Projects {
				if seen[p.ID] {
					t.Errorf("project %s twice", p.ID)
				}
				seen[p.ID] = true
			}
			var pages []string
			for _, r := range e.fake.Requests()[before:] {
				pages = append(pages, r.Query.Get("$$FIRST")+"/"+r.Query.Get("$$LIMIT"))
			}
			if fmt.Sprint(pages) != fmt.Sprint(tc.wantPages) {
				t.Errorf("got pages %v, want %v", pages, tc.wantPages)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	later := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		setup  func(e *env)
		op     string
		cred   connectors.Credential
		short  bool // run with a 100ms deadline
		want   connectors.Class
		wantRA time.Duration // RetryAfter, to the second
	}{
		{name: "429 with Retry-After seconds", op: "get_project", cred: keyCred(), want: connectors.ClassRateLimited, wantRA: 7 * time.Second,
			setup: func(e *env) { e.fake.Inject(workfrontfake.Fault{Status: 429, RetryAfter: "7"}) }},
		{name: "429 with Retry-After date", op: "get_project", cred: keyCred(), want: connectors.ClassRateLimited, wantRA: 90 * time.Second,
			setup: func(e *env) { e.fake.Inject(workfrontfake.Fault{Status: 429, RetryAfter: later}) }},
		{name: "500", op: "get_project", cred: keyCred(), want: connectors.ClassUnavailable,
			setup: func(e *env) { e.fake.Inject(workfrontfake.Fault{Status: 500}) }},
		{name: "503 on a write", op: "create_project", cred: oauthCred(), want: connectors.ClassUnavailable,
			setup: func(e *env) { e.fake.Inject(workfrontfake.Fault{Status: 503}) }},
		{name: "expired OAuth token", op: "create_project", cred: oauthCred(), want: connectors.ClassUnauthorized,
			setup: func(e *env) { e.fake.ExpireToken(oauthToken) }},
		{name: "revoked OAuth token", op: "update_task", cred: oauthCred(), want: connectors.ClassUnauthorized,
			setup: func(e *env) { e.fake.RevokeToken(oauthToken) }},
		{name: "revoked API key", op: "search_projects", cred: keyCred(), want: connectors.ClassUnauthorized,
			setup: func(e *env) { e.fake.RevokeAPIKey(apiKey) }},
		{name: "attributed write with an API key", op: "create_project", cred: keyCred(), want: connectors.ClassUnauthorized},
		{name: "credential without a token", op: "get_project", cred: connectors.Credential{Pattern: connectors.ServiceToService, Method: "api-key"}, want: connectors.ClassUnauthorized},
		{name: "an error that echoes the token", op: "create_project", cred: oauthCred(), want: connectors.ClassInvalid,
			setup: func(e *env) {
				e.fake.Inject(workfrontfake.Fault{Status: 400, Message: "bad session " + oauthToken[4:20] + " for this request"})
			}},
		{name: "unknown project", op: "get_project", cred: keyCred(), want: connectors.ClassNotFound},
		{name: "invalid task status", op: "update_task", cred: oauthCred(), want: connectors.ClassInvalid},
		{name: "slow answer", op: "get_project", cred: keyCred(), short: true, want: connectors.ClassTimeout,
			setup: func(e *env) { e.fake.Inject(workfrontfake.Fault{Delay: 2 * time.Second}) }},
		{name: "unreachable", op: "get_project", cred: keyCred(), want: connectors.ClassUnavailable,
			setup: func(e *env) { e.fake.Close() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, nil)
			project := seedProject(e.fake, "P", "C")
			task := e.fake.AddTask(workfrontfake.Object{"name": "T", "projectID": project})
			if tc.name == "unknown project" {
				project = strings.Repeat("f", 32)
			}
			if tc.setup != nil {
				tc.setup(e)
			}
			payload := map[string]any{
				"get_project":     map[string]any{"project_id": project},
				"create_project":  map[string]any{"name": "N", "campaign_id": "C"},
				"update_task":     map[string]any{"task_id": task, "status": "NEW"},
				"search_projects": map[string]any{},
			}[tc.op]
			if tc.name == "invalid task status" {
				payload = map[string]any{"task_id": task, "status": "XYZ"}
			}
			ctx := t.Context()
			if tc.short {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
			}
			_, err := e.exec(ctx, tc.op, payload, tc.cred)
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

func TestConcurrencyCapThrottles(t *testing.T) {
	fake := workfrontfake.New(1)
	defer fake.Close()
	fake.AddAPIKey(apiKey)
	id := seedProject(fake, "P", "C")
	c, err := workfront.New(workfront.Config{BaseURL: fake.URL})
	if err != nil {
		t.Fatal(err)
	}
	fake.Inject(workfrontfake.Fault{Delay: time.Second})
	payload, _ := json.Marshal(map[string]any{"project_id": id})
	ec := connectors.ExecContext{User: sarah, Tenant: "acme", Payload: payload, Credential: keyCred()}
	slow := make(chan error, 1)
	go func() { _, err := c.Execute(t.Context(), "get_project", ec); slow <- err }()
	// Wait until the slow request holds the one thread.
	deadline := time.Now().Add(2 * time.Second)
	for len(fake.Requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_, err = c.Execute(t.Context(), "get_project", ec)
	if ce := (*connectors.Error)(nil); !errors.As(err, &ce) || ce.Class != connectors.ClassRateLimited || ce.RetryAfter != time.Second {
		t.Errorf("second concurrent request: got %v, want rate-limited with RetryAfter 1s", err)
	}
	if err := <-slow; err != nil {
		t.Errorf("the slow request: %v", err)
	}
}

func TestHealthCheck(t *testing.T) {
	e := setup(t, nil)
	if err := e.c.HealthCheck(t.Context(), "acme"); err != nil {
		t.Errorf("healthy Workfront (answering 401): got %v", err)
	}
	if got := e.fake.Requests()[0]; got.Header.Get("sessionID") != "" || got.Header.Get("apiKey") != "" {
		t.Errorf("the health check sent a credential")
	}
	e.fake.Inject(workfrontfake.Fault{Status: 503})
	if err := e.c.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("Workfront failing: got %v, want unavailable", err)
	}
	e.fake.Close()
	if err := e.c.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("Workfront unreachable: got %v, want unavailable", err)
	}
	var asked string
	c, err := workfront.New(workfront.Config{BaseURL: "https://acme.my.workfront.com", Health: func(_ context.Context, tenant string) error {
		asked = tenant
		return nil
	}})
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
		cfg  workfront.Config
		ok   bool
	}{
		{"defaults", workfront.Config{BaseURL: "https://acme.my.workfront.com"}, true},
		{"trailing slash", workfront.Config{BaseURL: "https://acme.my.workfront.com/"}, true},
		{"no base URL", workfront.Config{}, false},
		{"a path", workfront.Config{BaseURL: "https://acme.my.workfront.com/attask"}, false},
		{"credentials in the URL", workfront.Config{BaseURL: "https://u:p@acme.my.workfront.com"}, false},
		{"page size too big", workfront.Config{BaseURL: "https://acme.my.workfront.com", PageSize: 2001}, false},
		{"campaign field not custom", workfront.Config{BaseURL: "https://acme.my.workfront.com", CampaignField: "name"}, false},
		{"unknown OAuth header", workfront.Config{BaseURL: "https://acme.my.workfront.com", OAuthHeader: "cookie"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := workfront.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestOperationsDeclared(t *testing.T) {
	c, err := workfront.New(workfront.Config{BaseURL: "https://acme.my.workfront.com"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		access     connectors.Access
		attributed bool
		auth       connectors.AuthPattern
	}{
		"create_project":  {connectors.Write, true, connectors.IntegrationOwner},
		"get_project":     {connectors.Read, false, connectors.ServiceToService},
		"search_projects": {connectors.Read, false, connectors.ServiceToService},
		"update_task":     {connectors.Write, true, connectors.IntegrationOwner},
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
	if c.ID() != "workfront" {
		t.Errorf("got id %q", c.ID())
	}
}

// Dispatcher plumbing: a fixed caller, a permissive policy, and the
// credentials by pattern.

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

type credsByPattern map[connectors.AuthPattern]connectors.Credential

func (c credsByPattern) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	if cr, ok := c[req.Pattern]; ok && req.System == workfront.ID && req.Tenant == "acme" {
		return cr, nil
	}
	return connectors.Credential{}, connectors.ErrNoCredential
}

func newDispatcher(t *testing.T, c connectors.Connector) *httptest.Server {
	t.Helper()
	lg, err := audit.Open(t.Context(), t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{c}, Auth: oneCaller{}, Policy: allowAll{}, Audit: lg,
		Credentials: credsByPattern{connectors.IntegrationOwner: oauthCred(), connectors.ServiceToService: keyCred()},
		Retry:       dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond},
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
	id := seedProject(e.fake, "Spring launch", "CMP-1")

	t.Run("5xx retried, then success", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.Inject(workfrontfake.Fault{Status: 503, Times: 2})
		status, out := post(t, srv, `{"targetSystem":"workfront","operation":"get_project","payload":{"project_id":"`+id+`"}}`)
		if status != 200 {
			t.Fatalf("got status %d (%v), want 200", status, out)
		}
		meta := out["meta"].(map[string]any)
		if meta["attempts"] != 3.0 || meta["authPattern"] != "s2s" {
			t.Errorf("meta %v: want 3 attempts with s2s", meta)
		}
		if got := len(e.fake.Requests()) - before; got != 3 {
			t.Errorf("Workfront got %d requests, want 3", got)
		}
		if p := out["result"].(map[string]any)["project"].(map[string]any); p["id"] != id {
			t.Errorf("result %v", p)
		}
	})
	t.Run("bad payload refused by the schema", func(t *testing.T) {
		before := len(e.fake.Requests())
		for _, body := range []string{
			`{"targetSystem":"workfront","operation":"get_project","payload":{"project_id":"not-an-id"}}`,
			`{"targetSystem":"workfront","operation":"create_project","payload":{"name":"No campaign"}}`,
			`{"targetSystem":"workfront","operation":"search_projects","payload":{"limit":100000}}`,
			`{"targetSystem":"workfront","operation":"update_task","payload":{"task_id":"` + id + `","sessionID":"x"}}`,
		} {
			status, out := post(t, srv, body)
			if status != 400 || out["type"] != dispatch.ProblemInvalidPayload {
				t.Errorf("%s: got %d %v, want 400 invalid-payload", body, status, out["type"])
			}
		}
		if got := len(e.fake.Requests()) - before; got != 0 {
			t.Errorf("Workfront got %d requests for refused payloads, want 0", got)
		}
	})
	t.Run("attributed write as the integration owner", func(t *testing.T) {
		status, out := post(t, srv, `{"targetSystem":"workfront","operation":"create_project","payload":{"name":"Via dispatch","campaign_id":"CMP-9"}}`)
		if status != 200 || out["meta"].(map[string]any)["authPattern"] != "integration-owner" {
			t.Fatalf("got %d %v", status, out)
		}
		reqs := e.fake.Requests()
		if last := reqs[len(reqs)-1]; last.Header.Get("sessionID") != oauthToken || !strings.Contains(last.Header.Get(workfront.UserContextHeader), "id=sarah") {
			t.Errorf("the create did not go as the integration owner attributed to sarah")
		}
	})
	t.Run("429 with a short Retry-After is waited for, then success", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.Inject(workfrontfake.Fault{Status: 429, RetryAfter: "1"})
		start := time.Now()
		status, out := post(t, srv, `{"targetSystem":"workfront","operation":"get_project","payload":{"project_id":"`+id+`"}}`)
		if status != 200 || out["meta"].(map[string]any)["attempts"] != 2.0 {
			t.Fatalf("got %d %v, want 200 after 2 attempts", status, out)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("the retry came after %v, want at least the 1s Retry-After", waited)
		}
		if got := len(e.fake.Requests()) - before; got != 2 {
			t.Errorf("Workfront got %d requests, want 2", got)
		}
	})
	t.Run("429 with a Retry-After past the deadline reaches the caller", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.Inject(workfrontfake.Fault{Status: 429, RetryAfter: "120"})
		status, out := post(t, srv, `{"targetSystem":"workfront","operation":"search_projects","payload":{}}`)
		if status != 429 || out["type"] != dispatch.ProblemUpstreamRateLimited || out["retryAfter"] != 120.0 {
			t.Errorf("got %d %v (retryAfter %v), want 429 upstream-rate-limited with retryAfter 120", status, out["type"], out["retryAfter"])
		}
		if got := len(e.fake.Requests()) - before; got != 1 {
			t.Errorf("Workfront got %d requests, want 1 (no retry that cannot finish in time)", got)
		}
	})
	t.Run("Workfront's validation error reaches the caller", func(t *testing.T) {
		task := e.fake.AddTask(workfrontfake.Object{"name": "T", "projectID": id})
		before := len(e.fake.Requests())
		status, out := post(t, srv, `{"targetSystem":"workfront","operation":"update_task","payload":{"task_id":"`+task+`","status":"XYZ"}}`)
		if status != 422 || out["type"] != dispatch.ProblemUpstreamInvalid || !strings.Contains(fmt.Sprint(out["detail"]), "invalid status") {
			t.Errorf("got %d %v %q, want 422 upstream-invalid naming the invalid status", status, out["type"], out["detail"])
		}
		if got := len(e.fake.Requests()) - before; got != 1 {
			t.Errorf("Workfront got %d requests, want 1 (a refused write is not retried)", got)
		}
	})
	t.Run("expired token: the owner must reconnect", func(t *testing.T) {
		before := len(e.fake.Requests())
		e.fake.ExpireToken(oauthToken)
		status, out := post(t, srv, `{"targetSystem":"workfront","operation":"create_project","payload":{"name":"Late","campaign_id":"CMP-10"}}`)
		if status != 503 || out["type"] != dispatch.ProblemCredentialUnavailable {
			t.Errorf("got %d %v, want 503 credential-unavailable", status, out["type"])
		}
		if got := len(e.fake.Requests()) - before; got != 1 {
			t.Errorf("Workfront got %d requests, want 1 (a refused credential is not retried)", got)
		}
	})
}

// TestRevokedConnection: when the credential manager finds the tenant's
// connection revoked, the dispatch is refused as credential-unavailable
// and Workfront is never called.
func TestRevokedConnection(t *testing.T) {
	e := setup(t, nil)
	id := seedProject(e.fake, "P", "C")
	vault := connectortest.RevokedConnection(t, workfront.ID)
	h := connectortest.Start(t, e.c, connectortest.Options{Credentials: vault})
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"the owner's write: the grant was revoked", `{"targetSystem":"workfront","operation":"create_project","payload":{"name":"N","campaign_id":"C"}}`, credentials.ErrReauthorize},
		{"the owner's write again: no second refresh", `{"targetSystem":"workfront","operation":"update_task","payload":{"task_id":"` + id + `","status":"NEW"}}`, credentials.ErrReauthorize},
		{"a service read: the relay's client was revoked", `{"targetSystem":"workfront","operation":"get_project","payload":{"project_id":"` + id + `"}}`, connectors.ErrNoCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			status, b, out := h.DispatchJSON(t, tc.body)
			assertNoSecret(t, "the response", string(b))
			if status != 503 || out["type"] != dispatch.ProblemCredentialUnavailable {
				t.Errorf("got %d %v, want 503 credential-unavailable", status, out["type"])
			}
			if got := len(e.fake.Requests()) - before; got != 0 {
				t.Errorf("Workfront got %d requests, want 0", got)
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
