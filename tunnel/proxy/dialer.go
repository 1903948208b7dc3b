package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Values of Dialer.Auth.
const (
	// AuthBasic sends Basic credentials pre-emptively when the proxy URL has
	// userinfo. The empty string means the same.
	AuthBasic = "basic"
	// AuthNTLM runs the NTLMv2 handshake with the proxy URL's userinfo.
	AuthNTLM = "ntlm"
)

// Dialer opens TCP connections through an HTTP CONNECT proxy.
//
// URL is required; every other field's zero value means its default. A
// Dialer is safe for concurrent use once its fields are set; do not change
// them afterwards.
type Dialer struct {
	// URL is the proxy: http://[user:pass@]host:port or https://... (TLS to the proxy itself).
	// Userinfo gives credentials for Basic auth (or NTLM when Auth is "ntlm"; user may be DOMAIN\user).
	// A missing port means 80 for http and 443 for https. Required.
	URL *url.URL
	// Auth selects proxy authentication: "" or "basic" (Basic, sent
	// pre-emptively when URL has userinfo), "ntlm" (NTLMv2 via
	// github.com/Azure/go-ntlmssp: CONNECT with NEGOTIATE, 407 with the
	// CHALLENGE, CONNECT with AUTHENTICATE, all on one TCP connection).
	// Case does not matter.
	Auth string
	// Forward dials the proxy itself. Nil means a net.Dialer.
	Forward func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS configures TLS to an https:// proxy. Nil means defaults with
	// ServerName from URL; a config without ServerName gets it from URL too.
	TLS *tls.Config
	// Header is extra headers for the CONNECT request (e.g. User-Agent).
	// Nil means none; Go's default User-Agent is sent.
	Header http.Header
	// Logger receives a Debug record per handshake, with the proxy URL
	// redacted. Nil means no logging.
	Logger *slog.Logger
}

// DialContext connects to addr ("host:port") through the proxy and returns
// the tunnel. network must be "tcp", "tcp4" or "tcp6"; the proxy itself is
// always dialed with "tcp", and the proxy resolves addr.
//
// ctx bounds the whole handshake, including the dial and TLS to the proxy: a
// deadline or cancellation aborts it even when the proxy stops answering, and
// the error then wraps ctx.Err(). ctx does not affect the returned
// connection. Bytes the proxy sent right after its 200 answer are the first
// bytes read from the connection.
//
// Errors wrap an *AuthError when the proxy answers 407 (or 401) and a
// *StatusError for any other non-200 answer. They never contain the proxy password.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: tunnel to %s: %w", addr, err)
	}
	return c, nil
}

