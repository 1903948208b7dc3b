package quip_test

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/connectors/quip"
	"github.com/mcc-bridge/bridge/connectors/quip/quipfake"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// token is the API token of the tests; tokenPart is a piece of it that
// must never show in an error or a log line.
const (
	token     = "Zq9quipTokenValue0123456789abcdef="
	tokenPart = "Zq9quip"
)

// now is the tests' clock, shared by the fake and the connector.
var now = time.Date(2026, 12, 4, 10, 0, 20, 0, time.UTC)

// logBuffer collects log output (and passes it to t.Log).
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	fake *quipfake.Server
	conn *quip.Connector
	logs *logBuffer
}

func setup(t *testing.T) *env {
	t.Helper()
	fake := quipfake.New(token)
	t.Cleanup(fake.Close)
	fake.SetClock(func() time.Time { return now })
	fake.AddThread(quipfake.Thread{ID: "AVN9AAeqq5w", Secret: "Os2mAY8uPVaQ", Title: "Launch plan", Type: "document", HTML: "<h1>Plan</h1>",
		AuthorID: "VLP9EAwREEs", Created: now.Add(-time.Hour), Updated: now, UserIDs: []string{"VLP9EAwREEs"}, FolderIDs: []string{"FOLDERaaaa1"}})
	logs := &logBuffer{t: t}
	c, err := quip.New(quip.Config{BaseURL: fake.URL(), Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, conn: c, logs: logs}
}

func (e *env) exec(ctx context.Context, op, payload, tok string) (connectors.Result, error) {
	return e.conn.Execute(ctx, op, connectors.ExecContext{
		Tenant: "acme", User: connectors.User{ID: "sarah"}, Payload: json.RawMessage(payload),
		Credential: connectors.Credential{Method: "oauth2", Token: connectors.Secret(tok), Subject: "owner@acme.example"},
	})
}

type threadOut struct {
	ID              string   `json:"id"`
	Title           string   `json:"title"`
	Link            string   `json:"link"`
	Type            string   `json:"type"`
	AuthorID        string   `json:"author_id"`
	CreatedUsec     int64    `json:"created_usec"`
	UserIDs         []string `json:"user_ids"`
	SharedFolderIDs []string `json:"shared_folder_ids"`
	HTML            *string  `json:"html"`
}

func TestGetThread(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct {
		name, payload string
		wantHTML      bool
	}{
		{"by id", `{"id":"AVN9AAeqq5w"}`, true},
		{"by link suffix", `{"id":"Os2mAY8uPVaQ"}`, true},
		{"without html", `{"id":"AVN9AAeqq5w","include_html":false}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.exec(t.Context(), "get_thread", tc.payload, token)
			if err != nil {
				t.Fatal(err)
			}
			var out threadOut
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if out.ID != "AVN9AAeqq5w" || out.Title != "Launch plan" || out.Type != "document" || out.AuthorID != "VLP9EAwREEs" ||
				out.CreatedUsec != now.Add(-time.Hour).UnixMicro() || len(out.SharedFolderIDs) != 1 || !strings.HasSuffix(out.Link, "/Os2mAY8uPVaQ") {
				t.Errorf("got %s", res.Data)
			}
			if (out.HTML != nil) != tc.wantHTML || (tc.wantHTML && *out.HTML != "<h1>Plan</h1>") {
				t.Errorf("html %v, want it: %v", out.HTML, tc.wantHTML)
			}
			if len(res.IDs) != 1 || res.IDs[0] != "AVN9AAeqq5w" {
				t.Errorf("ids %v", res.IDs)
			}
			reqs := e.fake.Requests()
			if r := reqs[len(reqs)-1]; r.Method != http.MethodGet || !strings.HasPrefix(r.Path, "/1/threads/") || r.Authorization != "Bearer "+token {
				t.Errorf("request %s %s (bearer ok %v)", r.Method, r.Path, r.Authorization == "Bearer "+token)
			}
		})
	}
}

func TestCreateDocument(t *testing.T) {
	e := setup(t)
	for _, tc := range []struct {
		name, payload string
		wantForm      map[string]string
	}{
		{"html, defaults", `{"content":"<p>Hello</p>"}`, map[string]string{"content": "<p>Hello</p>", "format": "html", "title": "", "type": "", "member_ids": ""}},
		{"markdown in folders", `{"content":"# Notes","title":"Weekly notes","format":"markdown","type":"document","member_ids":["FOLDERaaaa1","USERbbbbbb2"]}`,
			map[string]string{"content": "# Notes", "format": "markdown", "title": "Weekly notes", "type": "document", "member_ids": "FOLDERaaaa1,USERbbbbbb2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.exec(t.Context(), "create_document", tc.payload, token)
			if err != nil {
				t.Fatal(err)
			}
			var out threadOut
			json.Unmarshal(res.Data, &out)
			if _, ok := e.fake.Thread(out.ID); !ok || out.HTML != nil || len(res.IDs) != 1 || res.IDs[0] != out.ID {
				t.Errorf("got %s (ids %v), want the new thread without html", res.Data, res.IDs)
			}
			reqs := e.fake.Requests()
			r := reqs[len(reqs)-1]
			if r.Method != http.MethodPost || r.Path != "/1/threads/new-document" || r.ContentType != "application/x-www-form-urlencoded" || r.Authorization != "Bearer "+token {
				t.Errorf("request %s %s %s", r.Method, r.Path, r.ContentType)
			}
			for k, v := range tc.wantForm {
				if got := r.Form.Get(k); got != v {
					t.Errorf("form %s: got %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	get := `{"id":"AVN9AAeqq5w"}`
	create := `{"content":"<p>x</p>"}`
	for _, tc := range []struct {
		name      string
		op, body  string
		tok       string
		timeout   time.Duration
		prepare   func(t *testing.T, e *env)
		want      connectors.Class
		wantRetry time.Duration
	}{
		{name: "429 with the user's reset", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 429, UserReset: now.Add(30 * time.Second)})
		}, want: connectors.ClassRateLimited, wantRetry: 30 * time.Second},
		{name: "429 with Retry-After", op: "create_document", body: create, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 429, RetryAfter: "9", UserReset: now.Add(30 * time.Second)})
		}, want: connectors.ClassRateLimited, wantRetry: 9 * time.Second},
		{name: "429 with an HTTP-date Retry-After", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 429, RetryAfter: now.Add(45 * time.Second).Format(http.TimeFormat)})
		}, want: connectors.ClassRateLimited, wantRetry: 45 * time.Second},
		{name: "503 over the company limit", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 503, Error: "Over Rate Limit", CompanyReset: now.Add(50 * time.Second)})
		}, want: connectors.ClassRateLimited, wantRetry: 50 * time.Second},
		{name: "503 over both limits: the later reset", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 503, UserReset: now.Add(20 * time.Second), CompanyReset: now.Add(40 * time.Second)})
		}, want: connectors.ClassRateLimited, wantRetry: 40 * time.Second},
		{name: "503 from the fake's own budget", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) {
			e.fake.SetLimits(2, 600)
			for range 2 {
				if _, err := e.exec(t.Context(), "get_thread", get, token); err != nil {
					t.Fatal(err)
				}
			}
		}, want: connectors.ClassRateLimited, wantRetry: 40 * time.Second}, // the minute ends at :01:00, now is :00:20
		{name: "503 without a spent bucket", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 503})
		}, want: connectors.ClassUnavailable},
		{name: "500", op: "create_document", body: create, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 500})
		}, want: connectors.ClassUnavailable},
		{name: "expired token", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) {
			e.fake.SetToken(token, quipfake.Expired)
		}, want: connectors.ClassUnauthorized},
		{name: "revoked token", op: "create_document", body: create, prepare: func(t *testing.T, e *env) {
			e.fake.SetToken(token, quipfake.Revoked)
		}, want: connectors.ClassUnauthorized},
		{name: "no token", op: "get_thread", body: get, tok: "-", want: connectors.ClassUnauthorized},
		{name: "unknown thread", op: "get_thread", body: `{"id":"XXXXXXXXXXX"}`, want: connectors.ClassNotFound},
		{name: "400 echoing the token", op: "create_document", body: create, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Status: 400, Description: "bad token " + token + " in request"})
		}, want: connectors.ClassInvalid},
		{name: "slow answer", op: "get_thread", body: get, timeout: 50 * time.Millisecond, prepare: func(t *testing.T, e *env) {
			e.fake.Inject(quipfake.Fault{Delay: 5 * time.Second})
		}, want: connectors.ClassTimeout},
		{name: "Quip unreachable", op: "get_thread", body: get, prepare: func(t *testing.T, e *env) { e.fake.Close() }, want: connectors.ClassUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			if tc.prepare != nil {
				tc.prepare(t, e)
			}
			tok := token
			if tc.tok == "-" {
				tok = ""
			}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := e.exec(ctx, tc.op, tc.body, tok)
			var ce *connectors.Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *connectors.Error of class %s", err, tc.want)
			}
			if ce.Class != tc.want || ce.RetryAfter != tc.wantRetry {
				t.Errorf("got %s (retry after %v): %v; want %s (retry after %v)", ce.Class, ce.RetryAfter, err, tc.want, tc.wantRetry)
			}
			for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err), ce.Detail, e.logs.String()} {
				if strings.Contains(s, tokenPart) {
					t.Errorf("the token shows in %q", s)
				}
			}
		})
	}
}

func TestHealthCheck(t *testing.T) {
	e := setup(t)
	if err := e.conn.HealthCheck(t.Context(), "acme"); err != nil {
		t.Errorf("reachable Quip: %v", err)
	}
	if r := e.fake.Requests(); len(r) != 1 || r[0].Path != "/1/users/current" || r[0].Authorization != "" {
		t.Errorf("health requests %+v, want one GET /1/users/current without a token", r)
	}
	e.fake.Inject(quipfake.Fault{Status: 502})
	if err := e.conn.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("Quip failing: got %v, want unavailable", err)
	}
	e.fake.Close()
	if err := e.conn.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("Quip unreachable: got %v, want unavailable", err)
	}
}

// --- Through a real dispatcher. ---

type allowAll struct{}

func (allowAll) Decide(context.Context, policy.Request) policy.Decision {
	return policy.Decision{Allow: true, Policies: []string{"allow-all"}, Reason: "allowed by policy allow-all"}
}

type oneCaller struct{}

func (oneCaller) Authenticate(_ context.Context, r *http.Request) (callerauth.Caller, error) {
	if r.Header.Get("Authorization") != "Bearer caller" {
		return callerauth.Caller{}, &callerauth.Error{Kind: callerauth.KindMissing, Detail: "no bearer token"}
	}
	return callerauth.Caller{UserID: "sarah", Email: "sarah@acme.example", Tenant: "acme", Roles: []string{"user"}, AuthMethod: "oidc"}, nil
}

// creds hands out the token and records the patterns asked for.
type creds struct {
	mu       sync.Mutex
	patterns map[connectors.AuthPattern]int
}

func (c *creds) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.patterns[req.Pattern]++
	return connectors.Credential{Pattern: req.Pattern, Method: "oauth2", Token: token, Subject: "owner@acme.example"}, nil
}

func TestThroughDispatcher(t *testing.T) {
	e := setup(t)
	lg, err := audit.Open(t.Context(), t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	cr := &creds{patterns: map[connectors.AuthPattern]int{}}
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{e.conn}, Auth: oneCaller{}, Policy: allowAll{}, Audit: lg, Credentials: cr,
		Retry: dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	call := func(body string) (int, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/dispatch", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer caller")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// Two 5xx answers are retried by the dispatcher; the third attempt succeeds.
	e.fake.Inject(quipfake.Fault{Path: "/1/threads/*", Status: 502, Times: 2})
	status, body := call(`{"targetSystem":"quip","operation":"get_thread","payload":{"id":"AVN9AAeqq5w"}}`)
	var resp dispatch.Response
	json.Unmarshal(body, &resp)
	if status != http.StatusOK || resp.Meta.Attempts != 3 || !strings.Contains(string(resp.Result), `"title":"Launch plan"`) || resp.Meta.AuthPattern != "s2s" {
		t.Errorf("get through the dispatcher: %d %s; want 200 after 3 attempts with the s2s pattern", status, body)
	}

	// A write with the integration owner's credential.
	status, body = call(`{"targetSystem":"quip","operation":"create_document","payload":{"content":"<p>hi</p>","title":"Hi"}}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"authPattern":"integration-owner"`) {
		t.Errorf("create through the dispatcher: %d %s", status, body)
	}
	if cr.patterns[connectors.ServiceToService] != 1 || cr.patterns[connectors.IntegrationOwner] != 1 {
		t.Errorf("credential patterns asked %v, want one s2s and one integration-owner", cr.patterns)
	}

	// Bad payloads never reach Quip.
	before := len(e.fake.Requests())
	for _, tc := range []struct{ name, op, payload, pointer string }{
		{"id too short", "get_thread", `{"id":"abc"}`, "/id"},
		{"id with a slash", "get_thread", `{"id":"../users/xy"}`, "/id"},
		{"missing content", "create_document", `{"title":"x"}`, ""},
		{"bad format", "create_document", `{"content":"x","format":"pdf"}`, "/format"},
		{"unknown field", "create_document", `{"content":"x","company_id":"1"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(`{"targetSystem":"quip","operation":"` + tc.op + `","payload":` + tc.payload + `}`)
			var p dispatch.Problem
			json.Unmarshal(body, &p)
			if status != http.StatusBadRequest || p.Type != dispatch.ProblemInvalidPayload || (tc.pointer != "" && p.Pointer != tc.pointer) {
				t.Errorf("got %d %s (pointer %q), want 400 %s (pointer %q)", status, p.Type, p.Pointer, dispatch.ProblemInvalidPayload, tc.pointer)
			}
		})
	}
	if after := len(e.fake.Requests()); after != before {
		t.Errorf("Quip got %d requests for refused payloads", after-before)
	}

	// A 429 with a short Retry-After is waited for, Quip's refusals are not
	// retried, and an expired token asks for the owner to reconnect.
	for _, tc := range []struct {
		name, op, payload string
		prepare           func()
		wantStatus        int
		wantType          string // for failures
		wantAttempts      int    // for successes
		wantWait          time.Duration
		wantRequests      int // to Quip
	}{
		{name: "429 with a short Retry-After is waited for, then success", op: "get_thread", payload: `{"id":"AVN9AAeqq5w"}`,
			prepare:    func() { e.fake.Inject(quipfake.Fault{Path: "/1/threads/*", Status: 429, RetryAfter: "1"}) },
			wantStatus: http.StatusOK, wantAttempts: 2, wantWait: time.Second, wantRequests: 2},
		{name: "Quip refuses the document: not retried", op: "create_document", payload: `{"content":"<p>x</p>","member_ids":["NOSUCHfoldr"]}`,
			prepare: func() {
				e.fake.Inject(quipfake.Fault{Path: "/1/threads/new-document", Status: 400, Error: "Bad Request", Description: "Invalid member_ids"})
			},
			wantStatus: http.StatusUnprocessableEntity, wantType: dispatch.ProblemUpstreamInvalid, wantRequests: 1},
		{name: "expired token: the owner must reconnect", op: "create_document", payload: `{"content":"<p>late</p>"}`,
			prepare:    func() { e.fake.SetToken(token, quipfake.Expired) },
			wantStatus: http.StatusServiceUnavailable, wantType: dispatch.ProblemCredentialUnavailable, wantRequests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.prepare()
			before := len(e.fake.Requests())
			start := time.Now()
			status, body := call(`{"targetSystem":"quip","operation":"` + tc.op + `","payload":` + tc.payload + `}`)
			if status != tc.wantStatus || strings.Contains(string(body), tokenPart) {
				t.Fatalf("got %d %s, want %d", status, body, tc.wantStatus)
			}
			if tc.wantType != "" {
				var p dispatch.Problem
				json.Unmarshal(body, &p)
				if p.Type != tc.wantType {
					t.Errorf("got %s, want %s", p.Type, tc.wantType)
				}
			} else {
				var r dispatch.Response
				json.Unmarshal(body, &r)
				if r.Meta.Attempts != tc.wantAttempts || time.Since(start) < tc.wantWait {
					t.Errorf("got %d attempts after %v, want %d after at least %v", r.Meta.Attempts, time.Since(start), tc.wantAttempts, tc.wantWait)
				}
			}
			if got := len(e.fake.Requests()) - before; got != tc.wantRequests {
				t.Errorf("Quip got %d requests, want %d", got, tc.wantRequests)
			}
		})
	}
	e.fake.SetToken(token, quipfake.Valid)

	// A rate limit reaches the caller as 429 with Retry-After; the dispatcher waits only within the deadline.
	e.fake.Inject(quipfake.Fault{Status: 503, UserReset: now.Add(time.Hour), Times: 5})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/dispatch",
		strings.NewReader(`{"targetSystem":"quip","operation":"get_thread","payload":{"id":"AVN9AAeqq5w"}}`))
	req.Header.Set("Authorization", "Bearer caller")
	r, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "3600" {
		t.Errorf("rate limited through the dispatcher: %d, Retry-After %q; want 429, 3600", r.StatusCode, r.Header.Get("Retry-After"))
	}
}

// TestRevokedConnection: when the credential manager finds the tenant's
// connection revoked, the dispatch is refused as credential-unavailable
// and Quip is never called.
func TestRevokedConnection(t *testing.T) {
	e := setup(t)
	vault := connectortest.RevokedConnection(t, quip.ID)
	h := connectortest.Start(t, e.conn, connectortest.Options{Credentials: vault})
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"the owner's write: the grant was revoked", `{"targetSystem":"quip","operation":"create_document","payload":{"content":"<p>x</p>"}}`, credentials.ErrReauthorize},
		{"the owner's write again: no second refresh", `{"targetSystem":"quip","operation":"create_document","payload":{"content":"<p>y</p>"}}`, credentials.ErrReauthorize},
		{"a service read: the relay's client was revoked", `{"targetSystem":"quip","operation":"get_thread","payload":{"id":"AVN9AAeqq5w"}}`, connectors.ErrNoCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			status, b, out := h.DispatchJSON(t, tc.body)
			if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable || strings.Contains(string(b), tokenPart) {
				t.Errorf("got %d %s, want 503 credential-unavailable", status, b)
			}
			if got := len(e.fake.Requests()) - before; got != 0 {
				t.Errorf("Quip got %d requests, want 0", got)
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
