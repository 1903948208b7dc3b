package credentials_test

import (
	"context"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// TestMTLSService: a client certificate in files is handed out as an mTLS
// credential (PEM in Values, expiry and subject from the certificate), and
// a certificate renewed in place is followed.
func TestMTLSService(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	dir := t.TempDir()
	certPath, keyPath, err := devca.WriteFiles(dir, "client", pki.Agent)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, testOptions())
	m := e.manager(func(c *credentials.Config) {
		c.Services = []credentials.Service{{System: "partner", Method: credentials.MethodMTLS, CertificateFile: certPath, KeyFile: keyPath}}
	})
	get := func() connectors.Credential {
		t.Helper()
		c, err := m.Credential(context.Background(), connectors.CredentialRequest{Tenant: tenantA, System: "partner", Pattern: connectors.ServiceToService})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := get()
	leaf, _ := x509.ParseCertificate(pki.Agent.Certificate[0])
	if c.Method != "mtls" || c.Subject != "spiffe://acme/agent/agent-01" || !c.Expires.Equal(leaf.NotAfter) ||
		!strings.Contains(c.Values["certificate_pem"].Reveal(), "BEGIN CERTIFICATE") || !strings.Contains(c.Values["private_key_pem"].Reveal(), "PRIVATE KEY") {
		t.Fatalf("credential: method %q subject %q expires %v values %d", c.Method, c.Subject, c.Expires, len(c.Values))
	}
	// Renewed in place: the next credential is the new certificate.
	renewed := pki.AgentCert(t, devca.Validity{NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(48 * time.Hour)}, "acme", "agent-02")
	if _, _, err := devca.WriteFiles(dir, "client", renewed); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(certPath, later, later)
	os.Chtimes(keyPath, later, later)
	if c := get(); c.Subject != "spiffe://acme/agent/agent-02" {
		t.Errorf("after renewal the subject is %q, want the renewed certificate's", c.Subject)
	}
	// A certificate and key that do not match are refused at start.
	other := pki.AgentCert(t, devca.Validity{}, "acme", "agent-03")
	_, badKey, _ := devca.WriteFiles(t.TempDir(), "other", other)
	cfg := e.config()
	cfg.Dir = t.TempDir()
	cfg.Services = []credentials.Service{{System: "partner", Method: credentials.MethodMTLS, CertificateFile: certPath, KeyFile: badKey}}
	if _, err := credentials.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "do not form a pair") {
		t.Errorf("mismatched certificate and key: got %v", err)
	}
}
