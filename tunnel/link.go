package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcc-bridge/bridge/tunnel/control"
)

// LinkConfig tunes the control protocol of a Link. The zero value of every
// field means its default.
type LinkConfig struct {
	// HeartbeatInterval is how often each side sends a PING. Zero means 500ms.
	HeartbeatInterval time.Duration
	// StaleAfter is how long without any control frame from the peer makes the
	// link unhealthy: new streams then prefer other links. Zero means two
	// heartbeat intervals plus 250ms.
	StaleAfter time.Duration
	// DeadAfter is how long without any control frame closes the session,
	// failing the streams in flight so that callers can retry elsewhere.
	// Zero means twelve heartbeat intervals, at least 6s.
	DeadAfter time.Duration
	// HandshakeTimeout bounds HELLO/WELCOME. Zero means 10s.
	HandshakeTimeout time.Duration
	// Logger receives the link's log lines. Nil means no logging.
	Logger *slog.Logger
	// Metrics records the link's figures. Nil records nothing.
	Metrics *Metrics
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

func (c LinkConfig) withDefaults() LinkConfig {
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 500 * time.Millisecond
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 2*c.HeartbeatInterval + 250*time.Millisecond
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = max(6*time.Second, 12*c.HeartbeatInterval)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Link is a Session with its control stream running: the unit that the agent
// and the relay hold, count and drain. Its methods are safe for concurrent use.
type Link struct {
	sess    Session
	ctrl    Stream
	cfg     LinkConfig
	log     *slog.Logger
	m       *linkMetrics
	peer    Identity
	hello   control.Hello
	welcome control.Welcome
	since   time.Time

	wmu sync.Mutex // serialises writes to ctrl

	lastRecv atomic.Int64 // Unix nanoseconds of the last control frame from the peer
	rtt      atomic.Int64 // smoothed heartbeat round trip, nanoseconds; 0 until measured
	pingSeq  atomic.Uint64
	accMu    sync.Mutex
	active   int64 // streams open on this link, either direction; guarded by accMu
	gone     bool  // link closed and its streams taken off the gauge; guarded by accMu
	total    int64 // streams ever opened on this link, either direction; guarded by accMu
	rxBytes  atomic.Int64
	txBytes  atomic.Int64

	sentGoAway  atomic.Bool
	gotGoAway   atomic.Bool
	sentDrained atomic.Bool
	gotDrained  atomic.Bool
	goAwayCh    chan struct{} // closed when the peer's GOAWAY arrives
	drainStart  chan struct{} // closed when GOAWAY is first sent or received
	drainCh     chan struct{} // poked when the drain state may have moved on
	drainOnce   sync.Once

	done      chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error // why the link ended; guarded by errMu
}

// Connect runs the agent side of the handshake on a freshly dialed session:
// it opens the control stream, sends hello and waits for the relay's WELCOME.
// On failure the session is closed.
func Connect(ctx context.Context, sess Session, hello control.Hello, cfg LinkConfig) (*Link, error) {
	cfg = cfg.withDefaults()
	hello.Protocol = control.Version
	ctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	l, err := connect(ctx, sess, &hello, cfg)
	if err != nil {
		err = withCause(sess, err)
		sess.Close()
		return nil, fmt.Errorf("%w with relay %s over %s: %w", ErrHandshake, sess.RemoteAddr(), sess.Transport(), err)
	}
	return l, nil
}

func connect(ctx context.Context, sess Session, hello *control.Hello, cfg LinkConfig) (*Link, error) {
	ctrl, err := sess.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { ctrl.SetDeadline(time.Now()) })
	defer stop()
	if err := control.WriteMessage(ctrl, hello); err != nil {
		return nil, err
	}
	r := control.NewReader(ctrl)
	m, err := r.ReadMessage()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no WELCOME from relay: %w", ctx.Err())
		}
		return nil, fmt.Errorf("read WELCOME: %w", err)
	}
	switch m := m.(type) {
	case *control.Welcome:
		if m.Protocol != control.Version {
			return nil, fmt.Errorf("relay speaks control protocol %d, this agent speaks %d", m.Protocol, control.Version)
		}
		if !stop() {
			return nil, ctx.Err()
		}
		ctrl.SetDeadline(time.Time{})
		l := newLink(sess, ctrl, Identity{}, cfg)
		l.hello, l.welcome = *hello, *m
		l.start(r)
		return l, nil
	case *control.Error:
		return nil, fmt.Errorf("relay refused the session: %w", m)
	default:
		return nil, fmt.Errorf("%w: got %s, want WELCOME", control.ErrMalformed, m.Type())
	}
}

