package agent_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "relays: [relay.example.com:8443]\ntls: {cert: a.crt, key: a.key, ca: root.crt}\n")
	cfg, err := agent.LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	def := agent.DefaultConfig()
	if cfg.Connections != def.Connections || cfg.Protocol != "auto" || cfg.Ops.Listen != "127.0.0.1:9464" ||
		cfg.Tunnel.ReprobeInterval != 5*time.Minute || cfg.Tunnel.FallbackDelay != 3*time.Second {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.TLS.Cert != filepath.Join(dir, "a.crt") {
		t.Errorf("relative cert path resolved to %q, want it next to the config file", cfg.TLS.Cert)
	}
	for _, tc := range []struct {
		name, body string
		want       []string
	}{
		{"unknown key", "relays: [r:1]\nrelay: x\ntls: {cert: a, key: b, ca: c}\n", []string{"bad.yaml", `unknown key "relay"`, "line 2"}},
		{"no relays", "tls: {cert: a, key: b, ca: c}\n", []string{"relays: at least one relay"}},
		{"bad protocol", "relays: [r:1]\nprotocol: udp\ntls: {cert: a, key: b, ca: c}\n", []string{"protocol", "auto, quic or tcp"}},
		{"bad proxy auth", "relays: [r:1]\nproxy_auth: kerberos\ntls: {cert: a, key: b, ca: c}\n", []string{"proxy_auth"}},
		{"proxy secret not echoed", "relays: [r:1]\nproxy: 'http://u:Zq9-secret@:bad'\ntls: {cert: a, key: b, ca: c}\n", []string{"proxy"}},
		{"no tls", "relays: [r:1]\n", []string{"pki.state_dir is required", "bridge-agent enroll"}},
		{"tls and pki", "relays: [r:1]\npki: {state_dir: s}\ntls: {cert: c, key: k, ca: r}\n", []string{"tls and pki are both set"}},
		{"sharepoint without account", "relays: [r:1]\npki: {state_dir: s}\nsharepoint: {sites: [https://sp/sites/a]}\n", []string{"sharepoint.auth.username is required", "exactly one of password_file and password_env"}},
		{"sharepoint bad site", "relays: [r:1]\npki: {state_dir: s}\nsharepoint: {sites: [sp/sites/a], auth: {method: none}}\n", []string{"not an http(s) URL"}},
		{"sharepoint bad method", "relays: [r:1]\npki: {state_dir: s}\nsharepoint: {sites: [https://sp/a], auth: {method: kerberos5, username: u, password_env: P}}\n", []string{"want ntlm, basic or none"}},
		{"bad duration", "relays: [r:1]\ntunnel: {heartbeat: often}\n", []string{"often"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agent.LoadConfig(write("bad.yaml", tc.body))
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "Zq9-secret") {
				t.Errorf("error %q reveals the proxy password", err)
			}
		})
	}
}

// TestAgentAndRelay runs the real agent and relay packages against each
// other: /readyz goes from 503 to 200, metrics count the sessions, status
// shows them, and the relay reaches the agent through the tunnel.
func TestAgentAndRelay(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	dir := t.TempDir()
	root, _ := pki.CA.WriteRoot(dir, "root")
	rc, rk, _ := devca.WriteFiles(dir, "relay", pki.Server)
	ac, ak, _ := devca.WriteFiles(dir, "agent", pki.Agent)
	log, _ := tunneltest.Logger(t)

	rcfg := relay.DefaultConfig()
	rcfg.Listen, rcfg.Ops.Listen, rcfg.RelayID = "127.0.0.1:0", "127.0.0.1:0", "relay-t"
	rcfg.TLS.Cert, rcfg.TLS.Key, rcfg.TLS.CA = rc, rk, root
	rcfg.Store.Dir = filepath.Join(dir, "store")
	r, err := relay.New(rcfg, log.With("side", "relay"), "test")
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdone := make(chan error, 1)
	if err := r.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { rdone <- r.Run(rctx) }()

	acfg := agent.DefaultConfig()
	acfg.Relays = []string{r.Server().TCPAddr().String()}
	acfg.Ops.Listen = "127.0.0.1:0"
	acfg.Proxy = "direct"
	acfg.TLS.Cert, acfg.TLS.Key, acfg.TLS.CA = ac, ak, root
	acfg.ServerName = "localhost"
	a, err := agent.New(acfg, log.With("side", "agent"), "test", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Identity().String(); got != "spiffe://acme/agent/agent-01" {
		t.Errorf("agent identity %s, want the one in its certificate", got)
	}
	adone := make(chan error, 1)
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	go func() { adone <- a.Run(ctx) }()
	waitFor(t, "agent /readyz 200", func() bool { code, _ := get(t, a.OpsAddr(), "/readyz"); return code == 200 })
	waitFor(t, "two sessions", func() bool { return len(a.Status().Tunnel.Sessions) == 2 })
	_, metrics := get(t, a.OpsAddr(), "/metrics")
	for _, m := range []string{`bridge_tunnel_connections{transport="quic"} 2`, "bridge_tunnel_rtt_seconds", "bridge_tunnel_streams_total"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("agent /metrics lacks %s", m)
		}
	}
	_, status := get(t, a.OpsAddr(), "/status")
	if !strings.Contains(status, `"ready": true`) || !strings.Contains(status, `"relay": "relay-t"`) {
		t.Errorf("agent /status = %s", status)
	}
	code, ping := get(t, r.OpsAddr(), "/v1/agents/acme/agent-01/ping")
	if code != 200 || !strings.Contains(ping, `"agent":"agent-01"`) {
		t.Errorf("relay -> agent ping: %d %s", code, ping)
	}
	if code, _ := get(t, r.OpsAddr(), "/v1/agents/acme/agent-77/ping"); code != http.StatusServiceUnavailable {
		t.Errorf("ping of an unknown agent: %d, want 503", code)
	}
	_, rstatus := get(t, r.OpsAddr(), "/status")
	if !strings.Contains(rstatus, `"agent": "agent-01"`) {
		t.Errorf("relay /status = %s", rstatus)
	}
	body, err := a.Client().OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	body.Write([]byte("GET /v1/tunnel/ping HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"))
	resp, _ := io.ReadAll(body)
	body.Close()
	if !strings.Contains(string(resp), "spiffe://acme/agent/agent-01") {
		t.Errorf("agent -> relay ping: %s", resp)
	}

	// The relay stops: the agent's /readyz turns 503 with the reason.
	rcancel()
	stopped := func(ch chan error) {
		t.Helper()
		select {
		case err := <-ch:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("did not stop")
		}
	}
	stopped(rdone)
	waitFor(t, "agent /readyz 503", func() bool {
		code, body := get(t, a.OpsAddr(), "/readyz")
		return code == 503 && strings.Contains(body, "no tunnel session")
	})
	cancel()
	stopped(adone)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
