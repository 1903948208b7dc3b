package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "relay.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg, err := LoadConfig(write("tls: {cert: r.crt, key: r.key, ca: root.crt}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":8443" || cfg.Ops.Listen != "127.0.0.1:9465" || !*cfg.QUIC || !*cfg.TCP ||
		cfg.Tunnel.DrainTimeout != 30*time.Second || cfg.Tunnel.Heartbeat != 500*time.Millisecond {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.TLS.CA != filepath.Join(dir, "root.crt") {
		t.Errorf("ca path %q, want it next to the config", cfg.TLS.CA)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", "tls: {cert: a, key: b, ca: c}\nlisten_addr: x\n", `unknown key "listen_addr"`},
		{"no tls", "listen: :9000\n", "tls: cert, key and ca are required"},
		{"both transports off", "quic: false\ntcp: false\ntls: {cert: a, key: b, ca: c}\n", "both off"},
		{"bad type", "quic: maybe\ntls: {cert: a, key: b, ca: c}\n", "maybe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(write(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "relay.yaml") {
				t.Errorf("got %v, want an error naming relay.yaml and %q", err, tc.want)
			}
		})
	}
}
