// Package tunnelserver is the relay's end of the tunnel: it listens for agents
// on UDP (QUIC) and TCP (TLS+yamux) on the same port, proves each agent's
// identity from its client certificate, runs the control protocol, keeps a
// registry of the live sessions of every agent, and offers a net.Listener of
// the streams agents open plus a DialContext that opens streams to an agent.
// Shutdown sends GOAWAY on every session and waits for the streams in flight.
package tunnelserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/control"
	"github.com/mcc-bridge/bridge/tunnel/tunnelquic"
	"github.com/mcc-bridge/bridge/tunnel/tunneltcp"
)

// Config configures a Server. The zero value of every field but TLS means its default.
type Config struct {
	// Addr is where agents connect, on UDP for QUIC and on TCP. Zero means ":8443".
	Addr string
	// TLS holds the relay certificate and, in ClientCAs, the roots that agent
	// certificates must chain to. Required. ClientAuth is forced to
	// RequireAndVerifyClientCert.
	TLS *tls.Config
	// DisableQUIC and DisableTCP turn one transport off.
	DisableQUIC, DisableTCP bool
	// RelayID names this relay in WELCOME and logs. Zero means the host name.
	RelayID string
	// Version is the relay's version, sent in WELCOME.
	Version string
	// Identify turns a verified agent certificate into its identity. Nil
	// means tunnel.IdentityFromCertificate.
	Identify func(*x509.Certificate) (tunnel.Identity, error)
	// DrainTimeout bounds the graceful drain when Run's context ends. Zero means 30s.
	DrainTimeout time.Duration
	// Link, QUIC and TCP tune the control protocol and the transports.
	Link tunnel.LinkConfig
	QUIC tunnelquic.Config
	TCP  tunneltcp.Config
	// Logger receives the server's log lines. Nil means no logging.
	Logger *slog.Logger
	// Metrics records tunnel figures. Nil records nothing.
	Metrics *tunnel.Metrics
}

// Server accepts agent tunnels. Create it with New, bind with Listen, then Run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	tls     *tls.Config
	streams *tunnel.Listener

	quicLn *tunnelquic.Listener
	tcpLn  *tunneltcp.Listener

	rr atomic.Uint64 // rotates ties in DialAgent

	mu     sync.Mutex
	agents map[tunnel.Identity][]*tunnel.Link // live links per agent; guarded by mu
	closed bool                               // guarded by mu
	wg     sync.WaitGroup
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.TLS == nil || (len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil) {
		return nil, errors.New("tunnel server: TLS with a relay certificate is required")
	}
	if cfg.TLS.ClientCAs == nil {
		return nil, errors.New("tunnel server: TLS.ClientCAs (the roots agent certificates chain to) is required")
	}
	if cfg.DisableQUIC && cfg.DisableTCP {
		return nil, errors.New("tunnel server: both transports are disabled")
	}
	if cfg.Addr == "" {
		cfg.Addr = ":8443"
	}
	if cfg.RelayID == "" {
		cfg.RelayID, _ = os.Hostname()
	}
	if cfg.Identify == nil {
		cfg.Identify = tunnel.IdentityFromCertificate
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
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
	s := &Server{cfg: cfg, log: cfg.Logger, agents: make(map[tunnel.Identity][]*tunnel.Link)}
	s.tls = cfg.TLS.Clone()
	s.tls.ClientAuth = tls.RequireAndVerifyClientCert
	s.tls.MinVersion = tls.VersionTLS13
	s.tls.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("no client certificate")
		}
		if _, err := s.cfg.Identify(cs.PeerCertificates[0]); err != nil {
			return fmt.Errorf("agent certificate has no usable identity: %w", err)
		}
		if cfg.TLS.VerifyConnection != nil {
			return cfg.TLS.VerifyConnection(cs)
		}
		return nil
	}
	s.streams = tunnel.NewListener(tunnel.Addr("relay:" + cfg.RelayID))
	return s, nil
}

