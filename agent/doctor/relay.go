package doctor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/control"
	"github.com/mcc-bridge/bridge/tunnel/proxy"
	"github.com/mcc-bridge/bridge/tunnel/tunnelquic"
	"github.com/mcc-bridge/bridge/tunnel/tunneltcp"
)

// proxyChoice is the agent's proxy selection: the function agent.New gives
// the tunnel client, and where its answer comes from.
type proxyChoice struct {
	pick   func(target string) (*url.URL, error) // nil: always direct
	source string                                // "agent.yaml proxy", "HTTPS_PROXY", ...
	err    error                                 // the configured proxy URL does not parse
}

// proxyChoice builds the proxy selection as agent.New does, and registers
// proxy passwords as secrets.
func (r *runner) proxyChoice() proxyChoice {
	switch r.cfg.Proxy {
	case "direct":
		return proxyChoice{source: "proxy: direct in agent.yaml"}
	case "":
		getenv := r.opts.Getenv
		for _, name := range []string{"HTTPS_PROXY", "https_proxy"} {
			if v := strings.TrimSpace(getenv(name)); v != "" {
				if u, err := proxy.ParseURL(v); err == nil && u.User != nil {
					pw, _ := u.User.Password()
					r.addSecret(pw)
					r.addSecret(url.QueryEscape(pw))
				}
				return proxyChoice{pick: proxy.FromEnvironment(getenv), source: name}
			}
		}
		return proxyChoice{source: "no proxy configured (agent.yaml proxy and HTTPS_PROXY are empty)"}
	default:
		u, err := proxy.ParseURL(r.cfg.Proxy)
		if err != nil {
			return proxyChoice{source: "agent.yaml proxy", err: err}
		}
		if u.User != nil {
			pw, _ := u.User.Password()
			r.addSecret(pw)
			r.addSecret(url.QueryEscape(pw))
		}
		return proxyChoice{pick: func(string) (*url.URL, error) { return u, nil }, source: "agent.yaml proxy"}
	}
}

// forTarget returns the proxy for target (nil: direct), as the tunnel
// client asks for it.
func (p proxyChoice) forTarget(target string) (*url.URL, error) {
	if p.err != nil {
		return nil, p.err
	}
	if p.pick == nil {
		return nil, nil
	}
	return p.pick(target)
}

// displayURL is a proxy URL without its userinfo.
func displayURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// relayState is what the steps of one relay address learn.
type relayState struct {
	host, port string // as configured
	addr       string // the address dialed: resolved IP (or the name) and port
	serverName string // checked in the relay certificate
	resolved   bool   // the address comes from a name that resolved, or an IP
	tunnelOK   bool   // the TCP tunnel session came up
	samples    []clockSample
}

// checkRelay runs the steps of one configured relay address.
func (r *runner) checkRelay(ctx context.Context, relay string) {
	host, port, err := net.SplitHostPort(relay)
	if err != nil || host == "" || port == "" {
		r.add(Result{Step: "relay " + relay, Status: Fail, Detail: fmt.Sprintf("%q is not host:port", relay),
			Hint: "write each entry of relays in agent.yaml as host:port, e.g. relay.example.com:8443"})
		return
	}
	addrs, resolved := r.resolve(ctx, host, port)
	if addrs == nil {
		for _, s := range r.relaySteps(relay) {
			r.skip(s, "needs the relay name to resolve (dns step)")
		}
		return
	}
	serverName := r.cfg.ServerName
	if serverName == "" {
		serverName = host // verify the name the admin configured, also an IP, as the agent does
	}
	for _, a := range addrs {
		st := &relayState{host: host, port: port, addr: net.JoinHostPort(a, port), serverName: serverName, resolved: resolved}
		r.tcpAndTLS(ctx, st)
		r.quic(ctx, st)
		r.clock(st)
	}
}

// relaySteps names the steps after dns for an address, for skipping them.
func (r *runner) relaySteps(addr string) []string {
	return []string{"tcp " + addr, "tls " + addr, "udp/quic " + addr, "clock " + addr}
}

