package relay_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/relay"
)

// TestWebhooksThroughTheRelay: a signed Slack event posted to the relay's
// API is accepted and delivered to the configured subscriber; a forged one
// is refused and delivered nowhere; the secret is in no log.
func TestWebhooksThroughTheRelay(t *testing.T) {
	const secret = "Zq9-slack-signing-secret-77"
	got := make(chan string, 4)
	sub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- string(b)
	}))
	t.Cleanup(sub.Close)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slack.secret"), []byte(secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "sub.secret"), []byte("Zq9-subscriber-secret\n"), 0o600)
	r := startRelay(t, func(c *relay.Config) {
		c.API = relay.APIConfig{Listen: "127.0.0.1:0", DevTokens: true, Policies: filepath.Join(dir, "policies"), Audit: filepath.Join(dir, "audit")}
		c.Webhooks = relay.WebhooksConfig{Dir: filepath.Join(dir, "webhooks"),
			Endpoints:   []relay.WebhookEndpointConfig{{System: "slack", Tenant: "acme", Scheme: "slack", SecretFile: filepath.Join(dir, "slack.secret")}},
			Subscribers: []relay.WebhookSubscriberConfig{{System: "slack", URL: sub.URL, SecretFile: filepath.Join(dir, "sub.secret")}}}
	})
	post := func(body, sig string) int {
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		if sig == "" {
			m := hmac.New(sha256.New, []byte(secret))
			m.Write([]byte("v0:" + ts + ":" + body))
			sig = "v0=" + hex.EncodeToString(m.Sum(nil))
		}
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.APIAddr()+"/webhooks/slack/acme", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Slack-Request-Timestamp", ts)
		req.Header.Set("X-Slack-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	event := `{"type":"event_callback","event_id":"Ev01","event":{"type":"message","text":"launch at noon"}}`
	if code := post(event, ""); code != 200 {
		t.Fatalf("signed event: %d", code)
	}
	select {
	case b := <-got:
		if !strings.Contains(b, "launch at noon") && !strings.Contains(b, "Ev01") {
			t.Errorf("the subscriber got %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event never reached the subscriber")
	}
	if code := post(`{"type":"event_callback","event_id":"Ev02"}`, "v0="+strings.Repeat("0", 64)); code != 401 {
		t.Errorf("forged event: %d, want 401", code)
	}
	select {
	case b := <-got:
		t.Errorf("a forged event was delivered: %s", b)
	case <-time.After(500 * time.Millisecond):
	}
	if strings.Contains(r.logs(), "Zq9") {
		t.Error("a webhook secret is in the relay's log")
	}
}