// Listen binds the UDP and TCP sockets, so that their addresses are known
// before Run.
func (s *Server) Listen() error {
	addr := s.cfg.Addr
	if !s.cfg.DisableTCP {
		qc := s.cfg.TCP
		qc.Logger = s.log
		ln, err := tunneltcp.Listen(addr, s.tls, qc, s.handshakeFailed(tunnel.TCP))
		if err != nil {
			return err
		}
		s.tcpLn = ln
		// With port 0, let QUIC take the same port number as TCP.
		if host, port, _ := net.SplitHostPort(addr); port == "0" {
			_, p, _ := net.SplitHostPort(ln.Addr().String())
			addr = net.JoinHostPort(host, p)
		}
	}
	if !s.cfg.DisableQUIC {
		qc := s.cfg.QUIC
		qc.Logger = s.log
		if qc.StatelessResetKey == nil {
			key, err := resetKey(s.tls)
			if err != nil {
				s.log.Warn("no QUIC stateless reset key: agents will notice a relay restart only by missed heartbeats", "err", err)
			}
			qc.StatelessResetKey = key
		}
		ln, err := tunnelquic.Listen(addr, s.tls, qc, s.handshakeFailed(tunnel.QUIC))
		if err != nil {
			if s.tcpLn != nil {
				s.tcpLn.Close()
			}
			return err
		}
		s.quicLn = ln
	}
	s.log.Info("relay listening for agents", "addr", s.cfg.Addr, "quic", !s.cfg.DisableQUIC, "tcp", !s.cfg.DisableTCP, "relay", s.cfg.RelayID)
	return nil
}

// TCPAddr and UDPAddr are the bound addresses (nil when that transport is off).
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// UDPAddr is the bound UDP address, nil when QUIC is off.
func (s *Server) UDPAddr() net.Addr {
	if s.quicLn == nil {
		return nil
	}
	return s.quicLn.Addr()
}

// Run accepts agent sessions until ctx ends, then drains every session for
// at most DrainTimeout and closes. It calls Listen if that was not done.
func (s *Server) Run(ctx context.Context) error {
	if s.tcpLn == nil && s.quicLn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	var lns []interface {
		Accept(context.Context) (tunnel.Session, error)
	}
	if s.quicLn != nil {
		lns = append(lns, s.quicLn)
	}
	if s.tcpLn != nil {
		lns = append(lns, s.tcpLn)
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	for _, ln := range lns {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				sess, err := ln.Accept(actx)
				if err != nil {
					return
				}
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					s.handle(actx, sess)
				}()
			}
		}()
	}
	<-ctx.Done()
	dctx, dcancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer dcancel()
	err := s.Shutdown(dctx)
	cancel()
	s.wg.Wait()
	return err
}

func (s *Server) handle(ctx context.Context, sess tunnel.Session) {
	cs := sess.ConnectionState()
	id, err := s.cfg.Identify(cs.PeerCertificates[0])
	if err != nil { // VerifyConnection already checked; be safe.
		s.log.Warn("refused agent session", "remote", sess.RemoteAddr().String(), "err", err)
		sess.Close()
		return
	}
	sessionID := newSessionID()
	link, err := tunnel.Accept(ctx, sess, id, func(h *control.Hello) (*control.Welcome, error) {
		if h.Protocol != control.Version {
			return nil, &control.Error{Code: "unsupported_protocol", Message: fmt.Sprintf("relay speaks control protocol %d, agent sent %d", control.Version, h.Protocol)}
		}
		if (h.Agent != "" && h.Agent != id.Agent) || (h.Tenant != "" && h.Tenant != id.Tenant) {
			return nil, &control.Error{Code: "identity_mismatch", Message: fmt.Sprintf("HELLO names agent %q of tenant %q but the certificate proves %s", h.Agent, h.Tenant, id)}
		}
		return &control.Welcome{Relay: s.cfg.RelayID, Session: sessionID, Version: s.cfg.Version, Capabilities: []string{"http"}}, nil
	}, s.cfg.Link)
	if err != nil {
		s.log.Warn("agent session failed", "peer", id.String(), "remote", sess.RemoteAddr().String(), "err", err)
		return
	}
	if !s.register(id, link) {
		link.Close()
		return
	}
	h := link.Hello()
	s.log.Info("agent connected", "peer", id.String(), "transport", link.Transport(), "remote", link.RemoteAddr().String(),
		"session", sessionID, "agent_version", h.Version, "capabilities", strings.Join(h.Capabilities, ","))
	s.streams.Serve(link)
	<-link.Done()
	s.unregister(id, link)
	s.log.Info("agent session ended", "peer", id.String(), "transport", link.Transport(), "session", sessionID, "reason", link.Err())
}

func (s *Server) register(id tunnel.Identity, l *tunnel.Link) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.agents[id] = append(s.agents[id], l)
	return true
}

func (s *Server) unregister(id tunnel.Identity, l *tunnel.Link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	links := slices.DeleteFunc(s.agents[id], func(x *tunnel.Link) bool { return x == l })
	if len(links) == 0 {
		delete(s.agents, id)
	} else {
		s.agents[id] = links
	}
}

