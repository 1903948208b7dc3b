package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// basicPassword is distinctive so that a leak into an error or a log record
// cannot go unnoticed.
const basicPassword = "Pw-d1stinct-7Qz!x"

// wantBasicAuthz is "Basic " + base64("alice:Pw-d1stinct-7Qz!x"), written out
// rather than computed the way the code under test computes it.
const wantBasicAuthz = "Basic YWxpY2U6UHctZDFzdGluY3QtN1F6IXg="

// assertNoSecret fails if s contains secret.
func assertNoSecret(t *testing.T, what, s, secret string) {
	t.Helper()
	if secret != "" && strings.Contains(s, secret) {
		t.Errorf("%s contains the password: %q", what, s)
	}
}

func proxyURL(scheme, addr string, user *url.Userinfo) *url.URL {
	return &url.URL{Scheme: scheme, Host: addr, User: user}
}

// connectRequest is what a fake proxy saw.
type connectRequest struct {
	method, requestURI, proto, host string
	header                          http.Header
}

func TestDialContextFakeProxy(t *testing.T) {
	type responder func(c net.Conn, br *bufio.Reader, req *http.Request, echo string)
	write := func(s string) responder {
		return func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ string) { io.WriteString(c, s) }
	}
	tests := []struct {
		name    string
		user    *url.Userinfo
		header  http.Header
		respond responder
		// Expectations on the request the proxy saw.
		wantAuthz     string // exact Proxy-Authorization; "" means absent
		wantUserAgent string // "" means Go's default
		// Expectations on the result.
		wantFirst   string // bytes to read from the tunnel before echoing
		wantErr     []string
		wantErrIs   error
		wantStatus  int    // *StatusError with this code
		wantAuthErr bool   // *AuthError
		wantScheme  string // AuthError.Scheme
		wantOffered []string
		wantAuthSC  int // AuthError.StatusCode; 0 means 407
	}{
		{
			name:      "basic credentials sent pre-emptively",
			user:      url.UserPassword("alice", basicPassword),
			respond:   func(c net.Conn, br *bufio.Reader, req *http.Request, echo string) { tunnel(c, br, echo) },
			wantAuthz: wantBasicAuthz,
		},
		{
			name:    "no credentials, no header",
			respond: func(c net.Conn, br *bufio.Reader, req *http.Request, echo string) { tunnel(c, br, echo) },
		},
		{
			name:          "extra headers are sent",
			header:        http.Header{"User-Agent": {"bridge-agent/1.2"}, "X-Bridge-Id": {"agent-7"}},
			respond:       func(c net.Conn, br *bufio.Reader, req *http.Request, echo string) { tunnel(c, br, echo) },
			wantUserAgent: "bridge-agent/1.2",
		},
		{
			name: "bytes after the 200 response are not lost",
			respond: func(c net.Conn, br *bufio.Reader, req *http.Request, echo string) {
				up, err := net.Dial("tcp", echo)
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nHELLO-FROM-RELAY")
				pipe(c, br, up)
			},
			wantFirst: "HELLO-FROM-RELAY",
		},
		{
			name: "HTTP/1.0 200 as tinyproxy answers",
			respond: func(c net.Conn, br *bufio.Reader, req *http.Request, echo string) {
				up, err := net.Dial("tcp", echo)
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n")
				pipe(c, br, up)
			},
		},
		{
			name: "Content-Length on a 200 is ignored",
			respond: func(c net.Conn, br *bufio.Reader, req *http.Request, echo string) {
				up, err := net.Dial("tcp", echo)
				if err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
				pipe(c, br, up)
			},
		},
		{
			name:       "403 names the status",
			user:       url.UserPassword("alice", basicPassword),
			respond:    write("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden"),
			wantAuthz:  wantBasicAuthz,
			wantStatus: http.StatusForbidden,
			wantErr:    []string{"answered CONNECT with 403 Forbidden"},
		},
		{
			name:       "502 names the status",
			respond:    write("HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n"),
			wantStatus: http.StatusBadGateway,
			wantErr:    []string{"answered CONNECT with 502 Bad Gateway"},
		},
		{
			name:       "hostile reason phrase is cut and cleaned",
			respond:    write("HTTP/1.1 503 Down\x1b[31m" + strings.Repeat("z", 500) + "\r\n\r\n"),
			wantStatus: http.StatusServiceUnavailable,
			wantErr:    []string{"503 Down[31mzzz"},
		},
		{
			name:        "407 after wrong password",
			user:        url.UserPassword("alice", basicPassword),
			respond:     write("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp, inc\"\r\nProxy-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n"),
			wantAuthz:   wantBasicAuthz,
			wantAuthErr: true,
			wantScheme:  "Basic",
			wantOffered: []string{"Basic", "NTLM"},
			wantErr:     []string{"proxy authentication failed at", "scheme Basic", "the proxy offers Basic, NTLM"},
		},
		{
			name:        "401 from the proxy is an authentication failure",
			user:        url.UserPassword("alice", basicPassword),
			respond:     write("HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"tinyproxy\"\r\n\r\n"),
			wantAuthz:   wantBasicAuthz,
			wantAuthErr: true,
			wantScheme:  "Basic",
			wantOffered: []string{"Basic"},
			wantAuthSC:  http.StatusUnauthorized,
			wantErr:     []string{"proxy authentication failed at"},
		},
		{
			name:        "407 without credentials",
			respond:     write("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate, Basic realm=\"x\"\r\n\r\n"),
			wantAuthErr: true,
			wantOffered: []string{"Negotiate", "Basic"},
			wantErr:     []string{"proxy authentication required by", "no credentials configured"},
		},
		{
			name:      "proxy closes before responding",
			user:      url.UserPassword("alice", basicPassword),
			respond:   func(c net.Conn, _ *bufio.Reader, _ *http.Request, _ string) { c.Close() },
			wantAuthz: wantBasicAuthz,
			wantErrIs: io.ErrUnexpectedEOF,
			wantErr:   []string{"closed the connection before responding"},
		},
		{
			name:      "proxy closes in the status line",
			respond:   write("HTTP/1.1 200 Connection est"),
			wantErrIs: io.ErrUnexpectedEOF,
			wantErr:   []string{"closed the connection in the middle of its response"},
		},
		{
			name:      "proxy closes in the headers",
			respond:   write("HTTP/1.1 200 Connection established\r\nVia: 1.1 proxy\r\n"),
			wantErrIs: io.ErrUnexpectedEOF,
			wantErr:   []string{"in the middle of its response"},
		},
		{
			name:      "endless header",
			respond:   write("HTTP/1.1 200 OK\r\nX-Junk: " + strings.Repeat("a", 200<<10)),
			wantErrIs: errHeaderTooLarge,
			wantErr:   []string{"header exceeds 65536 bytes"},
		},
		{
			name:    "not HTTP",
			respond: write("SSH-2.0-OpenSSH_9.2\r\n\r\n"),
			wantErr: []string{"malformed HTTP response"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			seen := make(chan connectRequest, 1)
			proxy := startServer(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				seen <- connectRequest{req.Method, req.RequestURI, req.Proto, req.Host, req.Header}
				tt.respond(c, br, req, echo)
			})
			logger, logs := testLogger(t)
			d := &Dialer{URL: proxyURL("http", proxy.addr(), tt.user), Header: tt.header, Logger: logger}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			c, err := d.DialContext(ctx, "tcp", echo)
			if c != nil {
				defer c.Close()
			}

			select {
			case req := <-seen:
				if req.method != "CONNECT" || req.requestURI != echo || req.proto != "HTTP/1.1" {
					t.Errorf("request line: got %q %q %q, want CONNECT %q HTTP/1.1", req.method, req.requestURI, req.proto, echo)
				}
				if req.host != echo {
					t.Errorf("Host: got %q, want %q", req.host, echo)
				}
				if got := req.header.Get("Proxy-Authorization"); got != tt.wantAuthz {
					t.Errorf("Proxy-Authorization: got %q, want %q", got, tt.wantAuthz)
				}
				wantUA := tt.wantUserAgent
				if wantUA == "" {
					wantUA = "Go-http-client/1.1"
				}
				if got := req.header.Get("User-Agent"); got != wantUA {
					t.Errorf("User-Agent: got %q, want %q", got, wantUA)
				}
				for k, v := range tt.header {
					if got := req.header.Values(k); !reflect.DeepEqual(got, v) {
						t.Errorf("header %s: got %q, want %q", k, got, v)
					}
				}
			default:
				t.Errorf("proxy saw no CONNECT request")
			}

			wantOK := tt.wantErr == nil && tt.wantErrIs == nil && tt.wantStatus == 0 && !tt.wantAuthErr
			if wantOK {
				if err != nil {
					t.Fatalf("DialContext: got error %v, want none", err)
				}
				if tt.wantFirst != "" {
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					got := make([]byte, len(tt.wantFirst))
					if _, err := io.ReadFull(c, got); err != nil || string(got) != tt.wantFirst {
						t.Fatalf("first bytes: got %q (err %v), want %q", got, err, tt.wantFirst)
					}
				}
				assertEcho(t, c, "ping through the proxy")
				assertNoSecret(t, "log", logs.String(), basicPassword)
				return
			}
			if err == nil {
				t.Fatalf("DialContext: got a connection, want an error")
			}
			t.Logf("error: %v", err)
			msg := err.Error()
			assertNoSecret(t, "error", msg, basicPassword)
			assertNoSecret(t, "log", logs.String(), basicPassword)
			if !strings.Contains(msg, proxy.addr()) {
				t.Errorf("error %q does not name the proxy %s", msg, proxy.addr())
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("error: got %q, want it to contain %q", msg, want)
				}
			}
			if tt.wantErrIs != nil && !errors.Is(err, tt.wantErrIs) {
				t.Errorf("errors.Is(err, %v): got false, want true", tt.wantErrIs)
			}
			var se *StatusError
			if got := errors.As(err, &se); got != (tt.wantStatus != 0) {
				t.Errorf("errors.As(err, *StatusError): got %v, want %v", got, tt.wantStatus != 0)
			} else if got && se.StatusCode != tt.wantStatus {
				t.Errorf("StatusCode: got %d, want %d", se.StatusCode, tt.wantStatus)
			}
			var ae *AuthError
			if got := errors.As(err, &ae); got != tt.wantAuthErr {
				t.Errorf("errors.As(err, *AuthError): got %v, want %v", got, tt.wantAuthErr)
			} else if got {
				if ae.Scheme != tt.wantScheme {
					t.Errorf("AuthError.Scheme: got %q, want %q", ae.Scheme, tt.wantScheme)
				}
				if !reflect.DeepEqual(ae.Offered, tt.wantOffered) {
					t.Errorf("AuthError.Offered: got %q, want %q", ae.Offered, tt.wantOffered)
				}
				wantSC := tt.wantAuthSC
				if wantSC == 0 {
					wantSC = http.StatusProxyAuthRequired
				}
				if ae.StatusCode != wantSC {
					t.Errorf("AuthError.StatusCode: got %d, want %d", ae.StatusCode, wantSC)
				}
				if ae.Proxy != proxy.addr() {
					t.Errorf("AuthError.Proxy: got %q, want %q", ae.Proxy, proxy.addr())
				}
			}
		})
	}
}

