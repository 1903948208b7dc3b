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

func TestClassifyRefusal(t *testing.T) {
	for _, tc := range []struct {
		err          error
		reason, want string
	}{
		{x509.UnknownAuthorityError{}, "another_ca", "not issued by a CA this relay trusts"},
		{x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time 2026 is after 2025"}, "expired", "expired"},
		{x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time 2025 is before 2026"}, "not_yet_valid", "not yet valid"},
		{errors.New("tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-12-03 is before 2026-12-04"), "not_yet_valid", "clock"},
		{x509.CertificateInvalidError{Reason: x509.IncompatibleUsage}, "wrong_eku", "client authentication"},
		{errors.New("CRYPTO_ERROR 0x12a (remote): agent certificate revoked: serial 12 of acme/a"), "revoked", "revoked"},
		{errors.New("agent identity denied: acme/a"), "denied", "deny list"},
		{errors.New("agent certificate issued by provisioner \"admin\", want \"agents\""), "wrong_provisioner", "another provisioner"},
		{errors.New("tls: client didn't provide a certificate"), "no_certificate", "sent no certificate"},
		{errors.New("agent certificate has no usable identity: 0 URI SANs"), "bad_identity", "does not carry an agent identity"},
		{errors.New("tls: client requested unsupported application protocols"), "other", "TLS handshake failed"},
		{errors.New("tls: no application protocol"), "protocol", "does not speak the tunnel protocol"},
		{errors.New("read tcp: i/o timeout"), "timeout", "timed out"},
	} {
		reason, got := classifyRefusal(tc.err)
		if reason != tc.reason || !strings.Contains(got, tc.want) {
			t.Errorf("classifyRefusal(%v) = %q, %q; want %q and a description saying %q", tc.err, reason, got, tc.reason, tc.want)
		}
	}
}
