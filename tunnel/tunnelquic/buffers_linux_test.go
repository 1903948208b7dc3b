package tunnelquic

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

func TestWarnShortBuffersOnce(t *testing.T) {
	log, logs := tunneltest.Logger(t)
	var once sync.Once
	warnShortBuffers(7<<20, 7<<20, 7<<20, log, &once)
	if strings.Contains(logs(), "refused") {
		t.Fatal("warned although the OS granted the buffers")
	}
	warnShortBuffers(208<<10, 7<<20, 7<<20, log, &once)
	warnShortBuffers(208<<10, 208<<10, 7<<20, log, &once)
	if n := strings.Count(logs(), "the OS refused large UDP buffers"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
	for _, want := range []string{"sysctl -w net.core.rmem_max=7500000", "receive_kib=208", "wanted_kib=7168"} {
		if !strings.Contains(logs(), want) {
			t.Errorf("warning lacks %q: %s", want, logs())
		}
	}
}

// TestRaiseBuffers asks the real OS for a modest size that it grants even
// without privileges, and checks the socket got it.
func TestRaiseBuffers(t *testing.T) {
	log, logs := tunneltest.Logger(t)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var once sync.Once
	raiseBuffers(pc, 64<<10, log, &once)
	if strings.Contains(logs(), "refused") {
		t.Errorf("64 KiB refused: %s", logs())
	}
}
