package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/installer/service"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/tunnel"
)

// serviceControl is what the service commands need of the service manager;
// *service.Control is the real one.
type serviceControl interface {
	Platform() string
	Status() (service.State, error)
	Install(ctx context.Context, paths service.Paths) error
	Uninstall() error
	Start() error
	Stop() error
	Restart() error
}

func newControl(spec service.Spec, log *slog.Logger) (serviceControl, error) {
	return service.New(spec, nil, log)
}

// serviceFlags are the flags every service command shares.
type serviceFlags struct {
	config, name, user string
}

func (f *serviceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", service.DefaultPaths().Config, "the agent configuration `file` the service runs with")
	fs.StringVar(&f.name, "service-name", service.Name, "the service `name`")
	fs.StringVar(&f.user, "user", service.User, "the unprivileged `account` the service runs as on Linux (created if missing; - for root)")
}

func (f serviceFlags) spec() service.Spec {
	return service.Spec{Name: f.name, Config: f.config, UserName: f.user}
}

// cmdServiceAction runs uninstall, start, stop and restart.
func (c *cli) cmdServiceAction(action string, args []string) error {
	fs := flag.NewFlagSet(action, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var sf serviceFlags
	sf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctl, err := c.newControl(sf.spec(), c.log())
	if err != nil {
		return err
	}
	switch action {
	case "uninstall":
		err = ctl.Uninstall()
		if err == nil {
			fmt.Fprintf(c.stdout, "service %s removed; the configuration (%s) and the state (certificate, checkpoints) are kept\n", sf.name, sf.config)
		}
	case "start":
		err = ctl.Start()
	case "stop":
		err = ctl.Stop()
	case "restart":
		err = ctl.Restart()
	}
	if err != nil {
		return fmt.Errorf("%w%s", err, c.privilegeHint())
	}
	if action != "uninstall" {
		st, _ := ctl.Status()
		fmt.Fprintf(c.stdout, "service %s: %s\n", sf.name, st)
	}
	return nil
}

func (c *cli) privilegeHint() string {
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		return " (service commands need root: run them with sudo)"
	}
	return ""
}

// installOptions are the flags of install.
type installOptions struct {
	serviceFlags
	token, tokenFile, caURL, fingerprint string
	relays, proxy, stateDir, logFile     string
	ops                                  string
	wait                                 time.Duration
	noStart, force                       bool
}

