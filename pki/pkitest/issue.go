package pkitest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	"go.step.sm/crypto/pemutil"

	"github.com/mcc-bridge/bridge/pki/stepca"
)

// Leaf describes a certificate that Issue signs with the CA's intermediate
// key, bypassing the provisioners, so that tests can make the malformed,
// expired or foreign-provisioner certificates a CA would never issue.
type Leaf struct {
	// URIs are the URI SANs, e.g. "spiffe://acme/agent/agent-01".
	URIs []string
	// NotBefore and NotAfter default to an hour ago and an hour from now.
	NotBefore, NotAfter time.Time
	// EKU defaults to clientAuth.
	EKU []x509.ExtKeyUsage
	// Provisioner is the name in the step provisioner extension; "-" leaves
	// the extension out. Default "agents".
	Provisioner string
}

// Issue signs l with the intermediate key of the CA served by srv and
// returns it as a key pair with its chain.
func Issue(t testing.TB, srv *stepca.Server, l Leaf) tls.Certificate {
	t.Helper()
	lay := srv.CA().Layout()
	pw, err := os.ReadFile(lay.Password())
	if err != nil {
		t.Fatal(err)
	}
	k, err := pemutil.Read(lay.IntermediateKey(), pemutil.WithPassword([]byte(strings.TrimSpace(string(pw)))))
	if err != nil {
		t.Fatal(err)
	}
	interKey := k.(crypto.Signer)
	inters, err := pemutil.ReadCertificateBundle(lay.Intermediate())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(time.Hour)
	}
	if l.EKU == nil {
		l.EKU = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if l.Provisioner == "" {
		l.Provisioner = stepca.AgentProvisioner
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "test-leaf"},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  l.EKU,
	}
	for _, s := range l.URIs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if l.Provisioner != "-" {
		ext, err := (&provisioner.Extension{Type: provisioner.TypeJWK, Name: l.Provisioner, CredentialID: "test"}).ToExtension()
		if err != nil {
			t.Fatal(err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, inters[0], key.Public(), interKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der, inters[0].Raw}, PrivateKey: key, Leaf: leaf}
}
