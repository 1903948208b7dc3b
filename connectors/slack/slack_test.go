package slack_test

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
	"github.com/mcc-bridge/bridge/connectors/slack"
	"github.com/mcc-bridge/bridge/connectors/slack/slackfake"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// token is the bot token of the tests; tokenPart is a piece of it that must
// never show in an error or a log line.
const (
	token     = "xoxb-1111-2222-Zq9botSecretValue"
	tokenPart = "Zq9bot"
)

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
	fake *slackfake.Server
	conn *slack.Connector
	logs *logBuffer
}

func setup(t *testing.T, channels int) *env {
	t.Helper()
	fake := slackfake.New(token)
	t.Cleanup(fake.Close)
	for i := range channels {
		fake.AddChannels(slackfake.Channel{ID: fmt.Sprintf("C%08d", i), Name: fmt.Sprintf("chan-%d", i), NumMembers: i, Created: 1700000000 + int64(i),
			Topic: "topic", Purpose: "purpose", IsPrivate: i%5 == 4, IsArchived: i%7 == 6})
	}
	logs := &logBuffer{t: t}
	c, err := slack.New(slack.Config{BaseURL: fake.URL(), Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: fake, conn: c, logs: logs}
}

func (e *env) exec(ctx context.Context, op string, payload string, tok string) (connectors.Result, error) {
	return e.conn.Execute(ctx, op, connectors.ExecContext{
		Tenant: "acme", User: connectors.User{ID: "sarah", Email: "sarah@acme.example"}, Payload: json.RawMessage(payload),
		Credential: connectors.Credential{Pattern: connectors.IntegrationOwner, Method: "oauth2", Token: connectors.Secret(tok), Subject: "owner@acme.example"},
	})
}

func TestNewValidatesBaseURL(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		ok         bool
	}{
		{"default", "", true},
		{"https", "https://slack.example", true},
		{"with path", "http://127.0.0.1:8080/prefix/", true},
		{"no scheme", "slack.com", false},
		{"ftp", "ftp://slack.com", false},
		{"query", "https://slack.com/?a=b", false},
		{"user info", "https://u:p@slack.com", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := slack.New(slack.Config{BaseURL: tc.base})
			if (err == nil) != tc.ok {
				t.Errorf("New(%q): got err %v, want ok %v", tc.base, err, tc.ok)
			}
		})
	}
}

func TestPostMessage(t *testing.T) {
	e := setup(t, 3)
	for _, tc := range []struct {
		name, payload, wantChannel, wantThread string
	}{
		{"by id", `{"channel":"C00000001","text":"hello *world*"}`, "C00000001", ""},
		{"by name", `{"channel":"#chan-2","text":"hi","unfurl_links":false}`, "C00000002", ""},
		{"thread reply", `{"channel":"C00000000","text":"reply","thread_ts":"1700000001.000001","reply_broadcast":true}`, "C00000000", "1700000001.000001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.exec(t.Context(), "post_message", tc.payload, token)
			if err != nil {
				t.Fatal(err)
			}
			var out struct{ Channel, TS, ThreadTS string }
			json.Unmarshal(res.Data, &out)
			out.ThreadTS = jsonField(t, res.Data, "thread_ts")
			if out.Channel != tc.wantChannel || out.TS == "" || out.ThreadTS != tc.wantThread {
				t.Errorf("got %s, want channel %s, a ts and thread_ts %q", res.Data, tc.wantChannel, tc.wantThread)
			}
			if len(res.IDs) != 1 || res.IDs[0] != out.Channel+"/"+out.TS {
				t.Errorf("ids %v, want [%s/%s]", res.IDs, out.Channel, out.TS)
			}
			reqs := e.fake.Requests()
			last := reqs[len(reqs)-1]
			if last.HTTPMethod != http.MethodPost || last.Method != "chat.postMessage" || last.Authorization != "Bearer "+token ||
				last.ContentType != "application/json; charset=utf-8" {
				t.Errorf("request %s %s auth-ok=%v content-type %q", last.HTTPMethod, last.Method, last.Authorization == "Bearer "+token, last.ContentType)
			}
			var sent map[string]any
			json.Unmarshal(last.Body, &sent)
			var want map[string]any
			json.Unmarshal([]byte(tc.payload), &want)
			if fmt.Sprint(sent) != fmt.Sprint(want) {
				t.Errorf("sent %v, want the payload %v", sent, want)
			}
		})
	}
	if msgs := e.fake.Messages(); len(msgs) != 3 || msgs[0].Text != "hello *world*" || msgs[2].ThreadTS != "1700000001.000001" {
		t.Errorf("messages %+v", msgs)
	}
}