func (d *Dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("unsupported network %q: a CONNECT tunnel carries tcp", network)
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return nil, errors.New("invalid target address: want host:port")
	}
	if d.URL == nil {
		return nil, errors.New("no proxy URL configured")
	}
	if err := checkURL(d.URL); err != nil {
		return nil, fmt.Errorf("proxy URL: %w", err)
	}
	auth := strings.ToLower(d.Auth)
	switch auth {
	case "", AuthBasic:
		auth = AuthBasic
	case AuthNTLM:
		if d.URL.User == nil || d.URL.User.Username() == "" {
			return nil, errors.New("ntlm proxy authentication needs a user name and password in the proxy URL")
		}
	default:
		return nil, fmt.Errorf("unsupported proxy authentication %q (want basic or ntlm)", printable(d.Auth, maxSchemeLen))
	}

	proxyAddr := d.proxyAddr()
	forward := d.Forward
	if forward == nil {
		var nd net.Dialer
		forward = nd.DialContext
	}
	raw, err := forward(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("dial proxy %s: %w", proxyAddr, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("dial proxy %s: Forward returned no connection", proxyAddr)
	}
	c, err := d.handshake(ctx, raw, proxyAddr, addr, auth)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// proxyAddr returns the proxy's host:port, with the scheme's default port.
func (d *Dialer) proxyAddr() string {
	port := d.URL.Port()
	if port == "" {
		port = "80"
		if d.URL.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(d.URL.Hostname(), port)
}

// handshake runs TLS (for https proxies) and the CONNECT exchange on raw,
// aborting blocked I/O when ctx ends.
func (d *Dialer) handshake(ctx context.Context, raw net.Conn, proxyAddr, target, auth string) (net.Conn, error) {
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		if err := raw.SetDeadline(deadline); err != nil {
			return nil, fmt.Errorf("set deadline on proxy connection: %w", err)
		}
	}
	// A deadline in the past unblocks pending I/O at once.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	c, err := d.connect(ctx, raw, proxyAddr, target, auth)
	if !stop() {
		// ctx ended: its AfterFunc has poisoned raw's deadline, so even a
		// finished handshake leaves an unusable connection.
		return nil, fmt.Errorf("waiting for proxy %s: %w", proxyAddr, ctx.Err())
	}
	if err != nil {
		if hasDeadline && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(deadline) {
			// The connection's deadline, which is ctx's, fired just before ctx's own timer.
			return nil, fmt.Errorf("waiting for proxy %s: %w", proxyAddr, context.DeadlineExceeded)
		}
		return nil, err
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear deadline on proxy connection: %w", err)
	}
	d.logger().DebugContext(ctx, "proxy tunnel established",
		"proxy", Redacted(d.URL), "target", target, "auth", auth)
	return c, nil
}

func (d *Dialer) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// connect speaks TLS (for https proxies) and CONNECT on raw.
func (d *Dialer) connect(ctx context.Context, raw net.Conn, proxyAddr, target, auth string) (net.Conn, error) {
	c := raw
	if d.URL.Scheme == "https" {
		cfg := &tls.Config{}
		if d.TLS != nil {
			cfg = d.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = d.URL.Hostname()
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls handshake with proxy %s: %w", proxyAddr, err)
		}
		c = tc
	}
	x := &exchange{conn: c, br: bufio.NewReader(c), proxy: proxyAddr, target: target, header: d.Header}

	var resp *http.Response
	var err error
	scheme := ""
	switch {
	case auth == AuthNTLM:
		scheme = "NTLM"
		password, _ := d.URL.User.Password()
		resp, err = x.ntlm(d.URL.User.Username(), password)
	case d.URL.User != nil:
		scheme = "Basic"
		password, _ := d.URL.User.Password()
		creds := d.URL.User.Username() + ":" + password
		resp, err = x.roundTrip("Basic " + base64.StdEncoding.EncodeToString([]byte(creds)))
	default:
		resp, err = x.roundTrip("")
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, responseError(resp, proxyAddr, scheme)
	}
	return newConn(c, x.br), nil
}

// exchange is one connection to the proxy on which CONNECT requests go out
// and responses come back, one at a time.
type exchange struct {
	conn   net.Conn
	br     *bufio.Reader
	proxy  string // host:port, for errors
	target string
	header http.Header
}

// roundTrip sends CONNECT with the given Proxy-Authorization value (none if
// empty) and reads the response head.
func (x *exchange) roundTrip(authorization string) (*http.Response, error) {
	req := &http.Request{
		Method:     http.MethodConnect,
		URL:        &url.URL{Opaque: x.target},
		Host:       x.target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     x.header.Clone(),
	}
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if authorization != "" {
		req.Header.Set("Proxy-Authorization", authorization)
	}
	if err := req.Write(x.conn); err != nil {
		return nil, fmt.Errorf("send CONNECT to proxy %s: %w", x.proxy, err)
	}
	resp, err := readConnectResponse(x.br, req)
	if err != nil {
		return nil, fmt.Errorf("read CONNECT response from proxy %s: %w", x.proxy, err)
	}
	return resp, nil
}

// conn is a tunnel whose first bytes arrived with the proxy's 200 answer and
// were buffered while parsing it: Read returns them before reading the
// network. Like any net.Conn, Read must not be called from two goroutines at
// once.
type conn struct {
	net.Conn
	pending []byte
}

// newConn returns c itself when br holds nothing past the response head, so
// callers keep the concrete type (e.g. *net.TCPConn) in the common case.
func newConn(c net.Conn, br *bufio.Reader) net.Conn {
	n := br.Buffered()
	if n == 0 {
		return c
	}
	buf, _ := br.Peek(n) // cannot fail: n bytes are buffered
	return &conn{Conn: c, pending: bytes.Clone(buf)}
}

// Read returns the buffered bytes first, then reads the network.
func (c *conn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return n, nil
}

// NetConn returns the underlying connection, like tls.Conn.NetConn.
func (c *conn) NetConn() net.Conn { return c.Conn }
