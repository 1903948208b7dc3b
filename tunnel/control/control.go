// Package control is the wire codec of the tunnel's control stream: the first
// stream an agent opens on every session. It has no I/O of its own beyond
// reading and writing frames on an io.Reader or io.Writer.
//
// Frame format (all integers big-endian):
//
//	+--------+----------------+---------------------------+
//	| type 1 | length 2 bytes | payload (length bytes)    |
//	+--------+----------------+---------------------------+
//
// Ping and Pong carry 16 bytes: a sequence number and the sender's clock in
// Unix nanoseconds, echoed back so the sender can measure the round trip.
// Hello, Welcome, GoAway, Drained and Error carry a JSON object; unknown fields are
// ignored so that newer peers can add fields. A payload longer than
// MaxPayload, an unknown type or a malformed payload is an error: the session
// that sent it is closed.
package control

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the control protocol version this code speaks.
const Version = 1

// MaxPayload bounds the payload of one frame.
const MaxPayload = 16 << 10

const headerLen = 3

// Type is a frame type.
type Type uint8

// The frame types.
const (
	TypeHello   Type = 1
	TypeWelcome Type = 2
	TypePing    Type = 3
	TypePong    Type = 4
	TypeGoAway  Type = 5
	TypeError   Type = 6
	TypeDrained Type = 7
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "HELLO"
	case TypeWelcome:
		return "WELCOME"
	case TypePing:
		return "PING"
	case TypePong:
		return "PONG"
	case TypeGoAway:
		return "GOAWAY"
	case TypeError:
		return "ERROR"
	case TypeDrained:
		return "DRAINED"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Errors returned by ReadMessage. A caller closes the session on any of them.
var (
	ErrTooLarge    = errors.New("control frame payload too large")
	ErrUnknownType = errors.New("unknown control frame type")
	ErrMalformed   = errors.New("malformed control frame")
)

// Message is one decoded control frame: one of *Hello, *Welcome, *Ping, *Pong,
// *GoAway, *Drained or *Error.
type Message interface {
	Type() Type
}

// Hello is the agent's first frame on a new session.
type Hello struct {
	Protocol     int      `json:"protocol"`
	Agent        string   `json:"agent"`
	Tenant       string   `json:"tenant"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities,omitempty"`
}

// Welcome is the relay's answer to Hello.
type Welcome struct {
	Protocol     int      `json:"protocol"`
	Relay        string   `json:"relay"`
	Session      string   `json:"session"`
	Version      string   `json:"version"`
	Capabilities []string `json:"capabilities,omitempty"`
}

// Ping asks the peer for a Pong carrying the same fields.
type Ping struct {
	Seq  uint64
	Sent int64 // sender's clock, Unix nanoseconds
}

// Pong answers a Ping.
type Pong struct {
	Seq  uint64
	Sent int64 // copied from the Ping
}

// GoAway tells the peer to open no new streams on this session: the sender
// will close it once the streams in flight are done.
type GoAway struct {
	Reason string `json:"reason"`
	// DrainMillis is how long the sender will wait for streams in flight.
	DrainMillis int64 `json:"drain_ms,omitempty"`
}

// Drained tells the peer, after GOAWAY went both ways, that the sender has no
// stream open on the session any more. A side that has sent and received
// Drained and has no open stream closes the session: every stream's data has
// then been read by its reader, so closing loses nothing.
type Drained struct{}

// Error is sent before the sender closes the session because of a problem
// the peer should report (identity mismatch, unsupported protocol version).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Type implements Message.
func (*Hello) Type() Type { return TypeHello }

// Type implements Message.
func (*Welcome) Type() Type { return TypeWelcome }

// Type implements Message.
func (*Ping) Type() Type { return TypePing }

// Type implements Message.
func (*Pong) Type() Type { return TypePong }

// Type implements Message.
func (*GoAway) Type() Type { return TypeGoAway }

// Type implements Message.
func (*Error) Type() Type { return TypeError }

// Type implements Message.
func (*Drained) Type() Type { return TypeDrained }

// Error implements error, so that a received Error frame can be returned as one.
func (e *Error) Error() string { return fmt.Sprintf("peer error %s: %s", e.Code, e.Message) }

// AppendFrame appends the encoding of m to b.
func AppendFrame(b []byte, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, byte(m.Type()), 0, 0)
	switch m := m.(type) {
	case *Ping:
		b = binary.BigEndian.AppendUint64(b, m.Seq)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Sent))
	case *Pong:
		b = binary.BigEndian.AppendUint64(b, m.Seq)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Sent))
	default:
		js, err := json.Marshal(m)
		if err != nil {
			return b[:start], fmt.Errorf("encode %s: %w", m.Type(), err)
		}
		b = append(b, js...)
	}
	n := len(b) - start - headerLen
	if n > MaxPayload {
		return b[:start], fmt.Errorf("encode %s: %w (%d bytes, max %d)", m.Type(), ErrTooLarge, n, MaxPayload)
	}
	binary.BigEndian.PutUint16(b[start+1:], uint16(n))
	return b, nil
}

// WriteMessage writes one frame to w in a single Write call.
func WriteMessage(w io.Writer, m Message) error {
	b, err := AppendFrame(make([]byte, 0, 64), m)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", m.Type(), err)
	}
	return nil
}

// Reader decodes frames from a stream, reusing one buffer.
type Reader struct {
	r   io.Reader
	buf []byte
}

// NewReader returns a Reader of frames from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, buf: make([]byte, headerLen, 256)}
}

// ReadMessage reads and decodes the next frame. io.EOF means the stream ended
// cleanly between frames; a stream that ends inside a frame gives
// io.ErrUnexpectedEOF.
func (r *Reader) ReadMessage() (Message, error) {
	hdr := r.buf[:headerLen]
	if _, err := io.ReadFull(r.r, hdr); err != nil {
		return nil, err
	}
	t := Type(hdr[0])
	n := int(binary.BigEndian.Uint16(hdr[1:]))
	if n > MaxPayload {
		return nil, fmt.Errorf("%w: %s frame of %d bytes, max %d", ErrTooLarge, t, n, MaxPayload)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	p := r.buf[:n]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read %s frame: %w", t, err)
	}
	return Decode(t, p)
}

// Decode decodes the payload of one frame of type t.
func Decode(t Type, p []byte) (Message, error) {
	if len(p) > MaxPayload {
		return nil, fmt.Errorf("%w: %s frame of %d bytes, max %d", ErrTooLarge, t, len(p), MaxPayload)
	}
	var m Message
	switch t {
	case TypePing, TypePong:
		if len(p) != 16 {
			return nil, fmt.Errorf("%w: %s payload is %d bytes, want 16", ErrMalformed, t, len(p))
		}
		seq, sent := binary.BigEndian.Uint64(p), int64(binary.BigEndian.Uint64(p[8:]))
		if t == TypePing {
			return &Ping{Seq: seq, Sent: sent}, nil
		}
		return &Pong{Seq: seq, Sent: sent}, nil
	case TypeHello:
		m = new(Hello)
	case TypeWelcome:
		m = new(Welcome)
	case TypeGoAway:
		m = new(GoAway)
	case TypeError:
		m = new(Error)
	case TypeDrained:
		m = new(Drained)
	default:
		return nil, fmt.Errorf("%w %d", ErrUnknownType, uint8(t))
	}
	if err := json.Unmarshal(p, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, t, err)
	}
	return m, nil
}