// resolve runs the dns step. It returns the addresses to check (nil when
// none), and whether they are resolved addresses rather than the name
// handed on to a proxy.
func (r *runner) resolve(ctx context.Context, host, port string) ([]string, bool) {
	name := "dns " + host
	if net.ParseIP(host) != nil {
		r.add(Result{Step: name, Status: Pass, Detail: "an IP address: nothing to resolve"})
		return []string{host}, true
	}
	var addrs []string
	viaProxy := false
	res := r.step(ctx, name, func(ctx context.Context) Result {
		ips, err := r.opts.Resolver.LookupHost(ctx, host)
		if err == nil && len(ips) == 0 {
			err = errors.New("no addresses")
		}
		if err != nil {
			detail := "does not resolve: " + describeDNSError(err)
			if u, perr := r.proxy.forTarget(net.JoinHostPort(host, port)); perr == nil && u != nil {
				// The agent then dials the name through the proxy, which resolves it.
				viaProxy = true
				return Result{Status: Warn, Detail: detail + "; the agent hands the name to the proxy " + displayURL(u) + ", which resolves it",
					Hint: "fine if only the proxy resolves outside names; QUIC (UDP) goes direct and needs the name to resolve on this machine"}
			}
			return Result{Status: Fail, Detail: detail,
				Hint: fmt.Sprintf("check the relay name in relays (agent.yaml) and this machine's DNS (nslookup %s); if the name cannot resolve here, use the relay's IP address and set server_name to the name in its certificate", host)}
		}
		slices.Sort(ips)
		addrs = slices.Compact(ips)
		detail := strings.Join(addrs, ", ")
		if len(addrs) > maxAddrs {
			detail += fmt.Sprintf(" (checking the first %d)", maxAddrs)
			addrs = addrs[:maxAddrs]
		}
		return Result{Status: Pass, Detail: detail}
	})
	switch {
	case res.Status == Pass:
		return addrs, true
	case viaProxy:
		return []string{host}, false
	}
	return nil, false
}

// describeDNSError says why a lookup failed, in words.
func describeDNSError(err error) string {
	var de *net.DNSError
	switch {
	case errors.As(err, &de) && de.IsNotFound:
		return "no such host"
	case errors.As(err, &de) && de.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return "the DNS server did not answer in time"
	}
	return err.Error()
}

// hello is the HELLO of the doctor's sessions.
func (r *runner) hello() control.Hello {
	v := "doctor"
	if r.opts.Version != "" {
		v = r.opts.Version + " doctor"
	}
	return control.Hello{Agent: r.id.id.Agent, Tenant: r.id.id.Tenant, Version: v}
}

// tlsFor is the TLS configuration for a relay address, as tunnelclient
// derives it from the agent's.
func (r *runner) tlsFor(st *relayState) *tls.Config {
	tc := r.id.tls.Clone()
	if tc.ServerName == "" {
		tc.ServerName = st.serverName
	}
	return tc
}

func (r *runner) linkConfig() tunnel.LinkConfig {
	return tunnel.LinkConfig{HandshakeTimeout: r.opts.Timeout, HeartbeatInterval: r.cfg.Tunnel.Heartbeat}
}

// dialFunc opens a TCP connection to a relay address, directly or through
// the proxy.
type dialFunc func(ctx context.Context) (net.Conn, error)

// tcpAndTLS runs the tcp (or proxy) step and the tls step of an address.
func (r *runner) tcpAndTLS(ctx context.Context, st *relayState) {
	tlsName := "tls " + st.addr
	if r.proto == tunnel.ProtocolQUIC {
		why := "protocol is quic in agent.yaml: the agent does not use TCP"
		r.skip("tcp "+st.addr, why)
		r.skip(tlsName, why)
		return
	}
	conn, dial := r.connectTCP(ctx, st)
	if conn == nil {
		r.skip(tlsName, "needs a TCP connection to the relay (the step above)")
		return
	}
	if r.id == nil {
		conn.Close()
		r.skip(tlsName, "needs a usable agent certificate (certificate step)")
		return
	}
	var link *tunnel.Link
	r.step(ctx, tlsName, func(ctx context.Context) Result {
		d := tunneltcp.Dialer{
			Config:      tunneltcp.Config{HandshakeTimeout: r.opts.Timeout},
			TLS:         r.tlsFor(st),
			DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil },
		}
		sess, err := d.Dial(ctx, st.addr)
		if err != nil {
			conn.Close()
			return r.tlsFailure(err, st, tunnel.TCP)
		}
		link, err = tunnel.Connect(ctx, sess, r.hello(), r.linkConfig())
		if err != nil {
			return r.tlsFailure(r.withAlert(ctx, err, dial, st), st, tunnel.TCP)
		}
		return Result{Status: Pass, Detail: r.describeLink(link)}
	})
	if link != nil {
		st.tunnelOK = true
		st.samples = append(st.samples, r.sample(ctx, link))
	}
}

