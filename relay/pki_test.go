package relay_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smallstep/certificates/ca"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/pki/pkitest"
	"github.com/mcc-bridge/bridge/pki/renew"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunnelquic"
	"github.com/mcc-bridge/bridge/tunnel/tunneltcp"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

type testRelay struct {
	*relay.Relay
	cfg  relay.Config
	logs func() string
	addr string
}

// startRelay runs a relay with the embedded CA (or, with edit, anything
// else) on loopback until the test ends.
func startRelay(t *testing.T, edit func(*relay.Config)) *testRelay {
	t.Helper()
	dir := t.TempDir()
	cfg := relay.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.RelayID = "relay-" + filepath.Base(dir)
	cfg.Ops.Listen = "127.0.0.1:0"
	cfg.PKI.CA = relay.EmbeddedCAConfig{Dir: filepath.Join(dir, "ca"), Listen: "127.0.0.1:0", Init: true}
	cfg.PKI.StateDir = filepath.Join(dir, "state")
	cfg.Store.Dir = filepath.Join(dir, "store")
	cfg.PKI.CRLRefresh = time.Second
	cfg.PKI.Sweep = time.Second
	cfg.Tunnel.DrainTimeout = 2 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	log, logs := tunneltest.Logger(t)
	r, err := relay.New(cfg, log, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Listen(); err != nil {
		r.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay run: %v", err)
		}
	})
	return &testRelay{Relay: r, cfg: cfg, logs: logs, addr: r.Server().TCPAddr().String()}
}

func (r *testRelay) post(t *testing.T, path string, out any) {
	t.Helper()
	resp, err := http.Post("http://"+r.OpsAddr()+path, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("POST %s: %v in %s", path, err, body)
	}
}

func (r *testRelay) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + r.OpsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// enrollAgent gets a token from the relay's ops API and enrolls into a new
// state directory.
func enrollAgent(t *testing.T, r *testRelay, tenant, agentID string) enroll.Store {
	t.Helper()
	var tok struct{ Token, CA_URL, Fingerprint string }
	r.post(t, fmt.Sprintf("/v1/agents/%s/%s/token", tenant, agentID), &tok)
	st := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	if _, err := enroll.Enroll(context.Background(), tok.Token, st, enroll.Options{}); err != nil {
		t.Fatal(err)
	}
	return st
}

type testAgent struct {
	*agent.Agent
	logs func() string
	// stop ends the agent and waits for it; it is idempotent.
	stop func()
}

func startAgent(t *testing.T, st enroll.Store, protocol tunnel.Protocol, relays ...string) *testAgent {
	t.Helper()
	return startAgentWith(t, st, protocol, relays, nil, func(string) string { return "" })
}

