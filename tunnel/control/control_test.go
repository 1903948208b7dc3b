package control

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []Message{
		&Hello{Protocol: Version, Agent: "agent-01", Tenant: "acme", Version: "1.2.3", Capabilities: []string{"http", "crawl"}},
		&Welcome{Protocol: Version, Relay: "relay-a", Session: "0123abcd", Version: "1.2.3"},
		&Ping{Seq: 7, Sent: 1_700_000_000_123_456_789},
		&Pong{Seq: 1<<64 - 1, Sent: -5},
		&GoAway{Reason: "relay shutting down", DrainMillis: 30_000},
		&Drained{},
		&Error{Code: "identity_mismatch", Message: "HELLO names agent \"x\""},
	} {
		t.Run(m.Type().String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteMessage(&buf, m); err != nil {
				t.Fatal(err)
			}
			got, err := NewReader(&buf).ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Errorf("got %#v, want %#v", got, m)
			}
		})
	}
}

func TestSeveralFramesOnOneStream(t *testing.T) {
	var buf bytes.Buffer
	for i := range 5 {
		WriteMessage(&buf, &Ping{Seq: uint64(i)})
	}
	r := NewReader(&buf)
	for i := range 5 {
		m, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := m.(*Ping); !ok || p.Seq != uint64(i) {
			t.Fatalf("frame %d: got %#v, want Ping %d", i, m, i)
		}
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Errorf("after last frame: got %v, want io.EOF", err)
	}
}

func TestBadFrames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"unknown type", []byte{99, 0, 2, '{', '}'}, ErrUnknownType},
		{"oversized", []byte{byte(TypeHello), 0xff, 0xff}, ErrTooLarge},
		{"short ping", []byte{byte(TypePing), 0, 3, 1, 2, 3}, ErrMalformed},
		{"bad json", []byte{byte(TypeHello), 0, 3, '{', 'x', '}'}, ErrMalformed},
		{"json of wrong shape", []byte{byte(TypeHello), 0, 14, '{', '"', 'a', 'g', 'e', 'n', 't', '"', ':', '[', '1', ']', '}', ' '}, ErrMalformed},
		{"truncated payload", []byte{byte(TypeHello), 0, 10, '{'}, io.ErrUnexpectedEOF},
		{"truncated header", []byte{byte(TypeHello), 0}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.input)).ReadMessage()
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	err := WriteMessage(io.Discard, &Error{Code: "x", Message: strings.Repeat("m", MaxPayload)})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("got %v, want ErrTooLarge", err)
	}
}

// FuzzReadMessage feeds arbitrary bytes from the network to the decoder: it
// must never panic, and whatever it accepts must encode to a frame that
// decodes and encodes to the same bytes again.
func FuzzReadMessage(f *testing.F) {
	for _, m := range []Message{&Hello{Agent: "a"}, &Ping{Seq: 1}, &GoAway{Reason: "r"}, &Drained{}} {
		b, _ := AppendFrame(nil, m)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for range 8 {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			b, err := AppendFrame(nil, m)
			if err != nil {
				t.Fatalf("re-encode %#v: %v", m, err)
			}
			again, err := NewReader(bytes.NewReader(b)).ReadMessage()
			if err != nil {
				t.Fatalf("decode re-encoded %#v: %v", m, err)
			}
			b2, err := AppendFrame(nil, again)
			if err != nil || !bytes.Equal(b, b2) {
				t.Fatalf("encoding is not stable: %q then %q (%v)", b, b2, err)
			}
		}
	})
}