func jsonField(t *testing.T, data []byte, k string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[k].(string)
	return s
}

type listOut struct {
	Channels []struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		IsPrivate  bool   `json:"is_private"`
		IsArchived bool   `json:"is_archived"`
		NumMembers int    `json:"num_members"`
		Topic      string `json:"topic"`
	} `json:"channels"`
	Count      int    `json:"count"`
	NextCursor string `json:"next_cursor"`
}

func TestListChannelsPages(t *testing.T) {
	for _, tc := range []struct {
		name       string
		channels   int
		pageCap    int
		payload    string
		want       int
		wantLimits []string // the limit of each request, in order
		wantMore   bool
	}{
		// 450 public-or-private channels of 600, taken in pages of 200, 200, 50.
		{"three full pages", 600, 0, `{"limit":450,"types":["public_channel","private_channel"]}`, 450, []string{"200", "200", "50"}, true},
		// Slack answering fewer than asked: pages of 4 until 10 are read.
		{"short pages", 30, 4, `{"limit":10}`, 10, []string{"10", "6", "2"}, true},
		{"default limit, all read", 20, 6, `{}`, 16, []string{"100", "94", "88"}, false},
		{"exclude archived", 14, 5, `{"exclude_archived":true,"types":["public_channel","private_channel"]}`, 12, []string{"100", "95", "90"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.channels)
			e.fake.SetPageCap(tc.pageCap)
			res, err := e.exec(t.Context(), "list_channels", tc.payload, token)
			if err != nil {
				t.Fatal(err)
			}
			var out listOut
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if out.Count != tc.want || len(out.Channels) != tc.want || len(res.IDs) != tc.want {
				t.Errorf("got %d channels (count %d, %d ids), want %d", len(out.Channels), out.Count, len(res.IDs), tc.want)
			}
			if (out.NextCursor != "") != tc.wantMore {
				t.Errorf("next_cursor %q, want one: %v", out.NextCursor, tc.wantMore)
			}
			var limits []string
			cursors := map[string]bool{}
			for _, r := range e.fake.Requests() {
				if r.Authorization != "Bearer "+token || r.HTTPMethod != http.MethodGet {
					t.Errorf("request %s %s without the bearer token", r.HTTPMethod, r.Method)
				}
				limits = append(limits, r.Query.Get("limit"))
				if cursors[r.Query.Get("cursor")] {
					t.Errorf("cursor %q asked twice", r.Query.Get("cursor"))
				}
				cursors[r.Query.Get("cursor")] = true
			}
			if fmt.Sprint(limits) != fmt.Sprint(tc.wantLimits) {
				t.Errorf("page limits %v, want %v", limits, tc.wantLimits)
			}
			seen := map[string]bool{}
			for _, c := range out.Channels {
				if seen[c.ID] {
					t.Errorf("channel %s listed twice", c.ID)
				}
				seen[c.ID] = true
				if strings.Contains(tc.payload, "exclude_archived") && c.IsArchived {
					t.Errorf("archived channel %s listed", c.ID)
				}
				if !strings.Contains(tc.payload, "private_channel") && c.IsPrivate {
					t.Errorf("private channel %s listed without asking", c.ID)
				}
			}
		})
	}
}

func TestListChannelsContinuesFromCursor(t *testing.T) {
	e := setup(t, 12)
	first, err := e.exec(t.Context(), "list_channels", `{"limit":5,"types":["public_channel","private_channel"]}`, token)
	if err != nil {
		t.Fatal(err)
	}
	var a listOut
	json.Unmarshal(first.Data, &a)
	res, err := e.exec(t.Context(), "list_channels", `{"limit":100,"types":["public_channel","private_channel"],"cursor":"`+a.NextCursor+`"}`, token)
	if err != nil {
		t.Fatal(err)
	}
	var b listOut
	json.Unmarshal(res.Data, &b)
	if len(a.Channels) != 5 || len(b.Channels) != 7 || b.Channels[0].ID != "C00000005" || b.NextCursor != "" {
		t.Errorf("first %d channels, then %d from %s (next %q); want 5 then 7 from C00000005", len(a.Channels), len(b.Channels), b.Channels[0].ID, b.NextCursor)
	}
}