// startAgentWith is startAgent with a configuration edit and an environment.
func startAgentWith(t *testing.T, st enroll.Store, protocol tunnel.Protocol, relays []string, edit func(*agent.Config), getenv func(string) string) *testAgent {
	t.Helper()
	cfg := agent.DefaultConfig()
	cfg.Relays = relays
	cfg.Connections = len(relays)
	cfg.Protocol = string(protocol)
	cfg.Proxy = "direct"
	cfg.PKI.StateDir = st.Dir
	cfg.Ops.Listen = "127.0.0.1:0"
	cfg.Tunnel.BackoffMax = time.Second
	cfg.Tunnel.DrainTimeout = 2 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	log, logs := tunneltest.Logger(t)
	a, err := agent.New(cfg, log, "test", getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stop := sync.OnceFunc(func() {
		cancel()
		<-done
	})
	t.Cleanup(stop)
	return &testAgent{Agent: a, logs: logs, stop: stop}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPKIEndToEnd: token -> enroll -> tunnel up -> renewal of short-lived
// certificates while a stream transfers the whole time -> revoke -> the
// agent's sessions close on the relay that revoked (at once) and on a second
// relay that learns it from the CRL, and renewal is refused.
func TestPKIEndToEnd(t *testing.T) {
	for _, proto := range []tunnel.Protocol{tunnel.ProtocolQUIC, tunnel.ProtocolTCP} {
		t.Run(string(proto), func(t *testing.T) {
			a1 := startRelay(t, func(c *relay.Config) { c.PKI.CA.AgentCertDuration = 12 * time.Second })
			// A second relay trusts the first one's CA as an external CA.
			st2 := enroll.Store{Dir: t.TempDir(), Name: "relay"}
			m := relayMinter(t, a1)
			tok, err := m.ServerToken([]string{"127.0.0.1", "localhost"}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := enroll.Enroll(context.Background(), tok, st2, enroll.Options{}); err != nil {
				t.Fatal(err)
			}
			fp := a1.Status().PKI.RootFingerprint
			b1 := startRelay(t, func(c *relay.Config) {
				c.PKI.CA = relay.EmbeddedCAConfig{}
				c.PKI.CAURL = a1.CAURL()
				c.PKI.Fingerprint = fp
				c.PKI.StateDir = st2.Dir
			})

			st := enrollAgent(t, a1, "acme", "agent-01")
			ag := startAgent(t, st, proto, a1.addr, b1.addr)
			id := tunnel.Identity{Tenant: "acme", Agent: "agent-01"}
			waitFor(t, 15*time.Second, "sessions to both relays", func() bool {
				return len(a1.Server().PeerSerials(id)) == 1 && len(b1.Server().PeerSerials(id)) == 1
			})
			firstSerial := ag.Status().Renewal.Serial

			// A transfer from the agent through relay a1 that lasts across a renewal.
			client := &http.Client{Transport: a1.Server().HTTPTransport()}
			resp, err := client.Get("http://" + id.Host() + "/v1/diag/bytes?n=" + fmt.Sprint(64<<20))
			if err != nil {
				t.Fatal(err)
			}
			var got int64
			buf := make([]byte, 256<<10)
			start := time.Now()
			for {
				n, err := resp.Body.Read(buf)
				got += int64(n)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("transfer broke after %d bytes: %v", got, err)
				}
				// Read slowly enough to outlast the renewal (about 6s in).
				if ag.Status().Renewal.Serial == firstSerial && time.Since(start) < 20*time.Second {
					time.Sleep(60 * time.Millisecond)
				}
			}
			resp.Body.Close()
			if got != 64<<20 {
				t.Fatalf("transfer got %d bytes, want %d", got, 64<<20)
			}
			renewed := ag.Status().Renewal
			if renewed.Serial == firstSerial || renewed.State != "valid" {
				t.Fatalf("no renewal during the transfer: %+v", renewed)
			}
			if s := a1.Server().PeerSerials(id); len(s) != 1 || s[0] != firstSerial {
				t.Errorf("the session was replaced during renewal: serials %v, want the first %s", s, firstSerial)
			}

			// Revoke on a1: both serials revoked at the CA, sessions closed.
			var res relay.RevokeResult
			a1.post(t, "/v1/agents/acme/agent-01/revoke?reason=test", &res)
			if !res.Denied || len(res.RevokedSerials) < 2 || len(res.Errors) > 0 {
				t.Fatalf("revoke: %+v", res)
			}
			waitFor(t, 5*time.Second, "a1 to drop the agent", func() bool { return len(a1.Server().PeerSerials(id)) == 0 })
			waitFor(t, 20*time.Second, "b1 to drop the agent after its CRL refresh", func() bool { return len(b1.Server().PeerSerials(id)) == 0 })
			if !strings.Contains(b1.logs(), "client certificate is revoked") {
				t.Error("b1 does not log why it closed the session")
			}
			time.Sleep(2 * time.Second) // let the agent retry
			if len(a1.Server().PeerSerials(id)) != 0 || len(b1.Server().PeerSerials(id)) != 0 {
				t.Error("the revoked agent connected again")
			}
			if m := a1.metric(t, "bridge_tunnel_refusals_total"); !strings.Contains(m, `reason="denied"`) && !strings.Contains(m, `reason="revoked"`) {
				t.Errorf("no refusal metric on a1: %q", m)
			}
			if crl := b1.Status().PKI.CRL; crl.Revoked < 2 || crl.LastError != "" {
				t.Errorf("b1 CRL: %+v", crl)
			}
			// The agent asked the CA after the refusal: it must re-enroll.
			waitFor(t, 10*time.Second, "the agent to report re-enrollment needed", func() bool {
				return ag.Status().Renewal.State == renew.StateReenroll
			})
			resp, err = http.Get("http://" + ag.OpsAddr() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "re-enrollment needed") {
				t.Errorf("agent /readyz: %s %s", resp.Status, body)
			}
			if m := getText(t, "http://"+ag.OpsAddr()+"/metrics"); !strings.Contains(m, "bridge_pki_reenrollment_needed{certificate=\"agent\"} 1") {
				t.Errorf("agent metrics lack reenrollment_needed 1")
			}
			// Renewal is refused now.
			if err := renewNow(t, st); err == nil {
				t.Error("a revoked agent renewed its certificate")
			}
		})
	}
}

func relayMinter(t *testing.T, r *testRelay) *stepca.Minter {
	t.Helper()
	pw, err := os.ReadFile(stepca.Layout{Dir: r.cfg.PKI.CA.Dir}.Password())
	if err != nil {
		t.Fatal(err)
	}
	m, err := stepca.NewRemoteMinter(context.Background(), r.CAURL(), r.Status().PKI.RootFingerprint, stepca.RelayProvisioner, pw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func renewNow(t *testing.T, st enroll.Store) error {
	t.Helper()
	r, err := renew.New(renew.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return r.RenewNow(context.Background())
}

// TestRefusals: every kind of bad agent certificate is refused over both
// transports, with a clear relay log line and a metric per reason.
func TestRefusals(t *testing.T) {
	r := startRelay(t, nil)
	ca := r.EmbeddedCA()
	good := "spiffe://acme/agent/agent-09"
	other, _ := devca.New("other root")
	foreign, _ := other.Agent(devca.Valid(), "acme", "agent-09")
	revoked := pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{good}})
	var res relay.RevokeResult
	// Deny then allow again: the serial stays revoked at the CA.
	m, err := ca.Minter(stepca.AgentProvisioner)
	if err != nil {
		t.Fatal(err)
	}
	conn := caConn(t, r)
	if err := m.Revoke(context.Background(), conn, revoked.Leaf.SerialNumber.String(), "test"); err != nil {
		t.Fatal(err)
	}
	r.post(t, "/v1/agents/acme/agent-10/revoke", &res)
	denied := pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{"spiffe://acme/agent/agent-10"}})
	waitFor(t, 10*time.Second, "the CRL to list the revoked serial", func() bool { return r.Status().PKI.CRL.Revoked >= 1 })

	for _, tc := range []struct {
		name, reason, relaySays string
		cert                    tls.Certificate
	}{
		{"another CA", "another_ca", "not issued by a CA this relay trusts", foreign},
		{"expired", "expired", "has expired", pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{good}, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})},
		{"not yet valid", "not_yet_valid", "not yet valid", pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{good}, NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(2 * time.Hour)})},
		{"revoked", "revoked", "is revoked", revoked},
		{"denied", "denied", "deny list", denied},
		{"wrong EKU", "wrong_eku", "not for client authentication", pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{good}, EKU: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})},
		{"other provisioner", "wrong_provisioner", "another provisioner", pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{good}, Provisioner: "admin"})},
		{"no provisioner", "wrong_provisioner", "another provisioner", pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{good}, Provisioner: "-"})},
		{"missing URI", "bad_identity", "does not carry an agent identity", pkitest.Issue(t, ca, pkitest.Leaf{})},
		{"two URIs", "bad_identity", "does not carry an agent identity", pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{good, "spiffe://acme/agent/agent-11"}})},
		{"malformed URI", "bad_identity", "does not carry an agent identity", pkitest.Issue(t, ca, pkitest.Leaf{URIs: []string{"spiffe://acme/relay/x"}})},
	} {
		for _, proto := range []tunnel.Protocol{tunnel.ProtocolQUIC, tunnel.ProtocolTCP} {
			t.Run(tc.name+"/"+string(proto), func(t *testing.T) {
				before := countLines(r.logs(), tc.relaySays)
				// Dial with the transports directly: the agent's own client
				// would not even offer an expired certificate.
				conf := &tls.Config{Certificates: []tls.Certificate{tc.cert}, RootCAs: rootPool(r)}
				var d interface {
					Dial(context.Context, string) (tunnel.Session, error)
				} = &tunneltcp.Dialer{TLS: conf}
				if proto == tunnel.ProtocolQUIC {
					d = &tunnelquic.Dialer{TLS: conf}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				sess, err := d.Dial(ctx, r.addr)
				if err == nil {
					defer sess.Close()
					// TLS 1.3: the refusal arrives after the client's handshake.
					_, err = sess.AcceptStream(ctx)
				}
				if err == nil {
					t.Error("a refused certificate got a working session")
				}
				waitFor(t, 10*time.Second, "the refusal in the relay log: "+tc.relaySays, func() bool {
					return countLines(r.logs(), tc.relaySays) > before
				})
				if m := r.metric(t, "bridge_tunnel_refusals_total"); !strings.Contains(m, `reason="`+tc.reason+`"`) {
					t.Errorf("no refusal metric for %s: %q", tc.reason, m)
				}
			})
		}
	}
}

