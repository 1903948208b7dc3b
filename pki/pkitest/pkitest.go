// Package pkitest starts a real step-ca in process for tests, on a loopback
// port, with its own directory.
package pkitest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// StartCA creates a CA in a temporary directory with opts and serves it on
// 127.0.0.1 until the test ends.
func StartCA(t testing.TB, opts stepca.InitOptions) *stepca.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Address == "" {
		opts.Address = ln.Addr().String()
	}
	if len(opts.DNSNames) == 0 {
		opts.DNSNames = []string{"127.0.0.1", "localhost"}
	}
	c, err := stepca.Init(t.TempDir(), opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	return Serve(t, c, ln)
}

// Serve runs c on ln until the test ends.
func Serve(t testing.TB, c *stepca.CA, ln net.Listener) *stepca.Server {
	t.Helper()
	log, _ := tunneltest.Logger(t)
	srv, err := c.Start(ln, log.With("part", "ca"))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close CA: %v", err)
		}
	})
	return srv
}

// Minter returns a Minter for provisioner name of srv's CA.
func Minter(t testing.TB, srv *stepca.Server, name string) *stepca.Minter {
	t.Helper()
	m, err := srv.Minter(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
