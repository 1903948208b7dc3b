package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/tunnel/endpoint"
)

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"help"}, &out, &errb); err != nil || !strings.Contains(out.String(), "bridge-relay serve") {
		t.Errorf("help: %v, %q", err, out.String())
	}
	out.Reset()
	if err := run([]string{"frobnicate"}, &out, &errb); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v", err)
	}
	if err := run([]string{"ping", "no-slash"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "TENANT/AGENT") {
		t.Errorf("ping without TENANT/AGENT: %v", err)
	}
	if err := run([]string{"serve", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("serve with a missing config: %v", err)
	}
}

func TestDevCerts(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run([]string{"dev-certs", "--dir", dir, "--tenant", "globex", "--agent", "edge-7"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	files := endpoint.TLSFiles{Cert: filepath.Join(dir, "agent.crt"), Key: filepath.Join(dir, "agent.key"), CA: filepath.Join(dir, "root.crt")}
	cert, pool, err := files.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://globex/agent/edge-7" {
		t.Errorf("agent certificate URI %s", got)
	}
	if pool == nil {
		t.Error("no root pool")
	}
	st, _ := os.Stat(filepath.Join(dir, "agent.key"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("agent.key mode %v, want 0600", st.Mode().Perm())
	}
	// A second run keeps the files.
	before, _ := os.ReadFile(files.Cert)
	out.Reset()
	run([]string{"dev-certs", "--dir", dir}, &out, &out)
	after, _ := os.ReadFile(files.Cert)
	if !bytes.Equal(before, after) || !strings.Contains(out.String(), "already") {
		t.Errorf("second dev-certs replaced the certificates: %s", out.String())
	}
}