func (c *cli) cmdInstall(args []string) error {
	paths := service.DefaultPaths()
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	var o installOptions
	o.register(fs)
	fs.StringVar(&o.token, "token", "", "one-time enrollment `token` (from 'bridge-relay agents token' or 'step ca token'); enrolls first")
	fs.StringVar(&o.tokenFile, "token-file", "", "read the token from this `file` instead")
	fs.StringVar(&o.caURL, "ca-url", "", "the CA `URL` (default: the one the token names)")
	fs.StringVar(&o.fingerprint, "fingerprint", "", "pin the CA's root by its `SHA256` fingerprint (default: the one the token carries)")
	fs.StringVar(&o.relays, "relay", "", "relay `addresses`, host:port, comma-separated (required for a new configuration)")
	fs.StringVar(&o.proxy, "proxy", "", "HTTP CONNECT proxy `URL` for the TCP transport, or direct")
	fs.StringVar(&o.stateDir, "state-dir", paths.StateDir, "`directory` for the certificate (pki/) and crawl checkpoints")
	fs.StringVar(&o.logFile, "log-file", paths.LogFile, "rotating log `file` written to a new configuration")
	fs.StringVar(&o.ops, "ops", "127.0.0.1:9464", "loopback `address` of the ops server, for a new configuration")
	fs.DurationVar(&o.wait, "wait", 90*time.Second, "how long to wait for the tunnel after starting")
	fs.BoolVar(&o.noStart, "no-start", false, "install (and enroll) but do not start the service")
	fs.BoolVar(&o.force, "force", false, "enroll again even if the state directory holds a valid certificate")
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, `usage: bridge-agent install --token TOKEN --relay relay.example.com:8443 [--proxy URL] [flags]

One-line setup: enrolls with the one-time token (the key is made here and never
leaves this machine), writes the configuration with sane defaults (an existing
one is kept and only the keys given here change), installs the service (systemd
on Linux, running as an unprivileged account; the service control manager on
Windows), starts it and waits until the tunnel is up.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("install: unexpected argument %q", fs.Arg(0))
	}
	return c.install(o, paths)
}

func (o *installOptions) register(fs *flag.FlagSet) { o.serviceFlags.register(fs) }

func (c *cli) install(o installOptions, paths service.Paths) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	paths.Config, paths.StateDir, paths.LogFile = o.config, o.stateDir, o.logFile
	pkiDir := filepath.Join(o.stateDir, "pki")

	// 1. Enroll.
	tok := strings.TrimSpace(o.token)
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	st := enroll.Store{Dir: pkiDir, Name: "agent"}
	step := func(n int, format string, a ...any) {
		fmt.Fprintf(c.stdout, "[%d/4] %s\n", n, fmt.Sprintf(format, a...))
	}
	switch cert, _, err := st.Load(); {
	case err == nil && !o.force && time.Now().Before(cert.Leaf.NotAfter):
		id, _ := tunnel.IdentityFromCertificate(cert.Leaf)
		step(1, "already enrolled as %s (certificate valid until %s); --force enrolls again", id, cert.Leaf.NotAfter.Format(time.RFC3339))
	case tok == "":
		return errors.New("install: this machine is not enrolled: pass --token (from 'bridge-relay agents token' or 'step ca token')")
	default:
		if err := os.MkdirAll(pkiDir, 0o700); err != nil {
			return fmt.Errorf("install: %w", err)
		}
		ectx, cancel := context.WithTimeout(ctx, time.Minute)
		leaf, err := enroll.Enroll(ectx, tok, st, enroll.Options{CAURL: o.caURL, Fingerprint: o.fingerprint, Check: agentIdentity})
		cancel()
		if err != nil {
			return fmt.Errorf("install: enroll: %w", err)
		}
		id, _ := tunnel.IdentityFromCertificate(leaf)
		step(1, "enrolled %s; certificate valid until %s, renews itself", id, leaf.NotAfter.Format(time.RFC3339))
	}

	// 2. Configuration.
	wrote, err := writeAgentConfig(o, pkiDir)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	cfg, err := agent.LoadConfig(o.config)
	if err != nil {
		return fmt.Errorf("install: the configuration does not load: %w", err)
	}
	step(2, "%s %s (relays %s)", wrote, o.config, strings.Join(cfg.Relays, ", "))

	// 3. The service.
	ctl, err := c.newControl(o.spec(), c.log())
	if err != nil {
		return err
	}
	if err := ctl.Install(ctx, paths); err != nil {
		return fmt.Errorf("install: %w%s", err, c.privilegeHint())
	}
	state, _ := ctl.Status()
	step(3, "service %s installed on %s (%s), starts at boot, restarts on failure", o.name, ctl.Platform(), state)
	if o.noStart {
		fmt.Fprintf(c.stdout, "not started (--no-start): run 'bridge-agent start' when ready\n")
		return nil
	}

	// 4. Start and wait for the tunnel.
	if state == service.StateRunning {
		err = ctl.Restart()
	} else {
		err = ctl.Start()
	}
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	status, err := waitForTunnel(ctx, cfg.Ops.Listen, o.wait)
	if err != nil {
		fmt.Fprintf(c.stdout, "[4/4] the tunnel is not up after %s: %v\n", o.wait, err)
		fmt.Fprintf(c.stdout, "      next: 'bridge-agent doctor --config %s' checks DNS, ports, proxy, TLS and clock step by step;\n", o.config)
		fmt.Fprintln(c.stdout, "      the service log: "+serviceLogHint(o.name))
		return errors.New("install: the service runs but the tunnel is not up")
	}
	step(4, "tunnel up: %s", sessionsLine(status))
	fmt.Fprintln(c.stdout)
	printStatus(c.stdout, status)
	return nil
}

func serviceLogHint(name string) string {
	if runtime.GOOS == "windows" {
		return "Event Viewer > Windows Logs > Application, source " + name
	}
	return "journalctl -u " + name + " -e"
}

func sessionsLine(st agent.Status) string {
	var parts []string
	for _, s := range st.Tunnel.Sessions {
		parts = append(parts, fmt.Sprintf("%s to %s (%s, rtt %.1fms)", s.Transport, s.Relay, s.Remote, s.RTTMillis))
	}
	if len(parts) == 0 {
		return "ready"
	}
	return strings.Join(parts, "; ")
}

// waitForTunnel polls the agent's ops server until a tunnel is up.
func waitForTunnel(ctx context.Context, ops string, wait time.Duration) (agent.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error = errors.New("the agent's ops server did not answer")
	for {
		st, err := fetchStatus(ctx, client, ops)
		switch {
		case err != nil:
			last = err
		case st.Tunnel.Ready:
			return st, nil
		case st.Tunnel.LastError != "":
			last = errors.New(st.Tunnel.LastError)
		default:
			last = errors.New("no session yet")
		}
		select {
		case <-ctx.Done():
			return agent.Status{}, last
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func fetchStatus(ctx context.Context, client *http.Client, ops string) (agent.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ops+"/status", nil)
	if err != nil {
		return agent.Status{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return agent.Status{}, fmt.Errorf("agent not reachable on %s (is it running? see the service log): %w", ops, err)
	}
	defer resp.Body.Close()
	var st agent.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return agent.Status{}, fmt.Errorf("agent status from %s: %w", ops, err)
	}
	return st, nil
}

// newConfigTemplate is the configuration install writes when there is none.
const newConfigTemplate = `# MCC Bridge agent, written by 'bridge-agent install'. Every key and its
# default: README.md, "Agent configuration". Restart the service after a
# change: bridge-agent restart.
relays: []
# proxy: http://proxy.corp.example:3128   # empty follows HTTPS_PROXY/NO_PROXY; "direct" for none
pki:
  state_dir: ""          # the enrolled certificate and key; renews itself
ops:
  listen: ""             # /status, /metrics, /readyz: loopback only
log:
  file: ""               # rotated at 50 MB, 5 kept; the journal or event log has it too
# sharepoint:
#   sites: ["https://sharepoint.corp.example/sites/marketing"]
#   auth:
#     method: ntlm       # ntlm, kerberos or basic
#     username: CORP\svc-mcc-bridge
#     password_file: /etc/mcc-bridge/sharepoint-password   # mode 0640, group mcc-bridge
`

// writeAgentConfig writes a new configuration, or sets the keys the flags
// name in an existing one, keeping its comments and every other key; the
// old file is kept beside it when it changes. It says which it did.
func writeAgentConfig(o installOptions, pkiDir string) (string, error) {
	old, err := os.ReadFile(o.config)
	fresh := errors.Is(err, os.ErrNotExist)
	if err != nil && !fresh {
		return "", err
	}
	src := old
	if fresh {
		src = []byte(newConfigTemplate)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return "", fmt.Errorf("%s: %w", o.config, err)
	}
	if len(doc.Content) == 0 {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode}}
		doc.Kind = yaml.DocumentNode
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return "", fmt.Errorf("%s: not a YAML mapping", o.config)
	}
	encode := func() ([]byte, error) {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		err := enc.Encode(&doc)
		return buf.Bytes(), err
	}
	before, err := encode()
	if err != nil {
		return "", err
	}
	if o.relays != "" {
		var list []*yaml.Node
		for _, r := range strings.Split(o.relays, ",") {
			if r = strings.TrimSpace(r); r != "" {
				list = append(list, &yaml.Node{Kind: yaml.ScalarNode, Value: r, Style: yaml.DoubleQuotedStyle})
			}
		}
		setKey(root, []string{"relays"}, &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle, Content: list})
	}
	if o.proxy != "" {
		setKey(root, []string{"proxy"}, scalar(o.proxy))
	}
	if fresh || getKey(root, "tls") == nil {
		if v := getKey(root, "pki", "state_dir"); v == nil || v.Value == "" || fresh {
			setKey(root, []string{"pki", "state_dir"}, scalar(pkiDir))
		}
	}
	if fresh {
		setKey(root, []string{"ops", "listen"}, scalar(o.ops))
		setKey(root, []string{"log", "file"}, scalar(o.logFile))
	}
	after, err := encode()
	if err != nil {
		return "", err
	}
	if !fresh && bytes.Equal(after, before) {
		return "kept", nil // the file stays as the admin wrote it
	}
	if err := os.MkdirAll(filepath.Dir(o.config), 0o755); err != nil {
		return "", err
	}
	verb := "wrote"
	if !fresh {
		backup := o.config + ".bak-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.WriteFile(backup, old, 0o600); err != nil {
			return "", err
		}
		verb = "updated (the old one is " + filepath.Base(backup) + ")"
	}
	tmp := o.config + ".tmp"
	if err := os.WriteFile(tmp, after, 0o640); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, o.config); err != nil {
		return "", err
	}
	return verb, nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

// getKey returns the value at path in mapping m, or nil.
func getKey(m *yaml.Node, path ...string) *yaml.Node {
	for _, k := range path {
		if m == nil || m.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == k {
				next = m.Content[i+1]
			}
		}
		m = next
	}
	return m
}

// setKey sets the value at path in mapping m, making mappings on the way;
// a replaced value keeps its line comment.
func setKey(m *yaml.Node, path []string, v *yaml.Node) {
	for i, k := range path {
		var found *yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == k {
				found = m.Content[j+1]
				if i == len(path)-1 {
					v.LineComment = found.LineComment
					m.Content[j+1] = v
					return
				}
			}
		}
		if i == len(path)-1 {
			m.Content = append(m.Content, scalar(k), v)
			return
		}
		if found == nil {
			found = &yaml.Node{Kind: yaml.MappingNode}
			m.Content = append(m.Content, scalar(k), found)
		} else if found.Kind != yaml.MappingNode {
			*found = yaml.Node{Kind: yaml.MappingNode}
		}
		m = found
	}
}
