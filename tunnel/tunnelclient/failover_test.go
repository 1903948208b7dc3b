package tunnelclient_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/pki/devca"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunnelclient"
	"github.com/mcc-bridge/bridge/tunnel/tunnelserver"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// TestMain lets the test binary double as a relay process, so that a test
// can kill a relay with SIGKILL: nothing gets to say goodbye.
func TestMain(m *testing.M) {
	if dir := os.Getenv("BRIDGE_TEST_RELAY_DIR"); dir != "" {
		runRelayProcess(dir, os.Getenv("BRIDGE_TEST_RELAY_NAME"), os.Getenv("BRIDGE_TEST_RELAY_ADDR"))
		return
	}
	os.Exit(m.Run())
}

func runRelayProcess(dir, name, addr string) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	fail := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "relay.crt"), filepath.Join(dir, "relay.key"))
	if err != nil {
		fail(err)
	}
	pem, err := os.ReadFile(filepath.Join(dir, "root.crt"))
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	srv, err := tunnelserver.New(tunnelserver.Config{
		Addr:    addr,
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool},
		RelayID: name,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fail(err)
	}
	if err := srv.Listen(); err != nil {
		fail(err)
	}
	go (&http.Server{Handler: handler(name), ConnContext: tunnel.ConnContext}).Serve(srv.Listener())
	fmt.Println("LISTENING", srv.TCPAddr())
	srv.Run(context.Background())
}

type result struct {
	at   time.Time
	took time.Duration
	body string
	err  error
}

func startRelayProcess(t *testing.T, dir, name string) (*exec.Cmd, string) {
	return startRelayProcessAt(t, dir, name, "")
}

func startRelayProcessAt(t *testing.T, dir, name, addr string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BRIDGE_TEST_RELAY_DIR="+dir, "BRIDGE_TEST_RELAY_NAME="+name, "BRIDGE_TEST_RELAY_ADDR="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("relay process %s: %v", name, err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "LISTENING ")
	if !ok {
		t.Fatalf("relay process %s said %q", name, line)
	}
	return cmd, addr
}

// TestFailoverKill9: an agent holds sessions to two relay processes; one is
// killed with SIGKILL. Within 2 s new requests go to the other relay and keep
// succeeding; requests that were on the dead relay are retried there.
func TestFailoverKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts relay processes")
	}
	for _, proto := range transports {
		t.Run(string(proto), func(t *testing.T) {
			pki := tunneltest.NewPKI(t)
			dir := t.TempDir()
			if _, err := pki.CA.WriteRoot(dir, "root"); err != nil {
				t.Fatal(err)
			}
			if _, _, err := devca.WriteFiles(dir, "relay", pki.Server); err != nil {
				t.Fatal(err)
			}
			cmdA, addrA := startRelayProcess(t, dir, "relay-a")
			_, addrB := startRelayProcess(t, dir, "relay-b")
			a := startAgent(t, pki, tunnelclient.Config{Relays: []string{addrA, addrB}, Protocol: proto})
			waitFor(t, 10*time.Second, "a session to each relay", func() bool {
				relays := map[string]bool{}
				for _, l := range a.c.Links() {
					relays[l.Welcome().Relay] = true
				}
				return relays["relay-a"] && relays["relay-b"]
			})
			// A request every 20ms, each on its own, so that one stuck on the
			// dead relay does not hold up the others.
			results := make(chan result, 1000)
			var wg sync.WaitGroup
			stop := time.Now().Add(4500 * time.Millisecond)
			var killed time.Time
			for i := 0; time.Now().Before(stop); i++ {
				if i == 25 {
					killed = time.Now()
					if err := cmdA.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					body, err := get(a.http, "http://relay/ping")
					results <- result{start, time.Since(start), body, err}
				}()
				time.Sleep(20 * time.Millisecond)
			}
			wg.Wait()
			close(results)
			var after, onB int
			for r := range results {
				if r.err != nil {
					t.Errorf("request at %v after the kill failed: %v", r.at.Sub(killed).Round(time.Millisecond), r.err)
					continue
				}
				if r.at.After(killed.Add(2 * time.Second)) {
					after++
					if !strings.Contains(r.body, "relay-b") {
						t.Errorf("request 2s after the kill went to %s", r.body)
					}
					if r.took > time.Second {
						t.Errorf("request 2s after the kill took %v", r.took)
					}
				}
				if strings.Contains(r.body, "relay-b") {
					onB++
				}
			}
			if after < 20 {
				t.Errorf("only %d requests ran after the failover window, want many", after)
			}
			t.Logf("%d requests succeeded 2-4s after the kill, %d in all on relay-b", after, onB)
		})
	}
}

// TestRelayRestartIsNoticedAtOnce: a relay killed and started again on the
// same address resets the agent's old QUIC connection (stateless reset, with
// a key derived from its private key), so the agent reconnects within a
// heartbeat or two instead of waiting for heartbeats to time out.
func TestRelayRestartIsNoticedAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts relay processes")
	}
	pki := tunneltest.NewPKI(t)
	dir := t.TempDir()
	pki.CA.WriteRoot(dir, "root")
	devca.WriteFiles(dir, "relay", pki.Server)
	cmd, addr := startRelayProcess(t, dir, "relay-a")
	a := startAgent(t, pki, tunnelclient.Config{Relays: []string{addr}, Protocol: tunnel.ProtocolQUIC, Connections: 1})
	waitFor(t, 10*time.Second, "a session", a.c.Ready)
	first := a.c.Links()[0]
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	restarted := time.Now()
	startRelayProcessAt(t, dir, "relay-a", addr)
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not notice the restart within 5s (heartbeats alone take 6s)")
	}
	noticed := time.Since(restarted)
	t.Logf("old session ended %v after the restart: %v", noticed.Round(time.Millisecond), first.Err())
	if noticed > 2*time.Second {
		t.Errorf("noticed after %v, want within 2s", noticed)
	}
	if !strings.Contains(fmt.Sprint(first.Err()), "stateless reset") {
		t.Errorf("old session ended with %v, want a stateless reset", first.Err())
	}
	waitFor(t, 10*time.Second, "a session to the restarted relay", func() bool {
		links := a.c.Links()
		return len(links) == 1 && links[0] != first && a.c.Ready()
	})
}
