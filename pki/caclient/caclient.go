// Package caclient connects to a step-ca with its root pinned: by a
// SHA-256 fingerprint (fetched once, compared before anything secret is
// sent) or by a root certificate already on disk.
package caclient

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/smallstep/certificates/ca"
)

// Pin says which root the CA must have: Root when set, else the root whose
// SHA-256 fingerprint is Fingerprint.
type Pin struct {
	Root        *x509.Certificate
	Fingerprint string
}

// ErrFingerprint is returned when the CA's root does not match the pinned
// fingerprint.
var ErrFingerprint = errors.New("the CA's root does not match the pinned fingerprint")

// UnreachableError says that the CA could not be reached at URL.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("CA unreachable at %s: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// NormalizeFingerprint lower-cases a fingerprint and drops ':' and '-'.
func NormalizeFingerprint(fp string) string {
	return strings.ToLower(strings.NewReplacer(":", "", "-", "", " ", "").Replace(strings.TrimSpace(fp)))
}

// Fingerprint is the SHA-256 of a certificate's DER, in lowercase hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Timeout bounds every request to the CA.
const Timeout = 30 * time.Second

// Connection is a CA with a verified root.
type Connection struct {
	URL    string
	Root   *x509.Certificate
	Client *ca.Client
	// Transport trusts only Root; add a client certificate with
	// TransportWith for mTLS calls (renew).
	Transport *http.Transport
}

// Dial checks the CA at rawURL against pin and returns a client that trusts
// only its root. With a fingerprint, the root is fetched over TLS without
// verification, then compared with the fingerprint; nothing secret is sent
// on that connection.
func Dial(ctx context.Context, rawURL string, pin Pin) (*Connection, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("CA URL %q: want https://host[:port]", rawURL)
	}
	base := strings.TrimRight(u.String(), "/")
	root := pin.Root
	if root == nil {
		fp := NormalizeFingerprint(pin.Fingerprint)
		if len(fp) != 64 {
			return nil, fmt.Errorf("root fingerprint %q: want 64 hex digits (step certificate fingerprint root_ca.crt)", pin.Fingerprint)
		}
		root, err = fetchRoot(ctx, base, fp)
		if err != nil {
			return nil, err
		}
	}
	tr := TransportWith(root, nil)
	client, err := ca.NewClient(base, ca.WithTransport(tr), ca.WithTimeout(Timeout))
	if err != nil {
		return nil, fmt.Errorf("CA client for %s: %w", base, err)
	}
	return &Connection{URL: base, Root: root, Client: client, Transport: tr}, nil
}

// TransportWith returns an HTTP transport that trusts only root and, when
// cert is not nil, presents it (through a callback that reads it on every
// handshake).
func TransportWith(root *x509.Certificate, cert func() *tls.Certificate) *http.Transport {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	conf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if cert != nil {
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert(), nil }
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:     conf,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        4,
		IdleConnTimeout:     30 * time.Second,
	}
}

func fetchRoot(ctx context.Context, base, fp string) (*x509.Certificate, error) {
	insecure := &http.Client{Timeout: Timeout, Transport: &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // the root is checked against the fingerprint below
	}}
	defer insecure.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/root/"+fp, nil)
	if err != nil {
		return nil, err
	}
	resp, err := insecure.Do(req)
	if err != nil {
		return nil, &UnreachableError{URL: base, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &UnreachableError{URL: base, Err: err}
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: the CA at %s has no root with fingerprint %s", ErrFingerprint, base, fp)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch root from %s: %s", base, resp.Status)
	}
	var rr struct {
		CA string `json:"ca"`
	}
	if err := json.Unmarshal(body, &rr); err != nil {
		return nil, fmt.Errorf("fetch root from %s: not a step-ca root response: %w", base, err)
	}
	block, _ := pem.Decode([]byte(rr.CA))
	if block == nil {
		return nil, fmt.Errorf("fetch root from %s: no PEM certificate in the response", base)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("fetch root from %s: %w", base, err)
	}
	if got := Fingerprint(root); got != fp {
		return nil, fmt.Errorf("%w: %s serves a root with fingerprint %s, pinned %s", ErrFingerprint, base, got, fp)
	}
	return root, nil
}

// ReadRoot reads the first certificate of a PEM file.
func ReadRoot(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
