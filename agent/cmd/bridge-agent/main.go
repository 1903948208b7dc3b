// Command bridge-agent runs the MCC Bridge agent: it dials out to the relays
// through an outbound-only mutual-TLS tunnel and serves the relay's requests.
// It never listens for inbound network traffic.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	kservice "github.com/kardianos/service"
	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/installer/service"
	"github.com/mcc-bridge/bridge/pki/renew"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `bridge-agent: the MCC Bridge agent. It dials out to MCC Bridge relays through an
outbound-only mutual-TLS tunnel (QUIC, or TLS over TCP when UDP is blocked, also
through an HTTP CONNECT proxy) and never listens for inbound traffic.

Usage:
  bridge-agent install --token TOKEN --relay HOST:PORT [--proxy URL] [--config PATH]
                                             one-line setup: enroll, write the configuration,
                                             install and start the service, wait for the tunnel
  bridge-agent status  [--config PATH | --ops 127.0.0.1:9464]
                                             one screen: service, tunnel sessions and RTT,
                                             certificate and renewal, SharePoint, crawl, what to do
  bridge-agent doctor  [--config PATH]       step-by-step connectivity diagnostics with hints
  bridge-agent start | stop | restart        control the installed service
  bridge-agent uninstall                     remove the service (configuration and state stay)
  bridge-agent enroll  --token TOKEN --state-dir DIR [--ca-url URL] [--fingerprint SHA256]
                                             get this agent's certificate from step-ca with a
                                             one-time token (key made here, never sent)
  bridge-agent enroll  --cert F --key F --root F --state-dir DIR [--ca-url URL]
                                             use files made by 'step ca certificate'
  bridge-agent run     --config agent.yaml   run the agent in the foreground (the service runs this)
  bridge-agent sharepoint-emulator [--listen 127.0.0.1:8088] [--items N] [--password-file F]
                                             a SharePoint Server emulator with generated content,
                                             for trials (not for production)
  bridge-agent version                       print the version
  bridge-agent help                          show this text

Installed, the configuration is /etc/mcc-bridge/agent.yaml on Linux and
C:\ProgramData\MCC Bridge\agent.yaml on Windows; the service is mcc-bridge-agent.
Run 'bridge-agent <command> -h' for the flags of a command.
The configuration keys and their defaults are documented in README.md.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bridge-agent:", err)
		}
		os.Exit(2)
	}
}

// cli is one run of the command, with what it talks to.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// newControl returns the service manager's handle (tests replace it).
	newControl func(service.Spec, *slog.Logger) (serviceControl, error)
}

func run(args []string, stdout, stderr io.Writer) error {
	c := &cli{stdin: os.Stdin, stdout: stdout, stderr: stderr, newControl: newControl}
	return c.run(args)
}

// log is the logger of the service commands: warnings to stderr.
func (c *cli) log() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (c *cli) run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], c.stderr)
	case "status":
		return c.cmdStatus(args[1:])
	case "install":
		return c.cmdInstall(args[1:])
	case "doctor":
		return c.cmdDoctor(args[1:])
	case "uninstall", "start", "stop", "restart":
		return c.cmdServiceAction(args[0], args[1:])
	case "enroll":
		return cmdEnroll(args[1:], c.stdin, c.stdout, c.stderr)
	case "sharepoint-emulator":
		return cmdEmulator(args[1:], c.stdout, c.stderr)
	case "version", "--version":
		fmt.Fprintln(c.stdout, "bridge-agent", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(c.stdout, usage)
		return nil
	}
	fmt.Fprint(c.stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "agent.yaml", "path of the agent configuration `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// The tunnel warns about small UDP buffers itself, once, through slog.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	if !service.Interactive() {
		return runService(*config, stderr)
	}
	a, closeLog, err := newAgent(*config, stderr, nil)
	if err != nil {
		return err
	}
	defer closeLog()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}

