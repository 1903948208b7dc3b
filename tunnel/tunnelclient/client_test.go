package tunnelclient_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/control"
	"github.com/mcc-bridge/bridge/tunnel/tunnelclient"
	"github.com/mcc-bridge/bridge/tunnel/tunneltcp"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

var agentHost = tunnel.Identity{Tenant: "acme", Agent: "agent-01"}.Host()

// TestBothDirections: over each transport, the agent calls the relay and the
// relay calls the agent with plain net/http, and each side sees who called.
func TestBothDirections(t *testing.T) {
	for _, proto := range append(transports, tunnel.ProtocolAuto) {
		t.Run(string(proto), func(t *testing.T) {
			tunneltest.VerifyNoLeaks(t)
			pki := tunneltest.NewPKI(t)
			r := startRelay(t, pki, "relay-a")
			// A loaded test machine can make auto mode fall back; it must
			// then come back to QUIC at the next probe.
			a := startAgent(t, pki, tunnelclient.Config{Relays: []string{r.addr}, Protocol: proto, ReprobeInterval: time.Second})
			want := tunnel.Transport(proto)
			if proto == tunnel.ProtocolAuto {
				want = tunnel.QUIC
			}
			waitFor(t, 15*time.Second, "two sessions over "+string(want), func() bool {
				return slices.Equal(linkTransports(a.c), []tunnel.Transport{want, want})
			})
			body, err := get(a.http, "http://relay/ping")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(body, `"peer":"spiffe://acme/agent/agent-01"`) || !strings.Contains(body, `"side":"relay-a"`) {
				t.Errorf("relay answered %s, want it to name the agent's verified identity", body)
			}
			body, err = get(r.http, "http://"+agentHost+"/ping")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(body, `"side":"agent"`) {
				t.Errorf("agent answered %s", body)
			}
			if _, err := get(r.http, "http://agent-99.acme.agent.tunnel/ping"); err == nil || !strings.Contains(err.Error(), "offline") {
				t.Errorf("call to an unknown agent: got %v, want an offline error", err)
			}
			agents := r.srv.Agents()
			if len(agents) != 1 || agents[0].Agent != "agent-01" || len(agents[0].Sessions) != 2 {
				t.Errorf("relay registry %+v, want agent-01 with 2 sessions", agents)
			}
			if !a.c.Ready() {
				t.Error("client not ready with two sessions up")
			}
		})
	}
}

