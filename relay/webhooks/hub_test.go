package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAsanaHandshakeSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	ep := Endpoint{System: "asana", Tenant: "acme", Scheme: SchemeAsana}
	const path = "/webhooks/asana/acme"
	event := func(n int) string { return fmt.Sprintf(`{"events":[{"action":"added","resource":{"gid":"%d"}}]}`, n) }
	signed := func(secret, body string) *http.Request {
		return post(path, body, "X-Hook-Signature", hexMAC(secret, body))
	}

	th := openHub(t, Config{Dir: dir, Endpoints: []Endpoint{ep}, Registerer: reg})
	if w := th.do(post(path, "", "X-Hook-Secret", asanaSecret)); w.Code != 200 || w.Header().Get("X-Hook-Secret") != asanaSecret {
		t.Fatalf("handshake: got %d with echo %t, want 200 with the secret echoed", w.Code, w.Header().Get("X-Hook-Secret") == asanaSecret)
	}
	if w := th.do(signed(asanaSecret, event(1))); w.Code != 200 {
		t.Fatalf("signed event: got %d %s, want 200", w.Code, w.Body)
	}
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}

	th = openHub(t, Config{Dir: dir, Endpoints: []Endpoint{ep}, Registerer: reg})
	if w := th.do(signed(asanaSecret, event(2))); w.Code != 200 {
		t.Fatalf("signed event after reopen: got %d %s, want 200", w.Code, w.Body)
	}
	if w := th.do(post(path, "", "X-Hook-Secret", "another-secret")); w.Code != 401 {
		t.Fatalf("second handshake: got %d, want 401", w.Code)
	}

	// Runbook: the webhook was re-created at Asana; reset, then handshake again.
	if err := th.ResetHookSecret(context.Background(), "asana", "acme"); err != nil {
		t.Fatal(err)
	}
	if w := th.do(signed(asanaSecret, event(3))); w.Code != 401 {
		t.Fatalf("event after reset: got %d, want 401", w.Code)
	}
	const next = "asana-hook-secret-rotated"
	if w := th.do(post(path, "", "X-Hook-Secret", next)); w.Code != 200 || w.Header().Get("X-Hook-Secret") != next {
		t.Fatalf("handshake after reset: got %d, want 200 with the secret echoed", w.Code)
	}
	if w := th.do(signed(next, event(4))); w.Code != 200 {
		t.Fatalf("event under the new secret: got %d %s, want 200", w.Code, w.Body)
	}
	if w := th.do(signed(asanaSecret, event(5))); w.Code != 401 {
		t.Fatalf("event under the old secret: got %d, want 401", w.Code)
	}
	if got := th.countEvents(t, stateQueued); got != 3 {
		t.Errorf("got %d queued events, want 3", got)
	}
	if got := th.requests(t, "asana", OutcomeHandshake); got != 2 {
		t.Errorf("got %v handshakes counted, want 2", got)
	}
	if err := th.ResetHookSecret(context.Background(), "asana", "nope"); !errors.Is(err, ErrInvalid) {
		t.Errorf("reset of an unknown endpoint: got %v, want ErrInvalid", err)
	}
	noSecrets(t, "logs", th.logs.String())
}

