package tunneltest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mcc-bridge/bridge/tunnel"
)

// PairFunc makes a connected pair of sessions over real loopback sockets:
// client dialed, server accepted. It registers cleanups that close them.
type PairFunc func(t *testing.T) (client, server tunnel.Session)

// RunSessionConformance runs the behaviour every transport must have. Each
// case checks for leaked goroutines.
func RunSessionConformance(t *testing.T, pair PairFunc) {
	cases := []struct {
		name string
		fn   func(t *testing.T, c, s tunnel.Session)
	}{
		{"OpenAcceptBothWays", testOpenAcceptBothWays},
		{"HalfClose", testHalfClose},
		{"LargeTransferBothDirections", testLargeTransfer},
		{"ConcurrentStreams10k", testConcurrentStreams},
		{"CancelAcceptAndOpen", testCancel},
		{"CloseUnblocksRead", testCloseUnblocksRead},
		{"ReadDeadline", testReadDeadline},
		{"SessionCloseEndsPeer", testSessionClose},
		{"AddressesAndTLSState", testState},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			VerifyNoLeaks(t)
			c, s := pair(t)
			tc.fn(t, c, s)
		})
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip opens a stream on a, sends msg, and expects b to accept it and
// echo it back with a prefix.
func roundTrip(t *testing.T, a, b tunnel.Session, msg string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	var g errgroup.Group
	g.Go(func() error {
		st, err := b.AcceptStream(ctx)
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		defer st.Close()
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(st, buf); err != nil {
			return fmt.Errorf("server read: %w", err)
		}
		_, err = st.Write(append([]byte("echo:"), buf...))
		return err
	})
	st, err := a.OpenStream(ctx)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer st.Close()
	if _, err := st.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	want := "echo:" + msg
	got := make([]byte, len(want))
	if _, err := io.ReadFull(st, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func testOpenAcceptBothWays(t *testing.T, c, s tunnel.Session) {
	roundTrip(t, c, s, "from agent")
	roundTrip(t, s, c, "from relay")
	roundTrip(t, c, s, "agent again")
}

func testHalfClose(t *testing.T, c, s tunnel.Session) {
	ctx := ctxFor(t, 10*time.Second)
	request := bytes.Repeat([]byte("q"), 100_000)
	var g errgroup.Group
	g.Go(func() error {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		got, err := io.ReadAll(st) // ends only at the client's CloseWrite
		if err != nil {
			return fmt.Errorf("server read to EOF: %w", err)
		}
		if !bytes.Equal(got, request) {
			return fmt.Errorf("server got %d bytes, want %d", len(got), len(request))
		}
		if _, err := fmt.Fprintf(st, "got %d bytes", len(got)); err != nil {
			return fmt.Errorf("server write after peer half-close: %w", err)
		}
		return st.CloseWrite()
	})
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Write(request); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if _, err := st.Write([]byte("x")); err == nil {
		t.Error("Write after CloseWrite succeeded, want an error")
	}
	resp, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("client read after own half-close: %v", err)
	}
	if want := fmt.Sprintf("got %d bytes", len(request)); string(resp) != want {
		t.Errorf("response %q, want %q", resp, want)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// testLargeTransfer sends 32 MiB each way at once on one stream and compares digests.
func testLargeTransfer(t *testing.T, c, s tunnel.Session) {
	const size = 32 << 20
	ctx := ctxFor(t, 60*time.Second)
	send := func(w io.Writer, seed uint64) ([32]byte, error) {
		h := sha256.New()
		r := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(buf) {
			for i := 0; i < len(buf); i += 8 {
				v := r.Uint64()
				for j := range 8 {
					buf[i+j] = byte(v >> (8 * j))
				}
			}
			h.Write(buf)
			if _, err := w.Write(buf); err != nil {
				return [32]byte{}, err
			}
		}
		return [32]byte(h.Sum(nil)), nil
	}
	recv := func(r io.Reader) ([32]byte, int64, error) {
		h := sha256.New()
		n, err := io.Copy(h, r)
		return [32]byte(h.Sum(nil)), n, err
	}
	var g errgroup.Group
	var serverSent, serverGot [32]byte
	var serverN int64
	g.Go(func() error {
		st, err := s.AcceptStream(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		var sg errgroup.Group
		sg.Go(func() (err error) {
			serverGot, serverN, err = recv(st)
			return err
		})
		serverSent, err = send(st, 2)
		if err != nil {
			return fmt.Errorf("server send: %w", err)
		}
		st.CloseWrite()
		return sg.Wait()
	})
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var clientGot [32]byte
	var clientN int64
	var cg errgroup.Group
	cg.Go(func() (err error) {
		clientGot, clientN, err = recv(st)
		return err
	})
	clientSent, err := send(st, 1)
	if err != nil {
		t.Fatalf("client send: %v", err)
	}
	st.CloseWrite()
	if err := cg.Wait(); err != nil {
		t.Fatalf("client receive: %v", err)
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if serverN != size || clientN != size {
		t.Fatalf("received %d and %d bytes, want %d each way", serverN, clientN, size)
	}
	if serverGot != clientSent {
		t.Error("agent->relay data corrupted: digests differ")
	}
	if clientGot != serverSent {
		t.Error("relay->agent data corrupted: digests differ")
	}
}

// testConcurrentStreams holds 10,000 streams open at once, each carrying its
// own message and echo. A bounded pool of goroutines does the work, since
// the race detector allows no more than 8128 live goroutines.
func testConcurrentStreams(t *testing.T, c, s tunnel.Session) {
	const n = 10_000
	const workers = 32
	ctx := ctxFor(t, 120*time.Second)
	var mu sync.Mutex
	var held []tunnel.Stream
	hold := func(st tunnel.Stream) {
		mu.Lock()
		held = append(held, st)
		mu.Unlock()
	}
	t.Cleanup(func() {
		for _, st := range held {
			st.Close()
		}
	})
	// Server: accept n streams; workers echo each one's message and keep it open.
	accepted := make(chan tunnel.Stream, 64)
	var sg errgroup.Group
	sg.Go(func() error {
		defer close(accepted)
		for range n {
			st, err := s.AcceptStream(ctx)
			if err != nil {
				return fmt.Errorf("accept: %w", err)
			}
			accepted <- st
		}
		return nil
	})
	for range workers {
		sg.Go(func() error {
			buf := make([]byte, 12)
			for st := range accepted {
				hold(st)
				if _, err := io.ReadFull(st, buf); err != nil {
					return fmt.Errorf("server read: %w", err)
				}
				if _, err := st.Write(buf); err != nil {
					return fmt.Errorf("server write: %w", err)
				}
			}
			return nil
		})
	}
	// Client: open n streams, write a distinct message on each, keep all open.
	var cg errgroup.Group
	streams := make([]tunnel.Stream, n)
	next := make(chan int)
	cg.Go(func() error {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	for range workers {
		cg.Go(func() error {
			for i := range next {
				st, err := c.OpenStream(ctx)
				if err != nil {
					return fmt.Errorf("open stream %d: %w", i, err)
				}
				streams[i] = st
				hold(st)
				if _, err := fmt.Fprintf(st, "stream%06d", i); err != nil {
					return fmt.Errorf("write stream %d: %w", i, err)
				}
			}
			return nil
		})
	}
	if err := cg.Wait(); err != nil {
		t.Fatal(err)
	}
	// Every stream is now open at once; read every echo.
	var rg errgroup.Group
	rg.SetLimit(workers)
	for i, st := range streams {
		rg.Go(func() error {
			buf := make([]byte, 12)
			if _, err := io.ReadFull(st, buf); err != nil {
				return fmt.Errorf("read echo %d: %w", i, err)
			}
			if want := fmt.Sprintf("stream%06d", i); string(buf) != want {
				return fmt.Errorf("stream %d echoed %q, want %q", i, buf, want)
			}
			return nil
		})
	}
	if err := rg.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := sg.Wait(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	total := len(held)
	mu.Unlock()
	if total != 2*n {
		t.Errorf("held %d stream ends open at once, want %d", total, 2*n)
	}
}

func testCancel(t *testing.T, c, s tunnel.Session) {
	for _, sess := range []tunnel.Session{c, s} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := sess.AcceptStream(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("AcceptStream with expiring context: got %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("AcceptStream took %v to notice its context, want about 100ms", d)
		}
		ctx, cancel = context.WithCancel(context.Background())
		cancel()
		if st, err := sess.OpenStream(ctx); err == nil {
			st.Close()
			t.Error("OpenStream with a cancelled context succeeded, want an error")
		}
	}
	// The sessions still work after cancelled calls.
	roundTrip(t, c, s, "after cancel")
}

func testCloseUnblocksRead(t *testing.T, c, s tunnel.Session) {
	ctx := ctxFor(t, 10*time.Second)
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	peer, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	done := make(chan error, 1)
	go func() {
		_, err := st.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	st.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Read after Close returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock a pending Read")
	}
	if _, err := st.Write([]byte("y")); err == nil {
		t.Error("Write after Close succeeded, want an error")
	}
	// The peer sees the end of the stream.
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1)
	io.ReadFull(peer, buf)
	if _, err := peer.Read(buf); err == nil {
		t.Error("peer Read after close got data, want end of stream")
	}
}

func testReadDeadline(t *testing.T, c, s tunnel.Session) {
	ctx := ctxFor(t, 10*time.Second)
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err = st.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("Read past deadline returned data")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Read deadline took %v, want about 100ms", d)
	}
}

func testSessionClose(t *testing.T, c, s tunnel.Session) {
	ctx := ctxFor(t, 10*time.Second)
	st, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("x"))
	peer, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close() // idempotent
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after Close")
	}
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("peer session did not end after Close")
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadFull(peer, make([]byte, 1))
	if _, err := peer.Read(make([]byte, 1)); err == nil {
		t.Error("stream read on a closed session succeeded")
	}
	if _, err := s.OpenStream(ctx); err == nil {
		t.Error("OpenStream on a closed session succeeded")
	}
}

func testState(t *testing.T, c, s tunnel.Session) {
	if c.Transport() != s.Transport() {
		t.Errorf("transports differ: %s and %s", c.Transport(), s.Transport())
	}
	if got := s.ConnectionState().PeerCertificates; len(got) == 0 {
		t.Error("server sees no client certificate")
	} else if id, err := tunnel.IdentityFromCertificate(got[0]); err != nil || id.Agent != "agent-01" {
		t.Errorf("server sees identity %v (%v), want agent-01", id, err)
	}
	if got := c.ConnectionState().PeerCertificates; len(got) == 0 {
		t.Error("client sees no server certificate")
	}
	_, cport, _ := net.SplitHostPort(c.LocalAddr().String())
	_, sport, _ := net.SplitHostPort(s.RemoteAddr().String())
	if cport == "" || cport != sport {
		t.Errorf("client local address %s and server's remote address %s differ in port", c.LocalAddr(), s.RemoteAddr())
	}
	if c.RemoteAddr().String() != s.LocalAddr().String() {
		t.Errorf("client's remote address %s != server local address %s", c.RemoteAddr(), s.LocalAddr())
	}
}