// TestGoAwayDrain: a relay shuts down while requests are in flight in both
// directions; every one of them completes, and new requests move to the other
// relay before the old sessions close.
func TestGoAwayDrain(t *testing.T) {
	for _, proto := range transports {
		t.Run(string(proto), func(t *testing.T) {
			tunneltest.VerifyNoLeaks(t)
			pki := tunneltest.NewPKI(t)
			ra := startRelay(t, pki, "relay-a")
			rb := startRelay(t, pki, "relay-b")
			a := startAgent(t, pki, tunnelclient.Config{Relays: []string{ra.addr, rb.addr}, Protocol: proto})
			waitFor(t, 10*time.Second, "sessions to both relays", func() bool {
				return len(ra.srv.Agents()) == 1 && len(rb.srv.Agents()) == 1
			})
			var g errgroup.Group
			var onA atomic.Int32
			// Agent -> relay: slow requests spread over both sessions.
			for i := range 16 {
				g.Go(func() error {
					body, err := get(a.http, "http://relay/slow?ms=800")
					if err != nil {
						return fmt.Errorf("agent->relay request %d in flight: %w", i, err)
					}
					if strings.HasPrefix(body, "relay-a") {
						onA.Add(1)
					}
					return nil
				})
			}
			// Relay A -> agent: slow calls that must finish during A's drain.
			for i := range 4 {
				g.Go(func() error {
					if _, err := get(ra.http, "http://"+agentHost+"/slow?ms=800"); err != nil {
						return fmt.Errorf("relay->agent call %d in flight: %w", i, err)
					}
					return nil
				})
			}
			time.Sleep(200 * time.Millisecond)
			stopped := make(chan error, 1)
			go func() { stopped <- ra.stop() }()
			// New requests during the drain go to relay B.
			time.Sleep(100 * time.Millisecond)
			for i := range 10 {
				body, err := get(a.http, "http://relay/ping")
				if err != nil {
					t.Fatalf("request %d during drain: %v", i, err)
				}
				if !strings.Contains(body, "relay-b") {
					t.Errorf("request %d during drain went to %s, want relay-b", i, body)
				}
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			if err := <-stopped; err != nil {
				t.Errorf("relay A shutdown: %v, want a complete drain", err)
			}
			if onA.Load() == 0 {
				t.Error("no in-flight request was on relay A: the test proved nothing")
			}
			if !strings.Contains(ra.logs(), "drained after GOAWAY") {
				t.Error("relay A's sessions did not end by a complete drain")
			}
			// The agent holds two sessions again, both to relay B.
			waitFor(t, 10*time.Second, "two sessions to relay B", func() bool {
				ag := rb.srv.Agents()
				return len(ag) == 1 && len(ag[0].Sessions) == 2
			})
		})
	}
}

// TestFallbackAndReturn: with UDP dropped, auto mode connects over TCP in
// under 10 s; when UDP comes back, sessions move to QUIC without breaking a
// request in flight.
func TestFallbackAndReturn(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	pki := tunneltest.NewPKI(t)
	r := startRelay(t, pki, "relay-a")
	addr, gate := sharedPort(t, r.addr)
	gate.drop.Store(true)
	start := time.Now()
	a := startAgent(t, pki, tunnelclient.Config{
		Relays:          []string{addr},
		Protocol:        tunnel.ProtocolAuto,
		ReprobeInterval: 2 * time.Second,
	})
	waitFor(t, 10*time.Second, "a session over TCP", func() bool { return len(linkTransports(a.c)) == 2 })
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("fallback took %v, want under 10s", took)
	}
	t.Logf("connected over TCP %v after start with UDP dropped", took.Round(time.Millisecond))
	if got := linkTransports(a.c); !slices.Equal(got, []tunnel.Transport{tunnel.TCP, tunnel.TCP}) {
		t.Fatalf("transports %v with UDP dropped, want tcp twice", got)
	}
	// A request in flight over TCP while UDP returns and sessions move.
	inflight := make(chan error, 1)
	go func() {
		_, err := get(a.http, "http://relay/slow?ms=4000")
		inflight <- err
	}()
	time.Sleep(200 * time.Millisecond)
	gate.drop.Store(false)
	waitFor(t, 15*time.Second, "sessions back on QUIC", func() bool {
		return slices.Equal(linkTransports(a.c), []tunnel.Transport{tunnel.QUIC, tunnel.QUIC})
	})
	if err := <-inflight; err != nil {
		t.Errorf("request in flight during the move back to QUIC failed: %v", err)
	}
	if _, err := get(a.http, "http://relay/ping"); err != nil {
		t.Errorf("request after the move: %v", err)
	}
	if !strings.Contains(a.logs(), "QUIC is back") {
		t.Error("agent log does not say it moved back to QUIC")
	}
}