func TestRequestRefusals(t *testing.T) {
	th := openHub(t, Config{Endpoints: []Endpoint{{System: "github", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret}}})
	big := strings.Repeat("x", MaxBodyBytes+1)
	tests := []struct {
		name    string
		req     *http.Request
		status  int
		system  string
		outcome Outcome
	}{
		{"unknown tenant", post("/webhooks/github/other", "{}"), 404, "unknown", OutcomeUnknownEndpoint},
		{"unknown system", post("/webhooks/gitlab/acme", "{}"), 404, "unknown", OutcomeUnknownEndpoint},
		{"body too large", post("/webhooks/github/acme", big, "X-Signature", "sha256="+hexMAC(hmacSecret, big)), 413, "github", OutcomeTooLarge},
		{"body too large, length unknown", func() *http.Request {
			r := post("/webhooks/github/acme", "")
			r.Body = io.NopCloser(strings.NewReader(big))
			r.ContentLength = -1
			return r
		}(), 413, "github", OutcomeTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := th.requests(t, tc.system, tc.outcome)
			w := th.do(tc.req)
			if w.Code != tc.status {
				t.Fatalf("got %d, want %d", w.Code, tc.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("got Content-Type %q, want application/problem+json", ct)
			}
			if got := th.requests(t, tc.system, tc.outcome); got != before+1 {
				t.Errorf("got %v requests {system=%s,outcome=%s}, want %v", got, tc.system, tc.outcome, before+1)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		w := th.do(httptest.NewRequest(http.MethodGet, "/webhooks/github/acme", nil))
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("got %d, want 405", w.Code)
		}
	})
	if got := th.countEvents(t, stateQueued); got != 0 {
		t.Errorf("got %d queued events, want 0", got)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Endpoint{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{Dir: "", Endpoints: []Endpoint{ok}}},
		{"negative attempts", Config{MaxAttempts: -1}},
		{"duplicate endpoint", Config{Endpoints: []Endpoint{ok, ok}}},
		{"unknown scheme", Config{Endpoints: []Endpoint{{System: "x", Tenant: "y", Scheme: "md5", Secret: hmacSecret}}}},
		{"slash in tenant", Config{Endpoints: []Endpoint{{System: "slack", Tenant: "a/b", Scheme: SchemeSlack, Secret: slackSecret}}}},
		{"dot-dot tenant", Config{Endpoints: []Endpoint{{System: "slack", Tenant: "..", Scheme: SchemeSlack, Secret: slackSecret}}}},
		{"slack without secret", Config{Endpoints: []Endpoint{{System: "slack", Tenant: "acme", Scheme: SchemeSlack}}}},
		{"hmac without secret", Config{Endpoints: []Endpoint{{System: "h", Tenant: "acme", Scheme: SchemeHMAC}}}},
		{"asana with a secret", Config{Endpoints: []Endpoint{{System: "asana", Tenant: "acme", Scheme: SchemeAsana, Secret: asanaSecret}}}},
		{"asana with a timestamp", Config{Endpoints: []Endpoint{{System: "asana", Tenant: "acme", Scheme: SchemeAsana, TimestampHeader: "X-T"}}}},
		{"workfront without token", Config{Endpoints: []Endpoint{{System: "wf", Tenant: "acme", Scheme: SchemeWorkfront, Secret: workfrontSecret}}}},
		{"token on slack", Config{Endpoints: []Endpoint{{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret, AuthToken: workfrontToken}}}},
		{"window without timestamp", Config{Endpoints: []Endpoint{{System: "h", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret, Window: time.Minute}}}},
		{"negative window", Config{Endpoints: []Endpoint{{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret, Window: -time.Second}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.Dir == "" && tc.name != "no dir" {
				tc.cfg.Dir = t.TempDir()
			}
			h, err := Open(context.Background(), tc.cfg)
			if err == nil {
				h.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
			noSecrets(t, "error", err.Error())
		})
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	cfg := Config{Endpoints: []Endpoint{
		{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret},
		{System: "workfront", Tenant: "acme", Scheme: SchemeWorkfront, AuthToken: workfrontToken, Secret: workfrontSecret},
		{System: "asana", Tenant: "acme", Scheme: SchemeAsana},
	}}
	th := openHub(t, cfg)
	if w := th.do(post("/webhooks/asana/acme", "", "X-Hook-Secret", asanaSecret)); w.Code != 200 {
		t.Fatalf("handshake: got %d", w.Code)
	}
	var things []any
	for _, ep := range th.cfg.Endpoints {
		things = append(things, ep)
	}
	for _, v := range th.endpoints {
		things = append(things, v)
	}
	things = append(things, th.secrets.get(endpointKey{"asana", "acme"}), th.cfg)
	for _, v := range things {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			noSecrets(t, fmt.Sprintf("%s of %T", verb, v), fmt.Sprintf(verb, v))
		}
	}
}

func TestAcceptedEventSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	ep := Endpoint{System: "github", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret, TimestampHeader: "X-Timestamp"}
	th := openHub(t, Config{Dir: dir, Endpoints: []Endpoint{ep}, Registerer: reg})
	srv := httptest.NewServer(th.Handler())
	const body = `{"action":"opened","number":42}`
	ts := unix(time.Now())
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/github/acme", strings.NewReader(body))
	req.Header.Set("X-Timestamp", ts)
	req.Header.Set("X-Signature", "sha256="+hexMAC(hmacSecret, ts+"."+body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	srv.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("got %d, want 200", resp.StatusCode)
	}
	// 200 was sent: the event is committed. Nothing delivered it yet.
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}

	th = openHub(t, Config{Dir: dir, Endpoints: []Endpoint{ep}, Registerer: reg})
	got := make(chan Event, 1)
	th.Subscribe("github", SubscriberFunc(func(ctx context.Context, ev Event) error {
		got <- ev
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- th.Run(ctx) }()
	select {
	case ev := <-got:
		if string(ev.Body) != body || ev.System != "github" || ev.Tenant != "acme" || ev.Attempt != 1 || ev.ContentType != "application/json" {
			t.Errorf("got event %+v body %q, want the accepted one, attempt 1", ev, ev.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not delivered after reopen within 10 s")
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := th.countEvents(t, stateDelivered); n != 1 {
		t.Errorf("got %d delivered events, want 1", n)
	}
	if got := counterValue(t, reg, "bridge_webhook_deliveries_total", map[string]string{"system": "github", "result": "delivered"}); got != 1 {
		t.Errorf("got %v deliveries counted, want 1", got)
	}
}

// TestConcurrentDuplicates sends one signed Slack event from many
// connections at once: exactly one is queued.
func TestConcurrentDuplicates(t *testing.T) {
	th := openHub(t, Config{Endpoints: []Endpoint{{System: "slack", Tenant: "acme", Scheme: SchemeSlack, Secret: slackSecret}}})
	srv := httptest.NewServer(th.Handler())
	defer srv.Close()
	const body = `{"type":"event_callback","event_id":"EvDUP","event":{"type":"reaction_added"}}`
	ts := unix(time.Now())
	sig := "v0=" + hexMAC(slackSecret, "v0:"+ts+":"+body)
	const n = 20
	var wg sync.WaitGroup
	codes := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/slack/acme", bytes.NewReader([]byte(body)))
			req.Header.Set("X-Slack-Signature", sig)
			req.Header.Set("X-Slack-Request-Timestamp", ts)
			resp, err := srv.Client().Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || codes[i] != 200 {
			t.Errorf("request %d: got %d, %v; want 200", i, codes[i], errs[i])
		}
	}
	if got := th.countEvents(t, stateQueued); got != 1 {
		t.Errorf("got %d queued events, want 1", got)
	}
	if a, r := th.requests(t, "slack", OutcomeAccepted), th.requests(t, "slack", OutcomeReplayed); a != 1 || r != n-1 {
		t.Errorf("got %v accepted and %v replayed, want 1 and %d", a, r, n-1)
	}
}

func TestClosedHub(t *testing.T) {
	th := openHub(t, Config{Endpoints: []Endpoint{{System: "github", Tenant: "acme", Scheme: SchemeHMAC, Secret: hmacSecret}}})
	if err := th.Close(); err != nil {
		t.Fatal(err)
	}
	if err := th.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	const body = `{}`
	if w := th.do(post("/webhooks/github/acme", body, "X-Signature", "sha256="+hexMAC(hmacSecret, body))); w.Code != 503 {
		t.Errorf("request after Close: got %d, want 503", w.Code)
	}
	if err := th.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: got %v, want ErrClosed", err)
	}
	if _, err := th.DeadLetters(context.Background(), Filter{}); !errors.Is(err, ErrClosed) {
		t.Errorf("DeadLetters after Close: got %v, want ErrClosed", err)
	}
}