func TestErrors(t *testing.T) {
	post := `{"channel":"C00000001","text":"hello"}`
	list := `{"limit":50}`
	for _, tc := range []struct {
		name      string
		op, body  string
		tok       string
		timeout   time.Duration
		prepare   func(e *env)
		want      connectors.Class
		wantRetry time.Duration
	}{
		{name: "429 with Retry-After on a read", op: "list_channels", body: list, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Method: "conversations.list", Status: 429, RetryAfter: "30"})
		}, want: connectors.ClassRateLimited, wantRetry: 30 * time.Second},
		{name: "429 with Retry-After on a write", op: "post_message", body: post, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Method: "chat.postMessage", Status: 429, RetryAfter: "7"})
		}, want: connectors.ClassRateLimited, wantRetry: 7 * time.Second},
		{name: "429 on the third page", op: "list_channels", body: list, prepare: func(e *env) {
			e.fake.SetPageCap(5)
			e.fake.Inject(slackfake.Fault{Method: "conversations.list", Delay: time.Millisecond, Times: 2})
			e.fake.Inject(slackfake.Fault{Method: "conversations.list", Status: 429, RetryAfter: "12"})
		}, want: connectors.ClassRateLimited, wantRetry: 12 * time.Second},
		{name: "ratelimited in a 200", op: "list_channels", body: list, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Error: "ratelimited"})
		}, want: connectors.ClassRateLimited},
		{name: "503", op: "list_channels", body: list, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Status: 503})
		}, want: connectors.ClassUnavailable},
		{name: "500 with a Slack body", op: "post_message", body: post, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Status: 500, Error: "internal_error"})
		}, want: connectors.ClassUnavailable},
		{name: "internal_error in a 200", op: "post_message", body: post, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Error: "fatal_error"})
		}, want: connectors.ClassUnavailable},
		{name: "expired token", op: "list_channels", body: list, prepare: func(e *env) {
			e.fake.SetToken(token, slackfake.Expired)
		}, want: connectors.ClassUnauthorized},
		{name: "revoked token", op: "post_message", body: post, prepare: func(e *env) {
			e.fake.SetToken(token, slackfake.Revoked)
		}, want: connectors.ClassUnauthorized},
		{name: "unknown token", op: "post_message", body: post, tok: "xoxb-9999-Zq9botOther", want: connectors.ClassUnauthorized},
		{name: "missing scope", op: "list_channels", body: list, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Error: "missing_scope"})
		}, want: connectors.ClassUnauthorized},
		{name: "no token in the credential", op: "list_channels", body: list, tok: "-", want: connectors.ClassUnauthorized},
		{name: "unknown channel", op: "post_message", body: `{"channel":"C99999999","text":"x"}`, want: connectors.ClassNotFound},
		{name: "archived channel", op: "post_message", body: `{"channel":"C00000006","text":"x"}`, want: connectors.ClassInvalid},
		{name: "slow answer", op: "list_channels", body: list, timeout: 50 * time.Millisecond, prepare: func(e *env) {
			e.fake.Inject(slackfake.Fault{Delay: 5 * time.Second})
		}, want: connectors.ClassTimeout},
		{name: "Slack unreachable", op: "list_channels", body: list, prepare: func(e *env) { e.fake.Close() }, want: connectors.ClassUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, 20)
			if tc.prepare != nil {
				tc.prepare(e)
			}
			tok := token
			switch tc.tok {
			case "":
			case "-":
				tok = ""
			default:
				tok = tc.tok
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
				if strings.Contains(s, tokenPart) || strings.Contains(s, "xoxb-") {
					t.Errorf("a token shows in %q", s)
				}
			}
		})
	}
}

func TestHealthCheck(t *testing.T) {
	e := setup(t, 0)
	if err := e.conn.HealthCheck(t.Context(), "acme"); err != nil {
		t.Errorf("healthy Slack: %v", err)
	}
	if r := e.fake.Requests(); len(r) != 1 || r[0].Method != "api.test" || r[0].Authorization != "" {
		t.Errorf("health requests %+v, want one api.test without a token", r)
	}
	e.fake.Inject(slackfake.Fault{Status: 503})
	if err := e.conn.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("Slack failing: got %v, want unavailable", err)
	}
	called := ""
	c, _ := slack.New(slack.Config{BaseURL: e.fake.URL(), Health: func(_ context.Context, tenant string) error {
		called = tenant
		return errors.New("down")
	}})
	if err := c.HealthCheck(t.Context(), "globex"); err == nil || called != "globex" {
		t.Errorf("Config.Health: got %v (called for %q), want its error for globex", err, called)
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

// creds hands out the bot token and records the patterns asked for.
type creds struct {
	mu       sync.Mutex
	patterns []connectors.AuthPattern
}

func (c *creds) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.patterns = append(c.patterns, req.Pattern)
	return connectors.Credential{Pattern: req.Pattern, Method: "oauth2", Token: token, Subject: "owner@acme.example"}, nil
}

