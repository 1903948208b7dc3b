package tunnel

import (
	"context"
	"net"
	"sync"
)

// Listener is a net.Listener of the streams that peers open on any of a set
// of Links, so that an http.Server can serve them. Serve adds a Link.
type Listener struct {
	addr    net.Addr
	streams chan Stream
	ctx     context.Context
	cancel  context.CancelFunc

	mu     sync.Mutex // orders Serve's wg.Add before Close's wg.Wait
	closed bool       // guarded by mu
	wg     sync.WaitGroup
}

// NewListener returns a Listener that reports addr as its address.
func NewListener(addr net.Addr) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &Listener{addr: addr, streams: make(chan Stream), ctx: ctx, cancel: cancel}
}

// Serve accepts the streams that the peer opens on link until the link or the
// listener closes. It returns at once; the accepting runs in a goroutine.
func (l *Listener) Serve(link *Link) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for {
			s, err := link.AcceptStream(l.ctx)
			if err != nil {
				return
			}
			select {
			case l.streams <- s:
			case <-l.ctx.Done():
				s.Close()
				return
			}
		}
	}()
}

// Accept waits for the next stream opened by a peer.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case s := <-l.streams:
		return s, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting streams; Links stay up. It is idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()
	return nil
}

// Addr is the address given to NewListener.
func (l *Listener) Addr() net.Addr { return l.addr }

// Addr is a net.Addr for things with a name rather than a socket, such as a
// Listener of tunnel streams.
type Addr string

// Network implements net.Addr.
func (a Addr) Network() string { return "tunnel" }

// String implements net.Addr.
func (a Addr) String() string { return string(a) }
