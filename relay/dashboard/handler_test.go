package dashboard_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/relay/dashboard"
)

// serve runs one request against a Handler showing snap.
func serve(t *testing.T, snap dashboard.Snapshot, method, target, accept string) *http.Response {
	t.Helper()
	h := dashboard.Handler(func(context.Context) dashboard.Snapshot { return snap })
	r := httptest.NewRequest(method, target, nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

// body reads a response body.
func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHandlerNegotiation(t *testing.T) {
	tests := []struct {
		name, method, target, accept string
		wantStatus                   int
		wantType                     string // Content-Type prefix
		wantBody                     []string
	}{
		{
			name: "json by accept", method: "GET", target: "/", accept: "application/json",
			wantStatus: 200, wantType: "application/json", wantBody: []string{`"relay":"relay-eu-1"`, `"calls_1h":4292`},
		},
		{
			name: "json by default", method: "GET", target: "/", accept: "*/*",
			wantStatus: 200, wantType: "application/json", wantBody: []string{`"relay":"relay-eu-1"`},
		},
		{
			name: "json by query", method: "GET", target: "/?format=json", accept: "text/html",
			wantStatus: 200, wantType: "application/json", wantBody: []string{`"version":"v1.4.2"`},
		},
		{
			name: "html by accept", method: "GET", target: "/", accept: "text/html,application/xhtml+xml,*/*;q=0.8",
			wantStatus: 200, wantType: "text/html", wantBody: []string{"<!doctype html>", `<span id="relay">relay-eu-1</span>`, "4,292", "120 ms", "29 d 4 h"},
		},
		{
			name: "fragment", method: "GET", target: "/?format=fragment",
			wantStatus: 200, wantType: "text/html", wantBody: []string{`data-updated="12:00:00 UTC"`, `id="systems"`},
		},
		{name: "head", method: "HEAD", target: "/", accept: "text/html", wantStatus: 200, wantType: "text/html"},
		{name: "post", method: "POST", target: "/", wantStatus: 405, wantType: "text/plain"},
		{name: "unknown format", method: "GET", target: "/?format=xml", wantStatus: 400, wantType: "text/plain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := serve(t, fixture(), tt.method, tt.target, tt.accept)
			b := body(t, res)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("got status %d, want %d: %s", res.StatusCode, tt.wantStatus, b)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("got Content-Type %q, want %s", ct, tt.wantType)
			}
			for _, want := range tt.wantBody {
				if !strings.Contains(b, want) {
					t.Errorf("body lacks %q", want)
				}
			}
			if tt.method == "HEAD" && b != "" {
				t.Errorf("HEAD got a %d-byte body, want none", len(b))
			}
			if tt.name == "fragment" && strings.Contains(b, "<html") {
				t.Errorf("the fragment holds a whole page")
			}
		})
	}
}

func TestHandlerJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		snap dashboard.Snapshot
	}{
		{"fixture", fixture()},
		{"empty", dashboard.Snapshot{Now: fixtureNow}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body(t, serve(t, tt.snap, "GET", "/", "application/json"))
			var got dashboard.Snapshot
			if err := json.Unmarshal([]byte(b), &got); err != nil {
				t.Fatalf("decoding %s: %v", b, err)
			}
			if got.Systems == nil || got.Credentials == nil || got.Agents == nil {
				t.Errorf("got a null list in %s, want []", b)
			}
			if len(got.Systems) != len(tt.snap.Systems) || len(got.Agents) != len(tt.snap.Agents) {
				t.Fatalf("got %d systems and %d agents, want %d and %d", len(got.Systems), len(got.Agents), len(tt.snap.Systems), len(tt.snap.Agents))
			}
			for i := range got.Systems {
				if got.Systems[i] != tt.snap.Systems[i] {
					t.Errorf("system %d: got %+v, want %+v", i, got.Systems[i], tt.snap.Systems[i])
				}
			}
			if !got.Now.Equal(tt.snap.Now) || got.Uptime != tt.snap.Uptime {
				t.Errorf("got now %v uptime %v, want %v %v", got.Now, got.Uptime, tt.snap.Now, tt.snap.Uptime)
			}
		})
	}
}

