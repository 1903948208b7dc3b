package custom_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/custom"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// TestMTLSAuth: a custom connector with auth mtls presents the
// credential's client certificate; without one it is refused before any
// request, and the server sees the certificate's identity.
func TestMTLSAuth(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"peer": r.TLS.PeerCertificates[0].URIs[0].String()})
	}))
	srv.TLS = pki.ServerTLS() // requires a client certificate of the test CA
	srv.StartTLS()
	t.Cleanup(srv.Close)
	def, err := custom.ParseDefinition([]byte(`
id: partner
name: Partner
base_url: ` + strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + `
auth: {method: mtls}
operations:
  - name: whoami
    description: Who the partner sees.
    access: read
    method: GET
    path: /whoami
    payload: {type: object, additionalProperties: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.ClientTLS().RootCAs}}}
	c, err := custom.New(def, custom.Config{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthMethod() != "mtls" {
		t.Errorf("AuthMethod %q", c.AuthMethod())
	}
	certPEM, keyPEM := pemOf(t, pki.Agent)
	res, err := c.Execute(context.Background(), "whoami", connectors.ExecContext{Tenant: "acme", Payload: json.RawMessage(`{}`),
		Credential: connectors.Credential{Method: "mtls", Values: map[string]connectors.Secret{"certificate_pem": certPEM, "private_key_pem": keyPEM}}})
	if err != nil || !strings.Contains(string(res.Data), "spiffe://acme/agent/agent-01") {
		t.Fatalf("with the certificate: %s, %v", res.Data, err)
	}
	if _, err := c.Execute(context.Background(), "whoami", connectors.ExecContext{Tenant: "acme", Payload: json.RawMessage(`{}`)}); connectors.ClassOf(err) != connectors.ClassUnauthorized {
		t.Errorf("without a certificate: got %v, want unauthorized", err)
	}
}

// pemOf encodes a certificate chain and its EC or RSA key as PEM.
func pemOf(t *testing.T, c tls.Certificate) (connectors.Secret, connectors.Secret) {
	t.Helper()
	var cert strings.Builder
	for _, der := range c.Certificate {
		pem.Encode(&cert, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return connectors.Secret(cert.String()), connectors.Secret(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}
