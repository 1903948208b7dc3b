package tunneltcp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

// FuzzYamuxFrames feeds arbitrary bytes, as a peer would send them after
// the TLS handshake, to a relay-side session configured as ours is. It must
// never panic or hang: the session either serves streams or closes.
func FuzzYamuxFrames(f *testing.F) {
	hdr := func(typ, flags byte, id, length uint32) []byte {
		return []byte{0, typ, 0, flags, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), byte(length >> 24), byte(length >> 16), byte(length >> 8), byte(length)}
	}
	f.Add(append(hdr(1, 1, 1, 0), append(hdr(0, 0, 1, 5), "hello"...)...)) // SYN then data
	f.Add(hdr(0, 0, 1, 1<<30))                                             // data beyond the window
	f.Add(hdr(2, 1, 0, 7))                                                 // ping
	f.Add(hdr(3, 0, 0, 0))                                                 // go away
	f.Add([]byte{9, 9, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		ycfg, err := Config{Logger: nil}.yamuxConfig()
		if err != nil {
			t.Fatal(err)
		}
		ycfg.KeepAliveInterval = time.Hour
		a, b := net.Pipe()
		defer b.Close()
		s, err := yamux.Server(newFrameConn(a, time.Second, newMemGate(1<<20, slog.New(slog.DiscardHandler))), ycfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		go func() {
			for {
				st, err := s.AcceptStreamWithContext(context.Background())
				if err != nil {
					return
				}
				go func() { io.Copy(io.Discard, st); st.Close() }()
			}
		}()
		go io.Copy(io.Discard, b) // whatever the session answers
		b.SetWriteDeadline(time.Now().Add(2 * time.Second))
		io.Copy(b, bytes.NewReader(data))
	})
}
