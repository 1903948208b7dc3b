package tunnel

import "errors"

// Sentinel errors, compared with errors.Is.
var (
	// ErrDraining is returned by OpenStream on a Link that is draining after a
	// GOAWAY from either side: open the stream on another Link.
	ErrDraining = errors.New("tunnel link is draining")
	// ErrNoLink is returned when no live link can carry a new stream.
	ErrNoLink = errors.New("no tunnel link is up")
	// ErrClosed is returned by operations on a closed Link or Listener.
	ErrClosed = errors.New("tunnel closed")
	// ErrPeerUnresponsive closes a session whose peer stopped answering heartbeats.
	ErrPeerUnresponsive = errors.New("tunnel peer stopped answering heartbeats")
	// ErrHandshake wraps every failure of the control-stream handshake.
	ErrHandshake = errors.New("tunnel handshake failed")
)