// silentProxy accepts connections and never answers.
func silentProxy(t *testing.T) *testServer {
	return startServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
}

func TestDialContextHonoursContext(t *testing.T) {
	tests := []struct {
		name    string
		scheme  string
		handle  func(c net.Conn)
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{
			name:   "cancel while the proxy is silent",
			scheme: "http",
			handle: func(c net.Conn) { io.Copy(io.Discard, c) },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name:   "deadline while the proxy is silent",
			scheme: "http",
			handle: func(c net.Conn) { io.Copy(io.Discard, c) },
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded,
		},
		{
			name:   "deadline after half a response",
			scheme: "http",
			handle: func(c net.Conn) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\n")
				io.Copy(io.Discard, c)
			},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			wantErr: context.DeadlineExceeded,
		},
		{
			name:   "cancel during TLS to a silent https proxy",
			scheme: "https",
			handle: func(c net.Conn) { io.Copy(io.Discard, c) },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name:   "already cancelled",
			scheme: "http",
			handle: func(c net.Conn) { io.Copy(io.Discard, c) },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proxy := startServer(t, tt.handle)
			d := &Dialer{URL: proxyURL(tt.scheme, proxy.addr(), url.UserPassword("alice", basicPassword))}
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			c, err := d.DialContext(ctx, "tcp", "relay.example.com:443")
			elapsed := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatal("DialContext: got a connection, want an error")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("DialContext error: got %v, want one wrapping %v", err, tt.wantErr)
			}
			if elapsed > 3*time.Second {
				t.Errorf("DialContext returned after %v, want promptly after ctx ended", elapsed)
			}
			assertNoSecret(t, "error", err.Error(), basicPassword)
		})
	}
}