// Accept runs the relay side of the handshake on a freshly accepted session
// whose peer certificate proved identity peer: it accepts the control stream,
// reads HELLO and asks welcome for the answer. An error from welcome is sent to
// the agent as an ERROR frame. On failure the session is closed.
func Accept(ctx context.Context, sess Session, peer Identity, welcome func(*control.Hello) (*control.Welcome, error), cfg LinkConfig) (*Link, error) {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	l, err := accept(ctx, sess, peer, welcome, cfg)
	if err != nil {
		err = withCause(sess, err)
		sess.Close()
		return nil, fmt.Errorf("%w with %s at %s over %s: %w", ErrHandshake, peer, sess.RemoteAddr(), sess.Transport(), err)
	}
	return l, nil
}

func accept(ctx context.Context, sess Session, peer Identity, welcome func(*control.Hello) (*control.Welcome, error), cfg LinkConfig) (*Link, error) {
	ctrl, err := sess.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept control stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { ctrl.SetDeadline(time.Now()) })
	defer stop()
	r := control.NewReader(ctrl)
	m, err := r.ReadMessage()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no HELLO from agent: %w", ctx.Err())
		}
		return nil, fmt.Errorf("read HELLO: %w", err)
	}
	hello, ok := m.(*control.Hello)
	if !ok {
		return nil, fmt.Errorf("%w: got %s, want HELLO", control.ErrMalformed, m.Type())
	}
	w, err := welcome(hello)
	if err != nil {
		var ce *control.Error
		if !errors.As(err, &ce) {
			ce = &control.Error{Code: "refused", Message: err.Error()}
		}
		control.WriteMessage(ctrl, ce)
		// Give the ERROR frame a moment to leave before the session closes.
		ctrl.CloseWrite()
		waitEOF(ctrl, 500*time.Millisecond)
		return nil, err
	}
	w.Protocol = control.Version
	if err := control.WriteMessage(ctrl, w); err != nil {
		return nil, err
	}
	if !stop() {
		return nil, ctx.Err()
	}
	ctrl.SetDeadline(time.Time{})
	l := newLink(sess, ctrl, peer, cfg)
	l.hello, l.welcome = *hello, *w
	l.start(r)
	return l, nil
}

// withCause adds to err why the session ended, when it has and the
// transport knows: "read WELCOME: EOF" says little, the relay's TLS alert
// says what to fix.
func withCause(sess Session, err error) error {
	select {
	case <-sess.Done():
	case <-time.After(50 * time.Millisecond):
		// The transport may be a moment behind the stream that failed.
	}
	if cause := sess.Err(); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (session ended: %w)", err, cause)
	}
	return err
}

// waitEOF reads from s until the peer closes it or d passes.
func waitEOF(s Stream, d time.Duration) {
	s.SetReadDeadline(time.Now().Add(d))
	io.Copy(io.Discard, s)
}