func (s *Server) handshakeFailed(t tunnel.Transport) func(net.Addr, error) {
	return func(remote net.Addr, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		reason, desc := classifyRefusal(err)
		s.cfg.Metrics.Refused(reason)
		s.log.Warn("refused agent connection: "+desc, "reason", reason, "transport", t, "remote", remote.String(), "err", err)
	}
}

// classifyRefusal names why a handshake failed, as a metric reason and in
// words for the log. Transports may flatten errors to text, so it reads
// the message as well as the type.
func classifyRefusal(err error) (reason, description string) {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	msg := err.Error()
	isInvalid := errors.As(err, &invalid)
	switch {
	case errors.As(err, &unknown) || strings.Contains(msg, "unknown authority"):
		return "another_ca", "client certificate is not issued by a CA this relay trusts"
	case isInvalid && invalid.Reason == x509.Expired && strings.Contains(invalid.Detail, "is before"),
		strings.Contains(msg, "not yet valid") && strings.Contains(msg, "is before"):
		return "not_yet_valid", "client certificate is not yet valid (check the agent's clock)"
	case isInvalid && invalid.Reason == x509.Expired || strings.Contains(msg, "expired"):
		return "expired", "client certificate has expired (renewal failed: re-enroll the agent)"
	case isInvalid && invalid.Reason == x509.IncompatibleUsage || strings.Contains(msg, "incompatible key usage") ||
		strings.Contains(msg, "clientAuth extended key usage"):
		return "wrong_eku", "client certificate is not for client authentication"
	case strings.Contains(msg, "certificate revoked"):
		return "revoked", "client certificate is revoked"
	case strings.Contains(msg, "identity denied"):
		return "denied", "agent identity is on the deny list"
	case strings.Contains(msg, "issued by provisioner"):
		return "wrong_provisioner", "client certificate comes from another provisioner"
	case strings.Contains(msg, "didn't provide a certificate") || strings.Contains(msg, "no client certificate"):
		return "no_certificate", "client sent no certificate"
	case strings.Contains(msg, "no usable identity"):
		return "bad_identity", "client certificate does not carry an agent identity"
	case strings.Contains(msg, "no application protocol") || strings.Contains(msg, "ALPN"):
		return "protocol", "client does not speak the tunnel protocol"
	case strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline"):
		return "timeout", "handshake timed out"
	}
	return "other", "TLS handshake failed"
}

// Revalidate runs check on the certificate of every live agent session and
// aborts the sessions it fails, telling the agent why. It returns how many
// it closed. The relay calls it when a certificate is revoked or an
// identity denied, and periodically as CRLs arrive.
func (s *Server) Revalidate(check func(tunnel.Identity, *x509.Certificate) error) int {
	s.mu.Lock()
	var all []*tunnel.Link
	for _, links := range s.agents {
		all = append(all, links...)
	}
	s.mu.Unlock()
	n := 0
	for _, l := range all {
		cs := l.ConnectionState()
		if len(cs.PeerCertificates) == 0 {
			continue
		}
		err := check(l.Peer(), cs.PeerCertificates[0])
		if err == nil {
			continue
		}
		n++
		reason, desc := classifyRefusal(err)
		s.cfg.Metrics.Refused(reason)
		s.log.Warn("closing agent session: "+desc, "reason", reason, "peer", l.Peer().String(), "transport", l.Transport(),
			"serial", cs.PeerCertificates[0].SerialNumber.String(), "err", err)
		go l.Abort("certificate_refused", err.Error())
	}
	return n
}

// PeerSerials lists the certificate serials (decimal) of id's live sessions.
func (s *Server) PeerSerials(id tunnel.Identity) []string {
	s.mu.Lock()
	links := slices.Clone(s.agents[id])
	s.mu.Unlock()
	var out []string
	for _, l := range links {
		if cs := l.ConnectionState(); len(cs.PeerCertificates) > 0 {
			if sn := cs.PeerCertificates[0].SerialNumber.String(); !slices.Contains(out, sn) {
				out = append(out, sn)
			}
		}
	}
	return out
}

// Listener is the net.Listener of streams that agents open; serve it with an
// http.Server whose ConnContext is tunnel.ConnContext to see who is calling.
func (s *Server) Listener() net.Listener { return s.streams }

