package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/tunnel"
)

// stepBinary finds a smallstep binary (installed by make deps into
// .tools/bin). Outside CI a missing one skips the test, with a message.
func stepBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if root, rerr := filepath.Abs(filepath.Join("..", ".tools", "bin", name)); rerr == nil {
		if _, serr := os.Stat(root); serr == nil {
			return root
		}
	}
	if os.Getenv("BRIDGE_REQUIRE_EXTERNAL") != "" {
		t.Fatalf("%s is not installed (make deps installs it into .tools/bin)", name)
	}
	t.Skipf("%s is not installed: run make deps (or make test) to install it", name)
	return ""
}

// step runs the step CLI with its own STEPPATH and no terminal.
func step(t *testing.T, stepPath string, args ...string) string {
	t.Helper()
	cmd := exec.Command(stepBinary(t, "step"), args...)
	cmd.Env = append(os.Environ(), "STEPPATH="+stepPath, "HOME="+stepPath)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("step %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// TestStepCLIWithEmbeddedCA: an admin's `step ca token --set tenant=...`
// against the relay's own CA enrolls an agent, and so do files made by
// `step ca certificate`.
func TestStepCLIWithEmbeddedCA(t *testing.T) {
	stepBinary(t, "step")
	r := startRelay(t, nil)
	lay := stepca.Layout{Dir: r.cfg.PKI.CA.Dir}
	sp := t.TempDir()
	tok := step(t, sp, "ca", "token", "agent-01", "--provisioner", "agents", "--provisioner-password-file", lay.Password(),
		"--set", "tenant=acme", "--ca-url", r.CAURL(), "--root", lay.Root())
	st := enroll.Store{Dir: t.TempDir(), Name: "agent"}
	leaf, err := enroll.Enroll(context.Background(), tok, st, enroll.Options{})
	if err != nil {
		t.Fatalf("enroll with a step CLI token: %v", err)
	}
	if id, err := tunnel.IdentityFromCertificate(leaf); err != nil || id.String() != "spiffe://acme/agent/agent-01" {
		t.Fatalf("identity %v, %v", id, err)
	}
	ag := startAgent(t, st, tunnel.ProtocolAuto, r.addr)
	waitFor(t, 15*time.Second, "the agent's tunnel", func() bool { return ag.Client().Ready() })

	// By hand: step ca certificate, then enroll --cert --key --root.
	tok2 := step(t, sp, "ca", "token", "agent-02", "--provisioner", "agents", "--provisioner-password-file", lay.Password(),
		"--set", "tenant=acme", "--ca-url", r.CAURL(), "--root", lay.Root())
	dir := t.TempDir()
	step(t, sp, "ca", "certificate", "agent-02", filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key"),
		"--token", tok2, "--ca-url", r.CAURL(), "--root", lay.Root())
	leaf2, err := enroll.Import(filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key"), lay.Root(), r.CAURL(),
		enroll.Store{Dir: t.TempDir(), Name: "agent"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := tunnel.IdentityFromCertificate(leaf2); id.Agent != "agent-02" {
		t.Errorf("imported identity %v", id)
	}
	// A token without the tenant is refused by the template.
	bad := step(t, sp, "ca", "token", "agent-03", "--provisioner", "agents", "--provisioner-password-file", lay.Password(),
		"--ca-url", r.CAURL(), "--root", lay.Root())
	if _, err := enroll.Enroll(context.Background(), bad, enroll.Store{Dir: t.TempDir(), Name: "agent"}, enroll.Options{}); err == nil {
		t.Error("a token without user.tenant was accepted")
	}
}

// TestExternalStepCA runs the admin flow of the README with the real step
// CLI and step-ca, unchanged: step ca init, provisioner add with the agent
// template, CRL on, a relay certificate from step ca certificate, agent
// tokens from step ca token; the relay trusts the CA by fingerprint, and a
// `step ca revoke` reaches it through the CRL.
func TestExternalStepCA(t *testing.T) {
	stepBinary(t, "step")
	stepCA := stepBinary(t, "step-ca")
	dir := t.TempDir()
	sp := filepath.Join(dir, "step")
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	caURL := "https://" + addr
	step(t, sp, "ca", "init", "--name", "MCC Bridge", "--dns", "127.0.0.1", "--dns", "localhost", "--address", addr,
		"--provisioner", "admin", "--password-file", pw, "--provisioner-password-file", pw, "--deployment-type", "standalone")
	tpl := filepath.Join(dir, "agent.tpl")
	os.WriteFile(tpl, []byte(stepca.AgentTemplate), 0o644)
	step(t, sp, "ca", "provisioner", "add", "agents", "--type", "JWK", "--create", "--password-file", pw,
		"--x509-template", tpl, "--x509-default-dur", "24h", "--x509-max-dur", "72h", "--allow-renewal-after-expiry")
	// CRL on (no step flag for it: the README shows the same edit with jq).
	cfgPath := filepath.Join(sp, "config", "ca.json")
	var caCfg map[string]any
	b, _ := os.ReadFile(cfgPath)
	if err := json.Unmarshal(b, &caCfg); err != nil {
		t.Fatal(err)
	}
	caCfg["crl"] = map[string]any{"enabled": true, "generateOnRevoke": true, "cacheDuration": "24h"}
	b, _ = json.MarshalIndent(caCfg, "", "  ")
	os.WriteFile(cfgPath, b, 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var caLog bytes.Buffer
	ca := exec.CommandContext(ctx, stepCA, "--password-file", pw, cfgPath)
	ca.Env = append(os.Environ(), "STEPPATH="+sp)
	ca.Stdout, ca.Stderr = &caLog, &caLog
	if err := ca.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); ca.Wait() }()
	waitFor(t, 20*time.Second, "step-ca to listen", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	fp := step(t, sp, "certificate", "fingerprint", filepath.Join(sp, "certs", "root_ca.crt"))

	// The relay's certificate, by hand, into its state directory.
	state := filepath.Join(dir, "relay-state")
	os.MkdirAll(state, 0o700)
	step(t, sp, "ca", "certificate", "127.0.0.1", filepath.Join(state, "relay.crt"), filepath.Join(state, "relay.key"),
		"--provisioner", "admin", "--provisioner-password-file", pw, "--san", "127.0.0.1", "--san", "localhost")
	step(t, sp, "ca", "root", filepath.Join(state, "root.crt"))
	agentsPW := filepath.Join(dir, "agents-pw")
	os.WriteFile(agentsPW, []byte("correct horse battery staple\n"), 0o600)
	r := startRelay(t, func(c *relay.Config) {
		c.PKI.CA = relay.EmbeddedCAConfig{}
		c.PKI.CAURL = caURL
		c.PKI.Fingerprint = fp
		c.PKI.StateDir = state
		c.PKI.RevokePasswordFile = agentsPW
	})

	enrollWithStep := func(agentID string) enroll.Store {
		tok := step(t, sp, "ca", "token", agentID, "--provisioner", "agents", "--provisioner-password-file", pw, "--set", "tenant=globex")
		st := enroll.Store{Dir: t.TempDir(), Name: "agent"}
		if _, err := enroll.Enroll(context.Background(), tok, st, enroll.Options{Fingerprint: fp}); err != nil {
			t.Fatalf("enroll %s: %v", agentID, err)
		}
		return st
	}
	st7 := enrollWithStep("agent-07")
	st8 := enrollWithStep("agent-08")
	startAgent(t, st7, tunnel.ProtocolAuto, r.addr)
	startAgent(t, st8, tunnel.ProtocolTCP, r.addr)
	id7 := tunnel.Identity{Tenant: "globex", Agent: "agent-07"}
	id8 := tunnel.Identity{Tenant: "globex", Agent: "agent-08"}
	waitFor(t, 15*time.Second, "both agents' sessions", func() bool {
		return len(r.Server().PeerSerials(id7)) > 0 && len(r.Server().PeerSerials(id8)) > 0
	})

	// The admin revokes agent-07 with the step CLI: the relay learns it from the CRL.
	cert7, _, _ := st7.Load()
	serial := cert7.Leaf.SerialNumber.String()
	rtok := step(t, sp, "ca", "token", serial, "--revoke", "--provisioner", "admin", "--provisioner-password-file", pw)
	step(t, sp, "ca", "revoke", serial, "--token", rtok)
	waitFor(t, 20*time.Second, "the relay to close the revoked agent's sessions", func() bool {
		return len(r.Server().PeerSerials(id7)) == 0
	})
	if !strings.Contains(r.logs(), "client certificate is revoked") {
		t.Error("the relay log does not say why")
	}
	// The relay revokes agent-08 itself, at the external CA, with the agents provisioner's password.
	var res relay.RevokeResult
	r.post(t, "/v1/agents/globex/agent-08/revoke", &res)
	cert8, _, _ := st8.Load()
	if len(res.RevokedSerials) != 1 || res.RevokedSerials[0] != cert8.Leaf.SerialNumber.String() || len(res.Errors) > 0 {
		t.Fatalf("revoke at the external CA: %+v", res)
	}
	if err := renewNow(t, st8); err == nil {
		t.Error("the external CA renewed a certificate the relay revoked")
	}
	if t.Failed() {
		t.Logf("step-ca log:\n%s", caLog.String())
	}
}
