package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/installer/service"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// inProcessService stands in for systemd: Start runs the agent from the
// installed configuration in this process, as 'bridge-agent run' would.
type inProcessService struct {
	t      *testing.T
	spec   service.Spec
	mu     sync.Mutex
	calls  []string
	state  service.State
	cancel context.CancelFunc
	done   chan error
}

func (s *inProcessService) Platform() string { return "test-inprocess" }

func (s *inProcessService) Status() (service.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, nil
}

func (s *inProcessService) record(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *inProcessService) Install(_ context.Context, p service.Paths) error {
	s.record("install " + p.StateDir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == service.StateNotInstalled {
		s.state = service.StateStopped
	}
	return nil
}

func (s *inProcessService) Uninstall() error { s.record("uninstall"); return nil }

func (s *inProcessService) Start() error {
	s.record("start")
	cfg, err := agent.LoadConfig(s.spec.Config)
	if err != nil {
		return err
	}
	// As 'bridge-agent run' does: the log goes to the configured file too.
	log, closer, err := cfg.Log.Open(io.Discard)
	if err != nil {
		return err
	}
	s.t.Cleanup(func() { closer.Close() })
	a, err := agent.New(cfg, log, "test", os.Getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.cancel, s.done, s.state = cancel, make(chan error, 1), service.StateRunning
	done := s.done
	s.mu.Unlock()
	go func() { done <- a.Run(ctx) }()
	return nil
}

func (s *inProcessService) Stop() error {
	s.record("stop")
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.state = service.StateStopped
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	return <-done
}

func (s *inProcessService) Restart() error {
	s.record("restart")
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

func startTestRelay(t *testing.T) *relay.Relay {
	t.Helper()
	dir := t.TempDir()
	cfg := relay.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.RelayID = "relay-test"
	cfg.Ops.Listen = "127.0.0.1:0"
	cfg.PKI.CA = relay.EmbeddedCAConfig{Dir: filepath.Join(dir, "ca"), Listen: "127.0.0.1:0", Init: true}
	cfg.PKI.StateDir = filepath.Join(dir, "state")
	cfg.Store.Dir = filepath.Join(dir, "store")
	cfg.Tunnel.DrainTimeout = time.Second
	log, _ := tunneltest.Logger(t)
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
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestInstallOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay with its CA")
	}
	r := startTestRelay(t)
	m, err := r.EmbeddedCA().Minter(stepca.AgentProvisioner)
	if err != nil {
		t.Fatal(err)
	}
	token, err := m.AgentToken("acme", "agent-07", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "etc", "agent.yaml")
	var svc *inProcessService
	c := &cli{stdin: strings.NewReader(""), newControl: func(spec service.Spec, _ *slog.Logger) (serviceControl, error) {
		if svc == nil {
			svc = &inProcessService{t: t, spec: spec, state: service.StateNotInstalled}
			t.Cleanup(func() { svc.Stop() })
		}
		return svc, nil
	}}
	var out bytes.Buffer
	c.stdout, c.stderr = &out, &out
	args := []string{"install", "--token", token, "--relay", r.Server().TCPAddr().String(), "--config", config,
		"--state-dir", filepath.Join(dir, "state"), "--log-file", filepath.Join(dir, "log", "agent.log"),
		"--ops", freeAddr(t), "--user", "-", "--wait", "30s"}
	if err := c.run(args); err != nil {
		t.Fatalf("install: %v\n%s", err, out.String())
	}
	for _, want := range []string{"[1/4] enrolled spiffe://acme/agent/agent-07", "[2/4] wrote " + config, "[3/4] service mcc-bridge-agent installed",
		"[4/4] tunnel up", "tunnel       UP"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), token) {
		t.Error("the token was printed")
	}
	cfg, err := agent.LoadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PKI.StateDir != filepath.Join(dir, "state", "pki") || len(cfg.Relays) != 1 || cfg.Log.File == "" {
		t.Errorf("config: %+v", cfg)
	}
	if _, err := os.Stat(filepath.Join(dir, "log", "agent.log")); err != nil {
		t.Errorf("no log file: %v", err)
	}

	// The doctor, on the installed configuration, finds the path clear.
	out.Reset()
	if err := c.run([]string{"doctor", "--config", config, "--timeout", "5s"}); err != nil {
		t.Errorf("doctor: %v\n%s", err, out.String())
	}
	for _, want := range []string{"PASS  certificate: spiffe://acme/agent/agent-07", "PASS  tls ", "PASS  udp/quic ", "PASS  clock ", "6 passed in "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out.String())
		}
	}

	// Again, without a token: the enrollment and configuration are kept and
	// the running service restarts.
	out.Reset()
	if err := c.run(args[:0:0]); err == nil {
		t.Error("no command: no error")
	}
	again := append([]string{"install"}, args[3:]...)
	if err := c.run(again); err != nil {
		t.Fatalf("second install: %v\n%s", err, out.String())
	}
	for _, want := range []string{"[1/4] already enrolled as spiffe://acme/agent/agent-07", "[2/4] kept " + config, "[4/4] tunnel up"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("second install lacks %q:\n%s", want, out.String())
		}
	}
	if got := strings.Join(svc.calls, ","); !strings.Contains(got, "install") || !strings.Contains(got, "restart") {
		t.Errorf("service calls %s", got)
	}

	// A relay that is not there: the service starts, the tunnel does not
	// come up, and install says what to do.
	out.Reset()
	svc.Stop()
	bad := append([]string{}, again...)
	for i := range bad {
		if bad[i] == "--relay" {
			bad[i+1] = freeAddr(t)
		}
		if bad[i] == "--wait" {
			bad[i+1] = "2s"
		}
	}
	err = c.run(bad)
	if err == nil || !strings.Contains(out.String(), "bridge-agent doctor") || !strings.Contains(out.String(), "updated (the old one is agent.yaml.bak-") {
		t.Errorf("unreachable relay: %v\n%s", err, out.String())
	}
}

