package tunnel

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
)

// Identity is who is on the other end of a tunnel, as proven by the client
// certificate: spiffe://<tenant>/agent/<agent>. Every layer above the tunnel
// uses it to decide what the peer may do.
type Identity struct {
	Tenant string
	Agent  string
}

// String renders the identity as its SPIFFE URI.
func (id Identity) String() string {
	return "spiffe://" + id.Tenant + "/agent/" + id.Agent
}

// IsZero reports whether the identity is unset.
func (id Identity) IsZero() bool { return id == Identity{} }

// Host is the HTTP host name that addresses this agent through the relay's
// DialContext: "<agent>.<tenant>.agent.tunnel".
func (id Identity) Host() string {
	return id.Agent + "." + id.Tenant + hostSuffix
}

const hostSuffix = ".agent.tunnel"

// IdentityFromHost parses a host name made by Identity.Host, with or without a port.
func IdentityFromHost(hostport string) (Identity, error) {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	rest, ok := strings.CutSuffix(host, hostSuffix)
	if !ok {
		return Identity{}, fmt.Errorf("host %q does not name an agent (want <agent>.<tenant>%s)", host, hostSuffix)
	}
	agent, tenant, ok := strings.Cut(rest, ".")
	if !ok {
		return Identity{}, fmt.Errorf("host %q does not name an agent (want <agent>.<tenant>%s)", host, hostSuffix)
	}
	id := Identity{Tenant: tenant, Agent: agent}
	if err := id.Validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// Validate checks that tenant and agent are DNS labels: lowercase letters,
// digits and inner hyphens, 1 to 63 characters.
func (id Identity) Validate() error {
	if err := checkLabel("tenant", id.Tenant); err != nil {
		return err
	}
	return checkLabel("agent id", id.Agent)
}

func checkLabel(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > 63 {
		return fmt.Errorf("%s %.20q... is longer than 63 characters", what, s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%s %q: only lowercase letters, digits and inner hyphens are allowed", what, s)
		}
	}
	return nil
}

// IdentityFromCertificate reads the agent identity from a certificate that
// carries exactly one URI SAN of the form spiffe://<tenant>/agent/<agent>.
func IdentityFromCertificate(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("no certificate")
	}
	if len(cert.URIs) != 1 {
		return Identity{}, fmt.Errorf("certificate %q has %d URI SANs, want exactly one spiffe://<tenant>/agent/<id>", cert.Subject.CommonName, len(cert.URIs))
	}
	u := cert.URIs[0]
	agent, ok := strings.CutPrefix(u.Path, "/agent/")
	if u.Scheme != "spiffe" || !ok || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Port() != "" {
		return Identity{}, fmt.Errorf("certificate URI SAN %q is not of the form spiffe://<tenant>/agent/<id>", u.String())
	}
	id := Identity{Tenant: u.Hostname(), Agent: agent}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("certificate URI SAN %q: %w", u.String(), err)
	}
	return id, nil
}

type peerKey struct{}

// WithPeer returns a context carrying the verified identity of the tunnel peer.
func WithPeer(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, peerKey{}, id)
}

// PeerFromContext returns the verified identity of the tunnel peer that sent
// the request being handled, as set by ConnContext.
func PeerFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(peerKey{}).(Identity)
	return id, ok
}

// ConnContext is an http.Server.ConnContext that puts the peer identity of a
// tunnel stream into every request's context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if s, ok := c.(interface{ Peer() Identity }); ok {
		if id := s.Peer(); !id.IsZero() {
			return WithPeer(ctx, id)
		}
	}
	return ctx
}