// PickLink returns the healthiest session of agent id (tunnel.Pick).
func (s *Server) PickLink(id tunnel.Identity) (*tunnel.Link, error) {
	s.mu.Lock()
	links := slices.Clone(s.agents[id])
	s.mu.Unlock()
	l := tunnel.Pick(links, int(s.rr.Add(1)))
	if l == nil {
		return nil, fmt.Errorf("agent %s is offline: %w", id, tunnel.ErrNoLink)
	}
	return l, nil
}

// HTTPTransport returns a keep-alive http.RoundTripper to agents: the
// request's host names the agent (tunnel.Identity.Host).
func (s *Server) HTTPTransport() *tunnel.HTTPTransport {
	return &tunnel.HTTPTransport{Pick: func(_ context.Context, req *http.Request) (*tunnel.Link, error) {
		id, err := tunnel.IdentityFromHost(req.URL.Host)
		if err != nil {
			return nil, err
		}
		return s.PickLink(id)
	}}
}

// DialAgent opens a stream to the agent id on its healthiest session.
func (s *Server) DialAgent(ctx context.Context, id tunnel.Identity) (tunnel.Stream, error) {
	for range 3 {
		l, err := s.PickLink(id)
		if err != nil {
			return nil, err
		}
		st, err := l.OpenStream(ctx)
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("open stream to agent %s: %w", id, err)
		}
	}
	return nil, fmt.Errorf("agent %s: no session would open a stream: %w", id, tunnel.ErrNoLink)
}

// DialContext opens a stream to the agent that addr names (the host made by
// tunnel.Identity.Host, with any port), for an http.Transport.
func (s *Server) DialContext(ctx context.Context, _, addr string) (net.Conn, error) {
	id, err := tunnel.IdentityFromHost(addr)
	if err != nil {
		return nil, err
	}
	return s.DialAgent(ctx, id)
}

// AgentStatus describes one connected agent.
type AgentStatus struct {
	Tenant   string              `json:"tenant"`
	Agent    string              `json:"agent"`
	Version  string              `json:"version"`
	Sessions []tunnel.LinkStatus `json:"sessions"`
}

// Agents lists the connected agents and their sessions, sorted by identity.
func (s *Server) Agents() []AgentStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AgentStatus, 0, len(s.agents))
	for id, links := range s.agents {
		a := AgentStatus{Tenant: id.Tenant, Agent: id.Agent}
		for _, l := range links {
			a.Sessions = append(a.Sessions, l.Status())
			a.Version = l.Hello().Version
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b AgentStatus) int {
		return strings.Compare(a.Tenant+"/"+a.Agent, b.Tenant+"/"+b.Agent)
	})
	return out
}

// Shutdown stops accepting agents, sends GOAWAY on every session, and waits
// until the streams in flight have finished or ctx ends; then it closes
// everything. Agents move their new streams to other relays meanwhile.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	var links []*tunnel.Link
	for _, ls := range s.agents {
		links = append(links, ls...)
	}
	s.mu.Unlock()
	if s.quicLn != nil {
		s.quicLn.StopAccepting()
	}
	if s.tcpLn != nil {
		s.tcpLn.StopAccepting()
	}
	s.log.Info("relay draining agent sessions", "sessions", len(links))
	var wg sync.WaitGroup
	var cut atomic.Int32
	for _, l := range links {
		wg.Go(func() {
			if l.Drain(ctx, "relay shutting down") != nil {
				cut.Add(1)
			}
		})
	}
	wg.Wait()
	s.streams.Close()
	if s.quicLn != nil {
		s.quicLn.Close()
	}
	if s.tcpLn != nil {
		s.tcpLn.Close()
	}
	if n := cut.Load(); n > 0 {
		s.log.Warn("drain timed out: sessions closed with streams in flight", "sessions", n)
		return fmt.Errorf("tunnel server shutdown: %d sessions closed with streams in flight: %w", n, ctx.Err())
	}
	return nil
}

// resetKey derives the QUIC stateless reset key from the relay's private
// key, which outlives restarts, so a restarted relay can reset the agents'
// connections to its former self.
// A certificate from GetCertificate works too: renewal keeps the key.
func resetKey(conf *tls.Config) (*quic.StatelessResetKey, error) {
	var cert *tls.Certificate
	switch {
	case len(conf.Certificates) > 0:
		cert = &conf.Certificates[0]
	case conf.GetCertificate != nil:
		c, err := conf.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			return nil, err
		}
		cert = c
	}
	if cert == nil || cert.PrivateKey == nil {
		return nil, errors.New("the relay certificate has no private key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, err
	}
	return tunnelquic.ResetKeyFrom(der)
}

func newSessionID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
