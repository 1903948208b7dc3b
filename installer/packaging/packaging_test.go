package packaging

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/tunnel/endpoint"
)

// repoRoot is the repository's top directory, two levels up from here.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// need skips the test when a tool is missing, or fails it when
// BRIDGE_REQUIRE_EXTERNAL=1 (make test, CI).
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, tool+" is missing: run make deps")
		}
	}
}

func missing(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("BRIDGE_REQUIRE_EXTERNAL") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// run runs a command in dir with env added to this process's environment
// and returns its combined output.
func run(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// mustRun is run that fails the test on an error, with a one-minute bound.
func mustRun(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := run(ctx, dir, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestVersion(t *testing.T) {
	script := filepath.Join(repoRoot(t), "installer", "packaging", "version.sh")
	tests := []struct {
		name, in, pkg, msi string
	}{
		{"release tag", "v1.2.3", "1.2.3", "1.2.3"},
		{"release candidate", "v1.2.3-rc1", "1.2.3~rc1", "1.2.3"},
		{"commits after a tag", "v1.2.3-4-gabc1234", "1.2.3+git4.abc1234", "1.2.3"},
		{"dirty after a tag", "v1.2.3-4-gabc1234-dirty", "1.2.3+git4.abc1234.dirty", "1.2.3"},
		{"hash only", "abc1234", "0.0.0~gitabc1234", "0.0.0"},
		{"dirty hash", "abc1234-dirty", "0.0.0~gitabc1234.dirty", "0.0.0"},
		{"hash of digits only", "1234567-dirty", "0.0.0~git1234567.dirty", "0.0.0"},
		{"no git", "dev", "0.0.0~dev", "0.0.0"},
		{"two fields", "v1.2", "1.2", "1.2.0"},
		{"fields past MSI limits", "v300.2.70000", "300.2.70000", "255.2.65535"},
		{"odd characters", "build 7/x", "0.0.0~build.7.x", "0.0.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.TrimSpace(mustRun(t, "", nil, "sh", script, tc.in)); got != tc.pkg {
				t.Errorf("version.sh %q = %q, want %q", tc.in, got, tc.pkg)
			}
			if got := strings.TrimSpace(mustRun(t, "", nil, "sh", script, "--msi", tc.in)); got != tc.msi {
				t.Errorf("version.sh --msi %q = %q, want %q", tc.in, got, tc.msi)
			}
			if _, err := exec.LookPath("dpkg"); err == nil {
				mustRun(t, "", nil, "dpkg", "--validate-version", tc.pkg+"-1")
			}
		})
	}
	// Package versions sort the way the builds were made, for dpkg and rpm.
	order := []string{"0.0.0~gitabc1234", "1.2.3~rc1", "1.2.3", "1.2.3+git4.abc1234", "1.2.3+git4.abc1234.dirty", "1.2.4"}
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if _, err := exec.LookPath("dpkg"); err == nil {
			mustRun(t, "", nil, "dpkg", "--compare-versions", a, "lt", b)
		}
		if _, err := exec.LookPath("rpm"); err == nil {
			got := mustRun(t, "", nil, "rpm", "--eval", fmt.Sprintf(`%%{lua: print(rpm.vercmp("%s", "%s"))}`, a, b))
			if strings.TrimSpace(got) != "-1" {
				t.Errorf("rpm orders %s and %s as %s, want -1", a, b, strings.TrimSpace(got))
			}
		}
	}
}

// identity names a package as its maintainer scripts see it.
type identity struct {
	pkg, user, unit, state, logs, config string
	template                             string // what postinstall copies to config when it is missing
}

var agentIdentity = identity{
	pkg:      "mcc-bridge-agent",
	user:     "mcc-bridge",
	unit:     "mcc-bridge-agent.service",
	state:    "/var/lib/mcc-bridge",
	logs:     "/var/log/mcc-bridge",
	config:   "/etc/mcc-bridge/agent.yaml",
	template: "/usr/share/mcc-bridge-agent/agent.yaml",
}

var relayIdentity = identity{
	pkg:      "mcc-bridge-relay",
	user:     "bridge-relay",
	unit:     "bridge-relay.service",
	state:    "/var/lib/mcc-bridge-relay",
	logs:     "/var/log/mcc-bridge-relay",
	config:   "/etc/mcc-bridge/relay.yaml",
	template: "/usr/share/mcc-bridge-relay/relay.yaml",
}

// maintainerScripts are the paths of a package's four scripts.
type maintainerScripts struct {
	preinstall, postinstall, preremove, postremove string
}

func TestScripts(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "installer", "packaging", "scripts")
	testScripts(t, maintainerScripts{
		preinstall:  filepath.Join(dir, "preinstall.sh"),
		postinstall: filepath.Join(dir, "postinstall.sh"),
		preremove:   filepath.Join(dir, "preremove.sh"),
		postremove:  filepath.Join(dir, "postremove.sh"),
	}, agentIdentity)
}

