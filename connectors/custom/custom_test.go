package custom_test

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/connectors/custom"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

const (
	token     = "lp_Zq9launchpadKey_0123456789"
	tokenPart = "Zq9launch"
)

var now = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

// launchpadYAML is a definition as an operator writes it.
const launchpadYAML = `
id: launchpad
name: LaunchPad
base_url: https://launchpad.invalid/api/v1
auth: {method: bearer}
operations:
  - name: get_task
    description: One task of a project.
    access: read
    method: GET
    path: /projects/{project_id}/tasks/{task_id}
    query: [expand]
    result_path: data
    payload:
      type: object
      additionalProperties: false
      required: [project_id, task_id]
      properties:
        project_id: {type: string, minLength: 1, maxLength: 64}
        task_id: {type: integer, minimum: 1}
        expand: {type: array, items: {enum: [owner, labels]}}
    result:
      type: object
      required: [id, title]
  - name: create_task
    description: Creates a task.
    access: write
    attributed: true
    pii: true
    method: post
    path: /projects/{project_id}/tasks
    query: [notify]
    body: json
    result_path: data
    payload: '{"type":"object","additionalProperties":false,"required":["project_id","title"],"properties":{"project_id":{"type":"string"},"title":{"type":"string","minLength":1},"labels":{"type":"array","items":{"type":"string"}},"notify":{"type":"boolean"}}}'
  - name: delete_task
    description: Deletes a task.
    access: write
    method: DELETE
    path: /tasks/{task_id}
    payload:
      type: object
      additionalProperties: false
      required: [task_id]
      properties:
        task_id: {type: string}
  - name: list_tasks
    description: Tasks in a state.
    access: read
    method: GET
    path: /tasks
    query: [state]
    pages: {items_path: data, cursor_path: meta.next_page_token, cursor_param: page_token, limit_param: page_size, page_size: 4, max_items: 50}
    payload:
      type: object
      additionalProperties: false
      properties:
        state: {enum: [open, closed]}
        limit: {type: integer, minimum: 1, maximum: 50}
        cursor: {type: string}
    result:
      type: object
      required: [items, count]
      properties:
        items: {type: array, items: {type: object, required: [id]}}
        count: {type: integer}
        next_cursor: {type: string}
`

// request is what the fake LaunchPad received.
type request struct {
	Method, Path, RawPath, Query string
	Header                       http.Header
	Body                         string
}

// launchpad is a fake REST API: tasks 1..n, bearer token auth, cursor
// pages, and faults injected per request.
type launchpad struct {
	srv *httptest.Server

	mu       sync.Mutex
	tasks    int
	expired  bool
	faults   []func(w http.ResponseWriter) bool // guarded by mu; true when it answered
	requests []request
}