func TestDialContextConnOutlivesContext(t *testing.T) {
	tests := []struct {
		name  string
		after func(cancel context.CancelFunc)
	}{
		{name: "cancelled after the dial", after: func(cancel context.CancelFunc) { cancel() }},
		{name: "deadline passes after the dial", after: func(context.CancelFunc) { time.Sleep(400 * time.Millisecond) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			proxy := startServer(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err == nil {
					tunnel(c, br, echo)
				}
			})
			d := &Dialer{URL: proxyURL("http", proxy.addr(), nil)}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", echo)
			if err != nil {
				t.Fatalf("DialContext: %v", err)
			}
			defer c.Close()
			tt.after(cancel)
			time.Sleep(50 * time.Millisecond) // let a stray AfterFunc run, if any
			// No SetDeadline here: it would hide a deadline left on the
			// connection. A watchdog ends a hung read instead.
			watchdog := time.AfterFunc(5*time.Second, func() { c.Close() })
			defer watchdog.Stop()
			const msg = "still alive after ctx ended"
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatalf("write after ctx ended: %v", err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
				t.Fatalf("read after ctx ended: got %q (err %v), want %q", got, err, msg)
			}
		})
	}
}

// startTLSProxy starts an https:// CONNECT proxy (net/http behind TLS) that
// requires authz as Proxy-Authorization unless it is empty, and returns it
// with a pool that trusts its certificate.
func startTLSProxy(t *testing.T, authz string) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var hijacked []net.Conn
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		if authz != "" && r.Header.Get("Proxy-Authorization") != authz {
			w.Header().Set("Proxy-Authenticate", `Basic realm="tls"`)
			http.Error(w, "auth", http.StatusProxyAuthRequired)
			return
		}
		up, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		c, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			up.Close()
			return
		}
		wg.Add(1)
		defer wg.Done()
		mu.Lock()
		hijacked = append(hijacked, c)
		mu.Unlock()
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
		pipe(c, brw.Reader, up)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected handshake failures
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		for _, c := range hijacked {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

func TestDialContextHTTPSProxy(t *testing.T) {
	tests := []struct {
		name       string
		user       *url.Userinfo
		tls        func(pool *x509.CertPool) *tls.Config
		wantVerify bool // want a certificate verification error
	}{
		{
			name: "trusted certificate, ServerName from URL",
			tls:  func(pool *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: pool} },
		},
		{
			name: "basic credentials inside TLS",
			user: url.UserPassword("alice", basicPassword),
			tls:  func(pool *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: pool} },
		},
		{
			name:       "nil config uses system roots, which do not trust the proxy",
			tls:        func(*x509.CertPool) *tls.Config { return nil },
			wantVerify: true,
		},
		{
			name: "explicit ServerName is kept",
			tls: func(pool *x509.CertPool) *tls.Config {
				return &tls.Config{RootCAs: pool, ServerName: "wrong.example.net"}
			},
			wantVerify: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t)
			authz := ""
			if tt.user != nil {
				authz = wantBasicAuthz
			}
			srv, pool := startTLSProxy(t, authz)
			cfg := tt.tls(pool)
			d := &Dialer{URL: proxyURL("https", strings.TrimPrefix(srv.URL, "https://"), tt.user), TLS: cfg}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", echo)
			if cfg != nil && cfg.ServerName != "" && cfg.ServerName != "wrong.example.net" {
				t.Fatalf("DialContext changed the caller's tls.Config: ServerName %q", cfg.ServerName)
			}
			if !tt.wantVerify {
				if err != nil {
					t.Fatalf("DialContext: %v", err)
				}
				defer c.Close()
				assertEcho(t, c, "through TLS to the proxy")
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("DialContext: got a connection, want a certificate error")
			}
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Errorf("DialContext error: got %v, want a *tls.CertificateVerificationError", err)
			}
			if !strings.Contains(err.Error(), "tls handshake with proxy") {
				t.Errorf("error %q does not say the TLS handshake with the proxy failed", err)
			}
		})
	}
}

