package tunneltcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
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
	y, err := Config{}.yamuxConfig()
	if err != nil {
		t.Fatal(err)
	}
	if y.MaxStreamWindowSize < 4<<20 {
		t.Errorf("stream window %d, want at least 4 MiB", y.MaxStreamWindowSize)
	}
	if y.KeepAliveInterval != 5*time.Second || !y.EnableKeepAlive {
		t.Errorf("keepalive %v (enabled %v), want every 5s", y.KeepAliveInterval, y.EnableKeepAlive)
	}
	if y.ConnectionWriteTimeout != 10*time.Second {
		t.Errorf("write timeout %v, want 10s", y.ConnectionWriteTimeout)
	}
	if _, err := (Config{StreamWindow: 1024}).yamuxConfig(); err == nil {
		t.Error("a 1 KiB stream window was accepted, want an error")
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
	waitRelaySees := func(t *testing.T, want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			got := strings.Join(failures, "\n")
			mu.Unlock()
			if strings.Contains(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("relay saw %q, want a failure mentioning %q", got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// dial forgets the relay's earlier failures and dials with certs.
	dial := func(t *testing.T, certs []tls.Certificate) (context.Context, tunnel.Session, error) {
		mu.Lock()
		failures = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		s, err := (&Dialer{TLS: pki.ClientTLS(certs...)}).Dial(ctx, ln.Addr().String())
		return ctx, s, err
	}
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
			ctx, s, err := dial(t, tc.certs)
			if err == nil {
				// TLS 1.3: the client may finish before the server checks its
				// certificate; the refusal then arrives on first use.
				_, err = s.AcceptStream(ctx)
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.clientSees) {
				t.Fatalf("agent error %v, want one mentioning %q", err, tc.clientSees)
			}
			waitRelaySees(t, tc.relaySees)
		})
		// An agent that writes at once (its HELLO) may find the relay's
		// socket closed before it reads the relay's alert: its write fails
		// with a broken pipe or a reset. Err still names the refusal.
		t.Run(tc.name+"/writing", func(t *testing.T) {
			ctx, s, err := dial(t, tc.certs)
			if err != nil {
				if !strings.Contains(err.Error(), tc.clientSees) {
					t.Fatalf("agent error %v, want one mentioning %q", err, tc.clientSees)
				}
				return
			}
			defer s.Close()
			st, err := s.OpenStream(ctx)
			if err == nil {
				chunk := make([]byte, 32<<10)
				for i := 0; i < 1000 && ctx.Err() == nil; i++ {
					if _, err = st.Write(chunk); err != nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			select {
			case <-s.Done():
			case <-ctx.Done():
				t.Fatal("the refused session did not end")
			}
			if err := s.Err(); err == nil || !strings.Contains(err.Error(), tc.clientSees) {
				t.Fatalf("session ended with %v, want an error mentioning %q", err, tc.clientSees)
			}
			waitRelaySees(t, tc.relaySees)
		})
	}
}

// TestMaxStreams: streams the peer opens beyond MaxStreams are closed at
// once, and those within it work.
func TestMaxStreams(t *testing.T) {
	pki := tunneltest.NewPKI(t)
	log, logs := tunneltest.Logger(t)
	ln, err := Listen("127.0.0.1:0", pki.ServerTLS(), Config{MaxStreams: 3, Logger: log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := (&Dialer{TLS: pki.ClientTLS(pki.Agent)}).Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var opened []tunnel.Stream
	for range 5 {
		st, err := c.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte("x"))
		opened = append(opened, st)
	}
	go func() {
		for {
			st, err := s.AcceptStream(ctx)
			if err != nil {
				return
			}
			defer st.Close()
			st.Write([]byte("y"))
		}
	}()
	buf := make([]byte, 1)
	for i, st := range opened {
		st.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := st.Read(buf)
		if i < 3 && err != nil {
			t.Errorf("stream %d within the limit failed: %v", i, err)
		}
		if i >= 3 && err == nil {
			t.Errorf("stream %d beyond the limit was served", i)
		}
	}
	if !strings.Contains(logs(), "more streams than allowed") {
		t.Error("no log line about the refused streams")
	}
}

// TestYamuxLogLevels: yamux's lines keep their tags' levels, except its
// lines about the failure that ended a session, which the tunnel reports
// itself with a better cause.
func TestYamuxLogLevels(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[ERR] yamux: keepalive failed: i/o deadline reached", slog.LevelWarn, "yamux: keepalive failed: i/o deadline reached"},
		{"[WARN] yamux: frame for missing stream: 7", slog.LevelWarn, "yamux: frame for missing stream: 7"},
		{"[DEBUG] yamux: something", slog.LevelDebug, "yamux: something"},
		{"plain line", slog.LevelInfo, "plain line"},
		{"[ERR] yamux: Failed to read header: remote error: tls: bad certificate", slog.LevelDebug, "yamux: Failed to read header: remote error: tls: bad certificate"},
		{"[ERR] yamux: Failed to write body: write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe", slog.LevelDebug, "yamux: Failed to write body: write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe"},
		{"[ERR] yamux: Failed to write header: EOF\n", slog.LevelDebug, "yamux: Failed to write header: EOF"},
	} {
		var buf bytes.Buffer
		yamuxLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}.Printf("%s", tc.line)
		want := fmt.Sprintf("level=%s msg=%q", tc.level, tc.msg)
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%q logged %q, want %s", tc.line, buf.String(), want)
		}
	}
}