func countLines(logs, s string) int { return strings.Count(logs, s) }

func caConn(t *testing.T, r *testRelay) *ca.Client {
	t.Helper()
	conn, err := caclient.Dial(context.Background(), r.CAURL(), caclient.Pin{Root: r.EmbeddedCA().CA().Root()})
	if err != nil {
		t.Fatal(err)
	}
	return conn.Client
}

func rootPool(r *testRelay) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.EmbeddedCA().CA().Root())
	return p
}

func getText(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestExpiredAgentRenewsAtStart: an agent that was off longer than its
// certificate's life renews with an x5c token at start and connects.
func TestExpiredAgentRenewsAtStart(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.PKI.CA.AgentCertDuration = 2 * time.Second })
	st := enrollAgent(t, r, "acme", "agent-12")
	old, _, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(old.Leaf.NotAfter) + 1100*time.Millisecond)
	ag := startAgent(t, st, tunnel.ProtocolAuto, r.addr)
	waitFor(t, 15*time.Second, "the agent to renew and connect", func() bool { return ag.Client().Ready() })
	if s := ag.Status().Renewal; s.Serial == old.Leaf.SerialNumber.String() || s.State != renew.StateValid {
		t.Errorf("renewal status %+v", s)
	}
	if !strings.Contains(ag.logs(), "certificate renewed") {
		t.Error("the agent log does not show the renewal")
	}
}
