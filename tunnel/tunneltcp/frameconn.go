package tunneltcp

import (
	"encoding/binary"
	"net"
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
}

func newFrameConn(c net.Conn, timeout time.Duration) *frameConn {
	return &frameConn{Conn: c, timeout: timeout, held: make([]byte, 0, yamuxHeaderLen), buf: make([]byte, 0, maxRecord)}
}

func (c *frameConn) Write(p []byte) (int, error) {
	if len(c.held) == 0 && len(p) == yamuxHeaderLen && p[1] == yamuxTypeData && binary.BigEndian.Uint32(p[8:]) > 0 {
		c.held = append(c.held, p...)
		return len(p), nil
	}
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
