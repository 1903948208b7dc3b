// Package proxy dials TCP connections through an HTTP CONNECT proxy, so the
// agent's TCP+TLS tunnel transport can reach a relay from networks whose only
// way out is a corporate proxy.
//
// A Dialer speaks HTTP/1.1 CONNECT to the proxy (over TCP for http:// proxy
// URLs, over TLS for https://), authenticates with Basic or NTLM, and returns
// the tunnel as a net.Conn; the caller runs its own TLS handshake with the
// relay inside it. ParseURL and FromEnvironment turn configuration into proxy
// URLs, and Redacted makes them safe to log.
//
// Protocol flow with Basic authentication (credentials sent pre-emptively):
//
//	agent                                                  proxy
//	  | CONNECT relay.example.com:443 HTTP/1.1                 |
//	  | Host: relay.example.com:443                            |
//	  | Proxy-Authorization: Basic base64(user:password) ----> |
//	  | <------------------ HTTP/1.1 200 Connection established |
//	  | tunnel: bytes in both directions, relayed verbatim     |
//
// Protocol flow with NTLM, which authenticates the TCP connection rather than
// the request, so every step runs on the same connection:
//
//	agent                                                  proxy
//	  | CONNECT ..., Proxy-Authorization: NTLM <NEGOTIATE> --> |
//	  | <---------- 407, Proxy-Authenticate: NTLM <CHALLENGE> |
//	  |              (the 407 body is read and discarded)      |
//	  | CONNECT ..., Proxy-Authorization: NTLM <AUTHENTICATE>> |
//	  | <------------------------------------------------ 200 |
//	  | tunnel                                                 |
//
// A 407 (or 401) answer becomes an *AuthError and any other non-200 answer a
// *StatusError; callers tell them apart with errors.As.
//
// Secrets: the proxy password never appears in an error, a log record or the
// output of Redacted, and errors name the proxy by host:port only.
//
// Concurrency: a Dialer is safe for concurrent use by many goroutines once its
// fields are set; do not change them afterwards.
package proxy
