//go:build !linux

package tunnelquic

import (
	"log/slog"
	"net"
	"sync"
)

// raiseBuffers asks for want bytes of UDP send and receive buffer and warns
// once per once when the OS says no.
func raiseBuffers(c *net.UDPConn, want int, log *slog.Logger, once *sync.Once) {
	err1 := c.SetReadBuffer(want)
	err2 := c.SetWriteBuffer(want)
	if err1 != nil || err2 != nil {
		once.Do(func() {
			log.Warn("the OS refused large UDP buffers: QUIC throughput on fast or distant links will suffer",
				"wanted_kib", want>>10, "receive_err", err1, "send_err", err2)
		})
	}
}
