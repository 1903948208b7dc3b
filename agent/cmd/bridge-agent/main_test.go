package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunnelclient"
)

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"--help"}, &out, &errb); err != nil || !strings.Contains(out.String(), "bridge-agent run") {
		t.Errorf("help: %v %q", err, out.String())
	}
	if err := run([]string{"enroll-me"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: %v", err)
	}
	if err := run([]string{"status", "--ops", "127.0.0.1:1"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "agent not reachable on 127.0.0.1:1") {
		t.Errorf("status with no agent: %v", err)
	}
}

func TestStatusScreen(t *testing.T) {
	st := agent.Status{Agent: "agent-01", Tenant: "acme", Version: "1.0", Uptime: "5m", Certificate: "expires in 23h",
		Tunnel: tunnelclient.Status{Ready: true, Protocol: tunnel.ProtocolAuto, Relays: []string{"r1:8443"},
			Sessions: []tunnel.LinkStatus{{Transport: tunnel.QUIC, Remote: "10.0.0.1:8443", Relay: "relay-a", RTTMillis: 12.5, Healthy: true, Since: time.Unix(0, 0)}}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(st) })}
	go srv.Serve(ln)
	defer srv.Close()
	var out bytes.Buffer
	if err := run([]string{"status", "--ops", ln.Addr().String()}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"agent-01 (tenant acme)", "expires in 23h", "UP", "quic", "relay-a", "12.50ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status screen lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "to do:") {
		t.Errorf("a healthy agent has things to do:\n%s", out.String())
	}
	st.Tunnel.Ready, st.Tunnel.Sessions = false, nil
	st.Crawl = []crawl.SiteStatus{
		{Site: "http://sp/sites/a", Phase: "incremental", SharePoint: sharepoint.Reach{Failure: "auth", LastFailure: time.Unix(100, 0)}},
		{Site: "http://sp/sites/b", Phase: "full", SharePoint: sharepoint.Reach{Failure: "unreachable", LastFailure: time.Unix(100, 0), Error: "dial tcp: connection refused"}},
		{Site: "http://sp/sites/c", Phase: "full", SharePoint: sharepoint.Reach{LastOK: time.Unix(100, 0)}},
	}
	out.Reset()
	if err := run([]string{"status", "--ops", ln.Addr().String()}, &out, &out); err == nil || !strings.Contains(out.String(), "DOWN") {
		t.Errorf("status with no tunnel: %v\n%s", err, out.String())
	}
	for _, want := range []string{"sites/a: REFUSED the account (HTTP 401)", "sites/b: UNREACHABLE", "connection refused",
		"sites/c: reachable, account accepted", "to do:", "tunnel down: run 'bridge-agent doctor'", "check sharepoint.auth"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status screen lacks %q:\n%s", want, out.String())
		}
	}
}

func TestEnrollFlags(t *testing.T) {
	var out, errb bytes.Buffer
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"enroll", "--token", "x"}, "--state-dir is required"},
		{[]string{"enroll", "--state-dir", t.TempDir()}, "--token"},
		{[]string{"enroll", "--state-dir", t.TempDir(), "--cert", "a.crt"}, "go together"},
		{[]string{"enroll", "--state-dir", t.TempDir(), "--token", "not-a-jwt"}, "not a step-ca token"},
	} {
		err := run(tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}
