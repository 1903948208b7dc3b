package credentials

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// certFiles is a client certificate kept in two PEM files, read again
// when either changes (a certificate renewed in place).
type certFiles struct {
	cert, key string

	mu       sync.Mutex // guards the fields below
	modCert  time.Time
	modKey   time.Time
	loaded   connectors.Credential
	haveLoad bool
}

// load returns the credential of the files as they are now.
func (c *certFiles) load() (connectors.Credential, error) {
	ci, err := os.Stat(c.cert)
	if err != nil {
		return connectors.Credential{}, fmt.Errorf("client certificate: %w", err)
	}
	ki, err := os.Stat(c.key)
	if err != nil {
		return connectors.Credential{}, fmt.Errorf("client certificate key: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.haveLoad && ci.ModTime().Equal(c.modCert) && ki.ModTime().Equal(c.modKey) {
		return copyValues(c.loaded), nil
	}
	certPEM, err := os.ReadFile(c.cert)
	if err != nil {
		return connectors.Credential{}, fmt.Errorf("client certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.key)
	if err != nil {
		return connectors.Credential{}, fmt.Errorf("client certificate key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// tls errors describe the PEM blocks, never their contents.
		return connectors.Credential{}, fmt.Errorf("client certificate %s and key %s do not form a pair: %w", c.cert, c.key, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return connectors.Credential{}, fmt.Errorf("client certificate %s: %w", c.cert, err)
	}
	subject := leaf.Subject.CommonName
	if len(leaf.URIs) > 0 {
		subject = leaf.URIs[0].String()
	}
	c.loaded = connectors.Credential{
		Pattern: connectors.ServiceToService, Method: string(MethodMTLS), Subject: subject, Expires: leaf.NotAfter,
		Values: map[string]connectors.Secret{"certificate_pem": connectors.Secret(certPEM), "private_key_pem": connectors.Secret(keyPEM)},
	}
	c.modCert, c.modKey, c.haveLoad = ci.ModTime(), ki.ModTime(), true
	return copyValues(c.loaded), nil
}