// withAlert adds to err the TLS alert with which the relay refused this
// agent, when that is why the tunnel handshake failed over TCP. With TLS 1.3
// the client's handshake ends before the relay has checked the client
// certificate, so a refusal shows only as a broken connection once HELLO is
// sent; the alert that says why is caught by a second handshake that reads.
func (r *runner) withAlert(ctx context.Context, err error, dial dialFunc, st *relayState) error {
	var ce *control.Error
	if errors.As(err, &ce) || isTimeout(err) || strings.Contains(err.Error(), "remote error: tls:") {
		return err
	}
	c, derr := dial(ctx)
	if derr != nil {
		return err
	}
	defer c.Close()
	tc := tls.Client(c, tunnel.ClientTLS(r.tlsFor(st), tunneltcp.ALPN))
	if tc.HandshakeContext(ctx) != nil {
		return err
	}
	// The relay answers an accepted handshake with session tickets and then
	// waits for HELLO, which never comes: stop waiting soon.
	deadline := time.Now().Add(time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	tc.SetReadDeadline(deadline)
	_, rerr := tc.Read(make([]byte, 1))
	if rerr != nil && (isRemoteAlert(rerr) || strings.Contains(rerr.Error(), "remote error: tls:")) {
		return fmt.Errorf("%w (a second handshake shows why: %w)", err, rerr)
	}
	return err
}

// connectTCP runs the tcp step, or the proxy step when a proxy applies. It
// returns the connection for the tls step (nil when the step failed), and
// how to open another one.
func (r *runner) connectTCP(ctx context.Context, st *relayState) (net.Conn, dialFunc) {
	// As the agent does: the proxy is chosen for, and asked to CONNECT to,
	// the relay's configured name.
	named := net.JoinHostPort(st.host, st.port)
	u, perr := r.proxy.forTarget(named)
	if perr != nil {
		r.add(Result{Step: "proxy (" + r.proxy.source + ")", Status: Fail, Detail: perr.Error(),
			Hint: "fix the proxy URL (" + r.proxy.source + "): http://host:port, with DOMAIN%5Cuser:password@ for credentials; or set proxy: direct in agent.yaml if this network needs none"})
		return nil, nil
	}
	var conn net.Conn
	if u != nil {
		d := &proxy.Dialer{URL: u, Auth: r.cfg.ProxyAuth}
		dial := func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", named) }
		r.step(ctx, "proxy "+displayURL(u), func(ctx context.Context) Result {
			c, err := dial(ctx)
			if err != nil {
				return r.proxyFailure(err, u, st)
			}
			conn = c
			auth := "no credentials"
			if u.User != nil {
				auth = "credentials from the proxy URL, proxy_auth " + proxyAuth(r.cfg.ProxyAuth)
			}
			return Result{Status: Pass, Detail: fmt.Sprintf("CONNECT %s accepted (proxy from %s, %s)", named, r.proxy.source, auth)}
		})
		return conn, dial
	}
	dial := func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{KeepAlive: 15 * time.Second}).DialContext(ctx, "tcp", st.addr)
	}
	r.step(ctx, "tcp "+st.addr, func(ctx context.Context) Result {
		c, err := dial(ctx)
		if err != nil {
			return r.tcpFailure(err, st)
		}
		conn = c
		return Result{Status: Pass, Detail: fmt.Sprintf("connected from %s, direct: %s", c.LocalAddr(), r.directReason())}
	})
	return conn, dial
}