func TestDialContextProxyAddress(t *testing.T) {
	errStop := errors.New("stop after recording the address")
	tests := []struct {
		name, url, want string
	}{
		{"http default port", "http://127.0.0.1", "127.0.0.1:80"},
		{"https default port", "https://proxy.corp.example", "proxy.corp.example:443"},
		{"explicit port", "http://proxy.corp.example:8080", "proxy.corp.example:8080"},
		{"IPv6 literal", "http://[::1]:3128", "[::1]:3128"},
		{"userinfo is not part of the address", "http://alice:" + basicPassword + "@proxy:3128", "proxy:3128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			var gotNetwork, gotAddr string
			d := &Dialer{URL: u, Forward: func(ctx context.Context, network, addr string) (net.Conn, error) {
				gotNetwork, gotAddr = network, addr
				return nil, errStop
			}}
			_, err = d.DialContext(context.Background(), "tcp4", "relay.example.com:443")
			if !errors.Is(err, errStop) {
				t.Fatalf("DialContext: got %v, want the Forward error", err)
			}
			if gotNetwork != "tcp" || gotAddr != tt.want {
				t.Errorf("Forward dialed %s %s, want tcp %s", gotNetwork, gotAddr, tt.want)
			}
			assertNoSecret(t, "error", err.Error(), basicPassword)
		})
	}
}

