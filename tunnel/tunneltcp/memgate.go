package tunneltcp

import (
	"encoding/binary"
	"log/slog"
	"sync"
)

// yamux header flags.
const (
	flagFIN = 0x4
	flagRST = 0x8
)

// memGate caps the stream data a session holds unread. yamux windows bound
// each stream (StreamWindow) but not their sum, so a peer with many streams
// could make us buffer streams x window. The gate follows the yamux frames
// as frameConn reads them, counts the payload of each stream until the
// application reads it (or closes the stream), and pauses reading from the
// connection while the total is at the cap. Reading resumes as soon as the
// application consumes data; if it never does, yamux's keepalive gives up and
// the session closes.
type memGate struct {
	limit int64
	log   *slog.Logger

	mu       sync.Mutex
	cond     *sync.Cond
	buffered int64            // unread payload across streams; guarded by mu
	unread   map[uint32]int64 // per stream; guarded by mu
	closed   map[uint32]bool  // closed here before the peer finished: data still coming is never read; guarded by mu
	peerDone map[uint32]bool  // the peer sent FIN or RST and we have not closed yet; guarded by mu
	shut     bool             // guarded by mu
	warned   bool             // guarded by mu
	hdr      [yamuxHeaderLen]byte
	hdrLen   int   // bytes of hdr filled; reader goroutine only
	payload  int64 // payload bytes of the current data frame still to pass; reader goroutine only
}

func newMemGate(limit int64, log *slog.Logger) *memGate {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &memGate{limit: limit, log: log, unread: map[uint32]int64{}, closed: map[uint32]bool{}, peerDone: map[uint32]bool{}}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// wait blocks while the session holds limit or more unread bytes.
func (g *memGate) wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.buffered >= g.limit && !g.shut {
		if !g.warned {
			g.warned = true
			g.log.Warn("tunnel session holds its limit of unread stream data; pausing reads from the peer until the application catches up",
				"unread_mib", g.buffered>>20, "limit_mib", g.limit>>20)
		}
		g.cond.Wait()
	}
}

// observe follows the frames in bytes just read from the connection.
func (g *memGate) observe(p []byte) {
	for len(p) > 0 {
		if g.payload > 0 {
			k := min(int64(len(p)), g.payload)
			g.payload -= k
			p = p[k:]
			continue
		}
		k := copy(g.hdr[g.hdrLen:], p)
		g.hdrLen += k
		p = p[k:]
		if g.hdrLen < yamuxHeaderLen {
			return
		}
		g.hdrLen = 0
		typ, flags := g.hdr[1], binary.BigEndian.Uint16(g.hdr[2:4])
		id, length := binary.BigEndian.Uint32(g.hdr[4:8]), binary.BigEndian.Uint32(g.hdr[8:12])
		g.mu.Lock()
		if typ == yamuxTypeData && length > 0 {
			g.payload = int64(length)
			if !g.closed[id] {
				g.unread[id] += int64(length)
				g.buffered += int64(length)
			}
		}
		if flags&(flagFIN|flagRST) != 0 {
			if g.closed[id] {
				delete(g.closed, id) // both sides are done: no more data will come
			} else {
				g.peerDone[id] = true
			}
		}
		g.mu.Unlock()
	}
}

// consumed records that the application read n bytes of stream id.
func (g *memGate) consumed(id uint32, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.unread[id]; !ok {
		return
	}
	g.unread[id] -= int64(n)
	g.buffered -= int64(n)
	g.cond.Broadcast()
}

// streamClosed releases whatever stream id still held unread.
func (g *memGate) streamClosed(id uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buffered -= g.unread[id]
	delete(g.unread, id)
	if g.peerDone[id] {
		delete(g.peerDone, id)
	} else {
		g.closed[id] = true
	}
	g.cond.Broadcast()
}

// shutdown wakes a paused reader for good.
func (g *memGate) shutdown() {
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
	g.cond.Broadcast()
}

// unreadBytes is the total held unread, for tests and status.
func (g *memGate) unreadBytes() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buffered
}
