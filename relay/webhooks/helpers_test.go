package webhooks

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Secrets of the tests; every test that can checks that none of them
// leaks into logs, errors or responses.
const (
	slackSecret     = "slack-signing-secret-0123456789"
	hmacSecret      = "generic-hmac-secret-abcdef"
	workfrontToken  = "workfront-auth-token-XYZ"
	workfrontSecret = "workfront-signature-secret-777"
	asanaSecret     = "asana-hook-secret-5150"
)

var allSecrets = []string{slackSecret, hmacSecret, workfrontToken, workfrontSecret, asanaSecret}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logSink collects log output and copies it to t.Log.
type logSink struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testHub is a Hub with its registry and logs.
type testHub struct {
	*Hub
	reg  *prometheus.Registry
	logs *logSink
	cfg  Config
}

// openHub opens a Hub in cfg.Dir (a new t.TempDir() when empty) with a
// fresh registry (unless cfg has one) and logs to t; Close runs at cleanup.
func openHub(t testing.TB, cfg Config) *testHub {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	reg, _ := cfg.Registerer.(*prometheus.Registry)
	if reg == nil {
		reg = prometheus.NewRegistry()
		cfg.Registerer = reg
	}
	logs := &logSink{t: t}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &testHub{Hub: h, reg: reg, logs: logs, cfg: cfg}
}

// do serves r and returns the recorded response.
func (th *testHub) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	th.Handler().ServeHTTP(w, r)
	return w
}

// requests returns bridge_webhook_requests_total{system,outcome}.
func (th *testHub) requests(t testing.TB, system string, o Outcome) float64 {
	return counterValue(t, th.reg, "bridge_webhook_requests_total", map[string]string{"system": system, "outcome": string(o)})
}

// countEvents counts the events in state.
func (th *testHub) countEvents(t testing.TB, state string) int {
	t.Helper()
	var n int
	if err := th.store.db.QueryRow("SELECT count(*) FROM events WHERE state = ?", state).Scan(&n); err != nil {
		t.Fatalf("count events: %v", err)
	}
	return n
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// hexMAC is hex(HMAC-SHA256(secret, msg)), computed independently of the
// package's macKey.
func hexMAC(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// post builds a POST to path with body and header pairs.
func post(path, body string, kv ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			r.Header.Set(kv[i], kv[i+1])
		}
	}
	return r
}

// unix is t's Unix time in seconds, as a header value.
func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// noSecrets fails t if s holds any test secret.
func noSecrets(t testing.TB, what, s string) {
	t.Helper()
	for _, sec := range allSecrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s holds a secret: %q", what, s)
		}
	}
}
