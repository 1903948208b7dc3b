package tunneltcp

import (
	"context"
	"crypto/tls"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/mcc-bridge/bridge/tunnel"
)

type session struct {
	ys  *yamux.Session
	tls *tls.Conn
	fc  *frameConn
}

func (s *session) OpenStream(ctx context.Context) (tunnel.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st, err := s.ys.OpenStream()
	if err != nil {
		return nil, err
	}
	return &stream{Stream: st, gate: s.fc.gate}, nil
}

func (s *session) AcceptStream(ctx context.Context) (tunnel.Stream, error) {
	st, err := s.ys.AcceptStreamWithContext(ctx)
	if err != nil {
		return nil, err
	}
	return &stream{Stream: st, gate: s.fc.gate}, nil
}

func (s *session) Transport() tunnel.Transport          { return tunnel.TCP }
func (s *session) ConnectionState() tls.ConnectionState { return s.tls.ConnectionState() }
func (s *session) LocalAddr() net.Addr                  { return s.tls.LocalAddr() }
func (s *session) RemoteAddr() net.Addr                 { return s.tls.RemoteAddr() }
func (s *session) Done() <-chan struct{}                { return s.ys.CloseChan() }
func (s *session) Close() error                         { return s.ys.Close() }

func (s *session) Err() error {
	if !s.ys.IsClosed() {
		return nil
	}
	return s.fc.err()
}

// stream adapts a yamux stream. yamux's Close is a half-close; Close here
// also stops reading, as net.Conn requires.
type stream struct {
	*yamux.Stream
	gate   *memGate
	closed atomic.Bool
}

func (s *stream) Read(p []byte) (int, error) {
	if s.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := s.Stream.Read(p)
	if n > 0 && s.gate != nil {
		s.gate.consumed(s.StreamID(), n)
	}
	if err != nil && s.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

func (s *stream) CloseWrite() error { return s.Stream.Close() }

func (s *stream) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.Stream.SetReadDeadline(time.Now())
	if s.gate != nil {
		s.gate.streamClosed(s.StreamID())
	}
	return s.Stream.Close()
}
