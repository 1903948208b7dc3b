package devca

import (
	"crypto/x509"
	"testing"
	"time"
)

func TestIssue(t *testing.T) {
	ca, err := New("test")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := ca.Agent(Valid(), "acme", "a-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("agent certificate does not verify for client auth: %v", err)
	}
	if got := agent.Leaf.URIs[0].String(); got != "spiffe://acme/agent/a-1" {
		t.Errorf("URI %s", got)
	}
	srv, err := ca.Server(Valid(), "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost"}); err != nil {
		t.Errorf("server certificate does not verify for localhost: %v", err)
	}
	if err := srv.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("server certificate lacks the IP SAN: %v", err)
	}
	old, _ := ca.Agent(Expired(), "acme", "a-1")
	if _, err := old.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: time.Now()}); err == nil {
		t.Error("expired certificate verifies")
	}
	other, _ := New("other")
	if _, err := agent.Leaf.Verify(x509.VerifyOptions{Roots: other.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("certificate verifies against another CA")
	}
}
