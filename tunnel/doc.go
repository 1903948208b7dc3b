// Package tunnel is the transport every other part of MCC Bridge rides on: one
// outbound-only, mutually authenticated connection from a bridge-agent to a
// bridge-relay that carries many independent byte streams in both directions.
//
// The package defines the small Session/Stream abstraction that both transports
// implement (tunnelquic: QUIC; tunneltcp: TLS 1.3 over TCP with yamux streams),
// and the Link that runs the control protocol on top of a Session: hello,
// heartbeats with round-trip times, and GOAWAY for a graceful drain. Listener
// and the dial functions of tunnelclient and tunnelserver turn Links into a
// net.Listener and a DialContext, so the layers above speak plain net/http over
// tunnel streams.
//
// Protocol flow on one session (see tunnel/control for the frame format):
//
//	agent (dials)                                 relay (listens)
//	  | QUIC or TLS 1.3 handshake, mutual certificates |
//	  | open stream 0 (control), HELLO --------------> | checks identity from certificate
//	  | <------------------------------------ WELCOME |
//	  | PING / PONG both ways every heartbeat interval |
//	  | any other stream, either direction: HTTP/1.1  |
//	  | <------------------------------------- GOAWAY | relay shutting down: agent opens
//	  |                                                | no new streams here, reconnects
//	  |                 in-flight streams finish, then the relay closes the session
//
// Which goroutine may call what: Session, Stream and Link methods are safe for
// concurrent use, except that a Stream's Read (and Write) must not be called from
// two goroutines at once, as with any net.Conn.
package tunnel