func TestDialContextRejectsBadInput(t *testing.T) {
	good := proxyURL("http", "127.0.0.1:3128", url.UserPassword("alice", basicPassword))
	tests := []struct {
		name    string
		d       Dialer
		network string
		addr    string
		wantErr string
	}{
		{"nil URL", Dialer{}, "tcp", "relay:443", "no proxy URL configured"},
		{"socks scheme", Dialer{URL: proxyURL("socks5", "127.0.0.1:1080", nil)}, "tcp", "relay:443", `unsupported scheme "socks5"`},
		{"unknown auth", Dialer{URL: good, Auth: "kerberos"}, "tcp", "relay:443", `unsupported proxy authentication "kerberos"`},
		{"ntlm without user", Dialer{URL: proxyURL("http", "127.0.0.1:3128", nil), Auth: "ntlm"}, "tcp", "relay:443", "ntlm proxy authentication needs a user name"},
		{"udp", Dialer{URL: good}, "udp", "relay:443", `unsupported network "udp"`},
		{"target without port", Dialer{URL: good}, "tcp", "relay", "invalid target address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called := false
			d := tt.d
			d.Forward = func(context.Context, string, string) (net.Conn, error) {
				called = true
				return nil, errors.New("must not dial")
			}
			_, err := d.DialContext(context.Background(), tt.network, tt.addr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("DialContext: got error %v, want one containing %q", err, tt.wantErr)
			}
			if called {
				t.Errorf("DialContext dialed the proxy despite invalid input")
			}
			assertNoSecret(t, "error", err.Error(), basicPassword)
		})
	}
}

func TestDialContextConcurrent(t *testing.T) {
	const dials = 16
	echo := startEcho(t)
	proxy := startServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Proxy-Authorization") != wantBasicAuthz || req.Header.Get("User-Agent") != "bridge-agent/1.2" {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
			return
		}
		tunnel(c, br, echo)
	})
	// One Dialer shared by all goroutines, as the tunnel transport shares it.
	d := &Dialer{
		URL:    proxyURL("http", proxy.addr(), url.UserPassword("alice", basicPassword)),
		Header: http.Header{"User-Agent": {"bridge-agent/1.2"}},
	}
	var wg sync.WaitGroup
	errs := make(chan error, dials)
	for i := range dials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", echo)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := strings.Repeat(string(rune('a'+i)), 1000)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, msg); err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
				errs <- errors.New("echo mismatch on dial " + string(rune('a'+i)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent dial: %v", err)
	}
	if got := proxy.conns.Load(); got != dials {
		t.Errorf("connections to the proxy: got %d, want %d", got, dials)
	}
	if got := d.Header.Get("Proxy-Authorization"); got != "" {
		t.Errorf("DialContext changed Dialer.Header: Proxy-Authorization %q, want none", got)
	}
}
