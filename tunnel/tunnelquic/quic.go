// Package tunnelquic carries tunnel sessions over QUIC (quic-go), with the
// settings a long-lived tunnel needs: our own ALPN, keepalives well inside
// the idle timeout, room for ten thousand concurrent streams, flow-control
// windows sized for WAN links and capped per connection, and large UDP socket
// buffers (with one clear warning when the OS refuses them).
//
// Each dialed session has a UDP socket of its own, so a failed or re-probed
// connection never disturbs another.
package tunnelquic

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/mcc-bridge/bridge/tunnel"
)

// ALPN is the application protocol negotiated on tunnel QUIC connections.
const ALPN = "mcc-bridge/1"

// Config tunes the QUIC transport. The zero value of every field means its default.
type Config struct {
	// KeepAlivePeriod is how often an idle connection sends a keepalive. Zero means 5s.
	KeepAlivePeriod time.Duration
	// MaxIdleTimeout closes a connection that hears nothing for this long. Zero means 15s.
	MaxIdleTimeout time.Duration
	// HandshakeIdleTimeout bounds the handshake when nothing is heard. Zero means 5s.
	HandshakeIdleTimeout time.Duration
	// MaxIncomingStreams is how many concurrent streams the peer may open. Zero means 16384.
	MaxIncomingStreams int64
	// InitialStreamWindow and MaxStreamWindow bound one stream's receive
	// window, which auto-tunes between them. Zero means 512 KiB and 8 MiB.
	InitialStreamWindow, MaxStreamWindow uint64
	// MaxConnectionWindow caps the receive window of the whole connection:
	// the most data a peer can have in flight towards us, across every
	// stream. This is the per-session memory cap. Zero means 32 MiB.
	MaxConnectionWindow uint64
	// SocketBuffer is the UDP send and receive buffer asked of the OS. Zero means 7 MiB.
	SocketBuffer int
	// StatelessResetKey, on a listener, lets a restarted relay tell agents
	// at once that their old connection is gone (RFC 9000, 10.3), instead of
	// their waiting for heartbeats to time out. It must stay the same across
	// restarts: derive it from a stable secret with ResetKeyFrom. Nil means
	// no stateless resets.
	StatelessResetKey *quic.StatelessResetKey
	// Logger receives warnings. Nil means no logging.
	Logger *slog.Logger
}

// ResetKeyFrom derives a stateless reset key from a secret that outlives
// restarts, such as the relay's private key: the same secret always gives
// the same key, and the key reveals nothing of the secret.
func ResetKeyFrom(secret []byte) (*quic.StatelessResetKey, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, "mcc-bridge quic stateless reset key", 32)
	if err != nil {
		return nil, err
	}
	var key quic.StatelessResetKey
	copy(key[:], k)
	return &key, nil
}

func (c Config) quicConfig() *quic.Config {
	def := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	q := &quic.Config{
		KeepAlivePeriod:                def(c.KeepAlivePeriod, 5*time.Second),
		MaxIdleTimeout:                 def(c.MaxIdleTimeout, 15*time.Second),
		HandshakeIdleTimeout:           def(c.HandshakeIdleTimeout, 5*time.Second),
		MaxIncomingStreams:             c.MaxIncomingStreams,
		MaxIncomingUniStreams:          -1,
		InitialStreamReceiveWindow:     c.InitialStreamWindow,
		MaxStreamReceiveWindow:         c.MaxStreamWindow,
		InitialConnectionReceiveWindow: 1 << 20,
		MaxConnectionReceiveWindow:     c.MaxConnectionWindow,
	}
	if q.MaxIncomingStreams == 0 {
		q.MaxIncomingStreams = 16384
	}
	if q.InitialStreamReceiveWindow == 0 {
		q.InitialStreamReceiveWindow = 512 << 10
	}
	if q.MaxStreamReceiveWindow == 0 {
		q.MaxStreamReceiveWindow = 8 << 20
	}
	if q.MaxConnectionReceiveWindow == 0 {
		q.MaxConnectionReceiveWindow = 32 << 20
	}
	if q.InitialConnectionReceiveWindow > q.MaxConnectionReceiveWindow {
		q.InitialConnectionReceiveWindow = q.MaxConnectionReceiveWindow
	}
	return q
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

func (c Config) socketBuffer() int {
	if c.SocketBuffer <= 0 {
		return 7 << 20
	}
	return c.SocketBuffer
}

// Dialer dials QUIC tunnel sessions. Its methods are safe for concurrent use.
type Dialer struct {
	// Config tunes the transport.
	Config Config
	// TLS is the client configuration: the agent certificate (through
	// Certificates or GetClientCertificate) and the roots that verify the relay.
	TLS *tls.Config

	bufWarn sync.Once
}

// Dial opens a QUIC session to addr ("host:port"). The handshake, including
// the relay's verification of our certificate, is done when it returns.
func (d *Dialer) Dial(ctx context.Context, addr string) (tunnel.Session, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic dial %s: %w", addr, err)
	}
	network := "udp4"
	if raddr.IP.To4() == nil {
		network = "udp6"
	}
	pc, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, fmt.Errorf("quic dial %s: open UDP socket: %w", addr, err)
	}
	raiseBuffers(pc, d.Config.socketBuffer(), d.Config.logger(), &d.bufWarn)
	tr := &quic.Transport{Conn: pc}
	tc := tunnel.ClientTLS(d.TLS, ALPN)
	if tc.ServerName == "" {
		// An IP works too: crypto/tls then checks the certificate's IP SANs
		// (and sends no SNI).
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
	}
	conn, err := tr.Dial(ctx, raddr, tc, d.Config.quicConfig())
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, fmt.Errorf("quic dial %s: %w", addr, err)
	}
	return newSession(conn, func() { tr.Close(); pc.Close() }), nil
}