func TestHandlerEscapes(t *testing.T) {
	const alert = `<script>alert(1)</script>`
	snap := fixture()
	snap.Relay = alert
	snap.Agents = append(snap.Agents, dashboard.Agent{Tenant: alert, Agent: alert, Transport: alert, Crawl: alert})
	snap.Credentials = append(snap.Credentials, dashboard.Credential{Name: alert, Kind: alert, Tenant: alert, State: alert})
	snap.Systems = append(snap.Systems, dashboard.SystemStats{System: alert, Status: alert})

	tests := []struct {
		name, target string
	}{
		{"page", "/"},
		{"fragment", "/?format=fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := body(t, serve(t, snap, "GET", tt.target, "text/html"))
			for _, raw := range []string{alert, hostileTenant, hostileAgent, hostileCrawl, hostileCred, "<img", "<svg onload"} {
				if strings.Contains(b, raw) {
					t.Errorf("body holds %q unescaped", raw)
				}
			}
			if !strings.Contains(b, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Errorf("body lacks the escaped tenant name")
			}
			// Our own script is the only one.
			if n := strings.Count(b, "<script"); n != map[string]int{"page": 1, "fragment": 0}[tt.name] {
				t.Errorf("got %d <script> tags", n)
			}
			// A state that is not one of ours must not become a class name.
			if strings.Contains(b, `class="badge c-&lt;`) || strings.Contains(b, `class="badge s-&lt;`) {
				t.Errorf("a hostile state reached a class attribute")
			}
		})
	}
}

func TestHandlerSecurityHeaders(t *testing.T) {
	res := serve(t, fixture(), "GET", "/", "text/html")
	b := body(t, res)
	csp := res.Header.Get("Content-Security-Policy")
	// The policy must allow exactly the inline script and style the page
	// carries, as html/template emitted them.
	for _, tag := range []string{"script", "style"} {
		_, rest, ok := strings.Cut(b, "<"+tag+">")
		inline, _, ok2 := strings.Cut(rest, "</"+tag+">")
		if !ok || !ok2 {
			t.Fatalf("page has no <%s>", tag)
		}
		sum := sha256.Sum256([]byte(inline))
		want := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, tag+"-src "+want) {
			t.Errorf("CSP %q does not allow the page's %s (%s)", csp, tag, want)
		}
	}
	for name, want := range map[string]string{
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
}

func TestHandlerSnapshotContext(t *testing.T) {
	type key struct{}
	var gotValue any
	var gotNow bool
	h := dashboard.Handler(func(ctx context.Context) dashboard.Snapshot {
		gotValue = ctx.Value(key{})
		return dashboard.Snapshot{}
	})
	r := httptest.NewRequest("GET", "/?format=json", nil)
	r = r.WithContext(context.WithValue(r.Context(), key{}, "v"))
	w := httptest.NewRecorder()
	before := time.Now()
	h.ServeHTTP(w, r)
	var snap dashboard.Snapshot
	if err := json.Unmarshal(w.Body.Bytes(), &snap); err != nil {
		t.Fatal(err)
	}
	gotNow = !snap.Now.Before(before.Add(-time.Second))
	if gotValue != "v" {
		t.Errorf("snapshot got context value %v, want the request's", gotValue)
	}
	if !gotNow {
		t.Errorf("got Now %v, want about %v for a zero Snapshot.Now", snap.Now, before)
	}
}

func TestHandlerShowsRecorder(t *testing.T) {
	c := &clock{t: t0}
	r := dashboard.NewRecorder(c.Now)
	for i := range 4292 {
		r.Observe("sharepoint", i%1000 != 0, 120*time.Millisecond)
	}
	snap := dashboard.Snapshot{Relay: "r", Now: t0, Systems: r.Systems(t0)}
	b := body(t, serve(t, snap, "GET", "/", "text/html"))
	for _, want := range []string{`<tr data-system="sharepoint">`, `class="n calls1h">4,292<`, `class="rate">0.1%<`, `>5 of 4,292<`, `class="n p50">120 ms<`, `badge s-up`} {
		if !strings.Contains(b, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