func proxyAuth(s string) string {
	if s == "" {
		return proxy.AuthBasic
	}
	return strings.ToLower(s)
}

// directReason says why a relay address is dialed without a proxy.
func (r *runner) directReason() string {
	if r.proxy.pick == nil {
		return r.proxy.source
	}
	return r.proxy.source + " is set, but NO_PROXY exempts this address, or it is a loopback address"
}

// tcpFailure explains a failed direct TCP connection.
func (r *runner) tcpFailure(err error, st *relayState) Result {
	allow := fmt.Sprintf("ask the network team to allow outbound TCP to %s port %s", st.host, st.port)
	switch {
	case isConnRefused(err):
		return Result{Status: Fail, Detail: "connection refused: nothing listens on " + st.addr + ", or a firewall rejects the connection",
			Hint: "check the relay address and port in relays (agent.yaml) and that the relay is running; otherwise " + allow}
	case isTimeout(err):
		return Result{Status: Fail, Detail: fmt.Sprintf("no answer within %s: a firewall probably drops outbound TCP to port %s", r.opts.Timeout, st.port),
			Hint: allow + ", or, if the only way out is a web proxy, set proxy in agent.yaml (or HTTPS_PROXY) to it"}
	case isUnreachable(err):
		return Result{Status: Fail, Detail: "no route to " + st.addr + ": " + err.Error(),
			Hint: "this machine has no route to the relay: check its network configuration and default gateway, or use the corporate web proxy (proxy in agent.yaml)"}
	}
	return Result{Status: Fail, Detail: err.Error(), Hint: allow}
}