func newLink(sess Session, ctrl Stream, peer Identity, cfg LinkConfig) *Link {
	l := &Link{
		sess:       sess,
		ctrl:       ctrl,
		cfg:        cfg,
		m:          cfg.Metrics.forLink(sess.Transport()),
		peer:       peer,
		since:      cfg.Now(),
		goAwayCh:   make(chan struct{}),
		drainStart: make(chan struct{}),
		drainCh:    make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	l.log = cfg.Logger.With("transport", sess.Transport(), "remote", sess.RemoteAddr().String())
	if !peer.IsZero() {
		l.log = l.log.With("peer", peer.String())
	}
	l.lastRecv.Store(l.since.UnixNano())
	return l
}

func (l *Link) start(r *control.Reader) {
	if l.m != nil {
		l.m.connections.Inc()
	}
	l.cfg.Metrics.connected(l.sess.Transport())
	go l.readLoop(r)
	go l.heartbeatLoop()
	go func() {
		select {
		case <-l.sess.Done():
			err := l.sess.Err()
			if err == nil {
				err = errors.New("session closed")
			}
			l.closeWithError(l.endReason(err))
		case <-l.done:
		}
	}()
}

func (l *Link) readLoop(r *control.Reader) {
	for {
		m, err := r.ReadMessage()
		if err != nil {
			if errors.Is(err, control.ErrMalformed) || errors.Is(err, control.ErrTooLarge) || errors.Is(err, control.ErrUnknownType) {
				l.log.Warn("closing tunnel session: bad control frame from peer", "err", err)
			}
			l.closeWithError(l.endReason(fmt.Errorf("control stream: %w", err)))
			return
		}
		l.lastRecv.Store(l.cfg.Now().UnixNano())
		switch m := m.(type) {
		case *control.Ping:
			l.write(&control.Pong{Seq: m.Seq, Sent: m.Sent})
		case *control.Pong:
			l.observeRTT(time.Duration(l.cfg.Now().UnixNano() - m.Sent))
		case *control.GoAway:
			if l.gotGoAway.CompareAndSwap(false, true) {
				if l.m != nil {
					l.m.goawayRecvd.Inc()
				}
				l.log.Info("peer sent GOAWAY: no new streams on this session", "reason", m.Reason)
				close(l.goAwayCh)
				l.GoAway("acknowledging peer GOAWAY")
			}
		case *control.Drained:
			l.gotDrained.Store(true)
			l.pokeDrain()
		case *control.Error:
			l.log.Warn("peer reported an error", "code", m.Code, "message", m.Message)
			l.closeWithError(m)
			return
		default:
			l.log.Warn("closing tunnel session: unexpected control frame", "type", m.Type())
			l.closeWithError(fmt.Errorf("%w: unexpected %s", control.ErrMalformed, m.Type()))
			return
		}
	}
}

func (l *Link) observeRTT(d time.Duration) {
	if d < 0 {
		return
	}
	if l.m != nil {
		l.m.rtt.Observe(d.Seconds())
	}
	for {
		old := l.rtt.Load()
		nv := int64(d)
		if old != 0 {
			nv = old + (int64(d)-old)/8
		}
		if l.rtt.CompareAndSwap(old, nv) {
			return
		}
	}
}

func (l *Link) heartbeatLoop() {
	t := time.NewTicker(l.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		silent := l.cfg.Now().Sub(time.Unix(0, l.lastRecv.Load()))
		if silent > l.cfg.DeadAfter {
			l.log.Warn("closing tunnel session: peer stopped answering heartbeats", "silent", silent.Round(time.Millisecond))
			l.closeWithError(fmt.Errorf("%w for %v", ErrPeerUnresponsive, silent.Round(time.Millisecond)))
			return
		}
		l.write(&control.Ping{Seq: l.pingSeq.Add(1), Sent: l.cfg.Now().UnixNano()})
	}
}

// write sends one control frame. A failure closes the link.
func (l *Link) write(m control.Message) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.ctrl.SetWriteDeadline(time.Now().Add(l.cfg.DeadAfter))
	if err := control.WriteMessage(l.ctrl, m); err != nil {
		go l.closeWithError(fmt.Errorf("control stream: %w", err))
	}
}

// GoAway tells the peer that this side opens no more streams on the link and
// that the peer should not either. The link closes itself once both sides
// have finished their streams in flight. It is idempotent.
func (l *Link) GoAway(reason string) {
	if !l.sentGoAway.CompareAndSwap(false, true) {
		return
	}
	if l.m != nil {
		l.m.goawaySent.Inc()
	}
	l.write(&control.GoAway{Reason: reason})
	l.drainOnce.Do(l.startDrain)
}

func (l *Link) startDrain() {
	close(l.drainStart)
	go l.drainLoop()
}

// DrainStarted is closed when GOAWAY is first sent or received: from then
// on no new stream may be opened on the link, and idle ones should close.
func (l *Link) DrainStarted() <-chan struct{} { return l.drainStart }

