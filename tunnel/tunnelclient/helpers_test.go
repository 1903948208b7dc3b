package tunnelclient_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/control"
	"github.com/mcc-bridge/bridge/tunnel/tunnelclient"
	"github.com/mcc-bridge/bridge/tunnel/tunnelquic"
	"github.com/mcc-bridge/bridge/tunnel/tunnelserver"
	"github.com/mcc-bridge/bridge/tunnel/tunneltcp"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// handler serves both ends in these tests:
//
//	/ping          {"side": name, "peer": identity of the caller}
//	/slow?ms=N     answers after N milliseconds
//	/echo          echoes the request body
func handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		peer, _ := tunnel.PeerFromContext(r.Context())
		json.NewEncoder(w).Encode(map[string]string{"side": name, "peer": peer.String()})
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		fmt.Fprintf(w, "%s slept %dms", name, ms)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})
	return mux
}

type relay struct {
	name   string
	srv    *tunnelserver.Server
	addr   string // host:port, the same port on UDP and TCP
	cancel context.CancelFunc
	done   chan error
	logs   func() string
	http   *http.Client // relay -> agent
}

type relayOpt func(*tunnelserver.Config)

// startRelay runs a tunnel server on 127.0.0.1 with an HTTP server on its
// stream listener, until the test ends or stop is called.
func startRelay(t *testing.T, pki *tunneltest.PKI, name string, opts ...relayOpt) *relay {
	t.Helper()
	log, logs := tunneltest.Logger(t)
	cfg := tunnelserver.Config{
		Addr:         "127.0.0.1:0",
		TLS:          pki.ServerTLS(),
		RelayID:      name,
		Logger:       log.With("relay", name),
		DrainTimeout: 10 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := tunnelserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := ""
	if a := srv.TCPAddr(); a != nil {
		addr = a.String()
	} else {
		addr = srv.UDPAddr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &relay{name: name, srv: srv, addr: addr, cancel: cancel, done: make(chan error, 1), logs: logs}
	hs := &http.Server{Handler: handler(name), ConnContext: tunnel.ConnContext}
	go hs.Serve(srv.Listener())
	go func() {
		r.done <- srv.Run(ctx)
		hs.Close()
	}()
	r.http = &http.Client{Transport: srv.HTTPTransport(), Timeout: 20 * time.Second}
	t.Cleanup(func() { r.stop() })
	return r
}

// stop shuts the relay down gracefully and returns Run's error.
func (r *relay) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("relay %s did not stop", r.name)
	}
}

type agent struct {
	c      *tunnelclient.Client
	cancel context.CancelFunc
	done   chan struct{}
	http   *http.Client // agent -> relay
	logs   func() string
}

// startAgent runs a tunnel client with an HTTP server on its stream
// listener until the test ends.
func startAgent(t *testing.T, pki *tunneltest.PKI, cfg tunnelclient.Config) *agent {
	t.Helper()
	log, logs := tunneltest.Logger(t)
	if cfg.TLS == nil {
		cfg.TLS = pki.ClientTLS(pki.Agent)
	}
	cfg.Logger = log.With("side", "agent")
	c, err := tunnelclient.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{c: c, cancel: cancel, done: make(chan struct{}), logs: logs}
	hs := &http.Server{Handler: handler("agent"), ConnContext: tunnel.ConnContext}
	go hs.Serve(c.Listener())
	go func() {
		c.Run(ctx)
		hs.Close()
		close(a.done)
	}()
	a.http = &http.Client{Transport: tunnel.RetryIdempotent(c.HTTPTransport()), Timeout: 20 * time.Second}
	t.Cleanup(func() {
		cancel()
		select {
		case <-a.done:
		case <-time.After(30 * time.Second):
			t.Error("agent did not stop")
		}
	})
	return a
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), nil
}

// transports lists the protocol settings that pin each transport.
var transports = []tunnel.Protocol{tunnel.ProtocolQUIC, tunnel.ProtocolTCP}

func linkTransports(c *tunnelclient.Client) []tunnel.Transport {
	var out []tunnel.Transport
	for _, l := range c.Links() {
		if !l.Draining() {
			out = append(out, l.Transport())
		}
	}
	return out
}

// udpGate forwards UDP between agents and a relay and can drop everything,
// like a firewall that blocks UDP. It listens on the same port number as a
// TCP forwarder, so the agent dials one address for both transports.
type udpGate struct {
	pc     *net.UDPConn
	target *net.UDPAddr
	drop   atomic.Bool
	mu     sync.Mutex
	peers  map[string]*net.UDPConn // agent address -> socket towards the relay; guarded by mu
	closed atomic.Bool
}

func newUDPGate(t *testing.T, port int, target string) *udpGate {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	ta, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	g := &udpGate{pc: pc, target: ta, peers: map[string]*net.UDPConn{}}
	go g.run()
	t.Cleanup(g.close)
	return g
}

func (g *udpGate) run() {
	buf := make([]byte, 65536)
	for {
		n, from, err := g.pc.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if g.drop.Load() {
			continue
		}
		g.mu.Lock()
		up, ok := g.peers[from.String()]
		if !ok {
			up, err = net.DialUDP("udp", nil, g.target)
			if err != nil {
				g.mu.Unlock()
				continue
			}
			g.peers[from.String()] = up
			go func() {
				b := make([]byte, 65536)
				for {
					n, err := up.Read(b)
					if err != nil {
						return
					}
					if !g.drop.Load() {
						g.pc.WriteToUDP(b[:n], from)
					}
				}
			}()
		}
		g.mu.Unlock()
		up.Write(buf[:n])
	}
}

func (g *udpGate) close() {
	if !g.closed.CompareAndSwap(false, true) {
		return
	}
	g.pc.Close()
	g.mu.Lock()
	for _, p := range g.peers {
		p.Close()
	}
	g.mu.Unlock()
}

// tcpForward forwards TCP connections from a port to target.
func tcpForward(t *testing.T, ln net.Listener, target string) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); io.Copy(c, up); c.(*net.TCPConn).CloseWrite() }()
		}
	}()
}

// sharedPort binds a UDP gate and a TCP forwarder on one free port number.
func sharedPort(t *testing.T, target string) (addr string, gate *udpGate) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			ln.Close()
			continue
		}
		pc.Close()
		gate = newUDPGate(t, port, target)
		tcpForward(t, ln, target)
		return ln.Addr().String(), gate
	}
	t.Fatal("no free port for both UDP and TCP")
	return "", nil
}

// clientTLS is a TLS config whose certificate is cert.
func clientTLS(pki *tunneltest.PKI, cert tls.Certificate) *tls.Config { return pki.ClientTLS(cert) }

// dialRaw dials a bare transport session with the agent certificate.
func dialRaw(t *testing.T, pki *tunneltest.PKI, proto tunnel.Protocol, addr string) tunnel.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var sess tunnel.Session
	var err error
	if proto == tunnel.ProtocolQUIC {
		sess, err = (&tunnelquic.Dialer{TLS: pki.ClientTLS(pki.Agent)}).Dial(ctx, addr)
	} else {
		sess, err = (&tunneltcp.Dialer{TLS: pki.ClientTLS(pki.Agent)}).Dial(ctx, addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

func controlHello(agent, tenant string) control.Hello {
	return control.Hello{Agent: agent, Tenant: tenant, Version: "test"}
}
