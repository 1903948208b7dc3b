package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/doctor"
	"github.com/mcc-bridge/bridge/installer/service"
)

// errDoctorFailed makes doctor exit non-zero after it printed its findings.
var errDoctorFailed = errors.New("doctor: some checks failed (see the hints above)")

func (c *cli) cmdDoctor(args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	config := fs.String("config", "", "the agent configuration `file` (default: the installed one, else agent.yaml)")
	timeout := fs.Duration("timeout", doctor.DefaultTimeout, "give each step this `long`")
	maxSkew := fs.Duration("max-skew", doctor.DefaultMaxSkew, "warn when the clock is off the relay's by more than this `duration`")
	fs.Usage = func() {
		fmt.Fprintln(c.stderr, `usage: bridge-agent doctor [--config agent.yaml] [--timeout 5s] [--max-skew 30s]

Checks, step by step and with a hint for each failure: the agent certificate;
for each relay DNS, TCP (or the CONNECT proxy), the mutual-TLS handshake, QUIC
over UDP and the clock against the relay's; then each SharePoint site with the
configured account. It uses the same configuration, certificate, proxy and
credentials as the service, and changes nothing.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *config
	if path == "" {
		path = "agent.yaml"
		if _, err := os.Stat(service.DefaultPaths().Config); err == nil {
			path = service.DefaultPaths().Config
		}
	}
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Fprintf(c.stdout, "bridge-agent doctor: %s\n\n", path)
	start := time.Now()
	results := doctor.Run(ctx, cfg, doctor.Options{Timeout: *timeout, MaxSkew: *maxSkew, Getenv: os.Getenv, Version: version},
		func(r doctor.Result) { doctor.Print(c.stdout, r) })
	summary, ok := doctor.Summary(results)
	fmt.Fprintf(c.stdout, "\n%s in %s\n", summary, time.Since(start).Round(time.Millisecond))
	if !ok {
		return errDoctorFailed
	}
	return nil
}