// Listener accepts QUIC tunnel sessions.
type Listener struct {
	pc  *net.UDPConn
	tr  *quic.Transport
	ln  *quic.Listener
	log *slog.Logger
}

// Listen listens on the UDP address addr. tlsConf must require and verify
// client certificates. OnHandshakeFailure, when not nil, is called with the
// remote address and the cause of every handshake that fails (for example a
// client certificate from another CA), which quic-go otherwise drops silently.
func Listen(addr string, tlsConf *tls.Config, cfg Config, onHandshakeFailure func(remote net.Addr, err error)) (*Listener, error) {
	uaddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", addr, err)
	}
	pc, err := net.ListenUDP("udp", uaddr)
	if err != nil {
		return nil, fmt.Errorf("quic listen %s: %w", addr, err)
	}
	var once sync.Once
	raiseBuffers(pc, cfg.socketBuffer(), cfg.logger(), &once)
	tr := &quic.Transport{Conn: pc, StatelessResetKey: cfg.StatelessResetKey}
	if onHandshakeFailure != nil {
		tr.ConnContext = func(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
			st := &handshakeState{}
			ctx = context.WithValue(ctx, handshakeKey{}, st)
			context.AfterFunc(ctx, func() {
				if !st.accepted.Load() {
					onHandshakeFailure(info.RemoteAddr, context.Cause(ctx))
				}
			})
			return ctx, nil
		}
	}
	ln, err := tr.Listen(tunnel.ServerTLS(tlsConf, ALPN), cfg.quicConfig())
	if err != nil {
		tr.Close()
		pc.Close()
		return nil, fmt.Errorf("quic listen %s: %w", addr, err)
	}
	return &Listener{pc: pc, tr: tr, ln: ln, log: cfg.logger()}, nil
}

// Accept waits for the next session whose handshake has completed.
func (l *Listener) Accept(ctx context.Context) (tunnel.Session, error) {
	conn, err := l.ln.Accept(ctx)
	if err != nil {
		if errors.Is(err, quic.ErrServerClosed) {
			return nil, net.ErrClosed
		}
		return nil, err
	}
	if st, ok := conn.Context().Value(handshakeKey{}).(*handshakeState); ok {
		st.accepted.Store(true)
	}
	return newSession(conn, nil), nil
}

// Addr is the UDP address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.pc.LocalAddr() }

// StopAccepting refuses new sessions; sessions already accepted go on until
// Close.
func (l *Listener) StopAccepting() error { return l.ln.Close() }

// Close stops accepting and closes every session accepted by the listener.
func (l *Listener) Close() error {
	l.ln.Close()
	err := l.tr.Close()
	l.pc.Close()
	return err
}

// IsRefusal reports whether err says that the peer answered and refused the
// connection during the TLS handshake (a certificate it did not accept), as
// opposed to a network that dropped UDP. A refusal is no reason to fall back
// to TCP: the relay would refuse that too.
func IsRefusal(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.Remote && te.ErrorCode.IsCryptoError()
}
