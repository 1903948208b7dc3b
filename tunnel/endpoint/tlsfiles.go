package endpoint

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles names the PEM files of one end of the tunnel.
type TLSFiles struct {
	// Cert is this end's certificate chain.
	Cert string `yaml:"cert"`
	// Key is this end's private key.
	Key string `yaml:"key"`
	// CA is the root that verifies the other end: relays, on the agent;
	// agent certificates, on the relay.
	CA string `yaml:"ca"`
}

// Paths lists the file paths, for LoadConfig.
func (f *TLSFiles) Paths() []*string { return []*string{&f.Cert, &f.Key, &f.CA} }

// RelativeTo returns f with relative paths taken as relative to dir, the
// directory of the configuration file that named them.
func (f TLSFiles) RelativeTo(dir string) TLSFiles {
	for _, p := range []*string{&f.Cert, &f.Key, &f.CA} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	return f
}

// Load reads the files: the key pair and the root pool.
func (f TLSFiles) Load() (tls.Certificate, *x509.CertPool, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return tls.Certificate{}, nil, errors.New("tls: cert, key and ca must all be set")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tls: load key pair %s and %s: %w", f.Cert, f.Key, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("tls: parse %s: %w", f.Cert, err)
		}
	}
	pem, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("tls: read root %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("tls: %s holds no PEM certificate", f.CA)
	}
	return cert, pool, nil
}

// Expiry describes when a certificate stops being valid, for logs.
func Expiry(c *x509.Certificate, now time.Time) string {
	if c == nil {
		return "unknown"
	}
	if now.After(c.NotAfter) {
		return "expired " + now.Sub(c.NotAfter).Round(time.Minute).String() + " ago"
	}
	return "expires in " + c.NotAfter.Sub(now).Round(time.Minute).String()
}
