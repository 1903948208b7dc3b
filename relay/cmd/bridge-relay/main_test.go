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

func TestCAInitAndToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	var out, errb bytes.Buffer
	if err := run([]string{"ca", "init", "--dir", dir, "--address", "127.0.0.1:9999"}, &out, &errb); err != nil {
		t.Fatalf("ca init: %v %s", err, errb.String())
	}
	if !strings.Contains(out.String(), "fingerprint") || !strings.Contains(out.String(), "https://localhost:9999") {
		t.Errorf("ca init output: %s", out.String())
	}
	if st, err := os.Stat(filepath.Join(dir, "secrets", "password")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v", err)
	}
	// A second init must not overwrite the keys.
	if err := run([]string{"ca", "init", "--dir", dir}, &out, &errb); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second ca init: %v", err)
	}
	out.Reset()
	if err := run([]string{"agents", "token", "--tenant", "acme", "--agent", "agent-01", "--ca-dir", dir}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if tok := strings.TrimSpace(out.String()); strings.Count(tok, ".") != 2 {
		t.Errorf("token %q is not a JWT", tok)
	}
	if err := run([]string{"agents", "token", "--tenant", "Bad Tenant", "--agent", "a", "--ca-dir", dir}, &out, &errb); err == nil {
		t.Error("a bad tenant name was accepted")
	}
	if err := run([]string{"agents", "revoke", "no-slash"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "TENANT/AGENT") {
		t.Errorf("revoke without TENANT/AGENT: %v", err)
	}
}
