package doctor_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/doctor"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

const (
	spUser     = `CONTOSO\crawler`
	spPassword = "Sp-Pa55w0rd-Qx7"
	proxyUser  = "alice"
	proxyPass  = "Pr0xy-Secret-Zk4"
)

// fixture is a dev CA with a relay certificate for 127.0.0.1 and an agent
// certificate for acme/agent-01, written to files.
type fixture struct {
	pki  *tunneltest.PKI
	root string // the CA certificate file
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p := tunneltest.NewPKI(t)
	root, err := p.CA.WriteRoot(t.TempDir(), "root")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{pki: p, root: root}
}

// startRelay runs a real bridge-relay on 127.0.0.1 with the given server
// certificate, trusting the fixture's CA for agents, until the test ends.
// It returns the agents' address (TCP and UDP on the same port).
func (f *fixture) startRelay(t *testing.T, server tls.Certificate) string {
	t.Helper()
	dir := t.TempDir()
	rc, rk, err := devca.WriteFiles(dir, "relay", server)
	if err != nil {
		t.Fatal(err)
	}
	log, _ := tunneltest.Logger(t)
	cfg := relay.DefaultConfig()
	cfg.Listen, cfg.Ops.Listen, cfg.RelayID = "127.0.0.1:0", "127.0.0.1:0", "relay-t"
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = rc, rk, f.root
	cfg.Store.Dir = filepath.Join(dir, "store")
	cfg.Tunnel.DrainTimeout = 2 * time.Second
	r, err := relay.New(cfg, log.With("side", "relay"), "test")
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
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("relay Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("relay did not stop")
		}
	})
	return r.Server().TCPAddr().String()
}

// config is an agent configuration with fixed tls files holding cert,
// trusting the fixture's CA for relays, going direct.
func (f *fixture) config(t *testing.T, cert tls.Certificate, relays ...string) agent.Config {
	t.Helper()
	ac, ak, err := devca.WriteFiles(t.TempDir(), "agent", cert)
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.DefaultConfig()
	cfg.Relays = relays
	cfg.Proxy = "direct"
	cfg.TLS.Cert, cfg.TLS.Key, cfg.TLS.CA = ac, ak, f.root
	return cfg
}

