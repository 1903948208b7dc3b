package tunnel

import (
	"context"
	"crypto/x509"
	"net"
	"net/url"
	"strings"
	"testing"
)

func TestIdentityFromCertificate(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name    string
		uris    []*url.URL
		want    Identity
		wantErr string
	}{
		{"good", []*url.URL{u("spiffe://acme/agent/agent-01")}, Identity{"acme", "agent-01"}, ""},
		{"none", nil, Identity{}, "0 URI SANs"},
		{"two", []*url.URL{u("spiffe://acme/agent/a"), u("spiffe://acme/agent/b")}, Identity{}, "2 URI SANs"},
		{"wrong scheme", []*url.URL{u("https://acme/agent/a")}, Identity{}, "not of the form"},
		{"relay path", []*url.URL{u("spiffe://acme/relay/r1")}, Identity{}, "not of the form"},
		{"nested path", []*url.URL{u("spiffe://acme/agent/a/b")}, Identity{}, "only lowercase"},
		{"uppercase tenant", []*url.URL{u("spiffe://ACME/agent/a")}, Identity{}, "only lowercase"},
		{"port", []*url.URL{u("spiffe://acme:1/agent/a")}, Identity{}, "not of the form"},
		{"query", []*url.URL{u("spiffe://acme/agent/a?x=1")}, Identity{}, "not of the form"},
		{"empty agent", []*url.URL{u("spiffe://acme/agent/")}, Identity{}, "agent id is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IdentityFromCertificate(&x509.Certificate{URIs: tc.uris})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := IdentityFromCertificate(nil); err == nil {
		t.Error("nil certificate accepted")
	}
}

func TestIdentityHost(t *testing.T) {
	id := Identity{Tenant: "acme", Agent: "agent-01"}
	for _, in := range []string{id.Host(), id.Host() + ":80", id.Host() + ":443"} {
		got, err := IdentityFromHost(in)
		if err != nil || got != id {
			t.Errorf("IdentityFromHost(%q) = %v, %v; want %v", in, got, err, id)
		}
	}
	for _, bad := range []string{"relay", "agent-01.agent.tunnel", "a.b.c.agent.tunnel", "A.acme.agent.tunnel", "example.com:80"} {
		if got, err := IdentityFromHost(bad); err == nil {
			t.Errorf("IdentityFromHost(%q) = %v, want an error", bad, got)
		}
	}
	if got := id.String(); got != "spiffe://acme/agent/agent-01" {
		t.Errorf("String() = %q", got)
	}
}

func TestPeerContext(t *testing.T) {
	id := Identity{Tenant: "acme", Agent: "a"}
	ctx := ConnContext(context.Background(), fakePeerConn{id: id})
	if got, ok := PeerFromContext(ctx); !ok || got != id {
		t.Errorf("PeerFromContext = %v, %v; want %v", got, ok, id)
	}
	if _, ok := PeerFromContext(ConnContext(context.Background(), fakePeerConn{})); ok {
		t.Error("a stream without a peer identity put one in the context")
	}
}

type fakePeerConn struct {
	net.Conn
	id Identity
}

func (f fakePeerConn) Peer() Identity { return f.id }

func TestParseProtocol(t *testing.T) {
	for in, want := range map[string]Protocol{"": ProtocolAuto, "auto": ProtocolAuto, "quic": ProtocolQUIC, "tcp": ProtocolTCP} {
		if got, err := ParseProtocol(in); err != nil || got != want {
			t.Errorf("ParseProtocol(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseProtocol("http2"); err == nil || !strings.Contains(err.Error(), "auto, quic or tcp") {
		t.Errorf("ParseProtocol(http2) error %v, want the choices named", err)
	}
}