func newLaunchpad(t *testing.T, tasks int) *launchpad {
	lp := &launchpad{tasks: tasks}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/projects/{project}/tasks/{task}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("task"))
		if err != nil || n < 1 || n > lp.tasks {
			writeJSON(w, 404, map[string]any{"error": "no such task"})
			return
		}
		writeJSON(w, 200, map[string]any{"data": map[string]any{"id": n, "title": fmt.Sprintf("task %d", n), "project": r.PathValue("project"),
			"expand": r.URL.Query()["expand"]}})
	})
	mux.HandleFunc("POST /api/v1/projects/{project}/tasks", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["title"] == nil {
			writeJSON(w, 422, map[string]any{"error": "title required"})
			return
		}
		writeJSON(w, 201, map[string]any{"data": map[string]any{"id": "T-100", "title": body["title"], "project": r.PathValue("project")}})
	})
	mux.HandleFunc("DELETE /api/v1/tasks/{task}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	mux.HandleFunc("GET /api/v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("page_size"))
		if size <= 0 {
			size = 10
		}
		start := 0
		if tok := r.URL.Query().Get("page_token"); tok != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(tok, "after-"))
		}
		items := []map[string]any{}
		for i := start + 1; i <= min(start+size, lp.tasks); i++ {
			items = append(items, map[string]any{"id": fmt.Sprintf("T-%d", i), "state": r.URL.Query().Get("state")})
		}
		meta := map[string]any{"next_page_token": nil}
		if start+size < lp.tasks {
			meta["next_page_token"] = fmt.Sprintf("after-%d", start+size)
		}
		writeJSON(w, 200, map[string]any{"data": items, "meta": meta})
	})
	mux.HandleFunc("GET /api/v1/", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]any{"status": "ok"}) })
	lp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		lp.mu.Lock()
		lp.requests = append(lp.requests, request{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(b)})
		var f func(http.ResponseWriter) bool
		if len(lp.faults) > 0 {
			f, lp.faults = lp.faults[0], lp.faults[1:]
		}
		expired := lp.expired
		lp.mu.Unlock()
		if f != nil && f(w) {
			return
		}
		if r.URL.Path != "/api/v1/" && (expired || r.Header.Get("Authorization") != "Bearer "+token) {
			writeJSON(w, 401, map[string]any{"error": "invalid or expired token"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(lp.srv.Close)
	return lp
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fault queues an answer for the next request: status with headers (and
// delay first), or only a delay when status is 0.
func (lp *launchpad) fault(status int, delay time.Duration, hdr ...string) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lp.faults = append(lp.faults, func(w http.ResponseWriter) bool {
		time.Sleep(delay)
		if status == 0 {
			return false
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		writeJSON(w, status, map[string]any{"error": "injected", "echo": "Bearer " + token})
		return true
	})
}

func (lp *launchpad) reqs() []request {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return append([]request(nil), lp.requests...)
}

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
	lp   *launchpad
	conn *custom.Connector
	logs *logBuffer
}

func setup(t *testing.T, tasks int) *env {
	t.Helper()
	lp := newLaunchpad(t, tasks)
	def, err := custom.ParseDefinition([]byte(launchpadYAML))
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{t: t}
	c, err := custom.New(def, custom.Config{BaseURL: lp.srv.URL + "/api/v1", Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return &env{lp: lp, conn: c, logs: logs}
}

func (e *env) exec(ctx context.Context, op, payload string, cred connectors.Credential) (connectors.Result, error) {
	return e.conn.Execute(ctx, op, connectors.ExecContext{Tenant: "acme", User: connectors.User{ID: "sarah"}, Payload: json.RawMessage(payload), Credential: cred})
}

var bearer = connectors.Credential{Method: "bearer", Token: token}

func TestParseDefinitionYAML(t *testing.T) {
	e := setup(t, 3)
	if e.conn.ID() != "launchpad" || e.conn.Name() != "LaunchPad" || e.conn.AuthMethod() != "bearer" {
		t.Errorf("id %q name %q auth %q", e.conn.ID(), e.conn.Name(), e.conn.AuthMethod())
	}
	ops := e.conn.Operations()
	var names []string
	for _, o := range ops {
		names = append(names, o.Name)
	}
	if fmt.Sprint(names) != "[get_task create_task delete_task list_tasks]" {
		t.Fatalf("operations %v", names)
	}
	if ops[0].Access != connectors.Read || ops[1].Access != connectors.Write || !ops[1].Attributed || !ops[1].PII || ops[0].PII {
		t.Errorf("access/attributed/pii not as defined: %+v", ops[:2])
	}
	var schema struct {
		Required   []string `json:"required"`
		Properties map[string]struct {
			Type    string `json:"type"`
			Minimum *int   `json:"minimum"`
		} `json:"properties"`
		AdditionalProperties bool `json:"additionalProperties"`
	}
	if err := json.Unmarshal(ops[0].Payload, &schema); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(schema.Required) != "[project_id task_id]" || schema.Properties["task_id"].Type != "integer" || schema.Properties["task_id"].Minimum == nil || schema.AdditionalProperties {
		t.Errorf("YAML payload schema became %s", ops[0].Payload)
	}
	if !strings.Contains(string(ops[1].Payload), `"notify":{"type":"boolean"}`) {
		t.Errorf("JSON-string payload schema became %s", ops[1].Payload)
	}
	if _, err := custom.ParseDefinition([]byte("id: x\nname: X\nbogus: 1\n")); err == nil {
		t.Error("an unknown field was accepted")
	}
	if _, err := custom.ParseDefinition([]byte("id: x\noperations:\n  - name: a\n    payload: 'not json'\n")); err == nil {
		t.Error("a payload string that is not JSON was accepted")
	}
}

func TestNewValidates(t *testing.T) {
	okPayload := json.RawMessage(`{"type":"object","additionalProperties":false,"required":["id"],"properties":{"id":{"type":"string"},"q":{"type":"string"},"opt":{"type":"string"}}}`)
	base := func() custom.Definition {
		return custom.Definition{ID: "sys", Name: "Sys", BaseURL: "https://sys.invalid/api", Auth: custom.AuthDef{Method: "bearer"},
			Operations: []custom.OpDef{{Name: "get", Access: "read", Method: "GET", Path: "/items/{id}", Query: []string{"q"}, Payload: okPayload}}}
	}
	for _, tc := range []struct {
		name string
		edit func(d *custom.Definition)
		want string // part of the error; "" means valid
	}{
		{"valid", func(d *custom.Definition) {}, ""},
		{"no payload schema, no placeholders", func(d *custom.Definition) {
			d.Operations[0] = custom.OpDef{Name: "ping", Access: "read", Method: "get", Path: "/ping"}
		}, ""},
		{"api key header", func(d *custom.Definition) { d.Auth = custom.AuthDef{Method: "api-key-header", Header: "X-API-Key"} }, ""},
		{"bad id", func(d *custom.Definition) { d.ID = "Sys-1" }, "id"},
		{"id too long", func(d *custom.Definition) { d.ID = "s" + strings.Repeat("x", 64) }, "id"},
		{"no name", func(d *custom.Definition) { d.Name = " " }, "name"},
		{"bad base url", func(d *custom.Definition) { d.BaseURL = "sys.invalid/api" }, "base_url"},
		{"base url with query", func(d *custom.Definition) { d.BaseURL = "https://sys.invalid/?k=v" }, "base_url"},
		{"unknown auth", func(d *custom.Definition) { d.Auth.Method = "ntlm" }, "auth"},
		{"api key without header", func(d *custom.Definition) { d.Auth = custom.AuthDef{Method: "api-key-header"} }, "header"},
		{"api key bad header", func(d *custom.Definition) { d.Auth = custom.AuthDef{Method: "api-key-header", Header: "X Key"} }, "header"},
		{"header with bearer", func(d *custom.Definition) { d.Auth.Header = "X-Key" }, "header"},
		{"no operations", func(d *custom.Definition) { d.Operations = nil }, "no operations"},
		{"bad op name", func(d *custom.Definition) { d.Operations[0].Name = "Get" }, "name"},
		{"duplicate op", func(d *custom.Definition) { d.Operations = append(d.Operations, d.Operations[0]) }, "twice"},
		{"bad access", func(d *custom.Definition) { d.Operations[0].Access = "admin" }, "access"},
		{"bad method", func(d *custom.Definition) { d.Operations[0].Method = "TRACE" }, "method"},
		{"GET with a body", func(d *custom.Definition) { d.Operations[0].Body = "json" }, "GET has no body"},
		{"bad body", func(d *custom.Definition) { d.Operations[0].Method, d.Operations[0].Body = "POST", "xml" }, "body"},
		{"relative path", func(d *custom.Definition) { d.Operations[0].Path = "items/{id}" }, "path"},
		{"path with query", func(d *custom.Definition) { d.Operations[0].Path = "/items/{id}?x=1" }, "path"},
		{"unbalanced braces", func(d *custom.Definition) { d.Operations[0].Path = "/items/{id" }, "unbalanced"},
		{"placeholder not a property", func(d *custom.Definition) { d.Operations[0].Path = "/items/{item}" }, "not a property"},
		{"placeholder not required", func(d *custom.Definition) { d.Operations[0].Path = "/items/{opt}" }, "required"},
		{"placeholder not a name", func(d *custom.Definition) { d.Operations[0].Path = "/items/{a-b}" }, "field name"},
		{"query not a property", func(d *custom.Definition) { d.Operations[0].Query = []string{"zzz"} }, "query field"},
		{"query also in path", func(d *custom.Definition) { d.Operations[0].Query = []string{"id"} }, "twice"},
		{"payload allows more", func(d *custom.Definition) {
			d.Operations[0].Payload = json.RawMessage(`{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}`)
		}, "additionalProperties"},
		{"payload not an object", func(d *custom.Definition) {
			d.Operations[0].Payload = json.RawMessage(`{"type":"string"}`)
		}, "payload schema"},
		{"payload not a schema", func(d *custom.Definition) {
			d.Operations[0].Payload = json.RawMessage(`{"type":"object","additionalProperties":false,"minProperties":"x"}`)
		}, "payload schema"},
		{"result not JSON", func(d *custom.Definition) { d.Operations[0].Result = json.RawMessage(`{`) }, "result schema"},
		{"bad result path", func(d *custom.Definition) { d.Operations[0].ResultPath = "data..x" }, "result_path"},
		{"pages without cursor", func(d *custom.Definition) {
			d.Operations[0].Pages = &custom.Pages{ItemsPath: "data", CursorPath: "next"}
		}, "cursor_param"},
		{"pages with result path", func(d *custom.Definition) {
			d.Operations[0].ResultPath = "data"
			d.Operations[0].Pages = &custom.Pages{ItemsPath: "data", CursorPath: "next", CursorParam: "c"}
		}, "items_path"},
		{"pages param also a query field", func(d *custom.Definition) {
			d.Operations[0].Pages = &custom.Pages{ItemsPath: "data", CursorPath: "next", CursorParam: "q"}
		}, "query field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := base()
			tc.edit(&d)
			_, err := custom.New(d, custom.Config{})
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestOperations(t *testing.T) {
	e := setup(t, 30)
	for _, tc := range []struct {
		name, op, payload string
		wantData          string
		wantIDs           string
		wantReq           request // the fields set are checked
	}{
		{"get with escaped path and array query", "get_task", `{"project_id":"web site/β","task_id":7,"expand":["owner","labels"]}`,
			`{"id":7,"title":"task 7","project":"web site/β","expand":["owner","labels"]}`, "[web site/β 7]",
			request{Method: "GET", RawPath: "/api/v1/projects/web%20site%2F%CE%B2/tasks/7", Query: "expand=owner&expand=labels"}},
		{"post with json body", "create_task", `{"project_id":"p1","title":"Fix login","labels":["bug"],"notify":true}`,
			`{"id":"T-100","title":"Fix login","project":"p1"}`, "[p1 T-100]",
			request{Method: "POST", Path: "/api/v1/projects/p1/tasks", Query: "notify=true", Body: `{"labels":["bug"],"title":"Fix login"}`}},
		{"delete with an empty answer", "delete_task", `{"task_id":"T-9"}`, `{}`, "[T-9]",
			request{Method: "DELETE", Path: "/api/v1/tasks/T-9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.exec(t.Context(), tc.op, tc.payload, bearer)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(res.Data)); !jsonEqual(got, tc.wantData) {
				t.Errorf("data %s, want %s", got, tc.wantData)
			}
			if fmt.Sprint(res.IDs) != tc.wantIDs {
				t.Errorf("ids %v, want %s", res.IDs, tc.wantIDs)
			}
			reqs := e.lp.reqs()
			r := reqs[len(reqs)-1]
			if r.Method != tc.wantReq.Method || (tc.wantReq.Path != "" && r.Path != tc.wantReq.Path) || (tc.wantReq.RawPath != "" && r.RawPath != tc.wantReq.RawPath) ||
				r.Query != tc.wantReq.Query || (tc.wantReq.Body != "" && !jsonEqual(r.Body, tc.wantReq.Body)) {
				t.Errorf("request %s %s (raw %s) ?%s body %s; want %+v", r.Method, r.Path, r.RawPath, r.Query, r.Body, tc.wantReq)
			}
			if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("Accept") != "application/json" {
				t.Errorf("request headers: bearer ok %v, accept %q", r.Header.Get("Authorization") == "Bearer "+token, r.Header.Get("Accept"))
			}
			if (r.Body != "") != (r.Header.Get("Content-Type") == "application/json") {
				t.Errorf("content-type %q with body %q", r.Header.Get("Content-Type"), r.Body)
			}
		})
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func TestAuthMethods(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		writeJSON(w, 200, map[string]any{"ok": true})
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name     string
		auth     custom.AuthDef
		cred     connectors.Credential
		header   string // the header that carries the credential
		want     string // its value; "" means absent
		wantAuth string // AuthMethod
		wantErr  connectors.Class
	}{
		{"bearer", custom.AuthDef{Method: "bearer"}, bearer, "Authorization", "Bearer " + token, "bearer", ""},
		{"api key", custom.AuthDef{Method: "api-key-header", Header: "X-LaunchPad-Key"}, bearer, "X-Launchpad-Key", token, "api-key", ""},
		{"basic with username and password", custom.AuthDef{Method: "basic"},
			connectors.Credential{Values: map[string]connectors.Secret{"username": "svc", "password": "pw-" + token}}, "Authorization", "Basic " + b64("svc:pw-"+token), "basic", ""},
		{"basic with the token as password", custom.AuthDef{Method: "basic"},
			connectors.Credential{Token: token, Values: map[string]connectors.Secret{"username": "svc"}}, "Authorization", "Basic " + b64("svc:"+token), "basic", ""},
		{"none", custom.AuthDef{Method: "none"}, connectors.Credential{}, "Authorization", "", "none", ""},
		{"bearer without a token", custom.AuthDef{Method: "bearer"}, connectors.Credential{}, "", "", "bearer", connectors.ClassUnauthorized},
		{"basic without a username", custom.AuthDef{Method: "basic"}, bearer, "", "", "basic", connectors.ClassUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			c, err := custom.New(custom.Definition{ID: "sys", Name: "Sys", BaseURL: srv.URL, Auth: tc.auth,
				Operations: []custom.OpDef{{Name: "ping", Access: "read", Method: "GET", Path: "/ping"}}}, custom.Config{})
			if err != nil {
				t.Fatal(err)
			}
			if c.AuthMethod() != tc.wantAuth {
				t.Errorf("AuthMethod %q, want %q", c.AuthMethod(), tc.wantAuth)
			}
			_, err = c.Execute(t.Context(), "ping", connectors.ExecContext{Payload: json.RawMessage(`{}`), Credential: tc.cred})
			if connectors.ClassOf(err) != tc.wantErr {
				t.Fatalf("got %v, want class %q", err, tc.wantErr)
			}
			if err != nil {
				if got != nil {
					t.Error("a request was sent without its credential")
				}
				if strings.Contains(err.Error(), tokenPart) {
					t.Errorf("the token shows in %q", err)
				}
				return
			}
			if v := got.Get(tc.header); v != tc.want {
				t.Errorf("%s: got %q, want %q", tc.header, v, tc.want)
			}
		})
	}
}

func b64(s string) string {
	req, _ := http.NewRequest("GET", "http://x", nil)
	u, p, _ := strings.Cut(s, ":")
	req.SetBasicAuth(u, p)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestListPages(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tasks      int
		payload    string
		want       int
		wantSizes  []string
		wantCursor string
	}{
		{"three pages to the limit", 30, `{"state":"open","limit":10}`, 10, []string{"4", "4", "2"}, "after-10"},
		{"to the end", 9, `{}`, 9, []string{"4", "4", "4"}, ""},
		{"from a cursor", 30, `{"cursor":"after-26"}`, 4, []string{"4"}, ""},
		{"capped by max_items", 80, `{}`, 50, []string{"4", "4", "4", "4", "4", "4", "4", "4", "4", "4", "4", "4", "2"}, "after-50"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.tasks)
			res, err := e.exec(t.Context(), "list_tasks", tc.payload, bearer)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Items []struct {
					ID    string `json:"id"`
					State string `json:"state"`
				} `json:"items"`
				Count      int    `json:"count"`
				NextCursor string `json:"next_cursor"`
			}
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if out.Count != tc.want || len(out.Items) != tc.want || len(res.IDs) != tc.want || out.NextCursor != tc.wantCursor {
				t.Errorf("got %d items (count %d, %d ids), next %q; want %d, next %q", len(out.Items), out.Count, len(res.IDs), out.NextCursor, tc.want, tc.wantCursor)
			}
			var sizes []string
			for i, r := range e.lp.reqs() {
				q, _ := urlQuery(r.Query)
				sizes = append(sizes, q["page_size"])
				if strings.Contains(tc.payload, "state") && q["state"] != "open" {
					t.Errorf("request %d lacks state=open: %s", i, r.Query)
				}
				if q["limit"] != "" || q["cursor"] != "" {
					t.Errorf("request %d sends the payload's limit or cursor as they are: %s", i, r.Query)
				}
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.wantSizes) {
				t.Errorf("page sizes %v, want %v", sizes, tc.wantSizes)
			}
		})
	}
}

func urlQuery(raw string) (map[string]string, error) {
	m := map[string]string{}
	for kv := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m, nil
}

func TestErrors(t *testing.T) {
	get := `{"project_id":"p1","task_id":3}`
	for _, tc := range []struct {
		name      string
		op, body  string
		cred      *connectors.Credential
		timeout   time.Duration
		prepare   func(e *env)
		want      connectors.Class
		wantRetry time.Duration
	}{
		{name: "429 with Retry-After seconds", op: "get_task", body: get, prepare: func(e *env) { e.lp.fault(429, 0, "Retry-After", "30") },
			want: connectors.ClassRateLimited, wantRetry: 30 * time.Second},
		{name: "429 with an HTTP-date Retry-After", op: "create_task", body: `{"project_id":"p1","title":"x"}`, prepare: func(e *env) {
			e.lp.fault(429, 0, "Retry-After", now.Add(45*time.Second).Format(http.TimeFormat))
		}, want: connectors.ClassRateLimited, wantRetry: 45 * time.Second},
		{name: "429 without Retry-After", op: "get_task", body: get, prepare: func(e *env) { e.lp.fault(429, 0) }, want: connectors.ClassRateLimited},
		{name: "429 on the third page", op: "list_tasks", body: `{"limit":20}`, prepare: func(e *env) {
			e.lp.fault(0, 0)
			e.lp.fault(0, 0)
			e.lp.fault(429, 0, "Retry-After", "8")
		}, want: connectors.ClassRateLimited, wantRetry: 8 * time.Second},
		{name: "503 with Retry-After", op: "get_task", body: get, prepare: func(e *env) { e.lp.fault(503, 0, "Retry-After", "2") },
			want: connectors.ClassUnavailable, wantRetry: 2 * time.Second},
		{name: "500", op: "get_task", body: get, prepare: func(e *env) { e.lp.fault(500, 0) }, want: connectors.ClassUnavailable},
		{name: "expired token", op: "get_task", body: get, prepare: func(e *env) { e.lp.mu.Lock(); e.lp.expired = true; e.lp.mu.Unlock() }, want: connectors.ClassUnauthorized},
		{name: "wrong token", op: "get_task", body: get, cred: &connectors.Credential{Token: "lp_Zq9launchOther"}, want: connectors.ClassUnauthorized},
		{name: "404", op: "get_task", body: `{"project_id":"p1","task_id":999}`, want: connectors.ClassNotFound},
		{name: "410", op: "get_task", body: get, prepare: func(e *env) { e.lp.fault(410, 0) }, want: connectors.ClassNotFound},
		{name: "403", op: "get_task", body: get, prepare: func(e *env) { e.lp.fault(403, 0) }, want: connectors.ClassInvalid},
		{name: "422", op: "create_task", body: `{"project_id":"p1","title":"x"}`, prepare: func(e *env) { e.lp.fault(422, 0) }, want: connectors.ClassInvalid},
		{name: "dot-dot in the path", op: "delete_task", body: `{"task_id":".."}`, want: connectors.ClassInvalid},
		{name: "empty path value", op: "delete_task", body: `{"task_id":""}`, want: connectors.ClassInvalid},
		{name: "answer not JSON", op: "get_task", body: get, prepare: func(e *env) {
			e.lp.mu.Lock()
			e.lp.faults = append(e.lp.faults, func(w http.ResponseWriter) bool { io.WriteString(w, "<html>"); return true })
			e.lp.mu.Unlock()
		}, want: connectors.ClassUnavailable},
		{name: "result path missing", op: "get_task", body: get, prepare: func(e *env) {
			e.lp.mu.Lock()
			e.lp.faults = append(e.lp.faults, func(w http.ResponseWriter) bool { writeJSON(w, 200, map[string]any{"other": 1}); return true })
			e.lp.mu.Unlock()
		}, want: connectors.ClassUnavailable},
		{name: "slow answer", op: "get_task", body: get, timeout: 50 * time.Millisecond, prepare: func(e *env) { e.lp.fault(0, 300*time.Millisecond) },
			want: connectors.ClassTimeout},
		{name: "unreachable", op: "get_task", body: get, prepare: func(e *env) { e.lp.srv.Close() }, want: connectors.ClassUnavailable},
		{name: "no token", op: "get_task", body: get, cred: &connectors.Credential{}, want: connectors.ClassUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, 30)
			if tc.prepare != nil {
				tc.prepare(e)
			}
			cred := bearer
			if tc.cred != nil {
				cred = *tc.cred
			}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := e.exec(ctx, tc.op, tc.body, cred)
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
	e := setup(t, 1)
	if err := e.conn.HealthCheck(t.Context(), "acme"); err != nil {
		t.Errorf("reachable: %v", err)
	}
	if r := e.lp.reqs(); len(r) != 1 || r[0].Path != "/api/v1/" || r[0].Header.Get("Authorization") != "" {
		t.Errorf("health requests %+v, want one unauthenticated GET of the base URL", r)
	}
	e.lp.fault(502, 0)
	if err := e.conn.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("failing: got %v, want unavailable", err)
	}
	def, _ := custom.ParseDefinition([]byte(launchpadYAML))
	c, err := custom.New(def, custom.Config{Health: func(context.Context, string) error { return errors.New("custom check") }})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.HealthCheck(t.Context(), "acme"); err == nil || err.Error() != "custom check" {
		t.Errorf("Config.Health: got %v", err)
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

type creds struct{}

func (creds) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	return connectors.Credential{Pattern: req.Pattern, Method: "bearer", Token: token, Subject: "svc@acme.example"}, nil
}

func TestThroughDispatcher(t *testing.T) {
	e := setup(t, 30)
	lg, err := audit.Open(t.Context(), t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{e.conn}, Auth: oneCaller{}, Policy: allowAll{}, Audit: lg, Credentials: creds{},
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

	// A 502 on the second page fails the attempt; the dispatcher retries and the listing succeeds.
	e.lp.fault(0, 0)
	e.lp.fault(502, 0)
	status, body := call(`{"targetSystem":"launchpad","operation":"list_tasks","payload":{"limit":10,"state":"open"}}`)
	var resp dispatch.Response
	json.Unmarshal(body, &resp)
	if status != http.StatusOK || resp.Meta.Attempts != 2 || !strings.Contains(string(resp.Result), `"count":10`) {
		t.Errorf("list through the dispatcher: %d %s; want 200 after 2 attempts", status, body)
	}
	if n := len(e.lp.reqs()); n != 5 {
		t.Errorf("LaunchPad got %d requests, want 5 (page 1, page 2 failing, pages 1-3)", n)
	}

	// The write, attributed, goes with the integration owner's pattern.
	status, body = call(`{"targetSystem":"launchpad","operation":"create_task","payload":{"project_id":"p1","title":"Ship"}}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"authPattern":"integration-owner"`) || !strings.Contains(string(body), `"T-100"`) {
		t.Errorf("create through the dispatcher: %d %s", status, body)
	}

	// Bad payloads are refused by the schemas from the YAML and never reach LaunchPad.
	before := len(e.lp.reqs())
	for _, tc := range []struct{ name, op, payload, pointer string }{
		{"missing task id", "get_task", `{"project_id":"p1"}`, ""},
		{"task id not an integer", "get_task", `{"project_id":"p1","task_id":"7"}`, "/task_id"},
		{"bad expand", "get_task", `{"project_id":"p1","task_id":7,"expand":["secrets"]}`, "/expand/0"},
		{"unknown field", "create_task", `{"project_id":"p1","title":"x","owner":"eve"}`, ""},
		{"limit too high", "list_tasks", `{"limit":51}`, "/limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := call(`{"targetSystem":"launchpad","operation":"` + tc.op + `","payload":` + tc.payload + `}`)
			var p dispatch.Problem
			json.Unmarshal(body, &p)
			if status != http.StatusBadRequest || p.Type != dispatch.ProblemInvalidPayload || (tc.pointer != "" && p.Pointer != tc.pointer) {
				t.Errorf("got %d %s (pointer %q), want 400 %s (pointer %q)", status, p.Type, p.Pointer, dispatch.ProblemInvalidPayload, tc.pointer)
			}
		})
	}
	if after := len(e.lp.reqs()); after != before {
		t.Errorf("LaunchPad got %d requests for refused payloads", after-before)
	}

	// Rate limits, LaunchPad's refusals and an expired token.
	get := `{"project_id":"p1","task_id":7}`
	for _, tc := range []struct {
		name, op, payload string
		prepare           func()
		wantStatus        int
		wantType          string // for failures
		wantRetryAfter    int
		wantAttempts      int // for successes
		wantWait          time.Duration
		wantRequests      int // to LaunchPad
	}{
		{name: "429 with a short Retry-After is waited for, then success", op: "get_task", payload: get,
			prepare:    func() { e.lp.fault(429, 0, "Retry-After", "1") },
			wantStatus: http.StatusOK, wantAttempts: 2, wantWait: time.Second, wantRequests: 2},
		{name: "429 with a Retry-After past the deadline reaches the caller", op: "get_task", payload: get,
			prepare:    func() { e.lp.fault(429, 0, "Retry-After", "120") },
			wantStatus: http.StatusTooManyRequests, wantType: dispatch.ProblemUpstreamRateLimited, wantRetryAfter: 120, wantRequests: 1},
		{name: "LaunchPad refuses the write: not retried", op: "create_task", payload: `{"project_id":"p1","title":"Ship"}`,
			prepare:    func() { e.lp.fault(422, 0) },
			wantStatus: http.StatusUnprocessableEntity, wantType: dispatch.ProblemUpstreamInvalid, wantRequests: 1},
		{name: "expired token: the owner must reconnect", op: "get_task", payload: get,
			prepare:    func() { e.lp.mu.Lock(); e.lp.expired = true; e.lp.mu.Unlock() },
			wantStatus: http.StatusServiceUnavailable, wantType: dispatch.ProblemCredentialUnavailable, wantRequests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.prepare()
			before := len(e.lp.reqs())
			start := time.Now()
			status, body := call(`{"targetSystem":"launchpad","operation":"` + tc.op + `","payload":` + tc.payload + `}`)
			if status != tc.wantStatus || strings.Contains(string(body), tokenPart) {
				t.Fatalf("got %d %s, want %d", status, body, tc.wantStatus)
			}
			if tc.wantType != "" {
				var p dispatch.Problem
				json.Unmarshal(body, &p)
				if p.Type != tc.wantType || p.RetryAfter != tc.wantRetryAfter {
					t.Errorf("got %s (retryAfter %d), want %s (retryAfter %d)", p.Type, p.RetryAfter, tc.wantType, tc.wantRetryAfter)
				}
			} else {
				var r dispatch.Response
				json.Unmarshal(body, &r)
				if r.Meta.Attempts != tc.wantAttempts || time.Since(start) < tc.wantWait {
					t.Errorf("got %d attempts after %v, want %d after at least %v", r.Meta.Attempts, time.Since(start), tc.wantAttempts, tc.wantWait)
				}
			}
			if got := len(e.lp.reqs()) - before; got != tc.wantRequests {
				t.Errorf("LaunchPad got %d requests, want %d", got, tc.wantRequests)
			}
		})
	}
}

// TestRevokedConnection: when the credential manager finds the tenant's
// connection revoked, the dispatch is refused as credential-unavailable
// and LaunchPad is never called.
func TestRevokedConnection(t *testing.T) {
	e := setup(t, 3)
	vault := connectortest.RevokedConnection(t, "launchpad")
	h := connectortest.Start(t, e.conn, connectortest.Options{Credentials: vault})
	for _, tc := range []struct {
		name, body string
		want       error
	}{
		{"the owner's write: the grant was revoked", `{"targetSystem":"launchpad","operation":"create_task","payload":{"project_id":"p1","title":"x"}}`, credentials.ErrReauthorize},
		{"the owner's write again: no second refresh", `{"targetSystem":"launchpad","operation":"delete_task","payload":{"task_id":"1"}}`, credentials.ErrReauthorize},
		{"a service read: the relay's client was revoked", `{"targetSystem":"launchpad","operation":"list_tasks","payload":{}}`, connectors.ErrNoCredential},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.lp.reqs())
			status, b, out := h.DispatchJSON(t, tc.body)
			if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable || strings.Contains(string(b), tokenPart) {
				t.Errorf("got %d %s, want 503 credential-unavailable", status, b)
			}
			if got := len(e.lp.reqs()) - before; got != 0 {
				t.Errorf("LaunchPad got %d requests, want 0", got)
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
