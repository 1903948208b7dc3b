package tunnel

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
)

// Transport names the protocol a Session runs on.
type Transport string

// The transports a Session can use.
const (
	QUIC Transport = "quic"
	TCP  Transport = "tcp"
)

// Protocol is the agent's choice of transport.
type Protocol string

// The protocol choices. Auto tries QUIC first and falls back to TCP.
const (
	ProtocolAuto Protocol = "auto"
	ProtocolQUIC Protocol = "quic"
	ProtocolTCP  Protocol = "tcp"
)

// ParseProtocol checks a protocol name from configuration; the empty string means ProtocolAuto.
func ParseProtocol(s string) (Protocol, error) {
	switch Protocol(s) {
	case "", ProtocolAuto:
		return ProtocolAuto, nil
	case ProtocolQUIC, ProtocolTCP:
		return Protocol(s), nil
	}
	return "", fmt.Errorf("unknown tunnel protocol %q: want auto, quic or tcp", s)
}

// Session is one authenticated transport connection between an agent and a
// relay. Either side may open streams; both sides accept them.
type Session interface {
	// OpenStream opens a new stream to the peer. It does not wait for a round
	// trip: the peer learns of the stream with its first bytes.
	OpenStream(ctx context.Context) (Stream, error)
	// AcceptStream waits for the next stream opened by the peer.
	AcceptStream(ctx context.Context) (Stream, error)
	// Transport says which protocol carries the session.
	Transport() Transport
	// ConnectionState reports the TLS state, including the verified peer certificates.
	ConnectionState() tls.ConnectionState
	// LocalAddr and RemoteAddr are the addresses of the underlying connection.
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	// Done is closed when the session has ended, for whatever reason.
	Done() <-chan struct{}
	// Err says why the session ended, as well as the transport knows (for
	// example the TLS alert of a relay that refused the certificate); nil
	// while the session is up or when the cause is unknown.
	Err() error
	// Close ends the session and every stream on it at once. It is idempotent.
	Close() error
}

// Stream is one bidirectional byte stream inside a Session. It is a net.Conn
// whose addresses are the session's, plus a half-close.
type Stream interface {
	net.Conn
	// CloseWrite sends end-of-stream to the peer; reading goes on until the
	// peer closes its side.
	CloseWrite() error
}

// ClientTLS returns a copy of conf for dialing a relay: TLS 1.3 only, the given
// ALPN, and the agent certificate always presented, even when the relay's
// list of acceptable CAs does not name its issuer, so that the relay can log
// why it refuses it and the agent hears "unknown certificate authority"
// rather than "certificate required".
func ClientTLS(conf *tls.Config, alpn string) *tls.Config {
	conf = conf.Clone()
	conf.NextProtos = []string{alpn}
	conf.MinVersion = tls.VersionTLS13
	if conf.GetClientCertificate == nil && len(conf.Certificates) > 0 {
		cert := &conf.Certificates[0]
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return conf
}

// ServerTLS returns a copy of conf for accepting agents: TLS 1.3 only and the given ALPN.
func ServerTLS(conf *tls.Config, alpn string) *tls.Config {
	conf = conf.Clone()
	conf.NextProtos = []string{alpn}
	conf.MinVersion = tls.VersionTLS13
	return conf
}
