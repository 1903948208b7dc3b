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
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/pki/renew"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `bridge-agent: the MCC Bridge agent. It dials out to MCC Bridge relays through an
outbound-only mutual-TLS tunnel (QUIC, or TLS over TCP when UDP is blocked, also
through an HTTP CONNECT proxy) and never listens for inbound traffic.

Usage:
  bridge-agent enroll  --token TOKEN --state-dir DIR [--ca-url URL] [--fingerprint SHA256]
                                             get this agent's certificate from step-ca with a
                                             one-time token (key made here, never sent)
  bridge-agent enroll  --cert F --key F --root F --state-dir DIR [--ca-url URL]
                                             use files made by 'step ca certificate'
  bridge-agent run     --config agent.yaml   run the agent in the foreground
  bridge-agent status  [--config agent.yaml | --ops 127.0.0.1:9464]
                                             show tunnel sessions, RTT and certificate
  bridge-agent sharepoint-emulator [--listen 127.0.0.1:8088] [--items N] [--password-file F]
                                             a SharePoint Server emulator with generated content,
                                             for trials (not for production)
  bridge-agent version                       print the version
  bridge-agent help                          show this text

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

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "enroll":
		return cmdEnroll(args[1:], os.Stdin, stdout, stderr)
	case "sharepoint-emulator":
		return cmdEmulator(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "bridge-agent", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "agent.yaml", "path of the agent configuration `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := agent.LoadConfig(*config)
	if err != nil {
		return err
	}
	log, err := cfg.Log.Logger(stderr)
	if err != nil {
		return err
	}
	// The tunnel warns about small UDP buffers itself, once, through slog.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	a, err := agent.New(cfg, log, version, os.Getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.Run(ctx)
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "read the ops address from this configuration `file`")
	ops := fs.String("ops", "127.0.0.1:9464", "the agent's ops `address`")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr := *ops
	if *config != "" {
		cfg, err := agent.LoadConfig(*config)
		if err != nil {
			return err
		}
		addr = cfg.Ops.Listen
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/status")
	if err != nil {
		return fmt.Errorf("agent not reachable on %s (is it running? see the service log): %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var st agent.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("agent status from %s: %w", addr, err)
	}
	printStatus(stdout, st)
	if st.Renewal != nil && st.Renewal.State == renew.StateReenroll {
		return errors.New("re-enrollment needed: get a new token and run 'bridge-agent enroll'")
	}
	if !st.Tunnel.Ready {
		return errors.New("no tunnel is up")
	}
	return nil
}

func printStatus(w io.Writer, st agent.Status) {
	state := "UP"
	if !st.Tunnel.Ready {
		state = "DOWN: no session to a relay; check `relays` in the config, the network path and the log"
	}
	fmt.Fprintf(w, "agent        %s (tenant %s), version %s, up %s\n", st.Agent, st.Tenant, st.Version, st.Uptime)
	fmt.Fprintf(w, "certificate  %s\n", st.Certificate)
	if r := st.Renewal; r != nil {
		line := fmt.Sprintf("renewal      %s, serial %s", r.State, r.Serial)
		if !r.NextRenewal.IsZero() {
			line += ", next " + r.NextRenewal.Format(time.RFC3339)
		}
		if r.LastError != "" {
			line += "\n             last error: " + r.LastError
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "tunnel       %s, protocol %s, relays %s\n", state, st.Tunnel.Protocol, strings.Join(st.Tunnel.Relays, ", "))
	if !st.Tunnel.Ready && st.Tunnel.LastError != "" {
		fmt.Fprintf(w, "             last error at %s: %s\n", st.Tunnel.LastErrorAt.Format(time.RFC3339), st.Tunnel.LastError)
	}
	for _, c := range st.Crawl {
		line := fmt.Sprintf("crawl        %s: %s", c.Site, c.Phase)
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
}
