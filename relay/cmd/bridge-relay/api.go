package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/policy"
	"github.com/mcc-bridge/bridge/relay/webhooks"
)

// cmdDevToken mints a caller token from the relay's dev issuer.
func cmdDevToken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "relay.yaml", "the relay's configuration `file` (its pki.state_dir holds the dev issuer's key)")
	tenant := fs.String("tenant", "", "the caller's `tenant` (required)")
	user := fs.String("user", "", "the caller's user `id` (required)")
	email := fs.String("email", "", "the caller's e-mail `address` (default USER@TENANT.example)")
	roles := fs.String("roles", "", "comma-separated `roles`, e.g. campaign-manager,admin")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tenant == "" || *user == "" {
		return errors.New("dev-token: --tenant and --user are required")
	}
	cfg, err := relay.LoadConfig(*config)
	if err != nil {
		return err
	}
	if !cfg.API.DevTokens {
		return fmt.Errorf("dev-token: %s does not set api.dev_tokens, so the relay would refuse the token", *config)
	}
	dev, err := callerauth.LoadOrCreateDevIssuer(cfg.DevIssuerPath(), relay.DevIssuerName)
	if err != nil {
		return err
	}
	if *email == "" {
		*email = *user + "@" + *tenant + ".example"
	}
	var rs []string
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rs = append(rs, r)
		}
	}
	tok, err := dev.Mint(*tenant, *user, *email, rs, *ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

// cmdAudit runs audit subcommands: verify.
func cmdAudit(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("audit: want 'audit verify --dir DIR' or 'audit verify --config relay.yaml'")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "the audit log `directory` (default: api.audit of --config)")
	config := fs.String("config", "relay.yaml", "the relay's configuration `file`")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		cfg, err := relay.LoadConfig(*config)
		if err != nil {
			return err
		}
		*dir = cfg.API.Audit
	}
	if _, err := os.Stat(*dir); err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	res, err := audit.Verify(context.Background(), *dir)
	for _, p := range res.Problems {
		fmt.Fprintln(stdout, "BROKEN", p)
	}
	if err != nil {
		return fmt.Errorf("audit verify: %d tenants, %d records: %w", res.Tenants, res.Records, err)
	}
	fmt.Fprintf(stdout, "ok: %d tenants, %d records, every hash chain intact\n", res.Tenants, res.Records)
	return nil
}

// cmdPolicies runs policies subcommands: example.
func cmdPolicies(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "example" {
		return errors.New("policies: want 'policies example --tenant T --dir DIR'")
	}
	fs := flag.NewFlagSet("policies example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "the `tenant` (required)")
	dir := fs.String("dir", "", "the policy `directory` (api.policies) to write TENANT/"+policy.ExampleFile+" into; empty prints it")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("policies example: --tenant is required")
	}
	body := policy.Example(*tenant)
	if *dir == "" {
		_, err := stdout.Write(body)
		return err
	}
	p := filepath.Join(*dir, *tenant, policy.ExampleFile)
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("policies example: %s exists; not overwritten", p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, body, 0o644); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "wrote", p)
	return nil
}

// cmdWebhooks runs webhooks subcommands: dead-letters and replay (the
// runbook's "a subscriber was down" scenario).
func cmdWebhooks(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "dead-letters" && args[0] != "replay") {
		return errors.New("webhooks: want 'webhooks dead-letters' or 'webhooks replay --system S [--tenant T] [--id N,...]'")
	}
	fs := flag.NewFlagSet("webhooks "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "relay.yaml", "the relay's configuration `file` (its webhooks.dir holds the queue)")
	system := fs.String("system", "", "only this `system`")
	tenant := fs.String("tenant", "", "only this `tenant`")
	ids := fs.String("id", "", "replay only these event `ids` (comma-separated)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := relay.LoadConfig(*config)
	if err != nil {
		return err
	}
	ctx := context.Background()
	hub, err := webhooks.Open(ctx, webhooks.Config{Dir: cfg.Webhooks.Dir})
	if err != nil {
		return err
	}
	defer hub.Close()
	if args[0] == "dead-letters" {
		dls, err := hub.DeadLetters(ctx, webhooks.Filter{System: *system, Tenant: *tenant, Limit: 1000})
		if err != nil {
			return err
		}
		for _, d := range dls {
			fmt.Fprintf(stdout, "%d\t%s/%s\treceived %s\tdied %s\tattempts %d\t%s\n", d.Event.ID, d.Event.System, d.Event.Tenant,
				d.Event.ReceivedAt.UTC().Format(time.RFC3339), d.DiedAt.UTC().Format(time.RFC3339), d.Event.Attempt, d.LastError)
		}
		fmt.Fprintf(stdout, "%d dead letters\n", len(dls))
		return nil
	}
	sel := webhooks.Selection{System: *system, Tenant: *tenant}
	for _, s := range strings.Split(*ids, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("webhooks replay: --id %q: want event ids", s)
		}
		sel.IDs = append(sel.IDs, id)
	}
	n, err := hub.Replay(ctx, sel)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d events queued again; the running relay delivers them\n", n)
	return nil
}