// TestRefusedAgents: an agent certificate from another CA, an expired one,
// or none, over each transport: no session, a clear error for the agent, a
// clear line in the relay log.
func TestRefusedAgents(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	other, _ := devca.New("other root")
	foreign, _ := other.Agent(devca.Valid(), "acme", "agent-01")
	expired := pki.AgentCert(t, devca.Expired(), "acme", "agent-01")
	noIdentity := pki.AgentCert(t, devca.Valid(), "Not_A_Tenant", "agent-01")
	for _, proto := range append(transports, tunnel.ProtocolAuto) {
		for _, tc := range []struct {
			name      string
			cfg       func() tunnelclient.Config
			agentSays string
			relaySays string
			onRefused bool // the relay refused: OnRefused is called (else the agent gave up before dialing)
		}{
			{"other CA", func() tunnelclient.Config { return tunnelclient.Config{TLS: clientTLS(pki, foreign)} },
				"not issued by a CA the relay trusts", "not issued by a CA this relay trusts", true},
			{"expired", func() tunnelclient.Config { return tunnelclient.Config{TLS: clientTLS(pki, expired)} },
				"agent certificate expired", "", false},
			{"none", func() tunnelclient.Config { return tunnelclient.Config{TLS: pki.ClientTLS()} },
				"no agent certificate configured", "", false},
			{"no agent identity", func() tunnelclient.Config { return tunnelclient.Config{TLS: clientTLS(pki, noIdentity)} },
				"the relay log says why", "does not carry an agent identity", true},
		} {
			t.Run(string(proto)+"/"+tc.name, func(t *testing.T) {
				r := startRelay(t, pki, "relay-a")
				cfg := tc.cfg()
				cfg.Relays, cfg.Protocol, cfg.Connections = []string{r.addr}, proto, 1
				var refusals atomic.Int64
				cfg.OnRefused = func(error) { refusals.Add(1) }
				a := startAgent(t, pki, cfg)
				waitFor(t, 10*time.Second, "the refusal in the agent log", func() bool {
					return strings.Contains(a.logs(), tc.agentSays)
				})
				if tc.onRefused {
					// Every attempt is refused; each one is reported, none is
					// taken for a network failure (a broken pipe on the
					// agent's first write included).
					waitFor(t, 10*time.Second, "OnRefused", func() bool { return refusals.Load() > 0 })
					for _, line := range strings.Split(a.logs(), "\n") {
						if strings.Contains(line, "tunnel connect failed") && !strings.Contains(line, "refused") {
							t.Errorf("the agent logged a refusal as a network failure: %s", line)
						}
					}
				}
				if tc.relaySays != "" {
					waitFor(t, 5*time.Second, "the refusal in the relay log", func() bool {
						return strings.Contains(r.logs(), tc.relaySays)
					})
				}
				if len(r.srv.Agents()) != 0 || a.c.Ready() {
					t.Error("a refused agent got a session")
				}
				if strings.Contains(a.logs(), "falling back to TCP") {
					t.Error("a refusal over QUIC was taken for blocked UDP")
				}
			})
		}
	}
}

// TestHelloIdentityMismatch: HELLO naming another agent than the certificate is refused.
func TestHelloIdentityMismatch(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	r := startRelay(t, pki, "relay-a")
	for _, proto := range transports {
		t.Run(string(proto), func(t *testing.T) {
			sess := dialRaw(t, pki, proto, r.addr)
			_, err := tunnel.Connect(context.Background(), sess, controlHello("agent-02", "acme"), tunnel.LinkConfig{})
			if err == nil || !strings.Contains(err.Error(), "identity_mismatch") {
				t.Fatalf("got %v, want an identity_mismatch refusal", err)
			}
		})
	}
}

// TestManyRequestsBothWays: concurrent HTTP in both directions over both
// sessions; a bounded load check of the whole stack.
func TestManyRequestsBothWays(t *testing.T) {
	for _, proto := range transports {
		t.Run(string(proto), func(t *testing.T) {
			tunneltest.VerifyNoLeaks(t)
			pki := tunneltest.NewPKI(t)
			r := startRelay(t, pki, "relay-a")
			a := startAgent(t, pki, tunnelclient.Config{Relays: []string{r.addr}, Protocol: proto})
			waitFor(t, 10*time.Second, "sessions", func() bool { return len(linkTransports(a.c)) == 2 })
			var g errgroup.Group
			g.SetLimit(64)
			var mu sync.Mutex
			perSession := map[string]int{}
			for i := range 1000 {
				g.Go(func() error {
					payload := strings.Repeat(fmt.Sprint(i%10), 1024)
					for _, c := range []*http.Client{a.http, r.http} {
						url := "http://relay/echo"
						if c == r.http {
							url = "http://" + agentHost + "/echo"
						}
						resp, err := c.Post(url, "text/plain", strings.NewReader(payload))
						if err != nil {
							return err
						}
						b, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err != nil || string(b) != payload {
							return fmt.Errorf("echo %d: got %d bytes (%v)", i, len(b), err)
						}
					}
					return nil
				})
			}
			if err := g.Wait(); err != nil {
				t.Fatal(err)
			}
			for _, l := range a.c.Links() {
				mu.Lock()
				perSession[l.Welcome().Session] = int(l.Status().TxBytes)
				mu.Unlock()
			}
			for s, n := range perSession {
				if n == 0 {
					t.Errorf("session %s carried nothing: load was not spread", s)
				}
			}
		})
	}
}

