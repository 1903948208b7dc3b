// Package doctor is the logic of `bridge-agent doctor`: it checks, step by
// step, everything the agent needs to work from the machine it runs on, and
// says for each step what it saw and, when the step did not pass, what an IT
// administrator can do about it.
//
// It uses the agent's own code paths rather than imitations of them: the
// identity is loaded as agent.New loads it (pki/enroll Store or fixed tls
// files), relays are dialed with tunnel/tunneltcp, tunnel/tunnelquic and
// tunnel/proxy with the TLS configuration and ALPN the agent uses, the
// session is opened with the tunnel's HELLO/WELCOME handshake, and SharePoint
// is read with agent/sharepoint and the configured account.
//
// Steps, in order (a step whose prerequisite failed is reported as SKIP with
// the reason):
//
//	certificate           the identity loads, is current (against Options.Now), chains to the
//	                      root the agent holds, and names a tenant and agent
//	for each relay:
//	  dns <host>          the name resolves (an IP passes at once); with a proxy that applies,
//	                      a name that does not resolve here is only a warning: the proxy resolves it
//	  for each address (at most 4):
//	    tcp <addr>        a direct TCP connection, when no proxy applies
//	    proxy <url>       instead of tcp when a proxy applies (agent.yaml proxy, or HTTPS_PROXY
//	                      and NO_PROXY as the agent reads them): the proxy accepts CONNECT <addr>
//	                      with the configured proxy_auth
//	    tls <addr>        on that connection, the mutual-TLS handshake and the tunnel
//	                      handshake (HELLO/WELCOME): the relay's certificate verifies, the relay
//	                      accepts ours
//	    udp/quic <addr>   the same over QUIC (UDP, direct); a WARN when TCP works, as the agent
//	                      then falls back to TCP
//	    clock <addr>      the relay's clock against Options.Now
//	for each SharePoint site:
//	  sharepoint <url>    GET <site>/_api/site authenticates with the configured account
//
// # Clock skew
//
// On every tunnel session the doctor opens (TCP and QUIC), it sends one
// request the way the agent calls the relay, GET /v1/tunnel/ping over a
// tunnel stream, which the relay answers with its clock ("time", nanosecond
// precision; the HTTP Date header, to the second, when the body has none).
// The skew is that time minus the midpoint of Options.Now read just before
// the request and just after the response; half the round trip is the
// uncertainty and is given the benefit of the doubt. The sample with the
// shortest round trip is reported.
//
// Test sessions must not carry the relay's calls to the agent (the relay
// cannot tell them from the agent's own sessions): right after writing its
// request the doctor sends GOAWAY, so the relay opens no stream on the
// session, and the session drains and closes once the answer is read.
//
// # Secrets
//
// No Detail or Hint holds a password, a key or proxy credentials: proxy URLs
// are shown without userinfo, and as a last guard every known secret (the
// SharePoint password, proxy passwords) is replaced by [redacted].
//
// # Concurrency
//
// Run runs the steps one after another on the calling goroutine and calls
// report from it; it starts no goroutine that outlives it.
package doctor
