package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcc-bridge/bridge/tunnel/endpoint"
)

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"help"}, &out, &errb); err != nil || !strings.Contains(out.String(), "bridge-relay serve") {
		t.Errorf("help: %v, %q", err, out.String())
	}
	out.Reset()
	if err := run([]string{"frobnicate"}, &out, &errb); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v", err)
	}
	if err := run([]string{"ping", "no-slash"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "TENANT/AGENT") {
		t.Errorf("ping without TENANT/AGENT: %v", err)
	}
	if err := run([]string{"serve", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("serve with a missing config: %v", err)
	}
}

func TestDevCerts(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"dev-certs", "--dir", dir, "--tenant", "globex", "--agent", "edge-7"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	files := endpoint.TLSFiles{Cert: filepath.Join(dir, "agent.crt"), Key: filepath.Join(dir, "agent.key"), CA: filepath.Join(dir, "root.crt")}
	cert, pool, err := files.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://globex/agent/edge-7" {
		t.Errorf("agent certificate URI %s", got)
	}
	if pool == nil {
		t.Error("no root pool")
	}
	st, _ := os.Stat(filepath.Join(dir, "agent.key"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("agent.key mode %v, want 0600", st.Mode().Perm())
	}
	// A second run keeps the files.
	before, _ := os.ReadFile(files.Cert)
	out.Reset()
	run([]string{"dev-certs", "--dir", dir}, &out, &out)
	after, _ := os.ReadFile(files.Cert)
	if !bytes.Equal(before, after) || !strings.Contains(out.String(), "already") {
		t.Errorf("second dev-certs replaced the certificates: %s", out.String())
	}
}

func TestCAInitAndToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	var out, errb bytes.Buffer
	if err := run([]string{"ca", "init", "--dir", dir, "--address", "127.0.0.1:9999"}, &out, &errb); err != nil {
		t.Fatalf("ca init: %v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), "fingerprint") || !strings.Contains(out.String(), "https://localhost:9999") {
		t.Errorf("ca init output: %s", out.String())
	}
	if st, err := os.Stat(filepath.Join(dir, "secrets", "password")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v", err)
	}
	// A second init must not overwrite the keys.
	if err := run([]string{"ca", "init", "--dir", dir}, &out, &errb); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second ca init: %v", err)
	}
	out.Reset()
	if err := run([]string{"agents", "token", "--tenant", "acme", "--agent", "agent-01", "--ca-dir", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if tok := strings.TrimSpace(out.String()); strings.Count(tok, ".") != 2 {
		t.Errorf("token %q is not a JWT", tok)
	}
	if err := run([]string{"agents", "token", "--tenant", "Bad Tenant", "--agent", "a", "--ca-dir", dir}, &out, &errb); err == nil {
		t.Error("a bad tenant name was accepted")
	}
	if err := run([]string{"agents", "revoke", "no-slash"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "TENANT/AGENT") {
		t.Errorf("revoke without TENANT/AGENT: %v", err)
	}
}

// TestOpsFromConfig: the client commands find the running relay at the
// ops.listen of --config, a wildcard host as loopback; --ops wins.
func TestOpsFromConfig(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/status":
			io.WriteString(w, "agents: 1\n")
		case "/v1/agents/acme/agent-01/ping":
			io.WriteString(w, `{"rtt_ms":1}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	cfg := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(cfg, []byte("tls:\n  cert: relay.crt\n  key: relay.key\n  ca: root.crt\nops:\n  listen: 0.0.0.0:"+port+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"agents", "--config", cfg}, "agents: 1"},
		{[]string{"ping", "acme/agent-01", "--config", cfg}, `"rtt_ms":1`},
		{[]string{"agents", "--config", cfg, "--ops", srv.Listener.Addr().String()}, "agents: 1"},
	} {
		var out, errb bytes.Buffer
		if err := run(tc.args, &out, &errb); err != nil || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: %v, %q, want %q", tc.args, err, out.String(), tc.want)
		}
	}
	if hits.Load() != 3 {
		t.Errorf("the relay got %d calls, want 3", hits.Load())
	}
	var out, errb bytes.Buffer
	err := run([]string{"agents", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("a missing config: %v, want an error naming it", err)
	}
	// An explicit --ops is used even with a config naming another address.
	err = run([]string{"agents", "--config", cfg, "--ops", "127.0.0.1:1"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("--ops 127.0.0.1:1: %v, want a failure naming it", err)
	}
}

func TestDialable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:9465", "127.0.0.1:9465"},
		{":9465", "127.0.0.1:9465"},
		{"0.0.0.0:9465", "127.0.0.1:9465"},
		{"[::]:9465", "[::1]:9465"},
		{"10.0.0.5:9000", "10.0.0.5:9000"},
	} {
		if got, err := dialable(tc.in); err != nil || got != tc.want {
			t.Errorf("dialable(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := dialable("no-port"); err == nil {
		t.Error("dialable accepted an address without a port")
	}
}