// TestBadControlFrames: after a good handshake the agent sends a malformed
// or oversized control frame; the relay closes that session with a clear log
// line, and keeps serving others.
func TestBadControlFrames(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	r := startRelay(t, pki, "relay-a")
	for _, proto := range transports {
		for _, tc := range []struct {
			name  string
			frame []byte
			log   string
		}{
			{"unknown type", []byte{0x42, 0, 2, '{', '}'}, "unknown control frame type"},
			{"oversized", []byte{byte(control.TypeGoAway), 0xff, 0xff}, "control frame payload too large"},
			{"bad json", []byte{byte(control.TypeGoAway), 0, 3, '{', '!', '}'}, "malformed control frame"},
			{"second hello", append([]byte{byte(control.TypeHello), 0, 2}, "{}"...), "unexpected HELLO"},
		} {
			t.Run(string(proto)+"/"+tc.name, func(t *testing.T) {
				sess := dialRaw(t, pki, proto, r.addr)
				ctrl, err := sess.OpenStream(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if err := control.WriteMessage(ctrl, &control.Hello{Protocol: control.Version, Agent: "agent-01", Tenant: "acme"}); err != nil {
					t.Fatal(err)
				}
				if m, err := control.NewReader(ctrl).ReadMessage(); err != nil || m.Type() != control.TypeWelcome {
					t.Fatalf("after HELLO: got %v (%v), want WELCOME", m, err)
				}
				waitFor(t, 5*time.Second, "the session in the registry", func() bool { return len(r.srv.Agents()) == 1 })
				ctrl.Write(tc.frame)
				select {
				case <-sess.Done():
				case <-time.After(10 * time.Second):
					t.Fatal("relay did not close the session")
				}
				waitFor(t, 5*time.Second, "a log line naming the problem", func() bool { return strings.Contains(r.logs(), tc.log) })
				waitFor(t, 5*time.Second, "the session to leave the registry", func() bool { return len(r.srv.Agents()) == 0 })
			})
		}
	}
	// The relay still serves a well-behaved agent.
	a := startAgent(t, pki, tunnelclient.Config{Relays: []string{r.addr}})
	waitFor(t, 10*time.Second, "a good agent to connect", a.c.Ready)
	if _, err := get(a.http, "http://relay/ping"); err != nil {
		t.Fatal(err)
	}
}

// TestBadTransportBytes: garbage where yamux frames belong (after a good TLS
// handshake) closes that session without bringing the relay down.
func TestBadTransportBytes(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	r := startRelay(t, pki, "relay-a")
	conn, err := tls.Dial("tcp", r.addr, tunnel.ClientTLS(pki.ClientTLS(pki.Agent), tunneltcp.ALPN))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A yamux header with version 9, then noise.
	conn.Write([]byte{9, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 'j', 'u', 'n', 'k'})
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("relay did not close the connection cleanly: %v", err)
	}
	waitFor(t, 5*time.Second, "a log line naming the problem", func() bool {
		return strings.Contains(r.logs(), "invalid protocol version")
	})
	a := startAgent(t, pki, tunnelclient.Config{Relays: []string{r.addr}, Protocol: tunnel.ProtocolTCP})
	waitFor(t, 10*time.Second, "a good agent to connect", a.c.Ready)
}

