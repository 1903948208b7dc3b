package tunneltcp

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"
)

// yamux frame header: version(1) type(1) flags(2) stream(4) length(4).
const (
	yamuxHeaderLen = 12
	yamuxTypeData  = 0
)

// frameConn sits between yamux and the TLS connection. yamux writes a data
// frame as two writes, header then body, which TLS would send as two records
// and two syscalls; frameConn joins them into one. It also bounds every write
// with a deadline, so a peer that stops reading cannot block the session
// forever. yamux writes from a single goroutine, which frameConn relies on.
type frameConn struct {
	net.Conn
	timeout time.Duration
	held    []byte // a data frame header waiting for its body
	buf     []byte // joined header and body; at most one TLS record

	gate *memGate // caps unread stream data; nil means no cap

	readFailed chan struct{} // closed when a read fails
	readOnce   sync.Once

	mu       sync.Mutex
	firstErr error // the first read or write error: why the session ended; guarded by mu
}

// alertGrace is how long a write that found the connection broken waits for
// the reader to fail too. A relay that refuses a certificate sends a TLS
// alert and closes; an agent writing at that moment gets a broken pipe or a
// reset while the alert, which says why, sits unread. Letting the reader
// see it first makes Err name the refusal.
const alertGrace = 250 * time.Millisecond

func (c *frameConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstErr
}

func (c *frameConn) noteErr(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	if c.firstErr == nil {
		c.firstErr = err
	}
	c.mu.Unlock()
}

func (c *frameConn) Read(p []byte) (int, error) {
	if c.gate != nil {
		c.gate.wait()
	}
	n, err := c.Conn.Read(p)
	if c.gate != nil && n > 0 {
		c.gate.observe(p[:n])
	}
	c.noteErr(err)
	if err != nil {
		c.readOnce.Do(func() { close(c.readFailed) })
	}
	return n, err
}

func (c *frameConn) Close() error {
	if c.gate != nil {
		c.gate.shutdown()
	}
	return c.Conn.Close()
}

func newFrameConn(c net.Conn, timeout time.Duration, gate *memGate) *frameConn {
	return &frameConn{Conn: c, timeout: timeout, gate: gate, readFailed: make(chan struct{}), held: make([]byte, 0, yamuxHeaderLen), buf: make([]byte, 0, maxRecord)}
}

func (c *frameConn) Write(p []byte) (int, error) {
	if len(c.held) == 0 && len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	n, err := c.write(p)
	if brokenByPeer(err) {
		t := time.NewTimer(alertGrace)
		select {
		case <-c.readFailed:
		case <-t.C:
		}
		t.Stop()
	}
	c.noteErr(err)
	return n, err
}

// brokenByPeer reports whether err is a write failure other than a timeout
// or our own close: the peer reset or closed the connection.
func brokenByPeer(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "write" && !oe.Timeout() && !errors.Is(err, net.ErrClosed)
}

func (c *frameConn) write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	if len(c.held) == 0 {
		return c.Conn.Write(p)
	}
	// Header plus as much body as fills one TLS record; the rest as is.
	k := min(len(p), maxRecord-yamuxHeaderLen)
	c.buf = append(append(c.buf[:0], c.held...), p[:k]...)
	c.held = c.held[:0]
	if _, err := c.Conn.Write(c.buf); err != nil {
		return 0, err
	}
	if k == len(p) {
		return len(p), nil
	}
	n, err := c.Conn.Write(p[k:])
	return k + n, err
}

// maxRecord is the largest TLS record payload.
const maxRecord = 16 << 10
