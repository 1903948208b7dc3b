package enroll_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"

	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/pki/pkitest"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/tunnel"
)

func agentCheck(c *x509.Certificate) error {
	_, err := tunnel.IdentityFromCertificate(c)
	return err
}

func TestEnrollIssuesAgentIdentity(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{})
	m := pkitest.Minter(t, srv, stepca.AgentProvisioner)
	tok, err := m.AgentToken("acme", "agent-01", 0)
	if err != nil {
		t.Fatal(err)
	}
	st := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	leaf, err := enroll.Enroll(context.Background(), tok, st, enroll.Options{Check: agentCheck})
	if err != nil {
		t.Fatal(err)
	}
	id, err := tunnel.IdentityFromCertificate(leaf)
	if err != nil || id != (tunnel.Identity{Tenant: "acme", Agent: "agent-01"}) {
		t.Fatalf("identity %v, %v; want acme/agent-01", id, err)
	}
	if len(leaf.URIs) != 1 || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Errorf("SANs: uris %v dns %v ips %v; want exactly one URI", leaf.URIs, leaf.DNSNames, leaf.IPAddresses)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("EKU %v, want clientAuth only", leaf.ExtKeyUsage)
	}
	if ext, ok := provisioner.GetProvisionerExtension(leaf); !ok || ext.Name != stepca.AgentProvisioner {
		t.Errorf("provisioner extension %+v, want %s", ext, stepca.AgentProvisioner)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life < 23*time.Hour || life > 25*time.Hour {
		t.Errorf("lifetime left %v, want about 24h", life)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	fi, err := os.Stat(st.KeyPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	keyPEM, _ := os.ReadFile(st.KeyPath())
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "EC PRIVATE KEY" {
		t.Errorf("key is not a P-256 EC key: %q", keyPEM[:min(30, len(keyPEM))])
	}
	cert, root, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !root.Equal(srv.CA().Root()) || len(cert.Certificate) != 2 {
		t.Errorf("stored root or chain wrong: %d certificates", len(cert.Certificate))
	}
	meta, err := st.LoadMeta()
	if err != nil || meta.CAURL != srv.CA().URL() || meta.Fingerprint != srv.CA().Fingerprint() {
		t.Errorf("meta %+v, %v", meta, err)
	}

	// The same token again: refused here, before the CA.
	_, err = enroll.Enroll(context.Background(), tok, st, enroll.Options{})
	if te := (*enroll.TokenError)(nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "already used") {
		t.Errorf("reuse on the same machine: %v", err)
	}
	// ... and by the CA from another machine.
	_, err = enroll.Enroll(context.Background(), tok, enroll.Store{Dir: t.TempDir(), Name: "agent"}, enroll.Options{})
	if te := (*enroll.TokenError)(nil); !errors.As(err, &te) || !strings.Contains(err.Error(), "already used") {
		t.Errorf("reuse on another machine: %v", err)
	}
}

func TestEnrollRefusals(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{})
	other := pkitest.StartCA(t, stepca.InitOptions{})
	m := pkitest.Minter(t, srv, stepca.AgentProvisioner)
	mOther := pkitest.Minter(t, other, stepca.AgentProvisioner)

	// A server that serves some other root for every fingerprint and counts sign calls.
	var signs atomic.Int32
	fakeRoot, err := devca.New("impostor")
	if err != nil {
		t.Fatal(err)
	}
	fake := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/root/") {
			json.NewEncoder(w).Encode(map[string]string{"ca": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fakeRoot.Cert.Raw}))})
			return
		}
		signs.Add(1)
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer fake.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "https://" + closed.Addr().String()
	closed.Close()

	tok := func(m *stepca.Minter, ttl time.Duration) string {
		s, err := m.AgentToken("acme", "agent-02", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noTenant, err := m.ServerToken([]string{"agent-03"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		tok  string
		opts enroll.Options
		want string
		is   error
	}{
		{name: "expired token", tok: tok(m, time.Minute), opts: enroll.Options{Now: func() time.Time { return time.Now().Add(2 * time.Minute) }}, want: "expired"},
		{name: "token for another CA (fingerprint)", tok: tok(mOther, 0), opts: enroll.Options{Fingerprint: srv.CA().Fingerprint()}, want: "token for another CA"},
		{name: "token for another CA (URL)", tok: tok(m, 0), opts: enroll.Options{CAURL: "https://ca.example.com:9000"}, want: "token for another CA"},
		{name: "token of another CA sent to this one", tok: tok(mOther, 0), opts: enroll.Options{CAURL: srv.URL()}, want: "no root with fingerprint", is: caclient.ErrFingerprint},
		{name: "wrong fingerprint: nothing secret sent", tok: tok(m, 0), opts: enroll.Options{CAURL: fake.URL}, want: "does not match the pinned fingerprint", is: caclient.ErrFingerprint},
		{name: "CA unreachable", tok: tok(m, 0), opts: enroll.Options{CAURL: closedURL}, want: "CA unreachable at " + closedURL},
		{name: "not a token", tok: "hello", want: "not a step-ca token"},
		{name: "token without tenant", tok: noTenant, want: "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := enroll.Store{Dir: t.TempDir(), Name: "agent"}
			_, err := enroll.Enroll(context.Background(), tc.tok, st, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
			if strings.Contains(err.Error(), tc.tok) && len(tc.tok) > 20 {
				t.Errorf("the error shows the token")
			}
			if st.Exists() {
				t.Errorf("a refused enrollment stored files")
			}
		})
	}
	if n := signs.Load(); n != 0 {
		t.Errorf("the impostor CA received %d requests beyond /root: the token was sent before the root was checked", n)
	}
}

func TestImport(t *testing.T) {
	srv := pkitest.StartCA(t, stepca.InitOptions{})
	m := pkitest.Minter(t, srv, stepca.AgentProvisioner)
	tok, _ := m.AgentToken("acme", "agent-04", 0)
	src := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	if _, err := enroll.Enroll(context.Background(), tok, src, enroll.Options{}); err != nil {
		t.Fatal(err)
	}
	dst := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	leaf, err := enroll.Import(src.CertPath(), src.KeyPath(), src.RootPath(), srv.URL(), dst, agentCheck)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tunnel.IdentityFromCertificate(leaf); id.Agent != "agent-04" {
		t.Errorf("identity %v", id)
	}
	// A key that is not the certificate's.
	tok2, _ := m.AgentToken("acme", "agent-05", 0)
	src2 := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	if _, err := enroll.Enroll(context.Background(), tok2, src2, enroll.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Import(src.CertPath(), src2.KeyPath(), src.RootPath(), "", enroll.Store{Dir: t.TempDir(), Name: "agent"}, nil); err == nil || !strings.Contains(err.Error(), "is not the key") {
		t.Errorf("mismatched key: %v", err)
	}
	// A root that did not sign it.
	other, _ := devca.New("other")
	otherRoot, _ := other.WriteRoot(t.TempDir(), "root")
	if _, err := enroll.Import(src.CertPath(), src.KeyPath(), otherRoot, "", enroll.Store{Dir: t.TempDir(), Name: "agent"}, nil); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Errorf("wrong root: %v", err)
	}
}
