// Command bridge-relay runs the MCC Bridge relay: it accepts agent tunnels
// on UDP (QUIC) and TCP, serves what agents send, and calls agents back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/relay/credentials"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `bridge-relay: the MCC Bridge relay. It accepts agent tunnels on UDP (QUIC) and
TCP, on the same port (default 8443), and reaches agents only through them.

Usage:
  bridge-relay serve     --config relay.yaml    run the relay in the foreground
  bridge-relay ca init   --dir DIR              create a step-ca (root, intermediate, 'agents'
                                                and 'relays' provisioners, CRL) for pki.ca.dir
  bridge-relay agents    [list] [--ops 127.0.0.1:9465]
                                                list connected agents and their sessions
  bridge-relay agents token --tenant T --agent A [--ops ... | --ca-dir DIR]
                                                print a one-time enrollment token (5 minutes)
  bridge-relay agents revoke TENANT/AGENT [--reason R] [--ops ...]
                                                revoke its certificates, deny it, close its sessions
  bridge-relay agents allow  TENANT/AGENT [--ops ...]
                                                lift a denial, so that it can enroll again
  bridge-relay ping      TENANT/AGENT [--ops ...] call an agent through its tunnel
  bridge-relay dev-certs --dir DIR              make a throwaway CA, relay and agent
                                                certificates for a local trial (not for production)
  bridge-relay dev-token --tenant T --user U [--roles R1,R2] [--config relay.yaml]
                                                mint a caller token from the dev issuer
                                                (api.dev_tokens; for a local trial only)
  bridge-relay policies example --tenant T [--dir DIR]
                                                write a starter Cedar policy set for a tenant
  bridge-relay audit verify [--dir DIR | --config relay.yaml]
                                                check every tenant's audit hash chain
  bridge-relay webhooks dead-letters [--system S] [--tenant T] [--config relay.yaml]
                                                list webhook events that could not be delivered
  bridge-relay webhooks replay --system S [--tenant T] [--id N,...]
                                                queue dead letters again for delivery
  bridge-relay version                          print the version
  bridge-relay help                             show this text

The agents and ping commands call the running relay's ops address: --ops,
or the ops.listen of --config FILE (e.g. --config /etc/mcc-bridge/relay.yaml),
else 127.0.0.1:9465.

