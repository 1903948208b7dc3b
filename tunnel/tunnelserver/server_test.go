package tunnelserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewChecksConfig(t *testing.T) {
	cert := tls.Certificate{Certificate: [][]byte{{1}}}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no TLS", Config{}, "relay certificate is required"},
		{"no certificate", Config{TLS: &tls.Config{ClientCAs: x509.NewCertPool()}}, "relay certificate is required"},
		{"no client CAs", Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}}, "ClientCAs"},
		{"no transport", Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: x509.NewCertPool()}, DisableQUIC: true, DisableTCP: true}, "both transports are disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	s, err := New(Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: x509.NewCertPool()}})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Addr != ":8443" || s.cfg.DrainTimeout != 30*time.Second || s.tls.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("defaults: addr %q drain %v client auth %v", s.cfg.Addr, s.cfg.DrainTimeout, s.tls.ClientAuth)
	}
}

func TestDescribeHandshakeError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{x509.UnknownAuthorityError{}, "not issued by a CA this relay trusts"},
		{x509.CertificateInvalidError{Reason: x509.Expired}, "expired"},
		{errors.New("tls: client didn't provide a certificate"), "sent no certificate"},
		{errors.New("agent certificate has no usable identity: 0 URI SANs"), "does not carry an agent identity"},
		{errors.New("tls: client requested unsupported application protocols"), "TLS handshake failed"},
		{errors.New("tls: no application protocol"), "does not speak the tunnel protocol"},
		{errors.New("read tcp: i/o timeout"), "timed out"},
	} {
		if got := describeHandshakeError(tc.err); !strings.Contains(got, tc.want) {
			t.Errorf("describeHandshakeError(%v) = %q, want it to say %q", tc.err, got, tc.want)
		}
	}
}
