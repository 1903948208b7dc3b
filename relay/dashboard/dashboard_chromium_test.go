package dashboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mcc-bridge/bridge/relay/dashboard"
)

// findChromium returns the browser to drive: $CHROME_BIN, chromium or
// chromium-browser. Without one the test is skipped, or fails when
// BRIDGE_REQUIRE_EXTERNAL=1 (as in make test and CI).
func findChromium(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser"}
	if bin := os.Getenv("CHROME_BIN"); bin != "" {
		names = []string{bin}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (tried " + strings.Join(names, ", ") + "; set CHROME_BIN or run make deps)"
	if os.Getenv("BRIDGE_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// lockedBuffer collects the browser's output, to show when the test fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 256<<10 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) Printf(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 256<<10 {
		b.buf.WriteString(strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
	}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fakeRelay serves the dashboard of a Snapshot the test can change, and can
// make the page's refreshes fail.
type fakeRelay struct {
	mu      sync.Mutex
	snap    dashboard.Snapshot
	failing bool
}

func (f *fakeRelay) set(fn func(s *dashboard.Snapshot, failing *bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.snap, &f.failing)
}

func (f *fakeRelay) handler() http.Handler {
	h := dashboard.Handler(func(context.Context) dashboard.Snapshot {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.snap
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		failing := f.failing
		f.mu.Unlock()
		refresh := r.URL.Query().Has("format")
		if refresh && failing {
			http.Error(w, "relay overloaded", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func TestDashboardInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a headless Chromium; skipped with -short")
	}
	bin := findChromium(t)
	start := time.Now()

	relay := &fakeRelay{snap: fixture()}
	srv := httptest.NewServer(relay.handler())
	defer srv.Close()

	out := &lockedBuffer{}
	defer func() {
		if t.Failed() {
			t.Logf("browser output:\n%s", out)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc() // waits for the browser to exit, before TempDir is removed
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithErrorf(out.Printf), chromedp.WithLogf(out.Printf))
	defer cancelBrowser()

	// Collect the console, to catch Content-Security-Policy violations.
	console := chromedp.Console(bctx)
	var consoleMu sync.Mutex
	var consoleLines []string
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range console {
			if err != nil {
				return
			}
			consoleMu.Lock()
			consoleLines = append(consoleLines, string(m.Type)+": "+m.Text)
			consoleMu.Unlock()
		}
	}()
	defer func() {
		cancelBrowser()
		<-consoleDone
		if t.Failed() {
			t.Logf("browser console:\n%s", strings.Join(consoleLines, "\n"))
		}
	}()

	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}
	t.Logf("browser up and page loaded in %v", time.Since(start).Round(time.Millisecond))

	// eval runs a JavaScript expression and decodes its value.
	eval := func(expr string, v any) {
		t.Helper()
		raw, err := chromedp.Run(bctx, chromedp.Evaluate[[]byte](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("decoding %s = %s: %v", expr, raw, err)
		}
	}
	// texts returns the trimmed text of every element sel matches.
	texts := func(sel string) []string {
		t.Helper()
		q, _ := json.Marshal(sel)
		var got []string
		eval(`Array.from(document.querySelectorAll(`+string(q)+`), e => e.textContent.trim())`, &got)
		return got
	}
	// waitFor polls a JavaScript predicate in the page for up to d.
	waitFor := func(what, predicate string, d time.Duration) {
		t.Helper()
		began := time.Now()
		_, err := chromedp.Run(bctx, chromedp.Poll[bool](predicate,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d)))
		if err != nil {
			if errors.Is(err, chromedp.ErrPollingTimeout) {
				t.Fatalf("%s: not within %v (%s)", what, d, predicate)
			}
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s after %v", what, time.Since(began).Round(time.Millisecond))
	}

	tests := []struct {
		name, sel string
		want      []string
	}{
		{"panels", "section.panel h2", []string{"System status", "Tokens and certificates", "Error rates, 24 h", "API calls by system", "Agents connected"}},
		{"relay", "#relay, #version, #uptime", []string{"relay-eu-1", "v1.4.2", "2 d 2 h"}},
		{"systems", "#systems tbody th", []string{"sharepoint", "workfront", "slack"}},
		{"status", "#systems .badge", []string{"up", "degraded", "down"}},
		{"uptime", "#systems .uptime", []string{"100%", "100%", "95.8%"}},
		{"p50", "#systems .p50", []string{"120 ms", "850 µs", "95 ms"}},
		{"p95", "#systems .p95", []string{"480 ms", "1.25 s", "2.00 s"}},
		{"credentials", "#credentials tbody th", []string{
			"relay certificatecertificate",
			"agent acme/agent-01 certificatecertificate · acme",
			"workfront OAuth (acme)oauth · acme",
			"agent globex/agent-07 certificatecertificate · globex",
			hostileCred + "oauth · " + hostileTenant,
		}},
		{"expires", "#credentials .expires", []string{"2026-04-08 16:00", "2026-03-10 15:12", "2026-03-10 10:00", "2026-03-09 10:00", "2026-03-10 13:00"}},
		{"remaining", "#credentials .remaining", []string{"29 d 4 h", "3 h 12 m", "expired 2 h ago", "expired 1 d 2 h ago", "1 h"}},
		{"credential states", "#credentials .badge", []string{"ok", "expiring", "expired", "re-enrollment needed", "ok"}},
		{"error rates", "#errors .rate", []string{"<0.1%", "1.5%", "2.9%"}},
		{"calls 1 h", "#volume .calls1h", []string{"4,292", "310", "100"}},
		{"calls 24 h", "#volume .calls24h", []string{"96,276", "7,200", "2,400"}},
		{"tenants", "#agents .tenant", []string{"acme", hostileTenant}},
		{"agents", "#agents .agent", []string{"agent-01", hostileAgent}},
		{"transports", "#agents .transport", []string{"quic", "tcp"}},
		{"sessions", "#agents .sessions", []string{"3", "1"}},
		{"since", "#agents .since", []string{"2026-03-10 09:56 (2 h 4 m)", "2026-03-10 11:59 (45 s)"}},
		{"crawl", "#agents .crawl", []string{"incremental, 4,292 docs, last change 12 s ago", hostileCrawl}},
	}
	for _, tt := range tests {
		if got := texts(tt.sel); !slices.Equal(got, tt.want) {
			t.Errorf("%s (%s): got %q, want %q", tt.name, tt.sel, got, tt.want)
		}
	}

	// Every sparkline has one point per hour; the volume bars are drawn to scale.
	var points []int
	eval(`Array.from(document.querySelectorAll("#errors svg.spark polyline"), p => p.points.numberOfItems)`, &points)
	if !slices.Equal(points, []int{24, 24, 24}) {
		t.Errorf("sparkline points: got %v, want 24 per system", points)
	}
	var widths []float64
	eval(`Array.from(document.querySelectorAll("#volume td:nth-child(2) rect"), r => r.width.baseVal.value)`, &widths)
	if len(widths) != 3 || widths[0] != 100 || widths[1] <= widths[2] || widths[2] <= 0 {
		t.Errorf("1 h bar widths: got %v, want 100 > workfront > slack > 0", widths)
	}

	// Hostile names are text: nothing ran and no element was injected.
	var xss struct {
		Type     string `json:"type"`
		Injected int    `json:"injected"`
		Scripts  int    `json:"scripts"`
	}
	eval(`({type: typeof window.__xss, injected: document.querySelectorAll("#dash img, #dash script, #dash svg:not(.spark):not(.bar)").length, scripts: document.scripts.length})`, &xss)
	if xss.Type != "undefined" || xss.Injected != 0 || xss.Scripts != 1 {
		t.Errorf("hostile names: got window.__xss %s, %d injected elements, %d scripts; want undefined, 0, 1", xss.Type, xss.Injected, xss.Scripts)
	}

	// The inline style was allowed by the Content-Security-Policy.
	var radius string
	eval(`getComputedStyle(document.querySelector(".badge")).borderTopLeftRadius`, &radius)
	if radius == "0px" || radius == "" {
		t.Errorf("badge border radius %q: the inline style did not apply", radius)
	}

	// Change the snapshot: the page picks it up without a reload.
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`window.__sameDocument = 42`)); err != nil {
		t.Fatal(err)
	}
	relay.set(func(s *dashboard.Snapshot, _ *bool) {
		s.Version = "v1.5.0"
		s.Now = s.Now.Add(7 * time.Second)
		s.Systems[0].Calls1h = 5001
		s.Agents[0].Crawl = "full, 10,000 docs, last change 1 s ago"
	})
	waitFor("refreshed to the new snapshot", `document.getElementById("version").textContent === "v1.5.0"`, 10*time.Second)
	var after struct {
		Same    int    `json:"same"`
		Updated string `json:"updated"`
	}
	eval(`({same: window.__sameDocument, updated: document.getElementById("updated").textContent})`, &after)
	if after.Same != 42 {
		t.Errorf("the page was reloaded, want an in-place refresh")
	}
	if after.Updated != "Updated 12:00:07 UTC" {
		t.Errorf("got %q, want %q", after.Updated, "Updated 12:00:07 UTC")
	}
	for sel, want := range map[string][]string{
		"#volume .calls1h": {"5,001", "310", "100"},
		"#agents .crawl":   {"full, 10,000 docs, last change 1 s ago", hostileCrawl},
	} {
		if got := texts(sel); !slices.Equal(got, want) {
			t.Errorf("after the refresh, %s: got %q, want %q", sel, got, want)
		}
	}

	// A failing refresh keeps the last panels and says they are stale.
	relay.set(func(_ *dashboard.Snapshot, failing *bool) { *failing = true })
	waitFor("marked stale", `!document.getElementById("stale").hidden && document.body.classList.contains("is-stale")`, 10*time.Second)
	var stale string
	eval(`document.getElementById("stale").textContent`, &stale)
	if !strings.Contains(stale, "Stale") || !strings.Contains(stale, "HTTP 503") || !strings.Contains(stale, "12:00:07 UTC") {
		t.Errorf("stale note %q: want it to say Stale, HTTP 503 and the time of the data shown", stale)
	}
	if got := texts("#version"); !slices.Equal(got, []string{"v1.5.0"}) {
		t.Errorf("while stale, version: got %q, want the last one shown", got)
	}

	// And recovers once the relay answers again.
	relay.set(func(_ *dashboard.Snapshot, failing *bool) { *failing = false })
	waitFor("fresh again", `document.getElementById("stale").hidden && !document.body.classList.contains("is-stale")`, 10*time.Second)

	consoleMu.Lock()
	for _, line := range consoleLines {
		if strings.Contains(line, "Content Security Policy") {
			t.Errorf("console: %s", line)
		}
	}
	consoleMu.Unlock()
	t.Logf("whole browser test took %v", time.Since(start).Round(time.Millisecond))
}