// drainLoop closes the link once GOAWAY went both ways, no stream is open on
// this side, and the peer has said the same with DRAINED.
func (l *Link) drainLoop() {
	select {
	case <-l.goAwayCh:
	case <-l.done:
		return
	}
	for {
		if l.ActiveStreams() == 0 {
			if l.sentDrained.CompareAndSwap(false, true) {
				l.write(&control.Drained{})
			}
			if l.gotDrained.Load() {
				l.log.Debug("tunnel session drained")
				l.closeWithError(errDrained)
				return
			}
		}
		select {
		case <-l.drainCh:
		case <-l.done:
			return
		}
	}
}

var errDrained = errors.New("drained after GOAWAY")

// endReason classifies the end of a session the peer closed: after this side
// sent DRAINED with no stream open, the peer closing is the end of a complete
// drain (its own DRAINED may not have arrived first: QUIC drops unsent
// stream data when a connection closes).
func (l *Link) endReason(err error) error {
	if l.sentDrained.Load() && (l.gotDrained.Load() || l.ActiveStreams() == 0) {
		return errDrained
	}
	return err
}

func (l *Link) pokeDrain() {
	select {
	case l.drainCh <- struct{}{}:
	default:
	}
}

// Drain sends GOAWAY and waits until the link has closed after its streams in
// flight finished, or until ctx ends, when it closes the link at once and
// returns ctx's error.
func (l *Link) Drain(ctx context.Context, reason string) error {
	l.GoAway(reason)
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		l.closeWithError(fmt.Errorf("drain cut short: %w", context.Cause(ctx)))
		return ctx.Err()
	}
}

// OpenStream opens a stream to the peer. It fails with ErrDraining once GOAWAY
// was sent or received.
func (l *Link) OpenStream(ctx context.Context) (Stream, error) {
	if l.Draining() {
		return nil, ErrDraining
	}
	s, err := l.sess.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	if l.m != nil {
		l.m.openedLocal.Inc()
	}
	return l.track(s), nil
}

// AcceptStream waits for the next stream opened by the peer. Streams keep
// being accepted while the link drains.
func (l *Link) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := l.sess.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	if l.m != nil {
		l.m.openedPeer.Inc()
	}
	return l.track(s), nil
}

func (l *Link) track(s Stream) Stream {
	l.accMu.Lock()
	l.active++
	l.total++
	if l.m != nil && !l.gone {
		l.m.streams.Inc()
	}
	l.accMu.Unlock()
	return &linkStream{Stream: s, link: l}
}

func (l *Link) streamClosed() {
	l.accMu.Lock()
	l.active--
	idle := l.active == 0
	if l.m != nil && !l.gone {
		l.m.streams.Dec()
	}
	l.accMu.Unlock()
	if idle {
		l.pokeDrain()
	}
}

// Healthy reports whether the link is up, not draining, and has heard from
// the peer recently.
func (l *Link) Healthy() bool {
	select {
	case <-l.done:
		return false
	default:
	}
	return !l.Draining() && l.cfg.Now().Sub(time.Unix(0, l.lastRecv.Load())) <= l.cfg.StaleAfter
}

// Draining reports whether GOAWAY was sent or received.
func (l *Link) Draining() bool { return l.sentGoAway.Load() || l.gotGoAway.Load() }

// PeerGoAway is closed when the peer sends GOAWAY.
func (l *Link) PeerGoAway() <-chan struct{} { return l.goAwayCh }

// Done is closed when the link has ended.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err says why the link ended; nil while it is up.
func (l *Link) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// Drained reports whether the link ended by a complete graceful drain.
func (l *Link) Drained() bool { return errors.Is(l.Err(), errDrained) }

// Close ends the link and its session at once. It is idempotent.
func (l *Link) Close() error {
	l.closeWithError(ErrClosed)
	return nil
}

func (l *Link) closeWithError(err error) {
	l.closeOnce.Do(func() {
		l.errMu.Lock()
		l.err = err
		l.errMu.Unlock()
		close(l.done)
		l.sess.Close()
		l.accMu.Lock()
		l.gone = true
		if l.m != nil {
			l.m.connections.Dec()
			l.m.streams.Sub(float64(l.active))
		}
		l.accMu.Unlock()
	})
}