func newDispatcher(t *testing.T, c connectors.Connector, cr *creds) *httptest.Server {
	t.Helper()
	lg, err := audit.Open(t.Context(), t.TempDir(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	d, err := dispatch.New(dispatch.Config{
		Connectors: []connectors.Connector{c}, Auth: oneCaller{}, Policy: allowAll{}, Audit: lg, Credentials: cr,
		Retry: dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func dispatchCall(t *testing.T, srv *httptest.Server, body string) (int, []byte) {
	t.Helper()
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

func TestThroughDispatcher(t *testing.T) {
	e := setup(t, 30)
	cr := &creds{}
	srv := newDispatcher(t, e.conn, cr)

	// A 5xx on the second page is retried by the dispatcher, then the listing succeeds.
	e.fake.SetPageCap(10)
	e.fake.Inject(slackfake.Fault{Method: "conversations.list", Delay: time.Millisecond})
	e.fake.Inject(slackfake.Fault{Method: "conversations.list", Status: 503})
	status, body := dispatchCall(t, srv, `{"targetSystem":"slack","operation":"list_channels","payload":{"limit":25,"types":["public_channel","private_channel"]}}`)
	if status != http.StatusOK {
		t.Fatalf("list through the dispatcher: status %d: %s", status, body)
	}
	var resp dispatch.Response
	json.Unmarshal(body, &resp)
	var out listOut
	json.Unmarshal(resp.Result, &out)
	if resp.Meta.Attempts != 2 || out.Count != 25 || resp.Meta.AuthPattern != string(connectors.IntegrationOwner) {
		t.Errorf("got %d attempts, %d channels, pattern %s; want 2, 25, integration-owner", resp.Meta.Attempts, out.Count, resp.Meta.AuthPattern)
	}
	if n := len(e.fake.Requests()); n != 5 {
		t.Errorf("Slack got %d requests, want 5 (page 1, page 2 failing, then pages 1-3)", n)
	}

	// A write goes through with the integration owner's token.
	status, body = dispatchCall(t, srv, `{"targetSystem":"slack","operation":"post_message","payload":{"channel":"#chan-1","text":"deploy done"}}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"channel":"C00000001"`) {
		t.Errorf("post through the dispatcher: status %d: %s", status, body)
	}
	for _, p := range cr.patterns {
		if p != connectors.IntegrationOwner {
			t.Errorf("credential asked for pattern %s, want integration-owner only", p)
		}
	}

	// Bad payloads never reach Slack.
	before := len(e.fake.Requests())
	for _, tc := range []struct{ name, payload, pointer string }{
		{"missing text", `{"channel":"C00000001"}`, ""},
		{"unknown field", `{"channel":"C00000001","text":"x","as_user":true}`, ""},
		{"bad channel", `{"channel":"no spaces allowed","text":"x"}`, "/channel"},
		{"limit too high", `{"limit":5000}`, "/limit"},
		{"bad type", `{"types":["im"]}`, "/types/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := "post_message"
			if strings.Contains(tc.payload, "limit") || strings.Contains(tc.payload, "types") {
				op = "list_channels"
			}
			status, body := dispatchCall(t, srv, `{"targetSystem":"slack","operation":"`+op+`","payload":`+tc.payload+`}`)
			var p dispatch.Problem
			json.Unmarshal(body, &p)
			if status != http.StatusBadRequest || p.Type != dispatch.ProblemInvalidPayload || (tc.pointer != "" && p.Pointer != tc.pointer) {
				t.Errorf("got %d %s (pointer %q), want 400 %s (pointer %q)", status, p.Type, p.Pointer, dispatch.ProblemInvalidPayload, tc.pointer)
			}
		})
	}
	if after := len(e.fake.Requests()); after != before {
		t.Errorf("Slack got %d requests for refused payloads", after-before)
	}

	// Rate limits and Slack's refusals, through the dispatcher.
	for _, tc := range []struct {
		name, op, payload string
		fault             slackfake.Fault
		wantStatus        int
		wantType          string
		wantRetryAfter    string        // the answer's Retry-After header
		wantAttempts      int           // on success
		wantWait          time.Duration // at least, on success
		wantRequests      int           // to Slack
	}{
		{name: "429 with a short Retry-After is waited for, then success", op: "post_message", payload: `{"channel":"C00000002","text":"retry me"}`,
			fault: slackfake.Fault{Method: "chat.postMessage", Status: 429, RetryAfter: "1"}, wantStatus: 200, wantAttempts: 2, wantWait: time.Second, wantRequests: 2},
		{name: "429 with a Retry-After past the deadline reaches the caller", op: "list_channels", payload: `{"limit":5}`,
			fault:      slackfake.Fault{Method: "conversations.list", Status: 429, RetryAfter: "60"},
			wantStatus: 429, wantType: dispatch.ProblemUpstreamRateLimited, wantRetryAfter: "60", wantRequests: 1},
		{name: "Slack refuses the message: not retried", op: "post_message", payload: `{"channel":"C00000006","text":"to an archived channel"}`,
			wantStatus: 422, wantType: dispatch.ProblemUpstreamInvalid, wantRequests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != (slackfake.Fault{}) {
				e.fake.Inject(tc.fault)
			}
			before := len(e.fake.Requests())
			start := time.Now()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/dispatch",
				strings.NewReader(`{"targetSystem":"slack","operation":"`+tc.op+`","payload":`+tc.payload+`}`))
			req.Header.Set("Authorization", "Bearer caller")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if tc.wantType != "" {
				var p dispatch.Problem
				json.Unmarshal(body, &p)
				if p.Type != tc.wantType || resp.Header.Get("Retry-After") != tc.wantRetryAfter {
					t.Errorf("got %s with Retry-After %q, want %s with %q", p.Type, resp.Header.Get("Retry-After"), tc.wantType, tc.wantRetryAfter)
				}
			} else {
				var r dispatch.Response
				json.Unmarshal(body, &r)
				if r.Meta.Attempts != tc.wantAttempts || time.Since(start) < tc.wantWait {
					t.Errorf("got %d attempts after %v, want %d after at least %v", r.Meta.Attempts, time.Since(start), tc.wantAttempts, tc.wantWait)
				}
			}
			if got := len(e.fake.Requests()) - before; got != tc.wantRequests {
				t.Errorf("Slack got %d requests, want %d", got, tc.wantRequests)
			}
		})
	}

	// An expired token tells the caller the owner must reconnect, and no token leaks.
	before = len(e.fake.Requests())
	e.fake.SetToken(token, slackfake.Expired)
	status, body = dispatchCall(t, srv, `{"targetSystem":"slack","operation":"list_channels","payload":{}}`)
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), dispatch.ProblemCredentialUnavailable) || strings.Contains(string(body), tokenPart) {
		t.Errorf("expired token through the dispatcher: %d %s", status, body)
	}
	if got := len(e.fake.Requests()) - before; got != 1 {
		t.Errorf("Slack got %d requests with the expired token, want 1 (a refused credential is not retried)", got)
	}
}

// TestRevokedConnection: when the credential manager finds the
// integration owner's connection revoked (Slack revokes the old refresh
// token on rotation, or the app was uninstalled), the dispatch is refused
// as credential-unavailable and Slack is never called.
func TestRevokedConnection(t *testing.T) {
	e := setup(t, 3)
	vault := connectortest.RevokedConnection(t, slack.ID)
	h := connectortest.Start(t, e.conn, connectortest.Options{Credentials: vault})
	for _, tc := range []struct{ name, body string }{
		{"a post: the grant was revoked", `{"targetSystem":"slack","operation":"post_message","payload":{"channel":"C00000001","text":"hi"}}`},
		{"a listing again: no second refresh", `{"targetSystem":"slack","operation":"list_channels","payload":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			status, b, out := h.DispatchJSON(t, tc.body)
			if status != http.StatusServiceUnavailable || out["type"] != dispatch.ProblemCredentialUnavailable || strings.Contains(string(b), tokenPart) {
				t.Errorf("got %d %s, want 503 credential-unavailable", status, b)
			}
			if got := len(e.fake.Requests()) - before; got != 0 {
				t.Errorf("Slack got %d requests, want 0", got)
			}
			if errs := vault.Errors(); len(errs) == 0 || !errors.Is(errs[len(errs)-1], credentials.ErrReauthorize) {
				t.Errorf("the manager answered %v, want an error wrapping %q", errs, credentials.ErrReauthorize)
			}
		})
	}
	if got := vault.Provider.Count("refresh_token"); got != 1 {
		t.Errorf("the manager tried %d refreshes, want 1 (then the connection is marked expired)", got)
	}
}
