// Package tunnelclient is the agent's end of the tunnel. It only dials out:
// it holds N sessions (default 2) to distinct relay addresses, tries QUIC
// first and falls back to TCP+TLS (directly or through an HTTP CONNECT proxy)
// when no QUIC handshake completes in time, re-probes QUIC every few minutes
// and moves back without breaking streams in flight, reconnects with
// full-jitter backoff, and moves to another session when a relay sends GOAWAY.
//
// DialContext opens a stream to a relay on the healthiest session, and
// Listener yields the streams relays open, so that both directions speak
// plain net/http.
package tunnelclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/backoff"
	"github.com/mcc-bridge/bridge/tunnel/control"
	"github.com/mcc-bridge/bridge/tunnel/proxy"
	"github.com/mcc-bridge/bridge/tunnel/tunnelquic"
	"github.com/mcc-bridge/bridge/tunnel/tunneltcp"
)

// Resolver looks up the addresses of a relay host name.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Config configures a Client. The zero value of every field but Relays and
// TLS means its default.
type Config struct {
	// Relays are relay addresses, "host:port". A host name that resolves to
	// several addresses counts as that many relays. Required.
	Relays []string
	// Connections is how many sessions to hold, each to a different relay
	// address when there are enough. Zero means 2.
	Connections int
	// Protocol is auto (QUIC, falling back to TCP), quic or tcp. Zero means auto.
	Protocol tunnel.Protocol
	// TLS holds the agent certificate and the roots that verify relays. Required.
	TLS *tls.Config
	// Proxy picks the HTTP CONNECT proxy for a relay address on the TCP
	// transport, or nil for a direct connection. Nil means always direct.
	Proxy func(target string) (*url.URL, error)
	// ProxyAuth is the proxy authentication scheme: "" or "basic", or "ntlm".
	ProxyAuth string
	// AgentVersion and Capabilities go into HELLO.
	AgentVersion string
	Capabilities []string
	// OnRefused is called when a relay refuses this agent's certificate, at
	// the handshake or by closing a live session (revocation). The agent
	// checks its certificate then. Nil means nothing is called.
	OnRefused func(err error)
	// FallbackDelay is how long QUIC has to complete a handshake before TCP
	// is tried. Zero means 3s.
	FallbackDelay time.Duration
	// ReprobeInterval is how often a session that fell back to TCP tries QUIC
	// again. Zero means 5m.
	ReprobeInterval time.Duration
	// Backoff paces reconnects.
	Backoff backoff.Policy
	// DialWait is how long DialContext waits for a session when none is up.
	// Zero means 10s.
	DialWait time.Duration
	// DrainTimeout bounds the graceful drain when Run's context ends, and a
	// drain after moving back to QUIC. Zero means 30s.
	DrainTimeout time.Duration
	// Resolver resolves relay host names. Nil means net.DefaultResolver.
	Resolver Resolver
	// Link, QUIC and TCP tune the control protocol and the transports.
	Link tunnel.LinkConfig
	QUIC tunnelquic.Config
	TCP  tunneltcp.Config
	// Logger receives the client's log lines. Nil means no logging.
	Logger *slog.Logger
	// Metrics records tunnel figures. Nil records nothing.
	Metrics *tunnel.Metrics
}

// Client keeps the agent's tunnel sessions up. Create it with New and call Run.
type Client struct {
	cfg     Config
	log     *slog.Logger
	streams *tunnel.Listener
	quic    *tunnelquic.Dialer
	rr      atomic.Uint64

	mu        sync.Mutex
	links     map[*tunnel.Link]linkInfo // every live link, draining ones too; guarded by mu
	slots     []target                  // the target each slot holds or last tried; guarded by mu
	changed   chan struct{}             // closed and replaced when links change; guarded by mu
	quicUntil time.Time                 // skip QUIC in auto mode until then, after a fallback; guarded by mu
	lastErr   string                    // last connect failure or session loss; guarded by mu
	lastErrAt time.Time                 // guarded by mu
}

type linkInfo struct {
	slot   int
	target target
}

