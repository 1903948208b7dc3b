package tunnelquic

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

func pair(t *testing.T) (tunnel.Session, tunnel.Session) {
	t.Helper()
	pki := tunneltest.NewPKI(t)
	log, _ := tunneltest.Logger(t)
	ln, err := Listen("127.0.0.1:0", pki.ServerTLS(), Config{Logger: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		s   tunnel.Session
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		s, err := ln.Accept(ctx)
		accepted <- res{s, err}
	}()
	d := &Dialer{Config: Config{Logger: log}, TLS: pki.ClientTLS(pki.Agent)}
	c, err := d.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := <-accepted
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.s.Close() })
	return c, r.s
}

func TestConformance(t *testing.T) {
	tunneltest.RunSessionConformance(t, pair)
}

func TestConfigDefaults(t *testing.T) {
	q := Config{}.quicConfig()
	if q.KeepAlivePeriod != 5*time.Second || q.MaxIdleTimeout != 15*time.Second {
		t.Errorf("keepalive %v idle %v, want 5s and 15s", q.KeepAlivePeriod, q.MaxIdleTimeout)
	}
	if q.MaxIncomingStreams < 10_000 {
		t.Errorf("MaxIncomingStreams = %d, want >= 10000", q.MaxIncomingStreams)
	}
	if q.MaxConnectionReceiveWindow != 32<<20 || q.MaxStreamReceiveWindow != 8<<20 {
		t.Errorf("windows %d/%d, want 8 MiB per stream and 32 MiB per connection", q.MaxStreamReceiveWindow, q.MaxConnectionReceiveWindow)
	}
	q = Config{MaxConnectionWindow: 512 << 10}.quicConfig()
	if q.InitialConnectionReceiveWindow > q.MaxConnectionReceiveWindow {
		t.Errorf("initial connection window %d above the cap %d", q.InitialConnectionReceiveWindow, q.MaxConnectionReceiveWindow)
	}
}

// TestRefusedCertificates checks that the listener refuses agents whose
// certificate is from another CA, expired, or missing, that the agent gets a
// clear error, and that the refusal is reported for the relay's log.
func TestRefusedCertificates(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	other, err := devca.New("some other root")
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.Agent(devca.Valid(), "acme", "agent-01")
	expired := pki.AgentCert(t, devca.Expired(), "acme", "agent-01")
	var mu sync.Mutex
	var failures []string
	ln, err := Listen("127.0.0.1:0", pki.ServerTLS(), Config{}, func(_ net.Addr, err error) {
		mu.Lock()
		failures = append(failures, err.Error())
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			s, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			s.Close()
		}
	}()
	for _, tc := range []struct {
		name       string
		certs      []tls.Certificate
		clientSees string
		relaySees  string
	}{
		{"other CA", []tls.Certificate{foreign}, "unknown certificate authority", "unknown authority"},
		{"expired", []tls.Certificate{expired}, "expired certificate", "expired"},
		{"none", nil, "certificate required", "didn't provide a certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			failures = nil
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d := &Dialer{TLS: pki.ClientTLS(tc.certs...)}
			s, err := d.Dial(ctx, ln.Addr().String())
			if err == nil {
				// TLS 1.3: the client may finish before the server checks its
				// certificate; the refusal then arrives on first use.
				_, err = s.AcceptStream(ctx)
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.clientSees) {
				t.Fatalf("agent error %v, want one mentioning %q", err, tc.clientSees)
			}
			if !IsRefusal(err) {
				t.Errorf("IsRefusal(%v) = false, want true", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				got := strings.Join(failures, "\n")
				mu.Unlock()
				if strings.Contains(got, tc.relaySees) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("relay saw %q, want a failure mentioning %q", got, tc.relaySees)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestNoAnswerIsNoRefusal: a UDP port nothing answers on times out, which
// the agent must treat as "UDP blocked" (fall back), not as a refusal.
func TestNoAnswerIsNoRefusal(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // bound but silent, like a firewall that drops UDP
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = (&Dialer{TLS: pki.ClientTLS(pki.Agent)}).Dial(ctx, pc.LocalAddr().String())
	if err == nil {
		t.Fatal("dial to a silent port succeeded")
	}
	if IsRefusal(err) {
		t.Errorf("IsRefusal(%v) = true for a silent port, want false", err)
	}
}

func TestResetKeyFrom(t *testing.T) {
	a1, err := ResetKeyFrom([]byte("relay private key one"))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := ResetKeyFrom([]byte("relay private key one"))
	b, _ := ResetKeyFrom([]byte("relay private key two"))
	if *a1 != *a2 {
		t.Error("the same secret gave two keys: a restarted relay could not reset old connections")
	}
	if *a1 == *b {
		t.Error("two secrets gave the same key")
	}
	if bytes.Contains(a1[:], []byte("relay private")) {
		t.Error("the key contains the secret")
	}
}
