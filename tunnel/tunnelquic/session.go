package tunnelquic

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/mcc-bridge/bridge/tunnel"
)

// Application error codes carried in QUIC CONNECTION_CLOSE and stream resets.
const (
	codeNoError    quic.ApplicationErrorCode = 0
	codeStreamDone quic.StreamErrorCode      = 0
	codeAborted    quic.StreamErrorCode      = 1
)

type handshakeKey struct{}

type handshakeState struct{ accepted atomic.Bool }

type session struct {
	conn      *quic.Conn
	onClose   func()
	closeOnce sync.Once
}

func newSession(conn *quic.Conn, onClose func()) *session {
	s := &session{conn: conn, onClose: onClose}
	if onClose != nil {
		context.AfterFunc(conn.Context(), func() { s.Close() })
	}
	return s
}

func (s *session) OpenStream(ctx context.Context) (tunnel.Stream, error) {
	st, err := s.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &stream{Stream: st, sess: s}, nil
}

func (s *session) AcceptStream(ctx context.Context) (tunnel.Stream, error) {
	st, err := s.conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return &stream{Stream: st, sess: s}, nil
}

func (s *session) Transport() tunnel.Transport { return tunnel.QUIC }

func (s *session) ConnectionState() tls.ConnectionState { return s.conn.ConnectionState().TLS }

func (s *session) LocalAddr() net.Addr  { return s.conn.LocalAddr() }
func (s *session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

func (s *session) Done() <-chan struct{} { return s.conn.Context().Done() }

func (s *session) Err() error {
	if s.conn.Context().Err() == nil {
		return nil
	}
	return context.Cause(s.conn.Context())
}

func (s *session) Close() error {
	s.closeOnce.Do(func() {
		s.conn.CloseWithError(codeNoError, "closed")
		if s.onClose != nil {
			s.onClose()
		}
	})
	return nil
}

// stream adapts a quic.Stream to tunnel.Stream. quic-go forbids Close
// concurrently with Write (quic-go #3322), so writes and closes are
// serialised, and a Close that finds a Write blocked aborts it first.
type stream struct {
	*quic.Stream
	sess *session
	wmu  sync.Mutex
}

func (s *stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.Stream.Write(p)
}

// CloseWrite sends FIN; reading goes on.
func (s *stream) CloseWrite() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.Stream.Close()
}

// Close ends both directions: data still arriving is discarded.
func (s *stream) Close() error {
	s.Stream.CancelRead(codeStreamDone)
	if !s.wmu.TryLock() {
		s.Stream.CancelWrite(codeAborted)
		s.wmu.Lock()
	}
	defer s.wmu.Unlock()
	err := s.Stream.Close()
	var serr *quic.StreamError
	if errors.As(err, &serr) {
		return nil
	}
	return err
}

func (s *stream) LocalAddr() net.Addr  { return s.sess.LocalAddr() }
func (s *stream) RemoteAddr() net.Addr { return s.sess.RemoteAddr() }