// target is one relay address to dial.
type target struct {
	addr       string // host:port to dial (an IP when the name was resolved)
	serverName string // name to verify in the relay certificate
	relay      string // the configured relay address it came from
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if len(cfg.Relays) == 0 {
		return nil, errors.New("tunnel client: no relay addresses configured")
	}
	for _, r := range cfg.Relays {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return nil, fmt.Errorf("tunnel client: relay address %q: want host:port: %w", r, err)
		}
	}
	if cfg.TLS == nil {
		return nil, errors.New("tunnel client: TLS with the agent certificate is required")
	}
	p, err := tunnel.ParseProtocol(string(cfg.Protocol))
	if err != nil {
		return nil, fmt.Errorf("tunnel client: %w", err)
	}
	cfg.Protocol = p
	if cfg.Connections <= 0 {
		cfg.Connections = 2
	}
	if cfg.FallbackDelay <= 0 {
		cfg.FallbackDelay = 3 * time.Second
	}
	if cfg.ReprobeInterval <= 0 {
		cfg.ReprobeInterval = 5 * time.Minute
	}
	if cfg.DialWait <= 0 {
		cfg.DialWait = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Link.Logger == nil {
		cfg.Link.Logger = cfg.Logger
	}
	if cfg.Link.Metrics == nil {
		cfg.Link.Metrics = cfg.Metrics
	}
	if cfg.QUIC.Logger == nil {
		cfg.QUIC.Logger = cfg.Logger
	}
	if cfg.TCP.Logger == nil {
		cfg.TCP.Logger = cfg.Logger
	}
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		streams: tunnel.NewListener(tunnel.Addr("agent")),
		links:   make(map[*tunnel.Link]linkInfo),
		slots:   make([]target, cfg.Connections),
		changed: make(chan struct{}),
	}
	c.quic = &tunnelquic.Dialer{Config: cfg.QUIC}
	return c, nil
}

// Run holds the tunnel sessions up until ctx ends, then drains them (GOAWAY,
// streams in flight finish) for at most DrainTimeout and returns.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range c.cfg.Connections {
		wg.Go(func() { c.runSlot(ctx, i) })
	}
	wg.Wait()
	dctx, cancel := context.WithTimeout(context.Background(), c.cfg.DrainTimeout)
	defer cancel()
	var dwg sync.WaitGroup
	for _, l := range c.Links() {
		dwg.Go(func() { l.Drain(dctx, "agent shutting down") })
	}
	dwg.Wait()
	c.streams.Close()
	return nil
}

// runSlot keeps one session up.
func (c *Client) runSlot(ctx context.Context, slot int) {
	failures := 0
	leaving := false // the last session ended by the relay's GOAWAY
	for ctx.Err() == nil {
		t, err := c.pickTarget(ctx, slot, failures, leaving)
		leaving = false
		var link *tunnel.Link
		if err == nil {
			link, err = c.connect(ctx, t)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			delay := c.cfg.Backoff.Delay(failures)
			c.noteError(err)
			c.log.Warn("tunnel connect failed", "slot", slot, "relay", t.relay, "addr", t.addr, "err", err,
				"retry_in", delay.Round(time.Millisecond), "attempt", failures)
			if !sleep(ctx, delay) {
				return
			}
			c.cfg.Metrics.Reconnected()
			continue
		}
		c.add(slot, t, link)
		c.log.Info("tunnel up", "slot", slot, "relay", t.relay, "addr", t.addr, "transport", link.Transport(),
			"session", link.Welcome().Session, "relay_id", link.Welcome().Relay)
		start := time.Now()
		goaway := c.hold(ctx, slot, t, &link)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= c.cfg.Backoff.ResetAfterOrDefault() {
			failures = 0
		}
		if goaway {
			// The relay is draining this session: connect a replacement now,
			// while the old one finishes its streams.
			c.log.Info("relay sent GOAWAY: moving to a new session", "slot", slot, "relay", t.relay)
			failures, leaving = 0, true
			c.cfg.Metrics.Reconnected()
			continue
		}
		failures++
		delay := c.cfg.Backoff.Delay(failures)
		c.noteError(link.Err())
		c.log.Warn("tunnel down", "slot", slot, "relay", t.relay, "transport", link.Transport(), "reason", link.Err(),
			"retry_in", delay.Round(time.Millisecond))
		if !sleep(ctx, delay) {
			return
		}
		c.cfg.Metrics.Reconnected()
	}
}

