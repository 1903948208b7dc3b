package tunneltcp

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

// TestSessionMemoryCap: a peer writes 8 MiB over 16 streams that the
// application does not read yet. The session holds no more than its cap
// (plus one frame) unread, then delivers everything once reading starts.
func TestSessionMemoryCap(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	const (
		limit   = 1 << 20
		window  = 256 << 10
		streams = 16
		perStr  = 512 << 10
	)
	pki := tunneltest.NewPKI(t)
	log, logs := tunneltest.Logger(t)
	cfg := Config{SessionMemory: limit, StreamWindow: window, Logger: log}
	ln, err := Listen("127.0.0.1:0", pki.ServerTLS(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := (&Dialer{Config: cfg, TLS: pki.ClientTLS(pki.Agent)}).Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gate := s.(*session).fc.gate

	var writers errgroup.Group
	for i := range streams {
		writers.Go(func() error {
			st, err := c.OpenStream(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if _, err := st.Write(bytes.Repeat([]byte{byte(i)}, perStr)); err != nil {
				return err
			}
			return st.CloseWrite()
		})
	}
	// Streams are accepted as they come, but not read. Once the cap holds
	// reads from the peer, later streams' opening frames wait behind the
	// data, so not every stream need have arrived when reading starts.
	accepted := make(chan tunnel.Stream, streams)
	var acceptErr error
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for range streams {
			st, err := s.AcceptStream(ctx)
			if err != nil {
				acceptErr = err
				return
			}
			accepted <- st
		}
	}()
	time.Sleep(time.Second) // the writers push as hard as they can; nobody reads
	if got := gate.unreadBytes(); got > limit+window {
		t.Errorf("session holds %d bytes unread, want at most %d (cap plus one frame)", got, limit+window)
	} else if got < limit {
		t.Errorf("session holds only %d bytes unread: the test did not reach the cap", got)
	}
	if !bytes.Contains([]byte(logs()), []byte("pausing reads from the peer")) {
		t.Error("no log line about reaching the cap")
	}
	var readers errgroup.Group
	for range streams {
		var st tunnel.Stream
		select {
		case st = <-accepted:
		case <-acceptDone:
			if acceptErr != nil {
				t.Fatalf("accept: %v", acceptErr)
			}
			st = <-accepted
		}
		readers.Go(func() error {
			defer st.Close()
			n, err := io.Copy(io.Discard, st)
			if err == nil && n != perStr {
				t.Errorf("stream delivered %d bytes, want %d", n, perStr)
			}
			return err
		})
	}
	if err := readers.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := writers.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := gate.unreadBytes(); got != 0 {
		t.Errorf("%d bytes still counted unread after every stream was read and closed", got)
	}
}

func TestMemGateAccounting(t *testing.T) {
	g := newMemGate(100, nil)
	frame := func(typ byte, flags uint16, id, length uint32, payload int) []byte {
		b := []byte{0, typ, byte(flags >> 8), byte(flags), byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
		return append(b, make([]byte, payload)...)
	}
	in := append(frame(0, 0, 1, 10, 10), frame(1, 0, 1, 9999, 0)...) // data, then a window update (no payload)
	in = append(in, frame(0, 0, 3, 5, 5)...)
	for _, b := range in { // one byte at a time: frames split across reads
		g.observe([]byte{b})
	}
	if got := g.unreadBytes(); got != 15 {
		t.Fatalf("unread %d, want 15", got)
	}
	g.consumed(1, 4)
	g.streamClosed(1) // 6 unread are dropped with the stream
	if got := g.unreadBytes(); got != 5 {
		t.Fatalf("unread %d after reading 4 and closing stream 1, want 5", got)
	}
	g.observe(frame(0, 0, 1, 7, 7)) // late data for the closed stream is not counted
	if got := g.unreadBytes(); got != 5 {
		t.Fatalf("unread %d after late data on a closed stream, want 5", got)
	}
	g.observe(frame(1, flagFIN, 3, 0, 0))
	g.streamClosed(3)
	if len(g.closed) != 1 || len(g.peerDone) != 0 {
		t.Errorf("closed %v peerDone %v: streams both sides finished must leave no trace", g.closed, g.peerDone)
	}
	g.observe(frame(1, flagRST, 1, 0, 0))
	if len(g.closed) != 0 {
		t.Errorf("closed %v after the peer reset stream 1, want empty", g.closed)
	}
}
