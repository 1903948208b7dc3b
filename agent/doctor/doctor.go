package doctor

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/tunnel"
)

// Status is the outcome of a step.
type Status string

// The outcomes of a step.
const (
	// Pass: the step found nothing wrong.
	Pass Status = "PASS"
	// Fail: the agent cannot work this way; Hint says what to do.
	Fail Status = "FAIL"
	// Warn: the agent works, but not as well as it could, or will stop
	// working soon; Hint says what to do.
	Warn Status = "WARN"
	// Skip: the step did not run, because a step it needs failed or the
	// configuration does not use it; Detail says which.
	Skip Status = "SKIP"
)

// Result is one diagnostic step.
type Result struct {
	// Step names the step and its subject, e.g. "dns relay.example.com",
	// "tcp 10.0.0.5:8443", "udp/quic 10.0.0.5:8443", "proxy
	// http://proxy:3128", "tls 10.0.0.5:8443", "certificate", "clock
	// 10.0.0.5:8443", "sharepoint http://sp/sites/mkt".
	Step string
	// Status is the outcome.
	Status Status
	// Detail is what was seen. It never holds a secret.
	Detail string
	// Hint is what to do when Status is not Pass; empty when there is
	// nothing to do (a skip, usually).
	Hint string
	// Took is how long the step ran.
	Took time.Duration
}

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options tune a run. The zero value of every field means its default.
type Options struct {
	// Timeout bounds each step. Zero means 5s.
	Timeout time.Duration
	// Resolver resolves relay names. Nil means net.DefaultResolver.
	Resolver Resolver
	// Now is this machine's clock, against which certificates and the
	// relay's clock are checked. Nil means time.Now.
	Now func() time.Time
	// Getenv reads HTTPS_PROXY and NO_PROXY (when the configuration's
	// proxy is empty) and the SharePoint password_env variable. Nil means
	// os.Getenv.
	Getenv func(string) string
	// MaxSkew is the clock difference with a relay above which the clock
	// step warns. Zero means 30s: a machine synchronised by NTP is within
	// a second, so 30s means it is not synchronised. Above 5 minutes (or
	// MaxSkew, if larger) the step fails: Kerberos (SharePoint auth method
	// kerberos) refuses a skew of 5 minutes, and fresh short-lived
	// certificates look not yet valid.
	MaxSkew time.Duration
	// Version is the agent version, sent to the relay in HELLO as
	// "<Version> doctor" so that relay logs show the doctor's sessions
	// for what they are. Zero means "doctor" alone.
	Version string
}

// Defaults applied to zero Options fields.
const (
	DefaultTimeout = 5 * time.Second
	DefaultMaxSkew = 30 * time.Second
)

// skewFailFloor is the skew above which the clock step fails (unless
// MaxSkew is larger): Kerberos's default tolerance.
const skewFailFloor = 5 * time.Minute

// maxAddrs bounds how many addresses of one relay name are checked.
const maxAddrs = 4

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.MaxSkew <= 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	return o
}

// Run runs every step in order, calling report (may be nil) as each
// finishes, and returns all results. It does not stop at a failure: steps
// that need a failed one are reported as Skip. When ctx ends, the steps not
// yet run are reported as Skip.
func Run(ctx context.Context, cfg agent.Config, opts Options, report func(Result)) []Result {
	r := &runner{cfg: cfg, opts: opts.withDefaults(), report: report}
	r.proto = tunnel.ProtocolAuto
	if p, err := tunnel.ParseProtocol(cfg.Protocol); err == nil {
		r.proto = p
	}
	r.proxy = r.proxyChoice()
	r.certificate(ctx)
	for _, relay := range cfg.Relays {
		r.checkRelay(ctx, relay)
	}
	for _, site := range cfg.SharePoint.Sites {
		r.sharePoint(ctx, site)
	}
	return r.out
}

// runner holds one run's state.
type runner struct {
	cfg     agent.Config
	opts    Options
	report  func(Result)
	proto   tunnel.Protocol
	proxy   proxyChoice
	id      *identity // nil when the certificate step failed
	secrets []string  // replaced by [redacted] in every Detail and Hint
	out     []Result
}

// addSecret registers s to be scrubbed from every result.
func (r *runner) addSecret(s string) {
	// Very short secrets would scrub ordinary words; they are never
	// printed by this package anyway.
	if len(s) >= 4 {
		r.secrets = append(r.secrets, s)
	}
}

// add records res and reports it.
func (r *runner) add(res Result) Result {
	for _, s := range r.secrets {
		res.Detail = strings.ReplaceAll(res.Detail, s, "[redacted]")
		res.Hint = strings.ReplaceAll(res.Hint, s, "[redacted]")
	}
	r.out = append(r.out, res)
	if r.report != nil {
		r.report(res)
	}
	return res
}

// step runs fn under the per-step timeout, times it and records its result
// as step name. It does not run fn once ctx has ended.
func (r *runner) step(ctx context.Context, name string, fn func(ctx context.Context) Result) Result {
	if ctx.Err() != nil {
		return r.skip(name, "not run: the doctor was interrupted")
	}
	sctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	start := time.Now()
	res := fn(sctx)
	res.Step = name
	res.Took = time.Since(start)
	return r.add(res)
}

// skip records a step that did not run, and why.
func (r *runner) skip(name, why string) Result {
	return r.add(Result{Step: name, Status: Skip, Detail: why})
}

// Print writes one result as a line, and its hint indented below it when
// the result is not Pass.
func Print(w io.Writer, r Result) {
	line := fmt.Sprintf("%-4s  %s", r.Status, r.Step)
	if r.Detail != "" {
		line += ": " + r.Detail
	}
	if r.Took > 0 {
		line += " (" + roundTook(r.Took).String() + ")"
	}
	fmt.Fprintln(w, line)
	if r.Status != Pass && r.Hint != "" {
		fmt.Fprintln(w, "      hint: "+r.Hint)
	}
}

func roundTook(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

// Summary counts the results, e.g. "7 passed, 1 failed, 1 warning, 2
// skipped" (counts of zero left out, but for passed), and reports whether
// no step failed: warnings and skips (which follow a failure or a
// configuration choice) do not count as failures.
func Summary(rs []Result) (string, bool) {
	n := map[Status]int{}
	for _, r := range rs {
		n[r.Status]++
	}
	parts := []string{fmt.Sprintf("%d passed", n[Pass])}
	if n[Fail] > 0 {
		parts = append(parts, fmt.Sprintf("%d failed", n[Fail]))
	}
	switch {
	case n[Warn] == 1:
		parts = append(parts, "1 warning")
	case n[Warn] > 1:
		parts = append(parts, fmt.Sprintf("%d warnings", n[Warn]))
	}
	if n[Skip] > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", n[Skip]))
	}
	return strings.Join(parts, ", "), n[Fail] == 0
}
