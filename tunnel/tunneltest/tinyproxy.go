package tunneltest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTinyproxy runs a real tinyproxy (Debian package tinyproxy) on
// 127.0.0.1 that requires Basic credentials user/password and allows CONNECT
// only to connectPort.
// It returns the proxy's address and stops tinyproxy in t.Cleanup.
//
// Without the tinyproxy binary the test is skipped, or fails when
// BRIDGE_REQUIRE_EXTERNAL=1 (as in CI).
func StartTinyproxy(t *testing.T, connectPort, user, password string) string {
	t.Helper()
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		const msg = "tinyproxy not installed: run make deps"
		if os.Getenv("BRIDGE_REQUIRE_EXTERNAL") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Another process may take the free port between our check and
	// tinyproxy's bind: try a few times.
	var lastOut string
	for attempt := 0; attempt < 3; attempt++ {
		addr, out, ok := runTinyproxy(t, bin, connectPort, user, password)
		if ok {
			return addr
		}
		lastOut = out
	}
	t.Fatalf("tinyproxy did not start; its output:\n%s", lastOut)
	return ""
}

// runTinyproxy starts tinyproxy once and waits until its port accepts.
func runTinyproxy(t *testing.T, bin, connectPort, user, password string) (addr, output string, ok bool) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)

	// tinyproxy switches to User/Group only when started as root; name the
	// current ids so it neither warns nor needs another account to read
	// anything.
	conf := strings.Join([]string{
		fmt.Sprintf("User %d", os.Getuid()),
		fmt.Sprintf("Group %d", os.Getgid()),
		"Port " + port,
		"Listen 127.0.0.1",
		"Timeout 30",
		"MaxClients 20",
		"Allow 127.0.0.1",
		"BasicAuth " + user + " " + password,
		"ConnectPort " + connectPort, // with any ConnectPort line, other ports are refused
		"LogLevel Info",
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "tinyproxy.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatalf("write tinyproxy config: %v", err)
	}

	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-d", "-c", path) // -d: stay in the foreground, log to stderr
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tinyproxy: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return "", fmt.Sprintf("exited: %v\n%s", err, out), false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("tinyproxy output:\n%s", out)
				}
			})
			return addr, "", true
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	return "", "port never accepted\n" + out.String(), false
}

// lockedBuffer is a bytes.Buffer safe for a process's stdout and stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
