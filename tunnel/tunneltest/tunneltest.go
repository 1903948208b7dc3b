// Package tunneltest holds what tunnel tests share: a throwaway PKI, a
// logger that writes to the test log, a goroutine-leak check, and the
// conformance suite that every transport must pass over real loopback
// sockets (RunSessionConformance).
package tunneltest

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/mcc-bridge/bridge/pki/devca"
)

// PKI is a test certificate authority with a relay certificate for
// localhost and 127.0.0.1 and an agent certificate for acme/agent-01.
type PKI struct {
	CA     *devca.CA
	Server tls.Certificate
	Agent  tls.Certificate
}

// NewPKI makes a fresh PKI or fails the test.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	ca, err := devca.New("test root")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server(devca.Valid(), "localhost", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := ca.Agent(devca.Valid(), "acme", "agent-01")
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{CA: ca, Server: srv, Agent: agent}
}

// AgentCert issues another agent certificate or fails the test.
func (p *PKI) AgentCert(t testing.TB, v devca.Validity, tenant, agent string) tls.Certificate {
	t.Helper()
	c, err := p.CA.Agent(v, tenant, agent)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ServerTLS is the relay's TLS configuration: its certificate, and the CA as
// the root for agent certificates.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.Server},
		ClientCAs:    p.CA.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// ClientTLS is an agent's TLS configuration with the given certificates
// (none, to test refusal) trusting the CA for the relay.
func (p *PKI) ClientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: certs,
		RootCAs:      p.CA.Pool(),
		ServerName:   "localhost",
		MinVersion:   tls.VersionTLS13,
	}
}

// Logger returns a logger that writes to t.Log until the test ends, and a
// function returning everything logged so far, for assertions on log lines.
func Logger(t testing.TB) (*slog.Logger, func() string) {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), w.String
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// VerifyNoLeaks fails the test if goroutines started during it are still
// running when it ends (after cleanups). Call it first in the test.
func VerifyNoLeaks(t *testing.T) {
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	t.Cleanup(func() {
		if err := goleak.Find(opts...); err != nil {
			t.Errorf("goroutines leaked: %v", err)
		}
	})
}