// hold waits while the slot's link is up, re-probing QUIC when it runs on
// TCP in auto mode. It reports whether the link ended by the peer's GOAWAY.
func (c *Client) hold(ctx context.Context, slot int, t target, cur **tunnel.Link) (goaway bool) {
	tm := time.NewTimer(c.cfg.ReprobeInterval)
	defer tm.Stop()
	for {
		var reprobe <-chan time.Time
		if c.cfg.Protocol == tunnel.ProtocolAuto && (*cur).Transport() == tunnel.TCP {
			tm.Reset(c.cfg.ReprobeInterval)
			reprobe = tm.C
		}
		select {
		case <-ctx.Done():
			return false
		case <-(*cur).Done():
			return false
		case <-(*cur).PeerGoAway():
			return true
		case <-reprobe:
			q, err := c.dialQUIC(ctx, t)
			if err != nil {
				c.log.Info("QUIC still unavailable; staying on TCP", "slot", slot, "relay", t.relay, "err", err,
					"next_probe_in", c.cfg.ReprobeInterval)
				continue
			}
			c.mu.Lock()
			c.quicUntil = time.Time{}
			c.mu.Unlock()
			old := *cur
			c.add(slot, t, q)
			*cur = q
			c.log.Info("QUIC is back: moved the session from TCP to QUIC", "slot", slot, "relay", t.relay,
				"session", q.Welcome().Session)
			go func() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.DrainTimeout)
				defer cancel()
				old.Drain(dctx, "agent moved back to QUIC")
			}()
		}
	}
}

