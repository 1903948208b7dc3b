package tunneltcp

import (
	"context"
	"crypto/tls"
	"log/slog"
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
	max int // streams open at once
	log *slog.Logger

	accepted atomic.Int64 // streams the peer opened that are open here
	refused  atomic.Int64 // streams closed for going over max
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
	for {
		st, err := s.ys.AcceptStreamWithContext(ctx)
		if err != nil {
			return nil, err
		}
		w := &stream{Stream: st, gate: s.fc.gate}
		if s.accepted.Add(1) <= int64(s.max) {
			w.onClose = func() { s.accepted.Add(-1) }
			return w, nil
		}
		s.accepted.Add(-1)
		if s.refused.Add(1)&(s.refused.Load()-1) == 0 { // log the 1st, 2nd, 4th, 8th... refusal
			s.log.Warn("peer opened more streams than allowed: closing the extra ones", "max_streams", s.max, "refused", s.refused.Load())
		}
		w.Close()
	}
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
	gate    *memGate
	onClose func() // nil, or called once on Close
	closed  atomic.Bool
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
	if s.onClose != nil {
		s.onClose()
	}
	return s.Stream.Close()
}