// stateDir writes cert and root as `bridge-agent enroll` does.
func stateDir(t *testing.T, cert tls.Certificate, root *x509.Certificate) string {
	t.Helper()
	st := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	if err := st.SaveKey(cert.PrivateKey); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveChain([]*x509.Certificate{cert.Leaf}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveRoot(root); err != nil {
		t.Fatal(err)
	}
	return st.Dir
}

// startSharePoint runs the SharePoint emulator with NTLM and one site
// collection, /sites/mkt, until the test ends, and returns the site URL.
func startSharePoint(t *testing.T) string {
	t.Helper()
	s := spemu.New(spemu.Options{Auth: spemu.AuthNTLM, Users: map[string]string{spUser: spPassword}})
	if err := s.Generate(spemu.Spec{Seed: 7, SiteNames: []string{"mkt"}, ItemsPerList: 3}); err != nil {
		t.Fatal(err)
	}
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return base + "/sites/mkt"
}

// withSharePoint adds site with NTLM and the password in SP_PASSWORD.
func withSharePoint(cfg agent.Config, site string) agent.Config {
	cfg.SharePoint.Sites = []string{site}
	cfg.SharePoint.Auth = agent.SharePointAuth{Method: "ntlm", Username: spUser, PasswordEnv: "SP_PASSWORD"}
	return cfg
}

// opts are small-timeout options reading env instead of the environment.
func opts(env map[string]string) doctor.Options {
	return doctor.Options{Timeout: 2 * time.Second, Getenv: func(k string) string { return env[k] }}
}

// run runs the doctor, checks that report saw every result in order, and
// logs the printed report.
func run(t *testing.T, cfg agent.Config, o doctor.Options) []doctor.Result {
	t.Helper()
	var reported []doctor.Result
	rs := doctor.Run(context.Background(), cfg, o, func(r doctor.Result) { reported = append(reported, r) })
	if !slices.Equal(reported, rs) {
		t.Errorf("report saw %d results, Run returned %d, or in another order", len(reported), len(rs))
	}
	var b bytes.Buffer
	for _, r := range rs {
		doctor.Print(&b, r)
	}
	sum, _ := doctor.Summary(rs)
	t.Logf("doctor report:\n%s%s", b.String(), sum)
	return rs
}

// find returns the one result whose step starts with prefix.
func find(t *testing.T, rs []doctor.Result, prefix string) doctor.Result {
	t.Helper()
	var found []doctor.Result
	for _, r := range rs {
		if strings.HasPrefix(r.Step, prefix) {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("got %d results for step %q, want 1: %+v", len(found), prefix, rs)
	}
	return found[0]
}

// expect checks the status of the step starting with prefix, and that its
// detail and hint contain the given texts.
func expect(t *testing.T, rs []doctor.Result, prefix string, want doctor.Status, detail, hint []string) {
	t.Helper()
	r := find(t, rs, prefix)
	if r.Status != want {
		t.Errorf("step %s: got %s (%s), want %s", r.Step, r.Status, r.Detail, want)
	}
	for _, s := range detail {
		if !strings.Contains(r.Detail, s) {
			t.Errorf("step %s: detail %q does not contain %q", r.Step, r.Detail, s)
		}
	}
	for _, s := range hint {
		if !strings.Contains(r.Hint, s) {
			t.Errorf("step %s: hint %q does not contain %q", r.Step, r.Hint, s)
		}
	}
	if want != doctor.Pass && want != doctor.Skip && r.Hint == "" {
		t.Errorf("step %s: %s without a hint", r.Step, want)
	}
}

// noSecrets fails when any secret appears in any result or its printout.
func noSecrets(t *testing.T, rs []doctor.Result, secrets ...string) {
	t.Helper()
	var b bytes.Buffer
	for _, r := range rs {
		doctor.Print(&b, r)
		b.WriteString(r.Step + r.Detail + r.Hint)
	}
	for _, s := range secrets {
		if strings.Contains(b.String(), s) {
			t.Errorf("a secret appears in the results:\n%s", b.String())
		}
	}
}

func steps(rs []doctor.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Step)
	}
	return out
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestRunAllPass(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	f := newFixture(t)
	addr := f.startRelay(t, f.pki.Server)
	site := startSharePoint(t)
	cfg := withSharePoint(f.config(t, f.pki.Agent, addr), site)
	rs := run(t, cfg, opts(map[string]string{"SP_PASSWORD": spPassword}))

	want := []string{"certificate", "dns 127.0.0.1", "tcp " + addr, "tls " + addr, "udp/quic " + addr, "clock " + addr, "sharepoint " + site}
	if got := steps(rs); !slices.Equal(got, want) {
		t.Fatalf("steps: got %q, want %q", got, want)
	}
	for _, r := range rs {
		if r.Status != doctor.Pass {
			t.Errorf("step %s: got %s (%s; hint %s), want PASS", r.Step, r.Status, r.Detail, r.Hint)
		}
	}
	expect(t, rs, "certificate", doctor.Pass, []string{"spiffe://acme/agent/agent-01", `issued by "test root"`, "chains to the root"}, nil)
	expect(t, rs, "tls ", doctor.Pass, []string{"TLS 1.3", "ALPN mcc-bridge-yamux/1", `relay certificate "localhost"`, `relay "relay-t" accepted spiffe://acme/agent/agent-01`}, nil)
	expect(t, rs, "udp/quic ", doctor.Pass, []string{"ALPN mcc-bridge/1", `relay "relay-t"`}, nil)
	expect(t, rs, "clock ", doctor.Pass, []string{"this machine's clock matches the relay's (±", "relay clock read over", "the relay sees this agent as spiffe://acme/agent/agent-01"}, nil)
	expect(t, rs, "sharepoint ", doctor.Pass, []string{`authenticated as CONTOSO\crawler with ntlm`, "SharePoint Server 2019"}, nil)
	noSecrets(t, rs, spPassword)

	sum, ok := doctor.Summary(rs)
	if sum != "7 passed" || !ok {
		t.Errorf("Summary: got %q, %v, want %q, true", sum, ok, "7 passed")
	}
}

func TestRunCertificate(t *testing.T) {
	f := newFixture(t)
	other, err := devca.New("other root")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issue := func(ca *devca.CA, v devca.Validity) tls.Certificate {
		t.Helper()
		c, err := ca.Agent(v, "acme", "agent-01")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	nearExpiry := devca.Validity{NotBefore: now.Add(-20 * time.Hour), NotAfter: now.Add(time.Hour)}
	notYet := devca.Validity{NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}
	tests := []struct {
		name         string
		cfg          func(t *testing.T) agent.Config
		want         doctor.Status
		detail, hint []string
	}{
		{
			name: "fixed files",
			cfg:  func(t *testing.T) agent.Config { return f.config(t, f.pki.Agent) },
			want: doctor.Pass, detail: []string{"tenant acme, agent agent-01", "tls.ca"},
		},
		{
			name: "enrolled state directory",
			cfg: func(t *testing.T) agent.Config {
				cfg := agent.DefaultConfig()
				cfg.PKI.StateDir = stateDir(t, f.pki.Agent, f.pki.CA.Cert)
				return cfg
			},
			want: doctor.Pass, detail: []string{"spiffe://acme/agent/agent-01", "root.crt"},
		},
		{
			name: "expired fixed files",
			cfg:  func(t *testing.T) agent.Config { return f.config(t, issue(f.pki.CA, devca.Expired())) },
			want: doctor.Fail, detail: []string{"expired 1h0m0s ago"}, hint: []string{"get a new agent certificate", "tls.cert"},
		},
		{
			name: "expired enrolled certificate",
			cfg: func(t *testing.T) agent.Config {
				cfg := agent.DefaultConfig()
				cfg.PKI.StateDir = stateDir(t, issue(f.pki.CA, devca.Expired()), f.pki.CA.Cert)
				return cfg
			},
			want: doctor.Fail, detail: []string{"expired"}, hint: []string{"bridge-agent enroll --token TOKEN --state-dir ", "--force"},
		},
		{
			name: "not yet valid",
			cfg:  func(t *testing.T) agent.Config { return f.config(t, issue(f.pki.CA, notYet)) },
			want: doctor.Fail, detail: []string{"is not valid before"}, hint: []string{"clock", "w32tm /resync"},
		},
		{
			name: "renewal overdue",
			cfg: func(t *testing.T) agent.Config {
				cfg := agent.DefaultConfig()
				cfg.PKI.StateDir = stateDir(t, issue(f.pki.CA, nearExpiry), f.pki.CA.Cert)
				return cfg
			},
			want: doctor.Warn, detail: []string{"less than a third of its lifetime left"}, hint: []string{"renewal is overdue", "bridge-agent status"},
		},
		{
			name: "not enrolled",
			cfg: func(t *testing.T) agent.Config {
				cfg := agent.DefaultConfig()
				cfg.PKI.StateDir = t.TempDir()
				return cfg
			},
			want: doctor.Fail, detail: []string{"not enrolled"}, hint: []string{"enroll this agent", "bridge-agent enroll --token"},
		},
		{
			name: "issued by another CA than the root, fixed files",
			cfg:  func(t *testing.T) agent.Config { return f.config(t, issue(other, devca.Valid())) },
			want: doctor.Warn, detail: []string{`issued by "other root"`, "does not chain to the root"}, hint: []string{"different CAs"},
		},
		{
			name: "issued by another CA than the root, state directory",
			cfg: func(t *testing.T) agent.Config {
				cfg := agent.DefaultConfig()
				cfg.PKI.StateDir = stateDir(t, issue(other, devca.Valid()), f.pki.CA.Cert)
				return cfg
			},
			want: doctor.Fail, detail: []string{"does not chain to the root"}, hint: []string{"re-enroll"},
		},
		{
			name: "missing key file",
			cfg: func(t *testing.T) agent.Config {
				cfg := f.config(t, f.pki.Agent)
				cfg.TLS.Key = filepath.Join(t.TempDir(), "missing.key")
				return cfg
			},
			want: doctor.Fail, detail: []string{"does not load", "missing.key"}, hint: []string{"tls.key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := run(t, tt.cfg(t), opts(nil))
			if len(rs) != 1 {
				t.Fatalf("got %d results, want the certificate step only: %q", len(rs), steps(rs))
			}
			expect(t, rs, "certificate", tt.want, tt.detail, tt.hint)
		})
	}
}

// TestRunExpiredCertificateSkips checks that an unusable certificate skips
// the steps that need it, and only those.
func TestRunExpiredCertificateSkips(t *testing.T) {
	f := newFixture(t)
	addr := f.startRelay(t, f.pki.Server)
	rs := run(t, f.config(t, f.pki.AgentCert(t, devca.Expired(), "acme", "agent-01"), addr), opts(nil))
	expect(t, rs, "certificate", doctor.Fail, []string{"expired"}, []string{"new agent certificate"})
	expect(t, rs, "dns ", doctor.Pass, nil, nil)
	expect(t, rs, "tcp ", doctor.Pass, []string{"direct: proxy: direct in agent.yaml"}, nil)
	expect(t, rs, "tls ", doctor.Skip, []string{"certificate step"}, nil)
	expect(t, rs, "udp/quic ", doctor.Skip, []string{"certificate step"}, nil)
	expect(t, rs, "clock ", doctor.Skip, []string{"needs a tunnel session"}, nil)
	if sum, ok := doctor.Summary(rs); sum != "2 passed, 1 failed, 3 skipped" || ok {
		t.Errorf("Summary: got %q, %v, want %q, false", sum, ok, "2 passed, 1 failed, 3 skipped")
	}
}

func TestRunRelayPortClosed(t *testing.T) {
	f := newFixture(t)
	addr := closedPort(t)
	_, port, _ := net.SplitHostPort(addr)
	rs := run(t, f.config(t, f.pki.Agent, addr), opts(nil))
	expect(t, rs, "tcp "+addr, doctor.Fail, []string{"connection refused", "nothing listens on " + addr},
		[]string{"check the relay address and port in relays", "allow outbound TCP to 127.0.0.1 port " + port})
	expect(t, rs, "tls "+addr, doctor.Skip, []string{"needs a TCP connection"}, nil)
	// QUIC is another path (UDP), tried even when TCP fails; with TCP down
	// there is no fallback, so its failure is a FAIL.
	expect(t, rs, "udp/quic "+addr, doctor.Fail, []string{"no QUIC session over UDP"}, []string{"allow outbound UDP to 127.0.0.1 port " + port})
	expect(t, rs, "clock "+addr, doctor.Skip, []string{"needs a tunnel session"}, nil)
	if _, ok := doctor.Summary(rs); ok {
		t.Error("Summary: got ok with a failed step")
	}
}

func TestRunRelayTLS(t *testing.T) {
	f := newFixture(t)
	other, err := devca.New("other root")
	if err != nil {
		t.Fatal(err)
	}
	foreignServer, err := other.Server(devca.Valid(), "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	foreignAgent, err := other.Agent(devca.Valid(), "acme", "agent-01")
	if err != nil {
		t.Fatal(err)
	}
	good := f.startRelay(t, f.pki.Server)
	foreign := f.startRelay(t, foreignServer)
	tests := []struct {
		name       string
		cfg        func(t *testing.T) agent.Config
		cert       doctor.Status
		tls        []string // detail
		tlsHint    []string
		quicDetail []string
	}{
		{
			name:       "relay certificate from another CA",
			cfg:        func(t *testing.T) agent.Config { return f.config(t, f.pki.Agent, foreign) },
			cert:       doctor.Pass,
			tls:        []string{"relay certificate not trusted", `CN=other root`},
			tlsHint:    []string{"TLS inspection"},
			quicDetail: []string{"relay certificate not trusted"},
		},
		{
			name:       "relay refuses the agent certificate",
			cfg:        func(t *testing.T) agent.Config { return f.config(t, foreignAgent, good) },
			cert:       doctor.Warn,
			tls:        []string{"relay refused our certificate", "unknown certificate authority"},
			tlsHint:    []string{"does not trust the CA that issued this agent's certificate"},
			quicDetail: []string{"relay refused our certificate"},
		},
		{
			name: "relay certificate for another name",
			cfg: func(t *testing.T) agent.Config {
				cfg := f.config(t, f.pki.Agent, good)
				cfg.ServerName = "relay.example.com"
				return cfg
			},
			cert:       doctor.Pass,
			tls:        []string{"relay certificate does not name relay.example.com"},
			tlsHint:    []string{"server_name"},
			quicDetail: []string{"does not name relay.example.com"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := run(t, tt.cfg(t), opts(nil))
			expect(t, rs, "certificate", tt.cert, nil, nil)
			expect(t, rs, "tcp ", doctor.Pass, nil, nil)
			expect(t, rs, "tls ", doctor.Fail, tt.tls, tt.tlsHint)
			expect(t, rs, "udp/quic ", doctor.Fail, tt.quicDetail, nil)
			expect(t, rs, "clock ", doctor.Skip, nil, nil)
		})
	}
}

// resolver is a Resolver with fixed answers.
type resolver map[string][]string

func (r resolver) LookupHost(_ context.Context, host string) ([]string, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestRunDNS(t *testing.T) {
	f := newFixture(t)
	addr := f.startRelay(t, f.pki.Server)
	_, port, _ := net.SplitHostPort(addr)
	res := resolver{"relay.test": {"127.0.0.1"}}
	tests := []struct {
		name   string
		relay  string
		proxy  string
		expect func(t *testing.T, rs []doctor.Result)
	}{
		{
			name:  "resolves",
			relay: "relay.test:" + port,
			expect: func(t *testing.T, rs []doctor.Result) {
				expect(t, rs, "dns relay.test", doctor.Pass, []string{"127.0.0.1"}, nil)
				expect(t, rs, "tcp 127.0.0.1:"+port, doctor.Pass, nil, nil)
				expect(t, rs, "tls 127.0.0.1:"+port, doctor.Pass, nil, nil)
				expect(t, rs, "clock 127.0.0.1:"+port, doctor.Pass, nil, nil)
			},
		},
		{
			name:  "does not resolve",
			relay: "relay.invalid:" + port,
			expect: func(t *testing.T, rs []doctor.Result) {
				expect(t, rs, "dns relay.invalid", doctor.Fail, []string{"does not resolve: no such host"}, []string{"nslookup relay.invalid"})
				for _, s := range []string{"tcp ", "tls ", "udp/quic ", "clock "} {
					expect(t, rs, s+"relay.invalid:"+port, doctor.Skip, []string{"dns step"}, nil)
				}
			},
		},
		{
			name:  "does not resolve, but a proxy would",
			relay: "relay.invalid:" + port,
			proxy: "http://" + closedPort(t),
			expect: func(t *testing.T, rs []doctor.Result) {
				expect(t, rs, "dns relay.invalid", doctor.Warn, []string{"hands the name to the proxy"}, []string{"QUIC"})
				expect(t, rs, "proxy http://127.0.0.1:", doctor.Fail, []string{"refused the connection"}, []string{"check the proxy URL (agent.yaml proxy)"})
				expect(t, rs, "tls relay.invalid:"+port, doctor.Skip, nil, nil)
				expect(t, rs, "udp/quic relay.invalid:"+port, doctor.Skip, []string{"needs the relay name to resolve"}, nil)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config(t, f.pki.Agent, tt.relay)
			cfg.ServerName = "localhost"
			if tt.proxy != "" {
				cfg.Proxy = tt.proxy
			}
			o := opts(nil)
			o.Resolver = res
			tt.expect(t, run(t, cfg, o))
		})
	}
}

func TestRunClockSkew(t *testing.T) {
	f := newFixture(t)
	addr := f.startRelay(t, f.pki.Server)
	tests := []struct {
		name    string
		skew    time.Duration // added to this machine's clock
		maxSkew time.Duration
		want    doctor.Status
		detail  []string
	}{
		{name: "in sync", want: doctor.Pass, detail: []string{"this machine's clock matches the relay's (±"}},
		{name: "two minutes ahead", skew: 2 * time.Minute, want: doctor.Warn, detail: []string{"this machine is 2m0", "ahead of the relay", "more than 30s"}},
		{name: "ten minutes behind", skew: -10 * time.Minute, want: doctor.Fail, detail: []string{"this machine is 10m0", "behind the relay"}},
		{name: "ten minutes behind, MaxSkew 15m", skew: -10 * time.Minute, maxSkew: 15 * time.Minute, want: doctor.Pass, detail: []string{"behind the relay"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := opts(nil)
			o.Now = func() time.Time { return time.Now().Add(tt.skew) }
			o.MaxSkew = tt.maxSkew
			rs := run(t, f.config(t, f.pki.Agent, addr), o)
			var hint []string
			if tt.want != doctor.Pass {
				hint = []string{"NTP", "w32tm /resync"}
			}
			expect(t, rs, "clock "+addr, tt.want, tt.detail, hint)
			expect(t, rs, "certificate", doctor.Pass, nil, nil)
		})
	}
}

func TestRunSharePoint(t *testing.T) {
	f := newFixture(t)
	site := startSharePoint(t)
	base := strings.TrimSuffix(site, "/sites/mkt")
	tests := []struct {
		name         string
		site         string
		env          map[string]string
		detail, hint []string
	}{
		{
			name:   "wrong password",
			site:   site,
			env:    map[string]string{"SP_PASSWORD": spPassword + "-wrong"},
			detail: []string{"HTTP 401", `refused the account CONTOSO\crawler with ntlm`, "NTLM"},
			hint:   []string{"sharepoint.auth.username", "SP_PASSWORD", "locked"},
		},
		{
			name:   "no such site",
			site:   base + "/sites/nosuch",
			env:    map[string]string{"SP_PASSWORD": spPassword},
			detail: []string{"HTTP 404"},
			hint:   []string{"sharepoint.sites"},
		},
		{
			name:   "password variable unset",
			site:   site,
			detail: []string{"SP_PASSWORD is empty or unset"},
			hint:   []string{"password_env"},
		},
		{
			name:   "nothing listens",
			site:   "http://" + closedPort(t) + "/sites/mkt",
			env:    map[string]string{"SP_PASSWORD": spPassword},
			detail: []string{"connection refused"},
			hint:   []string{"IIS"},
		},
		{
			name:   "https to a plain http server",
			site:   strings.Replace(site, "http://", "https://", 1),
			env:    map[string]string{"SP_PASSWORD": spPassword},
			detail: []string{"no TLS at"},
			hint:   []string{"http, not https"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := withSharePoint(f.config(t, f.pki.Agent), tt.site)
			rs := run(t, cfg, opts(tt.env))
			expect(t, rs, "sharepoint ", doctor.Fail, tt.detail, tt.hint)
			noSecrets(t, rs, spPassword)
		})
	}
}

func TestRunProxy(t *testing.T) {
	f := newFixture(t)
	addr := f.startRelay(t, f.pki.Server)
	_, port, _ := net.SplitHostPort(addr)
	proxyAddr := tunneltest.StartTinyproxy(t, port, proxyUser, proxyPass)
	proxyURL := func(user *url.Userinfo) string {
		return (&url.URL{Scheme: "http", Host: proxyAddr, User: user}).String()
	}
	tests := []struct {
		name   string
		proxy  string
		env    map[string]string
		expect func(t *testing.T, rs []doctor.Result)
	}{
		{
			name:  "CONNECT through the proxy",
			proxy: proxyURL(url.UserPassword(proxyUser, proxyPass)),
			expect: func(t *testing.T, rs []doctor.Result) {
				expect(t, rs, "proxy http://"+proxyAddr, doctor.Pass, []string{"CONNECT " + addr + " accepted", "proxy_auth basic"}, nil)
				expect(t, rs, "tls "+addr, doctor.Pass, nil, nil)
				expect(t, rs, "udp/quic "+addr, doctor.Pass, nil, nil) // QUIC goes direct
				expect(t, rs, "clock "+addr, doctor.Pass, nil, nil)
			},
		},
		{
			name:  "wrong proxy password",
			proxy: proxyURL(url.UserPassword(proxyUser, proxyPass+"x")),
			expect: func(t *testing.T, rs []doctor.Result) {
				expect(t, rs, "proxy http://"+proxyAddr, doctor.Fail, []string{"proxy authentication failed", "with scheme Basic"},
					[]string{"refused the credentials", "proxy_auth"})
				expect(t, rs, "tls "+addr, doctor.Skip, nil, nil)
				expect(t, rs, "clock "+addr, doctor.Pass, []string{"over quic"}, nil)
			},
		},
		{
			name:  "no proxy credentials",
			proxy: proxyURL(nil),
			expect: func(t *testing.T, rs []doctor.Result) {
				expect(t, rs, "proxy http://"+proxyAddr, doctor.Fail, []string{"proxy authentication required"},
					[]string{"put a user and password in the proxy URL (agent.yaml proxy)"})
			},
		},
		{
			name: "HTTPS_PROXY does not apply to loopback",
			env:  map[string]string{"HTTPS_PROXY": proxyURL(url.UserPassword(proxyUser, proxyPass))},
			expect: func(t *testing.T, rs []doctor.Result) {
				expect(t, rs, "tcp "+addr, doctor.Pass, []string{"HTTPS_PROXY is set, but NO_PROXY exempts this address"}, nil)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config(t, f.pki.Agent, addr)
			cfg.Proxy = tt.proxy
			rs := run(t, cfg, opts(tt.env))
			tt.expect(t, rs)
			noSecrets(t, rs, proxyPass)
		})
	}
}

// TestRunProxyChoice covers proxy failures that need no proxy server.
func TestRunProxyChoice(t *testing.T) {
	f := newFixture(t)
	relayAddr := closedPort(t)
	tests := []struct {
		name   string
		proxy  string
		env    map[string]string
		step   string
		detail []string
		hint   []string
	}{
		{
			name:   "proxy port closed",
			proxy:  "http://" + proxyUser + ":" + proxyPass + "@" + closedPort(t),
			step:   "proxy http://127.0.0.1:",
			detail: []string{"refused the connection", "connection refused"},
			hint:   []string{"nothing listens at the proxy", "check the proxy URL (agent.yaml proxy)"},
		},
		{
			name:   "HTTPS_PROXY does not parse",
			env:    map[string]string{"HTTPS_PROXY": "http://" + proxyUser + ":" + proxyPass + "@proxy:port"},
			step:   "proxy (HTTPS_PROXY)",
			detail: []string{"environment variable HTTPS_PROXY", "invalid port"},
			hint:   []string{"fix the proxy URL (HTTPS_PROXY)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config(t, f.pki.Agent, relayAddr)
			cfg.Proxy = tt.proxy
			cfg.Protocol = "tcp"
			rs := run(t, cfg, opts(tt.env))
			expect(t, rs, tt.step, doctor.Fail, tt.detail, tt.hint)
			expect(t, rs, "tls "+relayAddr, doctor.Skip, []string{"needs a TCP connection"}, nil)
			expect(t, rs, "udp/quic "+relayAddr, doctor.Skip, []string{"protocol is tcp"}, nil)
			noSecrets(t, rs, proxyPass)
		})
	}
}

func TestRunProtocol(t *testing.T) {
	f := newFixture(t)
	addr := f.startRelay(t, f.pki.Server)
	tests := []struct {
		protocol       string
		tcp, tls, quic doctor.Status
		clock          string
	}{
		{protocol: "tcp", tcp: doctor.Pass, tls: doctor.Pass, quic: doctor.Skip, clock: "over tcp"},
		{protocol: "quic", tcp: doctor.Skip, tls: doctor.Skip, quic: doctor.Pass, clock: "over quic"},
	}
	for _, tt := range tests {
		t.Run(tt.protocol, func(t *testing.T) {
			cfg := f.config(t, f.pki.Agent, addr)
			cfg.Protocol = tt.protocol
			rs := run(t, cfg, opts(nil))
			expect(t, rs, "tcp ", tt.tcp, nil, nil)
			expect(t, rs, "tls ", tt.tls, nil, nil)
			expect(t, rs, "udp/quic ", tt.quic, nil, nil)
			expect(t, rs, "clock ", doctor.Pass, []string{tt.clock}, nil)
		})
	}
}

func TestRunCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs := doctor.Run(ctx, f.config(t, f.pki.Agent, closedPort(t)), opts(nil), nil)
	expect(t, rs, "certificate", doctor.Skip, []string{"interrupted"}, nil)
	expect(t, rs, "tcp ", doctor.Skip, []string{"interrupted"}, nil)
	if _, ok := doctor.Summary(rs); !ok {
		t.Error("Summary: an interrupted run has no failure")
	}
}

func TestSummary(t *testing.T) {
	r := func(s doctor.Status) doctor.Result { return doctor.Result{Status: s} }
	tests := []struct {
		name string
		rs   []doctor.Result
		want string
		ok   bool
	}{
		{"none", nil, "0 passed", true},
		{"all passed", []doctor.Result{r(doctor.Pass), r(doctor.Pass)}, "2 passed", true},
		{"one of each", []doctor.Result{r(doctor.Pass), r(doctor.Fail), r(doctor.Warn), r(doctor.Skip)}, "1 passed, 1 failed, 1 warning, 1 skipped", false},
		{"warnings do not fail", []doctor.Result{r(doctor.Pass), r(doctor.Warn), r(doctor.Warn)}, "1 passed, 2 warnings", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := doctor.Summary(tt.rs)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %q, %v, want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPrint(t *testing.T) {
	tests := []struct {
		name string
		r    doctor.Result
		want string
	}{
		{
			name: "pass hides the hint",
			r:    doctor.Result{Step: "dns relay.example.com", Status: doctor.Pass, Detail: "10.0.0.5", Hint: "unused", Took: 1234 * time.Microsecond},
			want: "PASS  dns relay.example.com: 10.0.0.5 (1ms)\n",
		},
		{
			name: "fail shows the hint",
			r:    doctor.Result{Step: "tcp 10.0.0.5:8443", Status: doctor.Fail, Detail: "connection refused", Hint: "open the port", Took: 2 * time.Second},
			want: "FAIL  tcp 10.0.0.5:8443: connection refused (2s)\n      hint: open the port\n",
		},
		{
			name: "skip without time or hint",
			r:    doctor.Result{Step: "clock", Status: doctor.Skip, Detail: "needs a tunnel session"},
			want: "SKIP  clock: needs a tunnel session\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			doctor.Print(&b, tt.r)
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}