Run 'bridge-relay <command> -h' for the flags of a command.
The configuration keys and their defaults are documented in README.md.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bridge-relay:", err)
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
	case "serve":
		return cmdServe(args[1:], stderr)
	case "agents":
		return cmdAgents(args[1:], stdout, stderr)
	case "ca":
		return cmdCA(args[1:], stdout, stderr)
	case "ping":
		return cmdPing(args[1:], stdout, stderr)
	case "dev-certs":
		return cmdDevCerts(args[1:], stdout, stderr)
	case "dev-token":
		return cmdDevToken(args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdout, stderr)
	case "policies":
		return cmdPolicies(args[1:], stdout, stderr)
	case "webhooks":
		return cmdWebhooks(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "bridge-relay", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func cmdServe(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "relay.yaml", "path of the relay configuration `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := relay.LoadConfig(*config)
	if err != nil {
		return err
	}
	if cfg.Credentials.MasterKeyFile == "" {
		cfg.Credentials.MasterKey = connectors.Secret(os.Getenv(credentials.MasterKeyEnv))
	}
	log, logFile, err := cfg.Log.Open(stderr)
	if err != nil {
		return err
	}
	defer logFile.Close()
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	r, err := relay.New(cfg, log, version)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return r.Run(ctx)
}

func cmdAgents(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			args = args[1:]
		case "token":
			return cmdAgentToken(args[1:], stdout, stderr)
		case "revoke", "allow":
			return cmdAgentAction(args[0], args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("agents", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opsAddr := opsFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ops, err := opsAddr()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ops + "/status")
	if err != nil {
		return fmt.Errorf("relay not reachable on %s: %w", ops, err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(stdout, resp.Body)
	return err
}

func cmdPing(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opsAddr := opsFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bridge-relay ping TENANT/AGENT [--ops address | --config relay.yaml]")
		fs.PrintDefaults()
	}
	tenant, agentID, err := parseAgentArgs(fs, args)
	if err != nil {
		return err
	}
	ops, err := opsAddr()
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 35 * time.Second}
	resp, err := client.Get("http://" + ops + "/v1/agents/" + tenant + "/" + agentID + "/ping")
	if err != nil {
		return fmt.Errorf("relay not reachable on %s: %w", ops, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping %s/%s: %s: %s", tenant, agentID, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = stdout.Write(body)
	return err
}

func cmdDevCerts(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "write the files into this `directory` (required)")
	tenant := fs.String("tenant", "acme", "agent tenant")
	agentID := fs.String("agent", "agent-01", "agent id")
	hosts := fs.String("hosts", "localhost,127.0.0.1,::1", "comma-separated names and IPs for the relay certificate")
	force := fs.Bool("force", false, "overwrite existing files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("dev-certs: --dir is required")
	}
	root := filepath.Join(*dir, "root.crt")
	if _, err := os.Stat(root); err == nil && !*force {
		fmt.Fprintf(stdout, "dev certificates already in %s (use --force to replace them)\n", *dir)
		return nil
	}
	ca, err := devca.New("MCC Bridge dev root")
	if err != nil {
		return err
	}
	if _, err := ca.WriteRoot(*dir, "root"); err != nil {
		return err
	}
	long := devca.Validity{NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(30 * 24 * time.Hour)}
	srv, err := ca.Server(long, strings.Split(*hosts, ",")...)
	if err != nil {
		return err
	}
	if _, _, err := devca.WriteFiles(*dir, "relay", srv); err != nil {
		return err
	}
	ag, err := ca.Agent(long, *tenant, *agentID)
	if err != nil {
		return err
	}
	if _, _, err := devca.WriteFiles(*dir, "agent", ag); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote root.crt, relay.crt/key and agent.crt/key (spiffe://%s/agent/%s) to %s; valid 30 days, for local trials only\n", *tenant, *agentID, *dir)
	return nil
}

// parseAgentArgs parses fs from args, taking the agent, TENANT/AGENT,
// before or after the flags.
func parseAgentArgs(fs *flag.FlagSet, args []string) (tenant, agent string, err error) {
	var target string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", "", err
	}
	if target == "" && fs.NArg() == 1 {
		target = fs.Arg(0)
	}
	tenant, agent, ok := strings.Cut(target, "/")
	if !ok || tenant == "" || agent == "" {
		if fs.Usage != nil {
			fs.Usage()
		}
		return "", "", fmt.Errorf("%s: name the agent as TENANT/AGENT", fs.Name())
	}
	return tenant, agent, nil
}

// defaultOps is the ops address of a relay with the default configuration.
const defaultOps = "127.0.0.1:9465"

// opsFlags registers --ops and --config on fs. The returned function,
// called after fs.Parse, gives the ops address to call: --ops when given,
// else the ops.listen of --config when given (a wildcard host becomes
// loopback), else defaultOps.
func opsFlags(fs *flag.FlagSet) func() (string, error) {
	ops := fs.String("ops", defaultOps, "the running relay's ops `address`")
	config := fs.String("config", "", "take the ops address from this relay configuration `file` (ops.listen)")
	return func() (string, error) {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "ops" })
		if set || *config == "" {
			return *ops, nil
		}
		cfg, err := relay.LoadConfig(*config)
		if err != nil {
			return "", err
		}
		return dialable(cfg.Ops.Listen)
	}
}

// dialable turns a listen address into one to call: an empty or wildcard
// host is this machine's loopback.
func dialable(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("ops.listen %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}
