package tunnelbench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunnelquic"
	"github.com/mcc-bridge/bridge/tunnel/tunneltcp"
)

// Kind names what carries the bytes of a measurement. Its value is the
// label used in report lines.
type Kind string

// The kinds of carrier. KindQUIC and KindYamux are tunnel sessions; KindTLS
// and KindDirect are the baselines.
const (
	// KindQUIC is a tunnel session over QUIC (tunnelquic).
	KindQUIC Kind = "quic"
	// KindYamux is a tunnel session over TLS 1.3 on TCP with yamux (tunneltcp).
	KindYamux Kind = "tcp_yamux"
	// KindTLS is one plain TLS 1.3 connection over TCP, no tunnel: the
	// throughput baseline.
	KindTLS Kind = "tls"
	// KindDirect is plain HTTP/1.1 with keep-alive over loopback TCP, no TLS
	// and no tunnel: the request latency baseline.
	KindDirect Kind = "direct"
)

// TunnelKinds are the kinds that carry tunnel sessions.
func TunnelKinds() []Kind { return []Kind{KindQUIC, KindYamux} }

// Config is what every measurement needs.
type Config struct {
	// ServerTLS is the relay's configuration: its certificate and the roots
	// for client certificates, which it requires. Required.
	ServerTLS *tls.Config
	// ClientTLS is the agent's configuration: its certificate and the roots
	// that verify the relay, whose certificate must be valid for 127.0.0.1
	// or for ClientTLS.ServerName. Required.
	ClientTLS *tls.Config
	// Logger receives the transports' warnings. Nil means no logging.
	Logger *slog.Logger
}

func (c Config) validate() error {
	if c.ServerTLS == nil || c.ClientTLS == nil {
		return errors.New("tunnelbench: Config needs ServerTLS and ClientTLS")
	}
	return nil
}

// Pair is a tunnel session dialed over loopback and the session its listener
// accepted for it.
type Pair struct {
	// Kind is KindQUIC or KindYamux.
	Kind Kind
	// Client is the dialing side (the agent), Server the accepting side (the relay).
	Client, Server tunnel.Session

	ln        sessionListener
	closeOnce sync.Once
	closeErr  error
}

// sessionListener is what tunnelquic.Listener and tunneltcp.Listener share.
type sessionListener interface {
	Accept(ctx context.Context) (tunnel.Session, error)
	Addr() net.Addr
	Close() error
}

// NewPair listens on 127.0.0.1 with a fresh port, dials it, and returns both
// sessions once the handshake is done. kind is KindQUIC or KindYamux. The
// caller must Close the pair.
func NewPair(ctx context.Context, kind Kind, cfg Config) (*Pair, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var ln sessionListener
	var dial func(context.Context, string) (tunnel.Session, error)
	switch kind {
	case KindQUIC:
		qc := tunnelquic.Config{Logger: cfg.Logger}
		l, err := tunnelquic.Listen("127.0.0.1:0", cfg.ServerTLS, qc, nil)
		if err != nil {
			return nil, fmt.Errorf("bench pair: %w", err)
		}
		ln, dial = l, (&tunnelquic.Dialer{Config: qc, TLS: cfg.ClientTLS}).Dial
	case KindYamux:
		tc := tunneltcp.Config{Logger: cfg.Logger}
		l, err := tunneltcp.Listen("127.0.0.1:0", cfg.ServerTLS, tc, nil)
		if err != nil {
			return nil, fmt.Errorf("bench pair: %w", err)
		}
		ln, dial = l, (&tunneltcp.Dialer{Config: tc, TLS: cfg.ClientTLS}).Dial
	default:
		return nil, fmt.Errorf("bench pair: %q is not a tunnel transport", kind)
	}
	type accepted struct {
		s   tunnel.Session
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		s, err := ln.Accept(ctx)
		ch <- accepted{s, err}
	}()
	c, err := dial(ctx, ln.Addr().String())
	if err != nil {
		ln.Close()
		if a := <-ch; a.s != nil {
			a.s.Close()
		}
		return nil, fmt.Errorf("bench pair: %w", err)
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		ln.Close()
		return nil, fmt.Errorf("bench pair: accept: %w", a.err)
	}
	return &Pair{Kind: kind, Client: c, Server: a.s, ln: ln}, nil
}

// Close closes both sessions and the listener. It is idempotent.
func (p *Pair) Close() error {
	p.closeOnce.Do(func() {
		p.closeErr = errors.Join(p.Client.Close(), p.Server.Close(), p.ln.Close())
	})
	return p.closeErr
}

// tlsPair is one plain TLS 1.3 connection over loopback TCP, both ends.
type tlsPair struct {
	client, server *tls.Conn
}

// newTLSPair connects a TLS client to a TLS server over 127.0.0.1 with the
// tunnel's TLS settings (TLS 1.3, client certificate required) but no tunnel.
func newTLSPair(ctx context.Context, cfg Config) (*tlsPair, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tls pair: %w", err)
	}
	defer ln.Close()
	const alpn = "mcc-bridge-bench/1"
	type accepted struct {
		c   *tls.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			ch <- accepted{nil, err}
			return
		}
		c := tls.Server(raw, tunnel.ServerTLS(cfg.ServerTLS, alpn))
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			ch <- accepted{nil, err}
			return
		}
		ch <- accepted{c, nil}
	}()
	d := &tls.Dialer{Config: tunnel.ClientTLS(cfg.ClientTLS, alpn)}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		if a := <-ch; a.c != nil {
			a.c.Close()
		}
		return nil, fmt.Errorf("tls pair: dial: %w", err)
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		return nil, fmt.Errorf("tls pair: accept: %w", a.err)
	}
	return &tlsPair{client: c.(*tls.Conn), server: a.c}, nil
}

func (p *tlsPair) Close() error {
	return errors.Join(p.client.Close(), p.server.Close())
}