// connect dials t with the configured protocol selection.
func (c *Client) connect(ctx context.Context, t target) (*tunnel.Link, error) {
	if err := c.checkOwnCertificate(); err != nil {
		return nil, err
	}
	switch c.cfg.Protocol {
	case tunnel.ProtocolQUIC:
		return c.dialQUIC(ctx, t)
	case tunnel.ProtocolTCP:
		return c.dialTCP(ctx, t)
	}
	c.mu.Lock()
	skipQUIC := time.Now().Before(c.quicUntil)
	c.mu.Unlock()
	if !skipQUIC {
		qctx, cancel := context.WithTimeout(ctx, c.cfg.FallbackDelay)
		l, err := c.dialQUIC(qctx, t)
		cancel()
		if err == nil {
			return l, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isRefusal(err) {
			// The relay answered and refused us: TCP would be refused too.
			return nil, err
		}
		c.log.Warn("QUIC unavailable, falling back to TCP", "relay", t.relay, "addr", t.addr, "err", err,
			"reprobe_in", c.cfg.ReprobeInterval)
		c.cfg.Metrics.FellBack()
		c.mu.Lock()
		c.quicUntil = time.Now().Add(c.cfg.ReprobeInterval)
		c.mu.Unlock()
	}
	return c.dialTCP(ctx, t)
}

func (c *Client) hello() control.Hello {
	h := control.Hello{Version: c.cfg.AgentVersion, Capabilities: c.cfg.Capabilities}
	if id, err := c.ownIdentity(); err == nil {
		h.Agent, h.Tenant = id.Agent, id.Tenant
	}
	return h
}

func (c *Client) tlsFor(t target) *tls.Config {
	tc := c.cfg.TLS.Clone()
	if tc.ServerName == "" {
		tc.ServerName = t.serverName
	}
	return tc
}

func (c *Client) dialQUIC(ctx context.Context, t target) (*tunnel.Link, error) {
	d := tunnelquic.Dialer{Config: c.cfg.QUIC, TLS: c.tlsFor(t)}
	sess, err := d.Dial(ctx, t.addr)
	if err != nil {
		c.cfg.Metrics.ConnectFailed(tunnel.QUIC)
		return nil, explain(err)
	}
	l, err := tunnel.Connect(ctx, sess, c.hello(), c.cfg.Link)
	if err != nil {
		c.cfg.Metrics.ConnectFailed(tunnel.QUIC)
		return nil, explain(err)
	}
	return l, nil
}

func (c *Client) dialTCP(ctx context.Context, t target) (*tunnel.Link, error) {
	d := tunneltcp.Dialer{Config: c.cfg.TCP, TLS: c.tlsFor(t)}
	addr := t.addr
	if c.cfg.Proxy != nil {
		// The proxy is chosen for, and asked to CONNECT to, the relay's
		// configured name, as browsers do: NO_PROXY and proxy allow-lists
		// name hosts, and inside many networks only the proxy resolves
		// outside names.
		u, err := c.cfg.Proxy(t.relay)
		if err != nil {
			return nil, fmt.Errorf("choose proxy for %s: %w", t.relay, err)
		}
		if u != nil {
			pd := &proxy.Dialer{URL: u, Auth: c.cfg.ProxyAuth}
			d.DialContext = pd.DialContext
			addr = t.relay
		}
	}
	sess, err := d.Dial(ctx, addr)
	if err != nil {
		c.cfg.Metrics.ConnectFailed(tunnel.TCP)
		return nil, explain(err)
	}
	l, err := tunnel.Connect(ctx, sess, c.hello(), c.cfg.Link)
	if err != nil {
		c.cfg.Metrics.ConnectFailed(tunnel.TCP)
		return nil, explain(err)
	}
	return l, nil
}

// ownIdentity reads the agent identity from the configured certificate.
func (c *Client) ownIdentity() (tunnel.Identity, error) {
	leaf := c.leaf()
	if leaf == nil {
		return tunnel.Identity{}, errors.New("no agent certificate")
	}
	return tunnel.IdentityFromCertificate(leaf)
}

// leaf is the agent certificate handshakes will present now: from
// GetClientCertificate when set (it follows renewals), else the fixed one.
func (c *Client) leaf() *x509.Certificate {
	var cert *tls.Certificate
	switch {
	case c.cfg.TLS.GetClientCertificate != nil:
		got, err := c.cfg.TLS.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil || got == nil {
			return nil
		}
		cert = got
	case len(c.cfg.TLS.Certificates) > 0:
		cert = &c.cfg.TLS.Certificates[0]
	}
	if cert == nil || len(cert.Certificate) == 0 {
		return nil
	}
	if cert.Leaf != nil {
		return cert.Leaf
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// checkOwnCertificate refuses to dial with a certificate that has expired,
// which the relay would refuse anyway, with a clearer message.
func (c *Client) checkOwnCertificate() error {
	leaf := c.leaf()
	if leaf == nil {
		if c.cfg.TLS.GetClientCertificate == nil {
			return errors.New("no agent certificate configured: enroll the agent first")
		}
		return nil
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("agent certificate expired at %s: renew it or enroll again", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return fmt.Errorf("agent certificate is not valid until %s: check this machine's clock", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// pickTarget resolves the relay list and chooses an address for slot:
// after a failure or a GOAWAY (leaving), any address but the slot's last
// one; among those, one that no other slot holds, rotating with failures.
func (c *Client) pickTarget(ctx context.Context, slot, failures int, leaving bool) (target, error) {
	targets := c.resolve(ctx)
	if len(targets) == 0 {
		return target{}, errors.New("no relay address could be resolved")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	used := map[string]bool{}
	for l, info := range c.links {
		if info.slot != slot && !l.Draining() {
			used[info.target.addr] = true
		}
	}
	n := len(targets)
	var candidates []target
	for i := range n {
		t := targets[(slot+failures+i)%n]
		if (failures > 0 || leaving) && n > 1 && t.addr == c.slots[slot].addr {
			continue
		}
		candidates = append(candidates, t)
	}
	chosen := candidates[0]
	for _, t := range candidates {
		if !used[t.addr] {
			chosen = t
			break
		}
	}
	c.slots[slot] = chosen
	return chosen, nil
}

// resolve expands the relay list into dialable targets, in a stable order.
func (c *Client) resolve(ctx context.Context) []target {
	var out []target
	seen := map[string]bool{}
	for _, r := range c.cfg.Relays {
		host, port, _ := net.SplitHostPort(r)
		addrs := []string{host}
		if net.ParseIP(host) == nil {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ips, err := c.cfg.Resolver.LookupHost(rctx, host)
			cancel()
			if err != nil || len(ips) == 0 {
				c.log.Debug("relay name did not resolve here; dialing it by name", "relay", r, "err", err)
			} else {
				sort.Strings(ips)
				addrs = ips
			}
		}
		for _, a := range addrs {
			// Verify the name the admin configured, also when it is an IP.
			t := target{addr: net.JoinHostPort(a, port), relay: r, serverName: host}
			if !seen[t.addr] {
				seen[t.addr] = true
				out = append(out, t)
			}
		}
	}
	return out
}

func (c *Client) add(slot int, t target, l *tunnel.Link) {
	c.mu.Lock()
	c.links[l] = linkInfo{slot: slot, target: t}
	c.notifyLocked()
	c.mu.Unlock()
	c.streams.Serve(l)
	go func() {
		<-l.Done()
		c.mu.Lock()
		delete(c.links, l)
		c.notifyLocked()
		c.mu.Unlock()
	}()
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Links returns the live links, draining ones included.
func (c *Client) Links() []*tunnel.Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*tunnel.Link, 0, len(c.links))
	for l := range c.links {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *tunnel.Link) int { return c.links[a].slot - c.links[b].slot })
	return out
}

// Ready reports whether at least one session is up and not draining.
func (c *Client) Ready() bool {
	for _, l := range c.Links() {
		if !l.Draining() {
			return true
		}
	}
	return false
}

// PickLink returns the healthiest session for a new stream (tunnel.Pick),
// waiting up to DialWait for one to come up.
func (c *Client) PickLink(ctx context.Context) (*tunnel.Link, error) {
	wait := time.NewTimer(c.cfg.DialWait)
	defer wait.Stop()
	for {
		c.mu.Lock()
		links := make([]*tunnel.Link, 0, len(c.links))
		for l := range c.links {
			links = append(links, l)
		}
		changed := c.changed
		c.mu.Unlock()
		slices.SortFunc(links, func(a, b *tunnel.Link) int { return a.Since().Compare(b.Since()) })
		if l := tunnel.Pick(links, int(c.rr.Add(1))); l != nil {
			return l, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("open tunnel stream: %w", ctx.Err())
		case <-wait.C:
			return nil, fmt.Errorf("open tunnel stream: %w after waiting %v", tunnel.ErrNoLink, c.cfg.DialWait)
		}
	}
}

// OpenStream opens a stream to a relay on the healthiest session, waiting up
// to DialWait for one to come up.
func (c *Client) OpenStream(ctx context.Context) (tunnel.Stream, error) {
	var lastErr error
	for range 3 {
		l, err := c.PickLink(ctx)
		if err != nil {
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last error: %v)", err, lastErr)
			}
			return nil, err
		}
		s, err := l.OpenStream(ctx)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("open tunnel stream: %w", lastErr)
}

// HTTPTransport returns a keep-alive http.RoundTripper to the relays over the
// healthiest session, for the agent's calls (uploads) to the relay. Every
// request reaches the relay's HTTP server whatever its URL host.
func (c *Client) HTTPTransport() *tunnel.HTTPTransport {
	return &tunnel.HTTPTransport{Pick: func(ctx context.Context, _ *http.Request) (*tunnel.Link, error) { return c.PickLink(ctx) }}
}

// DialContext opens a stream to a relay, for an http.Transport. Network and
// address are ignored: every stream reaches the relay's HTTP server.
func (c *Client) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	return c.OpenStream(ctx)
}

// Listener yields the streams that relays open to this agent.
func (c *Client) Listener() net.Listener { return c.streams }

// Status describes the client's sessions.
type Status struct {
	Ready    bool                `json:"ready"`
	Protocol tunnel.Protocol     `json:"protocol"`
	Relays   []string            `json:"relays"`
	Sessions []tunnel.LinkStatus `json:"sessions"`
	// LastError is the last connect failure or session loss, and when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// noteError records err for Status and tells OnRefused about refusals.
func (c *Client) noteError(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	c.lastErr, c.lastErrAt = err.Error(), time.Now()
	c.mu.Unlock()
	var ce *control.Error
	if c.cfg.OnRefused != nil && (isRefusal(err) && !errors.As(err, &ce) || errors.As(err, &ce) && ce.Code == "certificate_refused") {
		c.cfg.OnRefused(err)
	}
}

// Status returns a snapshot for status pages.
func (c *Client) Status() Status {
	st := Status{Protocol: c.cfg.Protocol, Relays: c.cfg.Relays, Ready: c.Ready()}
	c.mu.Lock()
	st.LastError, st.LastErrorAt = c.lastErr, c.lastErrAt
	c.mu.Unlock()
	for _, l := range c.Links() {
		st.Sessions = append(st.Sessions, l.Status())
	}
	return st
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// isRefusal reports whether err means the relay answered and refused this
// agent (certificate or identity), as opposed to a network failure.
func isRefusal(err error) bool {
	var ae tls.AlertError
	var ce *control.Error
	return tunnelquic.IsRefusal(err) || errors.As(err, &ae) || errors.As(err, &ce) ||
		strings.Contains(err.Error(), "remote error: tls:") || strings.Contains(err.Error(), "refused this agent")
}

// explain adds a hint to errors whose cause is not obvious to an admin.
func explain(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unknown certificate authority"):
		return fmt.Errorf("the relay refused this agent's certificate: it is not issued by a CA the relay trusts: %w", err)
	case strings.Contains(msg, "expired certificate") || strings.Contains(msg, "certificate expired"):
		return fmt.Errorf("the relay refused this agent's certificate: it has expired; renew it or enroll again: %w", err)
	case strings.Contains(msg, "certificate required"):
		return fmt.Errorf("the relay refused this agent: no client certificate was sent; enroll the agent first: %w", err)
	case strings.Contains(msg, "bad certificate"):
		return fmt.Errorf("the relay refused this agent's certificate; the relay log says why: %w", err)
	case strings.Contains(msg, "x509:") && strings.Contains(msg, "tls: failed to verify"):
		return fmt.Errorf("the relay's certificate did not verify against the configured root: %w", err)
	}
	return err
}