// TestThroughProxy: the TCP transport reaches the relay through a real
// HTTP CONNECT proxy (tinyproxy) with Basic auth; a wrong password gives a
// clear error that does not contain the password.
func TestThroughProxy(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	r := startRelay(t, pki, "relay-a")
	_, port, _ := net.SplitHostPort(r.addr)
	const password = "pr0xy-S3cret-9q"
	proxyAddr := tunneltest.StartTinyproxy(t, port, "svc-bridge", password)
	for _, tc := range []struct {
		name     string
		password string
		wantLog  string
	}{
		{"right password", password, ""},
		{"wrong password", password + "x", "proxy authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &url.URL{Scheme: "http", Host: proxyAddr, User: url.UserPassword("svc-bridge", tc.password)}
			a := startAgent(t, pki, tunnelclient.Config{
				Relays: []string{r.addr}, Protocol: tunnel.ProtocolTCP, Connections: 1,
				Proxy: func(string) (*url.URL, error) { return u, nil },
			})
			if tc.wantLog == "" {
				waitFor(t, 10*time.Second, "a session through the proxy", a.c.Ready)
				body, err := get(a.http, "http://relay/ping")
				if err != nil || !strings.Contains(body, "spiffe://acme/agent/agent-01") {
					t.Fatalf("request through the proxy: %q, %v", body, err)
				}
				return
			}
			waitFor(t, 10*time.Second, "a clear proxy error", func() bool { return strings.Contains(a.logs(), tc.wantLog) })
			if a.c.Ready() {
				t.Error("connected with a wrong proxy password")
			}
			if strings.Contains(a.logs(), password) {
				t.Error("the proxy password appears in the agent log")
			}
		})
	}
}

// TestProxyGetsTheRelayName: the proxy is chosen for, and asked to
// CONNECT to, the relay's configured name, not the address it resolved to,
// so NO_PROXY and proxy allow-lists by host name work.
func TestProxyGetsTheRelayName(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	r := startRelay(t, pki, "relay-a")
	_, port, _ := net.SplitHostPort(r.addr)
	proxyAddr := tunneltest.StartTinyproxy(t, port, "svc-bridge", "pw-123456")
	u := &url.URL{Scheme: "http", Host: proxyAddr, User: url.UserPassword("svc-bridge", "pw-123456")}
	var mu sync.Mutex
	var asked []string
	relay := net.JoinHostPort("localhost", port)
	a := startAgent(t, pki, tunnelclient.Config{
		Relays: []string{relay}, Protocol: tunnel.ProtocolTCP, Connections: 1,
		Proxy: func(target string) (*url.URL, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, target)
			return u, nil
		},
	})
	waitFor(t, 10*time.Second, "a session through the proxy", a.c.Ready)
	mu.Lock()
	defer mu.Unlock()
	for _, got := range asked {
		if got != relay {
			t.Errorf("the proxy was chosen for %q, want the configured name %q", got, relay)
		}
	}
	if len(asked) == 0 {
		t.Error("the proxy function was never asked")
	}
}

// TestKeepAliveAndDrain: sequential requests reuse streams in both
// directions, and idle keep-alive streams do not hold up a drain.
func TestKeepAliveAndDrain(t *testing.T) {
	for _, proto := range transports {
		t.Run(string(proto), func(t *testing.T) {
			tunneltest.VerifyNoLeaks(t)
			pki := tunneltest.NewPKI(t)
			r := startRelay(t, pki, "relay-a")
			a := startAgent(t, pki, tunnelclient.Config{Relays: []string{r.addr}, Protocol: proto, Connections: 1})
			waitFor(t, 10*time.Second, "a session", a.c.Ready)
			for i := range 30 {
				if _, err := get(a.http, "http://relay/ping"); err != nil {
					t.Fatalf("agent->relay %d: %v", i, err)
				}
				if _, err := get(r.http, "http://"+agentHost+"/ping"); err != nil {
					t.Fatalf("relay->agent %d: %v", i, err)
				}
			}
			st := a.c.Links()[0].Status()
			if st.StreamsTotal > 4 {
				t.Errorf("60 sequential requests opened %d streams, want them reused (at most a few)", st.StreamsTotal)
			}
			if st.ActiveStreams == 0 {
				t.Error("no idle keep-alive stream open after the requests: the drain below proves nothing")
			}
			start := time.Now()
			if err := r.stop(); err != nil {
				t.Fatalf("relay shutdown: %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("drain took %v with only idle streams open, want well under the 10s timeout", d)
			}
			if !strings.Contains(r.logs(), "drained after GOAWAY") {
				t.Error("the session did not end by a complete drain")
			}
		})
	}
}
