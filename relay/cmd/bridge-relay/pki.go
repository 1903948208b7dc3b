package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/pki/stepca"
)

func cmdCA(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		fmt.Fprintln(stderr, "usage: bridge-relay ca init --dir DIR [flags]")
		return errors.New("ca: the only subcommand is init")
	}
	fs := flag.NewFlagSet("ca init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "create the CA in this `directory` (required; must not hold a CA)")
	name := fs.String("name", "MCC Bridge", "the CA's `name` in its certificates")
	dns := fs.String("dns", "localhost,127.0.0.1,::1", "comma-separated `names` and IPs the CA serves on (the first is in its URL)")
	address := fs.String("address", "127.0.0.1:9000", "`host:port` the CA listens on (pki.ca.listen)")
	agentDur := fs.Duration("agent-cert-duration", 24*time.Hour, "lifetime of agent `certificates`")
	noAfterExpiry := fs.Bool("no-renewal-after-expiry", false, "make expired agent certificates re-enroll instead of renewing")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		fs.Usage()
		return errors.New("ca init: --dir is required")
	}
	c, err := stepca.Init(*dir, stepca.InitOptions{
		Name: *name, DNSNames: strings.Split(*dns, ","), Address: *address,
		AgentDuration: *agentDur, DisableRenewalAfterExpiry: *noAfterExpiry,
	})
	if err != nil {
		return err
	}
	l := c.Layout()
	fmt.Fprintf(stdout, `created a step-ca in %s
  root        %s
  fingerprint %s
  url         %s
  password    %s (mode 0600: it decrypts the CA and provisioner keys)
  provisioners 'agents' (one spiffe://TENANT/agent/ID URI per certificate, %s) and 'relays'
next: set 'pki: {ca: {dir: %s, listen: %s}}' in relay.yaml and run 'bridge-relay serve';
      then 'bridge-relay agents token --tenant TENANT --agent AGENT' gives agents their tokens
      (or: step ca token AGENT --provisioner agents --set tenant=TENANT --ca-url %s --root %s
           --provisioner-password-file %s)
`, *dir, l.Root(), c.Fingerprint(), c.URL(), l.Password(), *agentDur, *dir, *address, c.URL(), l.Root(), l.Password())
	return nil
}

func cmdAgentToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agents token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "the agent's `tenant` (required)")
	agentID := fs.String("agent", "", "the agent `id` (required)")
	ttl := fs.Duration("ttl", stepca.DefaultTokenTTL, "how long the token is valid")
	opsAddr := opsFlags(fs)
	caDir := fs.String("ca-dir", "", "make the token from this CA `directory` instead (no relay needed)")
	asJSON := fs.Bool("json", false, "print token, CA URL and fingerprint as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" || *agentID == "" {
		fs.Usage()
		return errors.New("agents token: --tenant and --agent are required")
	}
	var out struct {
		Token       string `json:"token"`
		CAURL       string `json:"ca_url"`
		Fingerprint string `json:"fingerprint"`
	}
	if *caDir != "" {
		c, err := stepca.Load(*caDir)
		if err != nil {
			return err
		}
		m, err := c.Minter(stepca.AgentProvisioner)
		if err != nil {
			return err
		}
		if out.Token, err = m.AgentToken(*tenant, *agentID, *ttl); err != nil {
			return err
		}
		out.CAURL, out.Fingerprint = c.URL(), c.Fingerprint()
	} else {
		ops, err := opsAddr()
		if err != nil {
			return err
		}
		u := fmt.Sprintf("http://%s/v1/agents/%s/%s/token?ttl=%s", ops, url.PathEscape(*tenant), url.PathEscape(*agentID), ttl.String())
		if err := postJSON(u, &out); err != nil {
			return fmt.Errorf("agents token: %w", err)
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintln(stdout, out.Token)
	fmt.Fprintf(stderr, "one-time token for %s/%s, valid %s; on the agent machine:\n  bridge-agent enroll --token TOKEN --state-dir DIR\n(CA %s, root fingerprint %s)\n",
		*tenant, *agentID, *ttl, out.CAURL, out.Fingerprint)
	return nil
}

func cmdAgentAction(action string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agents "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	opsAddr := opsFlags(fs)
	reason := fs.String("reason", "", "why (kept in the deny list and the log)")
	tenant, agentID, err := parseAgentArgs(fs, args)
	if err != nil {
		return err
	}
	ops, err := opsAddr()
	if err != nil {
		return err
	}
	u := fmt.Sprintf("http://%s/v1/agents/%s/%s/%s?reason=%s", ops, url.PathEscape(tenant), url.PathEscape(agentID), action, url.QueryEscape(*reason))
	var out map[string]any
	if err := postJSON(u, &out); err != nil {
		return fmt.Errorf("agents %s: %w", action, err)
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintln(stdout, string(b))
	if errs, ok := out["errors"].([]any); ok && len(errs) > 0 {
		return fmt.Errorf("agents %s: %d step(s) failed (see errors above)", action, len(errs))
	}
	return nil
}

func postJSON(u string, out any) error {
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post(u, "application/json", nil)
	if err != nil {
		return fmt.Errorf("relay not reachable (is it running? --ops): %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}