// newAgent loads the configuration and builds the agent with its logger;
// sys, when set, also gets warnings and errors (the Windows event log).
func newAgent(config string, stderr io.Writer, sys kservice.Logger) (*agent.Agent, func(), error) {
	cfg, err := agent.LoadConfig(config)
	if err != nil {
		return nil, nil, err
	}
	if runtime.GOOS == "windows" && sys != nil {
		// The service control manager waits about 20 s for a stop.
		cfg.Tunnel.DrainTimeout = min(cfg.Tunnel.DrainTimeout, 15*time.Second)
	}
	log, logFile, err := cfg.Log.Open(stderr)
	if err != nil {
		return nil, nil, err
	}
	if sys != nil {
		log = slog.New(service.SystemLogHandler(log.Handler(), sys))
	}
	a, err := agent.New(cfg, log, version, os.Getenv)
	if err != nil {
		log.Error("the agent cannot start", "err", err)
		logFile.Close()
		return nil, nil, err
	}
	return a, func() { logFile.Close() }, nil
}

// runService runs the agent under systemd or the Windows service control
// manager. It answers the service manager before it reads the
// configuration, so that a bad configuration is a logged service failure
// (restarted with backoff) rather than a service that never started.
func runService(config string, stderr io.Writer) error {
	spec := service.Spec{Config: config}
	var sys kservice.Logger
	if runtime.GOOS == "windows" {
		sys, _ = service.SystemLogger(spec)
	}
	// Within systemd's TimeoutStopSec (45 s) and Windows' stop wait.
	r := &service.Runner{StopTimeout: 40 * time.Second}
	if runtime.GOOS == "windows" {
		r.StopTimeout = 18 * time.Second
	}
	r.Run = func(ctx context.Context) error {
		a, closeLog, err := newAgent(config, stderr, sys)
		if err == nil {
			defer closeLog()
			err = a.Run(ctx)
		}
		if err != nil && !r.Stopping() {
			fmt.Fprintln(stderr, "bridge-agent: the agent stopped on its own; the service manager restarts it:", err)
			if sys != nil {
				sys.Error("bridge-agent stopped: " + err.Error())
			}
			if runtime.GOOS == "windows" {
				os.Exit(1) // the service control manager's recovery restarts it
			}
		}
		return err
	}
	return service.RunService(spec, r)
}