// proxyFailure explains a failed CONNECT through a proxy.
func (r *runner) proxyFailure(err error, u *url.URL, st *relayState) Result {
	src := r.proxy.source
	var ae *proxy.AuthError
	var se *proxy.StatusError
	offered := "none"
	switch {
	case errors.As(err, &ae):
		if len(ae.Offered) > 0 {
			offered = strings.Join(ae.Offered, ", ")
		}
		var hint string
		switch {
		case ae.Scheme == "":
			hint = fmt.Sprintf("the proxy wants credentials (it offers %s): put a user and password in the proxy URL (%s), as http://DOMAIN%%5Cuser:password@proxy:port, and set proxy_auth to ntlm if the proxy offers NTLM but not Basic", offered, src)
		case containsFold(ae.Offered, "basic") || containsFold(ae.Offered, "ntlm"):
			hint = fmt.Sprintf("the proxy refused the credentials with %s (it offers %s): check the user and password in the proxy URL (%s) and that the account is not locked; use proxy_auth ntlm when the proxy offers NTLM, basic when it offers Basic", ae.Scheme, offered, src)
		default:
			hint = fmt.Sprintf("the proxy offers only %s, which the agent cannot do (it does basic and ntlm): ask the proxy administrators to let this machine CONNECT to %s without authentication", offered, st.addr)
		}
		return Result{Status: Fail, Detail: fmt.Sprintf("HTTP %d: %s", ae.StatusCode, ae.Error()), Hint: hint}
	case errors.As(err, &se):
		hint := fmt.Sprintf("ask the proxy administrators to allow CONNECT to %s port %s", st.host, st.port)
		switch {
		case se.StatusCode == 403 || se.StatusCode == 405:
			hint = "the proxy's policy refuses this tunnel: " + hint
		case se.StatusCode >= 500:
			hint = fmt.Sprintf("the proxy could not reach the relay: check the relay is up and that the proxy may connect out to %s port %s", st.host, st.port)
		}
		return Result{Status: Fail, Detail: se.Error(), Hint: hint}
	}
	fix := "check the proxy URL (" + src + "), or set proxy: direct in agent.yaml if this network needs none"
	switch {
	case isConnRefused(err):
		return Result{Status: Fail, Detail: "the proxy " + displayURL(u) + " refused the connection: " + err.Error(),
			Hint: "nothing listens at the proxy's host and port: " + fix}
	case isTimeout(err):
		return Result{Status: Fail, Detail: fmt.Sprintf("the proxy %s did not answer within %s: %v", displayURL(u), r.opts.Timeout, err),
			Hint: "the proxy is unreachable or slow: " + fix}
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return Result{Status: Fail, Detail: "the proxy's host name does not resolve: " + err.Error(), Hint: fix}
	}
	return Result{Status: Fail, Detail: err.Error(), Hint: fix}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// describeLink says what the handshakes showed.
func (r *runner) describeLink(l *tunnel.Link) string {
	cs := l.ConnectionState()
	w := l.Welcome()
	var b strings.Builder
	fmt.Fprintf(&b, "%s, ALPN %s", tls.VersionName(cs.Version), cs.NegotiatedProtocol)
	if len(cs.PeerCertificates) > 0 {
		c := cs.PeerCertificates[0]
		names := strings.Join(c.DNSNames, ",")
		for _, ip := range c.IPAddresses {
			names = strings.Trim(names+","+ip.String(), ",")
		}
		now := r.opts.Now()
		fmt.Fprintf(&b, "; relay certificate %q (%s) issued by %q, expires %s (in %s)",
			c.Subject.CommonName, names, c.Issuer.CommonName, stamp(c.NotAfter), roundAge(c.NotAfter.Sub(now)))
	}
	fmt.Fprintf(&b, "; relay %q accepted %s (session %s)", w.Relay, r.id.id, w.Session)
	return b.String()
}

// quic runs the udp/quic step of an address.
func (r *runner) quic(ctx context.Context, st *relayState) {
	name := "udp/quic " + st.addr
	switch {
	case r.proto == tunnel.ProtocolTCP:
		r.skip(name, "protocol is tcp in agent.yaml: the agent does not use QUIC")
		return
	case r.id == nil:
		r.skip(name, "needs a usable agent certificate (certificate step)")
		return
	case !st.resolved:
		r.skip(name, "QUIC goes direct and needs the relay name to resolve on this machine (dns step)")
		return
	}
	var link *tunnel.Link
	r.step(ctx, name, func(ctx context.Context) Result {
		d := tunnelquic.Dialer{Config: tunnelquic.Config{HandshakeIdleTimeout: r.opts.Timeout}, TLS: r.tlsFor(st)}
		sess, err := d.Dial(ctx, st.addr)
		if err == nil {
			link, err = tunnel.Connect(ctx, sess, r.hello(), r.linkConfig())
		}
		if err != nil {
			res := r.tlsFailure(err, st, tunnel.QUIC)
			if res.Status == Warn {
				// A network problem: fatal only when TCP cannot make up for it.
				if r.proto == tunnel.ProtocolQUIC || !st.tunnelOK {
					res.Status = Fail
				} else {
					res.Detail += "; the agent falls back to TCP, which works"
				}
			}
			return res
		}
		return Result{Status: Pass, Detail: r.describeLink(link)}
	})
	if link != nil {
		st.samples = append(st.samples, r.sample(ctx, link))
	}
}

// tlsFailure explains a failed TLS or tunnel handshake over transport t.
// Problems of the network come back as Warn for QUIC, for the caller to
// weigh against TCP; everything else is a Fail.
func (r *runner) tlsFailure(err error, st *relayState, t tunnel.Transport) Result {
	msg := err.Error()
	rootFile := "the pki state directory's root.crt"
	if r.cfg.PKI.StateDir == "" {
		rootFile = "tls.ca (" + r.cfg.TLS.CA + ")"
	}
	var cve *tls.CertificateVerificationError
	var ce *control.Error
	switch {
	// The relay's certificate, as this agent checks it.
	case strings.Contains(msg, "certificate signed by unknown authority") || strings.Contains(msg, "x509: certificate signed by"):
		issuer := ""
		if errors.As(err, &cve) && len(cve.UnverifiedCertificates) > 0 {
			issuer = fmt.Sprintf(" (issued by %q)", cve.UnverifiedCertificates[0].Issuer.String())
		}
		return Result{Status: Fail, Detail: "relay certificate not trusted" + issuer + ": it does not chain to the root in " + rootFile + ": " + msg,
			Hint: "if the issuer is your company's TLS-inspection CA, a firewall or proxy intercepts the tunnel: exempt " + st.host + " port " + st.port +
				" from TLS inspection; if the relay's CA changed, re-enroll (pki) or update tls.ca; check that relays names the right relay"}
	case strings.Contains(msg, "certificate is valid for") || strings.Contains(msg, "certificate is not valid for any names"):
		return Result{Status: Fail, Detail: "relay certificate does not name " + st.serverName + ": " + msg,
			Hint: "set server_name in agent.yaml to a name the relay certificate holds, or name the relay that way in relays"}
	case strings.Contains(msg, "x509: certificate has expired or is not yet valid"):
		return Result{Status: Fail, Detail: "relay certificate is expired or not yet valid at this machine's time: " + msg,
			Hint: "check this machine's clock (NTP); if it is right, the relay's certificate needs renewing: tell the relay operator"}
	// The relay refused this agent.
	case errors.As(err, &ce):
		return Result{Status: Fail, Detail: "relay refused the session: " + ce.Error(), Hint: refusalHint(ce.Code+" "+ce.Message, r)}
	case strings.Contains(msg, "remote error: tls:") || tunnelquic.IsRefusal(err) || isRemoteAlert(err):
		return Result{Status: Fail, Detail: "relay refused our certificate: " + msg, Hint: refusalHint(msg, r)}
	// Something else answers, or something cuts in.
	case strings.Contains(msg, "no application protocol") || strings.Contains(msg, "ALPN"):
		return Result{Status: Fail, Detail: "the server at " + st.addr + " does not speak the bridge tunnel protocol: " + msg,
			Hint: "check the port in relays; a load balancer or proxy that terminates TLS in front of the relay must pass it through instead"}
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return Result{Status: Fail, Detail: "no TLS server at " + st.addr + " (something answered in plain text): " + msg,
			Hint: "check the port in relays; a proxy or firewall may be answering in the relay's place"}
	}
	if t == tunnel.QUIC {
		return Result{Status: Warn, Detail: fmt.Sprintf("no QUIC session over UDP to %s within %s: %v", st.addr, r.opts.Timeout, err),
			Hint: fmt.Sprintf("allow outbound UDP to %s port %s in the firewall: QUIC is faster and steadier than the TCP fallback", st.host, st.port)}
	}
	if isTimeout(err) {
		return Result{Status: Fail, Detail: fmt.Sprintf("the TCP connection opened but the handshake got no answer within %s: %v", r.opts.Timeout, err),
			Hint: "a firewall, IPS or proxy is holding the connection: exempt " + st.host + " port " + st.port + " from inspection"}
	}
	return Result{Status: Fail, Detail: "the handshake failed: " + msg,
		Hint: "a firewall, IPS or TLS-inspecting proxy may be cutting the connection, or the relay refused this agent: its log says why"}
}

// refusalHint says what to do when the relay refused this agent.
func refusalHint(msg string, r *runner) string {
	renew := r.renewHint(r.cfg.PKI.StateDir != "")
	switch {
	case strings.Contains(msg, "unknown certificate authority"):
		return "the relay does not trust the CA that issued this agent's certificate: " + renew
	case strings.Contains(msg, "revoked"), strings.Contains(msg, "certificate_refused"):
		return "the relay refuses this certificate (revoked or denied): ask the relay operator why, then " + renew
	case strings.Contains(msg, "expired certificate"):
		return "the relay says this agent's certificate expired: check this machine's clock, then " + renew
	case strings.Contains(msg, "identity_mismatch"):
		return "the identity sent does not match the certificate: run the doctor of the same version as the agent"
	case strings.Contains(msg, "certificate required"):
		return "no agent certificate was sent: " + renew
	}
	return "the relay log says why it refused this agent (revoked, denied identity, wrong provisioner); then " + renew
}

func isRemoteAlert(err error) bool {
	var ae tls.AlertError
	return errors.As(err, &ae)
}

// isConnRefused reports whether a connection was refused (the
// message covers Windows, whose WSAECONNREFUSED is no syscall.ECONNREFUSED).
func isConnRefused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "actively refused")
}

// isUnreachable reports whether there is no route to the host or network.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		strings.Contains(err.Error(), "unreachable")
}

// isTimeout reports whether err is a timeout of any layer.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