// Transport says which protocol carries the link.
func (l *Link) Transport() Transport { return l.sess.Transport() }

// ConnectionState is the TLS state of the link's session: the peer's
// certificate chain among it.
func (l *Link) ConnectionState() tls.ConnectionState { return l.sess.ConnectionState() }

// Abort tells the peer why in an ERROR frame, gives it up to a second to
// read it, and closes the link. Streams in flight fail: use it when the
// peer must go now (its certificate was revoked), and GoAway otherwise.
func (l *Link) Abort(code, message string) {
	e := &control.Error{Code: code, Message: message}
	l.write(e)
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
	}
	l.closeWithError(e)
}

// Peer is the verified identity of the agent on the other end (relay side
// only; zero on the agent).
func (l *Link) Peer() Identity { return l.peer }

// Hello is the HELLO the agent sent.
func (l *Link) Hello() control.Hello { return l.hello }

// Welcome is the WELCOME the relay sent.
func (l *Link) Welcome() control.Welcome { return l.welcome }

// RTT is the smoothed heartbeat round-trip time; zero until measured.
func (l *Link) RTT() time.Duration { return time.Duration(l.rtt.Load()) }

// ActiveStreams is the number of streams open on the link.
func (l *Link) ActiveStreams() int64 {
	l.accMu.Lock()
	defer l.accMu.Unlock()
	return l.active
}

func (l *Link) streamsTotal() int64 {
	l.accMu.Lock()
	defer l.accMu.Unlock()
	return l.total
}

// Since is when the link came up.
func (l *Link) Since() time.Time { return l.since }

// RemoteAddr is the address of the peer.
func (l *Link) RemoteAddr() net.Addr { return l.sess.RemoteAddr() }

// LinkStatus is a snapshot of a Link for status pages.
type LinkStatus struct {
	Transport     Transport `json:"transport"`
	Remote        string    `json:"remote"`
	Peer          string    `json:"peer,omitempty"`
	Relay         string    `json:"relay,omitempty"`
	Session       string    `json:"session,omitempty"`
	Since         time.Time `json:"since"`
	RTTMillis     float64   `json:"rtt_ms"`
	ActiveStreams int64     `json:"active_streams"`
	StreamsTotal  int64     `json:"streams_total"`
	Healthy       bool      `json:"healthy"`
	Draining      bool      `json:"draining"`
	RxBytes       int64     `json:"rx_bytes"`
	TxBytes       int64     `json:"tx_bytes"`
}

// Status returns a snapshot of the link.
func (l *Link) Status() LinkStatus {
	st := LinkStatus{
		Transport:     l.Transport(),
		Remote:        l.RemoteAddr().String(),
		Relay:         l.welcome.Relay,
		Session:       l.welcome.Session,
		Since:         l.since,
		RTTMillis:     float64(l.RTT().Microseconds()) / 1000,
		ActiveStreams: l.ActiveStreams(),
		StreamsTotal:  l.streamsTotal(),
		Healthy:       l.Healthy(),
		Draining:      l.Draining(),
		RxBytes:       l.rxBytes.Load(),
		TxBytes:       l.txBytes.Load(),
	}
	if !l.peer.IsZero() {
		st.Peer = l.peer.String()
	}
	return st
}

// linkStream counts a stream's bytes and its closing on its Link.
type linkStream struct {
	Stream
	link   *Link
	closed atomic.Bool
}

func (s *linkStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.link.rxBytes.Add(int64(n))
		if s.link.m != nil {
			s.link.m.rx.Add(float64(n))
		}
	}
	return n, err
}

func (s *linkStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	if n > 0 {
		s.link.txBytes.Add(int64(n))
		if s.link.m != nil {
			s.link.m.tx.Add(float64(n))
		}
	}
	return n, err
}

func (s *linkStream) Close() error {
	err := s.Stream.Close()
	if s.closed.CompareAndSwap(false, true) {
		s.link.streamClosed()
	}
	return err
}

// Peer is the verified identity of the agent at the other end of the stream
// (relay side); ConnContext reads it.
func (s *linkStream) Peer() Identity { return s.link.peer }

// Link is the link that carries the stream.
func (s *linkStream) Link() *Link { return s.link }