func (c *cli) cmdStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	config := fs.String("config", "", "read the ops address from this configuration `file` (default: the installed one, if any)")
	ops := fs.String("ops", "", "the agent's ops `address` (default 127.0.0.1:9464)")
	name := fs.String("service-name", service.Name, "the service `name`")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr := *ops
	if *config == "" && addr == "" {
		if _, err := os.Stat(service.DefaultPaths().Config); err == nil {
			*config = service.DefaultPaths().Config
		}
	}
	if addr == "" && *config != "" {
		cfg, err := agent.LoadConfig(*config)
		if err != nil {
			return err
		}
		addr = cfg.Ops.Listen
	}
	if addr == "" {
		addr = "127.0.0.1:9464"
	}
	svcLine := ""
	if ctl, err := c.newControl(service.Spec{Name: *name}, nil); err == nil {
		if st, err := ctl.Status(); err == nil {
			svcLine = fmt.Sprintf("service      %s: %s (%s)", *name, st, ctl.Platform())
			if st == service.StateStopped {
				svcLine += "\n             -> start it: bridge-agent start; why it stopped: " + serviceLogHint(*name)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := fetchStatus(ctx, &http.Client{Timeout: 5 * time.Second}, addr)
	if err != nil {
		if svcLine != "" {
			fmt.Fprintln(c.stdout, svcLine)
		}
		return err
	}
	if *asJSON {
		return json.NewEncoder(c.stdout).Encode(st)
	}
	if svcLine != "" {
		fmt.Fprintln(c.stdout, svcLine)
	}
	printStatus(c.stdout, st)
	if st.Renewal != nil && st.Renewal.State == renew.StateReenroll {
		return errors.New("re-enrollment needed: get a new token and run 'bridge-agent enroll'")
	}
	if !st.Tunnel.Ready {
		return errors.New("no tunnel is up")
	}
	return nil
}

func printStatus(w io.Writer, st agent.Status) {
	var todo []string
	state := "UP"
	if !st.Tunnel.Ready {
		state = "DOWN: no session to a relay"
		todo = append(todo, "tunnel down: run 'bridge-agent doctor' (DNS, ports, proxy, TLS, clock step by step); check `relays` and `proxy` in the config")
	}
	fmt.Fprintf(w, "agent        %s (tenant %s), version %s, up %s\n", st.Agent, st.Tenant, st.Version, st.Uptime)
	fmt.Fprintf(w, "certificate  %s\n", st.Certificate)
	if strings.HasPrefix(st.Certificate, "expired") {
		todo = append(todo, "certificate expired: get a token ('bridge-relay agents token') and run 'bridge-agent install --token TOKEN' (or 'bridge-agent enroll --force')")
	}
	if r := st.Renewal; r != nil {
		line := fmt.Sprintf("renewal      %s, serial %s", r.State, r.Serial)
		if !r.NextRenewal.IsZero() {
			line += ", next " + r.NextRenewal.Format(time.RFC3339)
		}
		if r.LastError != "" {
			line += "\n             last error: " + r.LastError
			todo = append(todo, "renewal failing: check that the CA URL in the enrollment is reachable; it retries by itself")
		}
		if r.State == renew.StateReenroll {
			todo = append(todo, "re-enrollment needed: get a new token and run 'bridge-agent install --token TOKEN --force'")
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "tunnel       %s, protocol %s, relays %s\n", state, st.Tunnel.Protocol, strings.Join(st.Tunnel.Relays, ", "))
	if !st.Tunnel.Ready && st.Tunnel.LastError != "" {
		fmt.Fprintf(w, "             last error at %s: %s\n", st.Tunnel.LastErrorAt.Format(time.RFC3339), st.Tunnel.LastError)
	}
	for _, s := range st.Tunnel.Sessions {
		flags := ""
		if s.Draining {
			flags = " draining"
		}
		if !s.Healthy {
			flags += " unhealthy"
		}
		fmt.Fprintf(w, "  %-4s %-22s relay %-12s rtt %6.2fms  streams %-5d up since %s%s\n",
			s.Transport, s.Remote, s.Relay, s.RTTMillis, s.ActiveStreams, s.Since.Format(time.RFC3339), flags)
	}
	for _, c := range st.Crawl {
		sp := c.SharePoint
		line := "sharepoint   " + c.Site + ": "
		switch {
		case sp.Failure == "auth":
			line += "REFUSED the account (HTTP 401) at " + sp.LastFailure.Format(time.RFC3339)
			todo = append(todo, c.Site+": SharePoint refused the account: check sharepoint.auth (method, username, password file) and run 'bridge-agent doctor'")
		case sp.Failure == "denied":
			line += "the account may not read (HTTP 403) at " + sp.LastFailure.Format(time.RFC3339)
			todo = append(todo, c.Site+": give the crawl account read access to the site (Site Settings > Site permissions)")
		case sp.Failure == "unreachable":
			line += "UNREACHABLE at " + sp.LastFailure.Format(time.RFC3339) + ": " + sp.Error
			todo = append(todo, c.Site+": SharePoint does not answer from this host: check DNS and the firewall, then 'bridge-agent doctor'")
		case !sp.LastOK.IsZero():
			line += "reachable, account accepted (last answer " + sp.LastOK.Format(time.RFC3339) + ")"
		default:
			line += "not contacted yet"
		}
		fmt.Fprintln(w, line)
		line = fmt.Sprintf("crawl        %s: %s", c.Site, c.Phase)
		if c.Running {
			line += " (running)"
		}
		line += fmt.Sprintf(", %d items read, %d delivered", c.Items, c.Delivered)
		if c.Phase == "full" && c.Total > 0 {
			line += fmt.Sprintf(" of about %d", c.Total)
		}
		if !c.LastChange.IsZero() {
			line += ", last change " + c.LastChange.Format(time.RFC3339)
		}
		if !c.LastPoll.IsZero() {
			line += ", last poll " + c.LastPoll.Format(time.RFC3339)
		}
		if c.LastError != "" {
			line += "\n             ERROR: " + c.LastError + " (it resumes from its checkpoint; see the log)"
		}
		fmt.Fprintln(w, line)
	}
	if len(todo) > 0 {
		fmt.Fprintln(w, "to do:")
		for _, t := range todo {
			fmt.Fprintln(w, "  - "+t)
		}
	}
}
