package tunnelquic

import (
	"log/slog"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// raiseBuffers asks for want bytes of UDP send and receive buffer, first
// within net.core.[rw]mem_max and then, with CAP_NET_ADMIN, beyond it. When
// the OS grants less it warns once per once.
func raiseBuffers(c *net.UDPConn, want int, log *slog.Logger, once *sync.Once) {
	c.SetReadBuffer(want)
	c.SetWriteBuffer(want)
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	var rcv, snd int
	rc.Control(func(fd uintptr) {
		get := func(opt, force int) int {
			// Linux reports twice the size asked for, for its own bookkeeping.
			if n, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt); err == nil && n/2 >= want {
				return n / 2
			}
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, force, want)
			n, _ := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt)
			return n / 2
		}
		rcv = get(unix.SO_RCVBUF, unix.SO_RCVBUFFORCE)
		snd = get(unix.SO_SNDBUF, unix.SO_SNDBUFFORCE)
	})
	warnShortBuffers(rcv, snd, want, log, once)
}

// warnShortBuffers warns, once per once, when the OS granted less than want.
func warnShortBuffers(rcv, snd, want int, log *slog.Logger, once *sync.Once) {
	if rcv >= want && snd >= want {
		return
	}
	once.Do(func() {
		log.Warn("the OS refused large UDP buffers: QUIC throughput on fast or distant links will suffer; "+
			"raise the limits with: sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000",
			"receive_kib", rcv>>10, "send_kib", snd>>10, "wanted_kib", want>>10)
	})
}