func TestInstallNeedsEnrollment(t *testing.T) {
	dir := t.TempDir()
	c := &cli{newControl: func(service.Spec, *slog.Logger) (serviceControl, error) {
		return nil, errors.New("must not get this far")
	}}
	var out bytes.Buffer
	c.stdout, c.stderr = &out, &out
	err := c.run([]string{"install", "--relay", "r:1", "--config", filepath.Join(dir, "a.yaml"), "--state-dir", dir})
	if err == nil || !strings.Contains(err.Error(), "not enrolled: pass --token") {
		t.Errorf("no token: %v", err)
	}
	err = c.run([]string{"install", "--token", "not-a-jwt", "--relay", "r:1", "--config", filepath.Join(dir, "a.yaml"), "--state-dir", dir})
	if err == nil || !strings.Contains(err.Error(), "enroll") {
		t.Errorf("bad token: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a configuration was written for a failed enrollment")
	}
}

func TestWriteAgentConfigKeepsWhatIsThere(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	orig := `# our relay, set by the network team
relays: ["old.example.com:8443"]   # the EU relay
proxy: direct
pki:
  state_dir: /srv/bridge/pki
sharepoint:
  sites: ["https://sp.corp/sites/mkt"]
  auth:
    method: ntlm
    username: CORP\svc
    password_file: sp-password
`
	if err := os.WriteFile(path, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	o := installOptions{serviceFlags: serviceFlags{config: path}, ops: "127.0.0.1:9464", logFile: "/var/log/x.log"}
	verb, err := writeAgentConfig(o, "/var/lib/mcc-bridge/pki")
	if err != nil || verb != "kept" {
		t.Fatalf("nothing to change: %q, %v", verb, err)
	}
	o.relays, o.proxy = "new.example.com:8443, new2.example.com:8443", "http://proxy.corp:3128"
	verb, err = writeAgentConfig(o, "/var/lib/mcc-bridge/pki")
	if err != nil || !strings.HasPrefix(verb, "updated") {
		t.Fatalf("change: %q, %v", verb, err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"# our relay, set by the network team", `relays: ["new.example.com:8443", "new2.example.com:8443"] # the EU relay`,
		"proxy: http://proxy.corp:3128", "state_dir: /srv/bridge/pki", "password_file: sp-password", `username: CORP\svc`} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	backups, _ := filepath.Glob(path + ".bak-*")
	if len(backups) != 1 {
		t.Fatalf("backups %v", backups)
	}
	if b, _ := os.ReadFile(backups[0]); string(b) != orig {
		t.Error("the backup is not the old file")
	}

	// A fresh file has every default install promises.
	o.config = filepath.Join(dir, "new", "agent.yaml")
	if verb, err := writeAgentConfig(o, "/var/lib/mcc-bridge/pki"); err != nil || verb != "wrote" {
		t.Fatalf("fresh: %q, %v", verb, err)
	}
	b, _ = os.ReadFile(o.config)
	for _, want := range []string{"state_dir: /var/lib/mcc-bridge/pki", "listen: 127.0.0.1:9464", "file: /var/log/x.log", "# sharepoint:"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("fresh config lacks %q:\n%s", want, b)
		}
	}

	if err := os.WriteFile(path, []byte("- a list\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := writeAgentConfig(o.withConfig(path), "/x"); err == nil || !strings.Contains(err.Error(), "not a YAML mapping") {
		t.Errorf("a list: %v", err)
	}
}

func (o installOptions) withConfig(p string) installOptions { o.config = p; return o }

// TestRunServiceFailsFastOnABadConfig: under a service manager the agent
// answers it first, then a configuration that does not load ends the run
// with the error (and a non-zero exit, so the manager restarts it with
// backoff) instead of hanging until a signal.
func TestRunServiceFailsFastOnABadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(bad, []byte("relays: [r:1]\nno_such_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runService(bad, &stderr) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no_such_key") {
			t.Errorf("got %v, want the configuration error", err)
		}
		if !strings.Contains(stderr.String(), "the service manager restarts it") {
			t.Errorf("stderr: %q", stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runService did not return on a bad configuration")
	}
}