// testScripts runs the scripts with the arguments dpkg and rpm give them,
// under a fake root (MCC_BRIDGE_ROOT), with systemd running there or not
// (its /run/systemd/system), and with systemctl, getent, groupadd, useradd,
// chown and chgrp replaced by fakes that record their arguments. It checks
// what was called, the note preinstall leaves postinstall, and that the
// configuration and the state are never deleted. Each case runs under sh
// (dash on Debian) and, where installed, bash (rpm's /bin/sh).
func testScripts(t *testing.T, s maintainerScripts, id identity) {
	fakes := t.TempDir()
	for _, name := range []string{"systemctl", "getent", "groupadd", "useradd", "chown", "chgrp"} {
		body := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>\"$FAKE_LOG\"\n", name)
		if name == "getent" {
			body += "[ -n \"$FAKE_ACCOUNT_EXISTS\" ]\n"
		}
		if err := os.WriteFile(filepath.Join(fakes, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u, st, lg, cf := id.user, id.state, id.logs, id.config
	own := func(root string) []string {
		return []string{
			"chown -R " + u + ":" + u + " " + root + st,
			"chown -R " + u + ":" + u + " " + root + lg,
			"chgrp " + u + " " + root + cf,
		}
	}
	none := func(string) []string { return nil }
	with := func(f func(string) []string, tail ...string) func(string) []string {
		return func(root string) []string { return append(f(root), tail...) }
	}
	createAccount := []string{
		"getent group " + u,
		"groupadd --system " + u,
		"getent passwd " + u,
		"useradd --system --gid " + u + " --no-create-home --home-dir " + st +
			" --shell /usr/sbin/nologin --comment MCC Bridge (" + id.pkg + ") " + u,
	}
	tests := []struct {
		name          string
		script        string
		args          []string
		systemd       bool
		accountExists bool
		noteBefore    bool // the note from preinstall is there
		want          func(root string) []string
		noteAfter     bool
		output        string // printed, when set
		noConfig      bool   // there is no configuration file before: postinstall makes it from the template
		configGone    bool   // the configuration file and its backups are deleted (purge)
	}{
		{name: "deb preinst install", script: s.preinstall, args: []string{"install"}, systemd: true,
			want: func(string) []string { return createAccount }, noteAfter: true},
		{name: "deb preinst install over config files", script: s.preinstall, args: []string{"install", "1.0.0-1"}, systemd: true,
			accountExists: true, want: func(string) []string { return []string{"getent group " + u, "getent passwd " + u} }, noteAfter: true},
		{name: "deb preinst install without systemd", script: s.preinstall, args: []string{"install"},
			want: func(string) []string { return createAccount }},
		{name: "deb preinst upgrade", script: s.preinstall, args: []string{"upgrade", "1.0.0-1"}, systemd: true,
			accountExists: true, want: func(string) []string { return []string{"getent group " + u, "getent passwd " + u} }},
		{name: "rpm pre install", script: s.preinstall, args: []string{"1"}, systemd: true,
			want: func(string) []string { return createAccount }},
		{name: "deb postinst configure", script: s.postinstall, args: []string{"configure", ""}, systemd: true,
			want: with(own, "systemctl daemon-reload", "systemctl enable "+id.unit), output: id.pkg + " is installed"},
		{name: "deb postinst configure, no config", script: s.postinstall, args: []string{"configure", ""}, systemd: true, noConfig: true,
			want: with(own, "systemctl daemon-reload", "systemctl enable "+id.unit), output: "wrote " + cf + " from " + id.template},
		{name: "deb postinst upgrade, config deleted by hand", script: s.postinstall, args: []string{"configure", "1.0.0-1"}, systemd: true, noConfig: true,
			want: with(own, "systemctl daemon-reload", "systemctl try-restart "+id.unit), output: "wrote " + cf},
		{name: "rpm post install, no config", script: s.postinstall, args: []string{"1"}, systemd: true, noConfig: true,
			want: with(own, "systemctl daemon-reload", "systemctl enable "+id.unit), output: "wrote " + cf},
		{name: "deb postinst configure, no version", script: s.postinstall, args: []string{"configure"}, systemd: true,
			want: with(own, "systemctl daemon-reload", "systemctl enable "+id.unit), output: id.pkg + " is installed"},
		{name: "deb postinst configure without systemd", script: s.postinstall, args: []string{"configure", ""},
			want: own, output: id.pkg + " is installed"},
		{name: "deb postinst upgrade", script: s.postinstall, args: []string{"configure", "1.0.0-1"}, systemd: true,
			want: with(own, "systemctl daemon-reload", "systemctl try-restart "+id.unit)},
		{name: "deb postinst over config files", script: s.postinstall, args: []string{"configure", "1.0.0-1"}, systemd: true,
			noteBefore: true, want: with(own, "systemctl daemon-reload", "systemctl enable "+id.unit), output: id.pkg + " is installed"},
		{name: "deb postinst abort-upgrade", script: s.postinstall, args: []string{"abort-upgrade", "1.0.0-1"}, systemd: true, want: none},
		{name: "rpm post install", script: s.postinstall, args: []string{"1"}, systemd: true,
			want: with(own, "systemctl daemon-reload", "systemctl enable "+id.unit), output: id.pkg + " is installed"},
		{name: "rpm post upgrade", script: s.postinstall, args: []string{"2"}, systemd: true,
			want: with(own, "systemctl daemon-reload", "systemctl try-restart "+id.unit)},
		{name: "deb prerm remove", script: s.preremove, args: []string{"remove"}, systemd: true,
			want: func(string) []string { return []string{"systemctl stop " + id.unit, "systemctl disable " + id.unit} }},
		{name: "deb prerm remove without systemd", script: s.preremove, args: []string{"remove"}, want: none},
		{name: "deb prerm upgrade", script: s.preremove, args: []string{"upgrade", "2.0.0-1"}, systemd: true, want: none},
		{name: "rpm preun erase", script: s.preremove, args: []string{"0"}, systemd: true,
			want: func(string) []string { return []string{"systemctl stop " + id.unit, "systemctl disable " + id.unit} }},
		{name: "rpm preun upgrade", script: s.preremove, args: []string{"1"}, systemd: true, want: none},
		{name: "deb postrm remove", script: s.postremove, args: []string{"remove"}, systemd: true,
			want: func(string) []string { return []string{"systemctl daemon-reload"} }, output: "kept " + cf},
		{name: "deb postrm purge", script: s.postremove, args: []string{"purge"}, systemd: true, configGone: true,
			want: func(string) []string { return []string{"systemctl daemon-reload"} }, output: "kept " + st},
		{name: "deb postrm purge without systemd", script: s.postremove, args: []string{"purge"}, configGone: true, want: none, output: "deleted " + cf},
		{name: "deb postrm upgrade", script: s.postremove, args: []string{"upgrade", "2.0.0-1"}, systemd: true,
			want: func(string) []string { return []string{"systemctl daemon-reload"} }},
		{name: "rpm postun erase", script: s.postremove, args: []string{"0"}, systemd: true,
			want: func(string) []string { return []string{"systemctl daemon-reload"} }, output: "kept " + cf},
		{name: "rpm postun upgrade", script: s.postremove, args: []string{"1"}, systemd: true,
			want: func(string) []string { return []string{"systemctl daemon-reload"} }},
	}
	// sh, and dash and bash when they are not what sh is.
	var shells, seen []string
	for _, sh := range []string{"sh", "dash", "bash"} {
		path, err := exec.LookPath(sh)
		if err == nil {
			path, err = filepath.EvalSymlinks(path)
		}
		if err == nil && !slices.Contains(seen, path) {
			shells, seen = append(shells, sh), append(seen, path)
		}
	}
	for _, sh := range shells {
		for _, tc := range tests {
			t.Run(sh+"/"+tc.name, func(t *testing.T) {
				root := t.TempDir()
				config := []string{root + cf, root + cf + ".bak-20261204T100000Z"}
				made := []string{root + st + "/pki/agent.key"} // files there before the script runs
				if !tc.noConfig {
					made = append(made, config...)
				}
				kept := made // files there after it
				if tc.configGone {
					kept = made[:1]
				}
				template := []byte("# the packaged template\n")
				for _, d := range []string{filepath.Dir(root + id.template), filepath.Dir(root + cf)} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(root+id.template, template, 0o644); err != nil {
					t.Fatal(err)
				}
				for _, f := range made {
					if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(f, []byte("keep me\n"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.MkdirAll(filepath.Join(root, "run"), 0o755); err != nil {
					t.Fatal(err)
				}
				if tc.systemd {
					if err := os.MkdirAll(filepath.Join(root, "run", "systemd", "system"), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				note := filepath.Join(root, "run", id.pkg+".enable")
				if tc.noteBefore {
					if err := os.WriteFile(note, nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				log := filepath.Join(root, "calls")
				env := []string{
					"MCC_BRIDGE_ROOT=" + root,
					"FAKE_LOG=" + log,
					"PATH=" + fakes + string(os.PathListSeparator) + os.Getenv("PATH"),
				}
				if tc.accountExists {
					env = append(env, "FAKE_ACCOUNT_EXISTS=1")
				}
				out := mustRun(t, root, env, sh, append([]string{tc.script}, tc.args...)...)

				calls, err := os.ReadFile(log)
				if err != nil && !errors.Is(err, fs.ErrNotExist) {
					t.Fatal(err)
				}
				got := strings.Split(strings.TrimSpace(string(calls)), "\n")
				if len(calls) == 0 {
					got = nil
				}
				if want := tc.want(root); !slices.Equal(got, want) {
					t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
				if _, err := os.Stat(note); (err == nil) != tc.noteAfter {
					t.Errorf("note %s there: %v, want %v", note, err == nil, tc.noteAfter)
				}
				if tc.output != "" && !strings.Contains(out, tc.output) {
					t.Errorf("output %q does not say %q", out, tc.output)
				}
				for _, f := range kept {
					if _, err := os.Stat(f); err != nil {
						t.Errorf("%s: %v", f, err)
					}
				}
				switch {
				case tc.configGone:
					for _, f := range config {
						if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
							t.Errorf("after purge %s is still there (%v)", f, err)
						}
					}
				case tc.noConfig && tc.script == s.postinstall:
					fi, err := os.Stat(root + cf)
					if err != nil {
						t.Fatalf("postinstall made no %s: %v", cf, err)
					}
					if got, _ := os.ReadFile(root + cf); !bytes.Equal(got, template) {
						t.Errorf("%s = %q, want the template", cf, got)
					}
					if fi.Mode().Perm() != 0o640 {
						t.Errorf("%s: mode %v, want 0640", cf, fi.Mode().Perm())
					}
					if left, _ := filepath.Glob(root + cf + ".tmp-*"); len(left) > 0 {
						t.Errorf("temporary files left: %v", left)
					}
				}
			})
		}
	}
}

// uncomment turns on every commented setting of an example configuration:
// "#key: value" and "#  nested: value" lines (an even number of spaces after
// the #), not "# notes".
func uncomment(b []byte) []byte {
	return regexp.MustCompile(`(?m)^#((?:  )*[^ #\n])`).ReplaceAll(b, []byte("$1"))
}

func TestConfigExamples(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()

	t.Run("agent", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join(root, "installer", "packaging", "agent.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		// As installed: every key is known; only the relays are missing,
		// which bridge-agent install fills.
		cfg := agent.DefaultConfig()
		if err := endpoint.DecodeYAML("agent.yaml", src, &cfg); err != nil {
			t.Fatal(err)
		}
		if len(cfg.Relays) != 0 || cfg.PKI.StateDir != "/var/lib/mcc-bridge/pki" || cfg.Log.File != "/var/log/mcc-bridge/agent.log" {
			t.Errorf("got relays %q, pki.state_dir %q, log.file %q; want none, /var/lib/mcc-bridge/pki, /var/log/mcc-bridge/agent.log",
				cfg.Relays, cfg.PKI.StateDir, cfg.Log.File)
		}
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "relays:") || strings.Contains(err.Error(), "\n") {
			t.Errorf("validate: %v, want only the relays error", err)
		}
		enrolled := bytes.Replace(src, []byte("relays: []"), []byte("relays: [relay.example.com:8443]"), 1)
		for name, b := range map[string][]byte{"enrolled": enrolled, "everything on": uncomment(enrolled)} {
			path := filepath.Join(dir, "agent.yaml")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := agent.LoadConfig(path); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if on := string(uncomment(enrolled)); !strings.Contains(on, "\nsharepoint:\n") || !strings.Contains(on, "\nproxy: ") {
			t.Errorf("uncomment left the examples commented:\n%s", on)
		}
	})

	t.Run("relay", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join(root, "installer", "relay", "relay.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{"as shipped": src, "everything on": uncomment(src)} {
			path := filepath.Join(dir, "relay.yaml")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := relay.LoadConfig(path)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if cfg.Listen != ":8443" || cfg.PKI.CA.Dir != "/var/lib/mcc-bridge-relay/ca" || cfg.API.Listen == "" {
				t.Errorf("%s: listen %q, pki.ca.dir %q, api.listen %q", name, cfg.Listen, cfg.PKI.CA.Dir, cfg.API.Listen)
			}
			// Every path the relay writes is in its state or log directory,
			// every file it only reads in /etc/mcc-bridge: a relative path
			// would land in /etc/mcc-bridge, which the service cannot write.
			// Unset sections keep their relative defaults, so this holds for
			// the configuration with everything on.
			if name == "everything on" {
				for _, p := range cfg.Paths() {
					if *p != "" && !hasAnyPrefix(*p, "/var/lib/mcc-bridge-relay/", "/var/log/mcc-bridge-relay/", "/etc/mcc-bridge/") {
						t.Errorf("%s: path %s is outside /var/lib/mcc-bridge-relay, /var/log/mcc-bridge-relay and /etc/mcc-bridge", name, *p)
					}
				}
			}
		}
	})

	t.Run("relay unit", func(t *testing.T) {
		unit, err := os.ReadFile(filepath.Join(root, "installer", "relay", "bridge-relay.service"))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{
			"ExecStart=/usr/bin/bridge-relay serve --config /etc/mcc-bridge/relay.yaml",
			"User=bridge-relay",
			"StateDirectory=mcc-bridge-relay",
			"LogsDirectory=mcc-bridge-relay",
			"Restart=on-failure",
		} {
			if !bytes.Contains(unit, []byte("\n"+line+"\n")) {
				t.Errorf("bridge-relay.service has no line %q", line)
			}
		}
		m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)$`).FindSubmatch(unit)
		if m == nil {
			t.Fatal("bridge-relay.service has no TimeoutStopSec=<seconds>")
		}
		stop, _ := strconv.Atoi(string(m[1]))
		if drain := relay.DefaultConfig().Tunnel.DrainTimeout; time.Duration(stop)*time.Second < drain+15*time.Second {
			t.Errorf("TimeoutStopSec=%d leaves less than 15s after the relay's drain (%s)", stop, drain)
		}
	})

	t.Run("agent unit", func(t *testing.T) {
		// The unit is installer/service's; the package puts the
		// configuration where it looks.
		unit, err := os.ReadFile(filepath.Join(root, "installer", "service", "mcc-bridge-agent.service"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(unit, []byte("ExecStart=/usr/bin/bridge-agent run --config /etc/mcc-bridge/agent.yaml\n")) {
			t.Error("mcc-bridge-agent.service does not run /usr/bin/bridge-agent with /etc/mcc-bridge/agent.yaml")
		}
	})
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(s, p) })
}

// signer is a code-signing certificate from a throwaway root, and a second
// root that did not issue it.
type signer struct {
	root, otherRoot, cert, key string // PEM files
}

func newSigner(t *testing.T) signer {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	newRoot := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(now.UnixNano()),
			Subject:               pkix.Name{CommonName: name},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key, der
	}
	rootCert, rootKey, rootDER := newRoot("MCC Bridge packaging test root")
	_, _, otherDER := newRoot("MCC Bridge packaging test other root")
	leafKey := newKey()
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano() + 1),
		Subject:      pkix.Name{CommonName: "MCC Bridge packaging test signer", Organization: []string{"MCC Bridge"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}, rootCert, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	return signer{
		root:      write("root.pem", "CERTIFICATE", rootDER),
		otherRoot: write("other-root.pem", "CERTIFICATE", otherDER),
		cert:      write("signer.pem", "CERTIFICATE", leafDER),
		key:       write("signer.key", "PRIVATE KEY", keyDER),
	}
}

// built are the files make package wrote.
type built struct {
	agentDeb, agentRPM, relayDeb, relayRPM, exe, msi string
}

func findBuilt(t *testing.T, dist string) built {
	t.Helper()
	one := func(pattern string) string {
		m, err := filepath.Glob(filepath.Join(dist, pattern))
		if err != nil || len(m) != 1 {
			t.Fatalf("%s in %s: %v %v", pattern, dist, m, err)
		}
		return m[0]
	}
	return built{
		agentDeb: one("mcc-bridge-agent_*_amd64.deb"),
		agentRPM: one("mcc-bridge-agent-*.x86_64.rpm"),
		relayDeb: one("mcc-bridge-relay_*_amd64.deb"),
		relayRPM: one("mcc-bridge-relay-*.x86_64.rpm"),
		exe:      one("bridge-agent-*-windows-amd64.exe"),
		msi:      one("mcc-bridge-agent-*-x64.msi"),
	}
}

// lockMachine keeps other runs of this test (other go test processes) off
// the machine-wide part, the package installation, until the test ends.
func lockMachine(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "mcc-bridge-packaging-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			t.Fatalf("lock %s: %v", f.Name(), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() { f.Close() })
}

// makeEnv keeps a make that runs this test (make test) from handing its
// flags and job server to the make the test runs.
var makeEnv = []string{"MAKEFLAGS=", "MFLAGS=", "MAKELEVEL="}

// TestPackages runs make package with a throwaway code-signing key and
// checks what it built: the signatures, the MSI's tables, the packages'
// contents and scripts, the units; then it installs the agent's .deb on
// this machine, upgrades, removes and purges it.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every package and installs one")
	}
	need(t, "make", "wixl", "msiinfo", "msibuild", "msiextract", "osslsigncode", "rpm", "dpkg-deb", "systemd-analyze")
	root := repoRoot(t)
	nfpm := filepath.Join(root, ".tools", "bin", "nfpm")
	if _, err := os.Stat(nfpm); err != nil {
		missing(t, "nfpm is missing from .tools/bin: run make deps")
	}
	lockMachine(t)

	sig := newSigner(t)
	dist := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := run(ctx, root, makeEnv, "make", "package", "DIST="+dist, "SIGN_CERT="+sig.cert, "SIGN_KEY="+sig.key)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("make package took %s:\n%s", time.Since(start).Round(time.Second), out)
	if strings.Contains(out, "UNSIGNED") {
		t.Error("make package with SIGN_CERT says the files are unsigned")
	}
	b := findBuilt(t, dist)

	t.Run("signatures", func(t *testing.T) {
		// The .exe inside the .msi is the signed one.
		unpacked := t.TempDir()
		mustRun(t, "", nil, "msiextract", "-C", unpacked, b.msi)
		var inside string
		filepath.WalkDir(unpacked, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "bridge-agent.exe" {
				inside = path
			}
			return err
		})
		if inside == "" {
			t.Fatal("msiextract found no bridge-agent.exe in the .msi")
		}
		exe, err := os.ReadFile(b.exe)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(inside); err != nil || !bytes.Equal(got, exe) {
			t.Errorf("the .msi's bridge-agent.exe differs from %s (%v)", filepath.Base(b.exe), err)
		}
		for _, f := range []string{b.exe, b.msi, inside} {
			out := mustRun(t, "", nil, "osslsigncode", "verify", "-CAfile", sig.root, "-in", f)
			if !strings.Contains(out, "Signature verification: ok") {
				t.Errorf("%s: verify said:\n%s", filepath.Base(f), out)
			}
			if out, err := run(ctx, "", nil, "osslsigncode", "verify", "-CAfile", sig.otherRoot, "-in", f); err == nil {
				t.Errorf("%s verifies against a root that did not sign it:\n%s", filepath.Base(f), out)
			}
		}
	})

	t.Run("msi", func(t *testing.T) {
		tables := mustRun(t, "", nil, "msiinfo", "tables", b.msi)
		for _, name := range []string{"ServiceInstall", "ServiceControl", "File", "CreateFolder", "CustomAction", "Registry"} {
			if !slices.Contains(strings.Fields(tables), name) {
				t.Errorf("msiinfo tables has no %s:\n%s", name, tables)
			}
		}
		checkRow(t, msiTable(t, b.msi, "ServiceInstall"), "Name", "mcc-bridge-agent", map[string]string{
			"ServiceType":  "16",    // own process
			"StartType":    "2",     // automatic
			"ErrorControl": "32769", // normal, vital
			"StartName":    `NT AUTHORITY\LocalService`,
			"Arguments":    `run --config "[CommonAppDataFolder]MCC Bridge\agent.yaml"`,
			"Component_":   "AgentService",
		})
		checkRow(t, msiTable(t, b.msi, "ServiceControl"), "Name", "mcc-bridge-agent", map[string]string{
			"Event":      "163", // start on install; stop on install and uninstall; delete on uninstall
			"Wait":       "0",
			"Component_": "AgentService",
		})
		checkRow(t, msiTable(t, b.msi, "File"), "FileName", "bridge-agent.exe", map[string]string{"Component_": "AgentService"})
		checkRow(t, msiTable(t, b.msi, "Component"), "Component", "AgentService", map[string]string{"Directory_": "INSTALLDIR", "KeyPath": "BridgeAgentExe"})
		dirs := msiTable(t, b.msi, "Directory")
		checkRow(t, dirs, "Directory", "INSTALLDIR", map[string]string{"Directory_Parent": "ProgramFiles64Folder", "DefaultDir": "MCC Bridge"})
		checkRow(t, dirs, "Directory", "DATADIR", map[string]string{"Directory_Parent": "CommonAppDataFolder", "DefaultDir": "MCC Bridge"})
		checkRow(t, msiTable(t, b.msi, "CreateFolder"), "Directory_", "DATADIR", map[string]string{"Component_": "DataFolder"})
		actions := msiTable(t, b.msi, "CustomAction")
		checkRow(t, actions, "Action", "SecureDataFolder", map[string]string{
			"Type":   "3122", // exe named by a property, deferred, as LocalSystem
			"Target": `"[CommonAppDataFolder]MCC Bridge" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F *S-1-5-19:(OI)(CI)M`,
		})
		checkRow(t, actions, "Action", "ServiceRecovery", map[string]string{
			"Target": "failure mcc-bridge-agent reset= 86400 actions= restart/5000/restart/5000/restart/5000",
		})
		seq := map[string]int{}
		for _, r := range msiTable(t, b.msi, "InstallExecuteSequence") {
			seq[r["Action"]], _ = strconv.Atoi(r["Sequence"])
		}
		for _, order := range [][]string{
			{"InstallValidate", "RemoveExistingProducts", "InstallInitialize"},
			{"CreateFolders", "SecureDataFolder", "InstallFiles"},
			{"InstallServices", "ServiceRecovery", "StartServices"},
		} {
			if !(seq[order[0]] > 0 && seq[order[0]] < seq[order[1]] && seq[order[1]] < seq[order[2]]) {
				t.Errorf("InstallExecuteSequence: want %s, got %d, %d, %d", strings.Join(order, " < "), seq[order[0]], seq[order[1]], seq[order[2]])
			}
		}
		props := map[string]string{}
		for _, r := range msiTable(t, b.msi, "Property") {
			props[r["Property"]] = r["Value"]
		}
		if props["UpgradeCode"] != "{5A617624-9327-4A49-860B-A6B2B192DDA0}" {
			t.Errorf("UpgradeCode %s changed: a new MSI would no longer replace an installed one", props["UpgradeCode"])
		}
		if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(props["ProductVersion"]) {
			t.Errorf("ProductVersion %q is not major.minor.build", props["ProductVersion"])
		}
		if info := mustRun(t, "", nil, "msiinfo", "suminfo", b.msi); !strings.Contains(info, "Template: x64;1033") {
			t.Errorf("not an x64 package:\n%s", info)
		}
	})

	t.Run("rpm", func(t *testing.T) {
		for _, tc := range []struct {
			rpm, name string
			files     []string
		}{
			{b.agentRPM, "agent", []string{"/usr/bin/bridge-agent", "/usr/lib/systemd/system/mcc-bridge-agent.service", agentIdentity.template}},
			{b.relayRPM, "relay", []string{"/usr/bin/bridge-relay", "/usr/lib/systemd/system/bridge-relay.service", relayIdentity.template}},
		} {
			list := strings.Fields(mustRun(t, "", nil, "rpm", "-qpl", tc.rpm))
			if !slices.Equal(list, slices.Sorted(slices.Values(tc.files))) {
				t.Errorf("%s: rpm -qpl = %q, want %q", tc.name, list, tc.files)
			}
			// The configuration is postinstall's, not the package's: rpm
			// never replaces it, and never saves it away as .rpmsave.
			if got := strings.TrimSpace(mustRun(t, "", nil, "rpm", "-qpc", tc.rpm)); got != "" {
				t.Errorf("%s: rpm -qpc = %q, want no configuration files", tc.name, got)
			}
			scripts := mustRun(t, "", nil, "rpm", "-qp", "--scripts", tc.rpm)
			for _, part := range []string{"preinstall scriptlet", "postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet", "useradd --system"} {
				if !strings.Contains(scripts, part) {
					t.Errorf("%s: rpm -qp --scripts has no %q", tc.name, part)
				}
			}
		}
		if scripts := mustRun(t, "", nil, "rpm", "-qp", "--scripts", b.relayRPM); strings.Contains(scripts, "mcc-bridge-agent") {
			t.Error("the relay's scripts name the agent")
		}
	})

	t.Run("deb", func(t *testing.T) {
		for _, tc := range []struct {
			deb, name string
			files     []string
		}{
			{b.agentDeb, "agent", []string{"./usr/bin/bridge-agent", "./lib/systemd/system/mcc-bridge-agent.service", "." + agentIdentity.template}},
			{b.relayDeb, "relay", []string{"./usr/bin/bridge-relay", "./lib/systemd/system/bridge-relay.service", "." + relayIdentity.template}},
		} {
			info := mustRun(t, "", nil, "dpkg-deb", "-I", tc.deb)
			for _, part := range []string{"Package: mcc-bridge-" + tc.name, "Architecture: amd64", " preinst", " postinst", " prerm", " postrm"} {
				if !strings.Contains(info, part) {
					t.Errorf("%s: dpkg-deb -I has no %q:\n%s", tc.name, part, info)
				}
			}
			contents := mustRun(t, "", nil, "dpkg-deb", "-c", tc.deb)
			for _, f := range tc.files {
				if !regexp.MustCompile(`(?m) ` + regexp.QuoteMeta(f) + `$`).MatchString(contents) {
					t.Errorf("%s: dpkg-deb -c has no %s:\n%s", tc.name, f, contents)
				}
			}
			if strings.Contains(contents, "./etc/") {
				t.Errorf("%s: ships files under /etc, which dpkg would treat as conffiles:\n%s", tc.name, contents)
			}
			if got := mustRun(t, "", nil, "dpkg-deb", "-f", tc.deb, "Version"); !strings.HasSuffix(strings.TrimSpace(got), "-1") {
				t.Errorf("%s: version %q", tc.name, got)
			}
			control := t.TempDir()
			mustRun(t, "", nil, "dpkg-deb", "-e", tc.deb, control)
			if got, err := os.ReadFile(filepath.Join(control, "conffiles")); err == nil && strings.TrimSpace(string(got)) != "" {
				t.Errorf("%s: conffiles %q, want none", tc.name, got)
			}
		}
	})

	// The scripts as packaged: the relay's are the agent's, renamed.
	for _, tc := range []struct {
		name, deb string
		id        identity
	}{
		{"agent", b.agentDeb, agentIdentity},
		{"relay", b.relayDeb, relayIdentity},
	} {
		t.Run("scripts/"+tc.name, func(t *testing.T) {
			control := t.TempDir()
			mustRun(t, "", nil, "dpkg-deb", "-e", tc.deb, control)
			testScripts(t, maintainerScripts{
				preinstall:  filepath.Join(control, "preinst"),
				postinstall: filepath.Join(control, "postinst"),
				preremove:   filepath.Join(control, "prerm"),
				postremove:  filepath.Join(control, "postrm"),
			}, tc.id)
		})
	}

	t.Run("relay", func(t *testing.T) {
		// The unit passes systemd-analyze verify with its ExecStart on the
		// packaged binary; the packaged example configuration is the one
		// TestConfigExamples loads.
		tree := t.TempDir()
		mustRun(t, "", nil, "dpkg-deb", "-x", b.relayDeb, tree)
		bin := filepath.Join(tree, "usr", "bin", "bridge-relay")
		if out := mustRun(t, "", nil, bin, "version"); !strings.HasPrefix(out, "bridge-relay ") {
			t.Errorf("bridge-relay version: %q", out)
		}
		unit, err := os.ReadFile(filepath.Join(tree, "lib", "systemd", "system", "bridge-relay.service"))
		if err != nil {
			t.Fatal(err)
		}
		unit = bytes.Replace(unit, []byte("ExecStart=/usr/bin/bridge-relay "), []byte("ExecStart="+bin+" "), 1)
		path := filepath.Join(t.TempDir(), "bridge-relay.service")
		if err := os.WriteFile(path, unit, 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "", nil, "systemd-analyze", "verify", path)
		shipped, _ := os.ReadFile(filepath.Join(tree, relayIdentity.template))
		example, _ := os.ReadFile(filepath.Join(root, "installer", "relay", "relay.yaml"))
		if len(shipped) == 0 || !bytes.Equal(shipped, example) {
			t.Error("the packaged relay.yaml is not installer/relay/relay.yaml")
		}
	})

	t.Run("unsigned", func(t *testing.T) {
		dist := t.TempDir()
		out, err := run(ctx, root, makeEnv, "make", "package", "DIST="+dist)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "UNSIGNED") {
			t.Errorf("make package without SIGN_CERT does not say the files are unsigned:\n%s", out)
		}
		u := findBuilt(t, dist)
		for _, f := range []string{u.exe, u.msi} {
			if out, err := run(ctx, "", nil, "osslsigncode", "verify", "-CAfile", sig.root, "-in", f); err == nil {
				t.Errorf("%s verifies without a signature:\n%s", filepath.Base(f), out)
			}
		}
	})

	t.Run("install", func(t *testing.T) {
		testInstall(t, root, nfpm, b.agentDeb)
	})
}

// msiTable reads an MSI table with msiinfo export: a header of column
// names, one of types, one of keys, then rows, tab-separated.
func msiTable(t *testing.T, msi, table string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(mustRun(t, "", nil, "msiinfo", "export", msi, table), "\r\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("msiinfo export %s: %q", table, lines)
	}
	cols := strings.Split(strings.TrimRight(lines[0], "\r"), "\t")
	var rows []map[string]string
	for _, l := range lines[3:] {
		vals := strings.Split(strings.TrimRight(l, "\r"), "\t")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(vals) {
				row[c] = vals[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// checkRow finds the row whose key column has value and compares columns.
func checkRow(t *testing.T, rows []map[string]string, key, value string, want map[string]string) {
	t.Helper()
	for _, r := range rows {
		if r[key] != value {
			continue
		}
		for col, w := range want {
			if r[col] != w {
				t.Errorf("%s %s: %s = %q, want %q", key, value, col, r[col], w)
			}
		}
		return
	}
	t.Errorf("no row with %s = %q in %v", key, value, rows)
}

// testInstall installs the agent's .deb on this machine for real, then an
// upgrade, then removes and purges it, checking what each step keeps.
// systemd does not run here, so the scripts skip systemctl (TestScripts
// covers those calls). Everything it made is removed at the end, the
// account only when the test created it.
func testInstall(t *testing.T, root, nfpm, deb string) {
	if os.Geteuid() != 0 {
		missing(t, "installing a .deb needs root")
	}
	need(t, "dpkg", "dpkg-query", "useradd", "userdel", "groupdel")
	const (
		pkg    = "mcc-bridge-agent"
		conf   = "/etc/mcc-bridge/agent.yaml"
		state  = "/var/lib/mcc-bridge"
		logs   = "/var/log/mcc-bridge"
		binary = "/usr/bin/bridge-agent"
		unit   = "/lib/systemd/system/mcc-bridge-agent.service"
	)
	if st := status(t, pkg); st != "" {
		t.Skipf("%s is on this machine already (%s): not touching it", pkg, st)
	}
	for _, p := range []string{conf, state, logs} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists on this machine: not touching an agent's files", p)
		}
	}
	_, errUser := user.Lookup("mcc-bridge")
	_, errGroup := user.LookupGroup("mcc-bridge")
	_, errEtc := os.Stat("/etc/mcc-bridge")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if status(t, pkg) != "" {
			if out, err := dpkg(ctx, "--purge", pkg); err != nil {
				t.Errorf("cleanup: %v\n%s", err, out)
			}
		}
		for _, p := range []string{state, logs, "/run/mcc-bridge-agent.enable"} {
			os.RemoveAll(p)
		}
		leftovers, _ := filepath.Glob(conf + "*")
		for _, p := range leftovers {
			os.Remove(p)
		}
		if errEtc != nil {
			os.Remove("/etc/mcc-bridge") // only when empty: a relay's files stay
		}
		if errUser != nil {
			exec.CommandContext(ctx, "userdel", "mcc-bridge").Run()
		}
		if errGroup != nil {
			exec.CommandContext(ctx, "groupdel", "mcc-bridge").Run()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	install := func(deb string) string {
		t.Helper()
		out, err := dpkg(ctx, "--install", deb)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}

	// Install.
	out := install(deb)
	if st := status(t, pkg); st != "install ok installed" {
		t.Fatalf("after dpkg -i: status %q\n%s", st, out)
	}
	if !strings.Contains(out, "bridge-agent install --token") {
		t.Errorf("dpkg -i did not say how to enroll:\n%s", out)
	}
	if v := mustRun(t, "", nil, binary, "version"); !strings.HasPrefix(v, "bridge-agent ") {
		t.Errorf("%s version: %q", binary, v)
	}
	shipped, _ := os.ReadFile(filepath.Join(root, "installer", "service", "mcc-bridge-agent.service"))
	if got, err := os.ReadFile(unit); err != nil || !bytes.Equal(got, shipped) {
		t.Errorf("%s is not installer/service/mcc-bridge-agent.service (%v)", unit, err)
	}
	mustRun(t, "", nil, "systemd-analyze", "verify", unit)
	u, err := user.Lookup("mcc-bridge")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 || uid >= 1000 {
		t.Errorf("mcc-bridge has uid %d, want a system account", uid)
	}
	if passwd := mustRun(t, "", nil, "getent", "passwd", "mcc-bridge"); !strings.HasSuffix(strings.TrimSpace(passwd), ":/usr/sbin/nologin") {
		t.Errorf("mcc-bridge can log in: %s", passwd)
	}
	owned := func(path string, mode fs.FileMode, owner int) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Error(err)
			return
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || int(st.Uid) != owner || int(st.Gid) != gid {
			t.Errorf("%s: mode %v, owner %d:%d; want %v, %d:%d", path, fi.Mode().Perm(), st.Uid, st.Gid, mode, owner, gid)
		}
	}
	owned(state, 0o750, uid)
	owned(logs, 0o750, uid)
	owned(conf, 0o640, 0)
	template, _ := os.ReadFile(filepath.Join(root, "installer", "packaging", "agent.yaml"))
	if got, _ := os.ReadFile(conf); !bytes.Equal(got, template) {
		t.Errorf("%s is not installer/packaging/agent.yaml", conf)
	}
	if got, _ := os.ReadFile(agentIdentity.template); !bytes.Equal(got, template) {
		t.Errorf("%s is not installer/packaging/agent.yaml", agentIdentity.template)
	}
	if !strings.Contains(out, "wrote "+conf) {
		t.Errorf("dpkg -i did not say it wrote %s:\n%s", conf, out)
	}

	// What an admin and the agent add.
	const edit = "# edited by the packaging test\n"
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(edit)
	f.Close()
	identity := filepath.Join(state, "pki", "agent.crt")
	if err := os.MkdirAll(filepath.Dir(identity), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(identity, []byte("enrolled\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept := func(step string) {
		t.Helper()
		if b, err := os.ReadFile(identity); err != nil || string(b) != "enrolled\n" {
			t.Errorf("after %s: the enrolled identity is gone (%v)", step, err)
		}
		if step == "purge" {
			return
		}
		if b, err := os.ReadFile(conf); err != nil || !bytes.HasSuffix(b, []byte(edit)) {
			t.Errorf("after %s: the admin's edit of %s is gone (%v)", step, conf, err)
		}
	}

	// Upgrade to a newer version of the same package, whose template
	// changed: dpkg must not stop at a prompt (stdin is not a terminal
	// here, so a prompt would fail the install), and the edited file stays.
	tree := t.TempDir()
	mustRun(t, "", nil, "dpkg-deb", "-x", deb, tree)
	upstream := strings.TrimSuffix(strings.TrimSpace(mustRun(t, "", nil, "dpkg-deb", "-f", deb, "Version")), "-1")
	newer := upstream + "+upgrade1"
	newTemplate := append(slices.Clip(template), "# a setting the next release documents\n"...)
	if err := os.WriteFile(filepath.Join(tree, "agent.yaml"), newTemplate, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(filepath.Join(root, "installer", "packaging", "nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	spec = bytes.Replace(spec, []byte("src: installer/packaging/agent.yaml"), []byte("src: "+filepath.Join(tree, "agent.yaml")), 1)
	if err := os.WriteFile(filepath.Join(tree, "nfpm.yaml"), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, root, []string{"PKG_VERSION=" + newer, "PKG_ARCH=amd64", "AGENT_BIN=" + filepath.Join(tree, "usr", "bin", "bridge-agent")},
		nfpm, "package", "--config", filepath.Join(tree, "nfpm.yaml"), "--packager", "deb", "--target", tree+"/")
	upgrade, err := filepath.Glob(filepath.Join(tree, "*.deb"))
	if err != nil || len(upgrade) != 1 {
		t.Fatalf("upgrade package: %v %v", upgrade, err)
	}
	out = install(upgrade[0])
	if v := strings.TrimSpace(mustRun(t, "", nil, "dpkg-query", "-W", "-f=${Version}", pkg)); v != newer+"-1" {
		t.Errorf("after the upgrade: version %s, want %s-1", v, newer)
	}
	if st := status(t, pkg); st != "install ok installed" {
		t.Errorf("after the upgrade: status %q\n%s", st, out)
	}
	kept("upgrade")
	owned(identity, 0o600, uid) // postinstall gave it to the service user
	owned(conf, 0o640, 0)
	if got, _ := os.ReadFile(agentIdentity.template); !bytes.Equal(got, newTemplate) {
		t.Errorf("after the upgrade %s is not the new template", agentIdentity.template)
	}
	backup := conf + ".bak-20261204T100000Z" // as bridge-agent install leaves one
	if err := os.WriteFile(backup, template, 0o640); err != nil {
		t.Fatal(err)
	}

	// Remove: the configuration and the state stay.
	if out, err := dpkg(ctx, "--remove", pkg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	} else if !strings.Contains(out, "kept "+conf) {
		t.Errorf("dpkg -r did not say what it kept:\n%s", out)
	}
	if st := status(t, pkg); st != "deinstall ok config-files" {
		t.Errorf("after dpkg -r: status %q, want deinstall ok config-files", st)
	}
	for _, p := range []string{binary, unit, agentIdentity.template} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after dpkg -r: %s is still there (%v)", p, err)
		}
	}
	kept("remove")
	if _, err := os.Stat(logs); err != nil {
		t.Errorf("after dpkg -r: %v", err)
	}

	// Purge: postremove deletes the configuration file and its backups; the state stays.
	if out, err := dpkg(ctx, "--purge", pkg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	} else if !strings.Contains(out, "kept "+state) {
		t.Errorf("dpkg -P did not say what it kept:\n%s", out)
	}
	if st := status(t, pkg); st != "" {
		t.Errorf("after dpkg -P: status %q", st)
	}
	kept("purge")
	for _, p := range []string{conf, backup, agentIdentity.template} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after dpkg -P: %s is still there (%v)", p, err)
		}
	}
}

// status is the package's dpkg status, or "" when dpkg does not know it.
func status(t *testing.T, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", pkg).Output()
	st := strings.TrimSpace(string(out))
	if err != nil || st == "unknown ok not-installed" {
		return ""
	}
	return st
}

// dpkg runs dpkg, waiting while another dpkg or apt holds its lock.
func dpkg(ctx context.Context, args ...string) (string, error) {
	for {
		out, err := run(ctx, "", []string{"DEBIAN_FRONTEND=noninteractive"}, "dpkg", args...)
		if err == nil || !strings.Contains(out, "lock") || ctx.Err() != nil {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(time.Second):
		}
	}
}
