// Package tunneltcp carries tunnel sessions over TLS 1.3 on TCP, with yamux
// multiplexing the streams. It is the fallback for networks that drop UDP,
// and the transport that works through HTTP CONNECT proxies: the Dialer takes
// any function that opens the TCP connection.
//
// Settings over yamux's defaults: a 4 MiB stream window (yamux's 256 KiB caps
// one stream near 5 MB/s at 50 ms RTT), keepalive every 5 s, a write timeout
// on the TCP connection, and a larger accept backlog. The yamux frame header
// and its body go out in one TLS record instead of two.
package tunneltcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/mcc-bridge/bridge/tunnel"
)

// ALPN is the application protocol negotiated on tunnel TLS connections.
const ALPN = "mcc-bridge-yamux/1"

// Config tunes the TCP transport. The zero value of every field means its default.
type Config struct {
	// KeepAliveInterval is how often yamux pings the peer. Zero means 5s.
	KeepAliveInterval time.Duration
	// WriteTimeout closes the session when a write to the TCP connection
	// blocks this long. Zero means 10s.
	WriteTimeout time.Duration
	// StreamWindow is the most unread data one stream may hold. Zero means
	// 4 MiB; it cannot be less than 256 KiB.
	StreamWindow uint32
	// AcceptBacklog is how many streams may wait to be accepted. Zero means 1024.
	AcceptBacklog int
	// MaxStreams bounds the streams open on a session at once; a stream the
	// peer opens beyond it is closed at once. Zero means 16384, as for QUIC.
	MaxStreams int
	// SessionMemory caps the stream data one session holds unread, across
	// all its streams; at the cap, reading from the peer pauses until the
	// application reads. Zero means 32 MiB.
	SessionMemory int64
	// HandshakeTimeout bounds the TLS handshake. Zero means 10s.
	HandshakeTimeout time.Duration
	// Logger receives yamux's warnings. Nil means no logging.
	Logger *slog.Logger
}

func (c Config) yamuxConfig() (*yamux.Config, error) {
	y := yamux.DefaultConfig()
	y.LogOutput = nil
	y.Logger = yamuxLogger{c.logger()}
	y.EnableKeepAlive = true
	y.KeepAliveInterval = 5 * time.Second
	if c.KeepAliveInterval > 0 {
		y.KeepAliveInterval = c.KeepAliveInterval
	}
	y.ConnectionWriteTimeout = c.writeTimeout()
	y.MaxStreamWindowSize = 4 << 20
	if c.StreamWindow > 0 {
		y.MaxStreamWindowSize = c.StreamWindow
	}
	y.AcceptBacklog = 1024
	if c.AcceptBacklog > 0 {
		y.AcceptBacklog = c.AcceptBacklog
	}
	y.StreamOpenTimeout = 30 * time.Second
	y.StreamCloseTimeout = 30 * time.Second
	if err := yamux.VerifyConfig(y); err != nil {
		return nil, fmt.Errorf("tcp transport config: %w", err)
	}
	return y, nil
}

func (c Config) writeTimeout() time.Duration {
	if c.WriteTimeout <= 0 {
		return 10 * time.Second
	}
	return c.WriteTimeout
}

func (c Config) newGate() *memGate {
	limit := c.SessionMemory
	if limit <= 0 {
		limit = 32 << 20
	}
	return newMemGate(limit, c.logger())
}

func (c Config) maxStreams() int {
	if c.MaxStreams <= 0 {
		return 16384
	}
	return c.MaxStreams
}

func (c Config) handshakeTimeout() time.Duration {
	if c.HandshakeTimeout <= 0 {
		return 10 * time.Second
	}
	return c.HandshakeTimeout
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Dialer dials TCP tunnel sessions. Its methods are safe for concurrent use.
type Dialer struct {
	// Config tunes the transport.
	Config Config
	// TLS is the client configuration: the agent certificate and the roots
	// that verify the relay.
	TLS *tls.Config
	// DialContext opens the TCP connection, directly or through a proxy.
	// Nil means a net.Dialer with TCP keepalives.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dial opens a TCP+TLS+yamux session to addr ("host:port").
func (d *Dialer) Dial(ctx context.Context, addr string) (tunnel.Session, error) {
	ycfg, err := d.Config.yamuxConfig()
	if err != nil {
		return nil, err
	}
	dial := d.DialContext
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp dial %s: %w", addr, err)
	}
	tc := tunnel.ClientTLS(d.TLS, ALPN)
	if tc.ServerName == "" {
		// An IP works too: crypto/tls then checks the certificate's IP SANs
		// (and sends no SNI).
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
	}
	conn := tls.Client(raw, tc)
	hctx, cancel := context.WithTimeout(ctx, d.Config.handshakeTimeout())
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
	}
	fc := newFrameConn(conn, d.Config.writeTimeout(), d.Config.newGate())
	ys, err := yamux.Client(fc, ycfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &session{ys: ys, tls: conn, fc: fc, max: d.Config.maxStreams(), log: d.Config.logger()}, nil
}

// Listener accepts TCP tunnel sessions; TLS handshakes run concurrently, each
// bounded by the handshake timeout.
type Listener struct {
	ln       net.Listener
	tls      *tls.Config
	cfg      Config
	ycfg     *yamux.Config
	onFail   func(net.Addr, error)
	sessions chan *session
	done     chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	live     map[*session]struct{} // guarded by mu
	stopOnce sync.Once
	closed   sync.Once
}

// Listen listens on the TCP address addr. tlsConf must require and verify
// client certificates. onHandshakeFailure, when not nil, is called with the
// remote address and cause of every failed TLS handshake.
func Listen(addr string, tlsConf *tls.Config, cfg Config, onHandshakeFailure func(remote net.Addr, err error)) (*Listener, error) {
	ycfg, err := cfg.yamuxConfig()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcp listen %s: %w", addr, err)
	}
	l := &Listener{
		ln: ln, tls: tunnel.ServerTLS(tlsConf, ALPN), cfg: cfg, ycfg: ycfg, onFail: onHandshakeFailure,
		sessions: make(chan *session), done: make(chan struct{}), live: make(map[*session]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.cfg.logger().Warn("tcp accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		l.wg.Add(1)
		go l.handshake(raw)
	}
}

func (l *Listener) handshake(raw net.Conn) {
	defer l.wg.Done()
	conn := tls.Server(raw, l.tls)
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.handshakeTimeout())
	go func() {
		select {
		case <-l.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := conn.HandshakeContext(ctx)
	cancel()
	if err != nil {
		raw.Close()
		if l.onFail != nil {
			l.onFail(raw.RemoteAddr(), err)
		}
		return
	}
	fc := newFrameConn(conn, l.cfg.writeTimeout(), l.cfg.newGate())
	ys, err := yamux.Server(fc, l.ycfg)
	if err != nil {
		conn.Close()
		return
	}
	s := &session{ys: ys, tls: conn, fc: fc, max: l.cfg.maxStreams(), log: l.cfg.logger()}
	l.mu.Lock()
	l.live[s] = struct{}{}
	l.mu.Unlock()
	go func() {
		<-ys.CloseChan()
		l.mu.Lock()
		delete(l.live, s)
		l.mu.Unlock()
	}()
	select {
	case l.sessions <- s:
	case <-l.done:
		s.Close()
	}
}

// Accept waits for the next session whose handshake has completed.
func (l *Listener) Accept(ctx context.Context) (tunnel.Session, error) {
	select {
	case s := <-l.sessions:
		return s, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Addr is the TCP address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// StopAccepting refuses new sessions; sessions already accepted go on until Close.
func (l *Listener) StopAccepting() error {
	l.stopOnce.Do(func() { close(l.done) })
	return l.ln.Close()
}

// Close stops accepting and closes every session accepted by the listener.
func (l *Listener) Close() error {
	l.StopAccepting()
	l.closed.Do(func() {
		l.wg.Wait()
		l.mu.Lock()
		live := make([]*session, 0, len(l.live))
		for s := range l.live {
			live = append(live, s)
		}
		l.mu.Unlock()
		for _, s := range live {
			s.Close()
		}
	})
	return nil
}

// yamuxLogger sends yamux's log lines to slog, at the level yamux tagged
// them, except the read and write failures that end a session: the tunnel
// logs those once, with the cause Err found (a TLS alert rather than the
// broken pipe yamux saw), so yamux's lines about them go to debug.
type yamuxLogger struct{ log *slog.Logger }

func (y yamuxLogger) Print(v ...any)                 { y.emit(fmt.Sprint(v...)) }
func (y yamuxLogger) Println(v ...any)               { y.emit(fmt.Sprint(v...)) }
func (y yamuxLogger) Printf(format string, v ...any) { y.emit(fmt.Sprintf(format, v...)) }

func (y yamuxLogger) emit(msg string) {
	msg = strings.TrimSpace(msg)
	level := slog.LevelInfo
	for tag, l := range map[string]slog.Level{"[ERR] ": slog.LevelWarn, "[WARN] ": slog.LevelWarn, "[DEBUG] ": slog.LevelDebug} {
		if rest, ok := strings.CutPrefix(msg, tag); ok {
			msg, level = rest, l
		}
	}
	// yamux's lines about the failure that ended a session.
	for _, p := range [...]string{"yamux: Failed to read header", "yamux: Failed to write header", "yamux: Failed to write body"} {
		if strings.HasPrefix(msg, p) {
			level = slog.LevelDebug
		}
	}
	y.log.Log(context.Background(), level, msg)
}
