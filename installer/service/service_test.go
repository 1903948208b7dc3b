package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kservice "github.com/kardianos/service"
)

func TestSystemdTemplateKeepsThePackagedUnit(t *testing.T) {
	tmpl, err := systemdTemplate()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}\n",
		"{{if UserName}}User={{UserName}}\nGroup={{UserName}}\n{{end}}",
		"Restart=on-failure\n", "TimeoutStopSec=45\n", "StateDirectory=mcc-bridge\n", "NoNewPrivileges=yes\n",
	} {
		if !strings.Contains(tmpl, want) {
			t.Errorf("template lacks %q", want)
		}
	}
	// Apart from the two rewritten lines, the template is the packaged unit.
	strip := func(s string) string {
		var keep []string
		for _, l := range strings.Split(strings.ReplaceAll(s, "{{end}}", "\n"), "\n") {
			if l != "" && !strings.HasPrefix(l, "ExecStart=") && !strings.Contains(l, "User=") && !strings.Contains(l, "Group=") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip(tmpl) != strip(UnitFile()) {
		t.Error("the template and the packaged unit differ beyond ExecStart and User")
	}
}

func TestDefaultPaths(t *testing.T) {
	env := func(k string) string {
		if k == "ProgramData" {
			return `D:\PD`
		}
		return ""
	}
	tests := []struct {
		goos string
		want Paths
	}{
		{"linux", Paths{"/etc/mcc-bridge/agent.yaml", "/var/lib/mcc-bridge", "/var/log/mcc-bridge/agent.log"}},
		{"windows", Paths{`D:\PD\MCC Bridge\agent.yaml`, `D:\PD\MCC Bridge\state`, `D:\PD\MCC Bridge\logs\agent.log`}},
	}
	for _, tt := range tests {
		if got := defaultPaths(tt.goos, env); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.goos, got, tt.want)
		}
	}
}

func TestSpecServiceConfig(t *testing.T) {
	cfg, err := Spec{Config: "agent.yaml"}.ServiceConfig()
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("agent.yaml")
	if got := strings.Join(cfg.Arguments, " "); got != "run --config "+abs {
		t.Errorf("arguments %q", got)
	}
	if cfg.Name != Name || cfg.Option["OnFailure"] != "restart" {
		t.Errorf("config %+v", cfg)
	}
	wantUser := User
	if runtime.GOOS == "windows" {
		wantUser = ""
	}
	if cfg.UserName != wantUser {
		t.Errorf("user %q, want %q", cfg.UserName, wantUser)
	}
	if cfg, _ := (Spec{UserName: "-"}).ServiceConfig(); cfg.UserName != "" {
		t.Errorf(`user "-" gave %q`, cfg.UserName)
	}
}

func TestRunnerStopWaitsAndBounds(t *testing.T) {
	r := &Runner{StopTimeout: 2 * time.Second, Run: func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // the drain
		return nil
	}}
	if err := r.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(nil); err == nil {
		t.Error("second Start: no error")
	}
	start := time.Now()
	if err := r.Stop(nil); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 50*time.Millisecond || !r.Stopping() {
		t.Error("Stop did not wait for the drain")
	}

	stuck := &Runner{StopTimeout: 100 * time.Millisecond, Run: func(context.Context) error { select {} }}
	_ = stuck.Start(nil)
	if err := stuck.Stop(nil); err == nil || !strings.Contains(err.Error(), "did not stop within 100ms") {
		t.Errorf("stuck agent: %v", err)
	}

	failing := &Runner{Run: func(context.Context) error { return errors.New("bad config") }}
	_ = failing.Start(nil)
	<-failing.Done()
	if failing.Err() == nil || failing.Stopping() {
		t.Error("a failure on its own is not reported")
	}
}

type memLogger struct{ lines []string }

func (m *memLogger) Error(v ...any) error {
	m.lines = append(m.lines, "E "+fmt.Sprint(v...))
	return nil
}
func (m *memLogger) Warning(v ...any) error {
	m.lines = append(m.lines, "W "+fmt.Sprint(v...))
	return nil
}
func (m *memLogger) Info(v ...any) error {
	m.lines = append(m.lines, "I "+fmt.Sprint(v...))
	return nil
}
func (m *memLogger) Errorf(f string, v ...any) error   { return m.Error(fmt.Sprintf(f, v...)) }
func (m *memLogger) Warningf(f string, v ...any) error { return m.Warning(fmt.Sprintf(f, v...)) }
func (m *memLogger) Infof(f string, v ...any) error    { return m.Info(fmt.Sprintf(f, v...)) }

func TestSystemLogHandlerCopiesWarningsAndErrors(t *testing.T) {
	var main strings.Builder
	sys := &memLogger{}
	log := slog.New(SystemLogHandler(slog.NewTextHandler(&main, nil), sys)).With("agent", "acme/a1")
	log.Debug("hidden")
	log.Info("tunnel up")
	log.Warn("renewal retry", "in", "5s")
	log.Error("crawl failed", "site", "mkt")
	if len(sys.lines) != 2 || !strings.HasPrefix(sys.lines[0], "W ") || !strings.HasPrefix(sys.lines[1], "E ") {
		t.Fatalf("system log got %q", sys.lines)
	}
	if !strings.Contains(sys.lines[1], "agent=acme/a1") || !strings.Contains(sys.lines[1], "site=mkt") {
		t.Errorf("attributes lost: %q", sys.lines[1])
	}
	if strings.Count(main.String(), "\n") != 3 || strings.Contains(main.String(), "hidden") {
		t.Errorf("main log got %q", main.String())
	}
}

// TestSystemdInstallUninstall installs the service for real on this
// machine through kardianos/service: the unit goes to /etc/systemd/system
// and is enabled by the real systemctl (which works offline); the account
// is created with useradd. systemd is not PID 1 here, so a shim on PATH
// answers the calls that need a running systemd (daemon-reload, is-active,
// start, stop) and records them.
func TestSystemdInstallUninstall(t *testing.T) {
	if testing.Short() {
		t.Skip("installs a systemd unit and an account on this machine")
	}
	need := func(why string) {
		if os.Getenv("BRIDGE_REQUIRE_EXTERNAL") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		need("needs root on Linux")
	}
	for _, tool := range []string{"systemctl", "systemd-analyze", "useradd", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(tool + " is missing")
		}
	}
	realSystemctl, _ := exec.LookPath("systemctl")
	shim := t.TempDir()
	calls := filepath.Join(shim, "calls")
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> %q
case "$1" in
daemon-reload|start|stop|restart) exit 0 ;;
is-active) echo inactive; exit 3 ;;
esac
exec %q "$@"
`, calls, realSystemctl)
	if err := os.WriteFile(filepath.Join(shim, "systemctl"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// kardianos/service takes rpm-ostree on PATH as a sign of systemd.
	if err := os.WriteFile(filepath.Join(shim, "rpm-ostree"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", shim+":"+os.Getenv("PATH"))
	prev := kservice.AvailableSystems()
	kservice.ChooseSystem(prev...)
	t.Cleanup(func() { kservice.ChooseSystem(prev...) })
	if p := kservice.ChosenSystem().String(); p != "linux-systemd" {
		t.Fatalf("chose %s, want linux-systemd", p)
	}

	tag := strconv.Itoa(os.Getpid() % 100000)
	name, account := "mcc-bridge-agent-test-"+tag, "mccbt"+tag
	unit := "/etc/systemd/system/" + name + ".service"
	wants := "/etc/systemd/system/multi-user.target.wants/" + name + ".service"
	if _, err := user.Lookup(account); err == nil {
		t.Fatalf("account %s exists already", account)
	}
	t.Cleanup(func() {
		os.Remove(wants)
		os.Remove(unit)
		exec.Command("userdel", account).Run()
	})

	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	paths := Paths{
		Config:   filepath.Join(dir, "etc", "agent.yaml"),
		StateDir: filepath.Join(dir, "state"),
		LogFile:  filepath.Join(dir, "log", "agent.log"),
	}
	if err := os.MkdirAll(filepath.Dir(paths.Config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(paths.Config, []byte("relays: [relay.example.com:8443]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	ctl, err := New(Spec{Name: name, Config: paths.Config, Executable: exe, UserName: account}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := ctl.Status(); err != nil || st != StateNotInstalled {
		t.Fatalf("before install: %s, %v", st, err)
	}
	ctx := context.Background()
	if err := ctl.Install(ctx, paths); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		fmt.Sprintf("ExecStart=%s \"run\" \"--config\" %q\n", exe, paths.Config),
		"User=" + account + "\n", "Group=" + account + "\n", "Restart=on-failure\n", "ProtectSystem=strict\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("unit lacks %q:\n%s", want, got)
		}
	}
	if target, err := os.Readlink(wants); err != nil || target != unit {
		t.Errorf("not enabled: %q, %v", target, err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	u, err := user.Lookup(account)
	if err != nil {
		t.Fatalf("account not created: %v", err)
	}
	for _, d := range []string{paths.StateDir, filepath.Dir(paths.LogFile)} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if uid := strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Uid)); uid != u.Uid || fi.Mode().Perm() != 0o750 {
			t.Errorf("%s: owner %s mode %v, want %s 0750", d, uid, fi.Mode().Perm(), u.Uid)
		}
	}
	if fi, err := os.Stat(paths.Config); err != nil || fi.Mode().Perm() != 0o640 || strconv.Itoa(int(fi.Sys().(*syscall.Stat_t).Gid)) != u.Gid {
		t.Errorf("the configuration is not 0640 for the account's group: %v", err)
	}
	if st, err := ctl.Status(); err != nil || st != StateStopped {
		t.Errorf("after install: %s, %v", st, err)
	}
	// A second install keeps what is there.
	if err := ctl.Install(ctx, paths); err != nil {
		t.Errorf("second install: %v", err)
	}
	if err := ctl.Start(); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(filepath.Join(paths.StateDir, "agent.crt"), []byte("state"), 0o600); err != nil {
		t.Fatal(err)
	}

	if err := ctl.Uninstall(); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{unit, wants} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", gone, err)
		}
	}
	for _, kept := range []string{paths.Config, filepath.Join(paths.StateDir, "agent.crt")} {
		if _, err := os.Stat(kept); err != nil {
			t.Errorf("uninstall lost %s: %v", kept, err)
		}
	}
	if st, err := ctl.Status(); err != nil || st != StateNotInstalled {
		t.Errorf("after uninstall: %s, %v", st, err)
	}
	if err := ctl.Uninstall(); err == nil {
		t.Error("uninstalling twice: no error")
	}
	// A unit the .deb put in /lib/systemd/system is the package's to remove.
	libUnit := "/lib/systemd/system/" + name + ".service"
	if err := os.WriteFile(libUnit, []byte(UnitFile()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(libUnit) })
	if err := ctl.Uninstall(); err == nil || !strings.Contains(err.Error(), "installed by the package") {
		t.Errorf("uninstalling a packaged unit: %v", err)
	}
	if _, err := os.Stat(libUnit); err != nil {
		t.Errorf("the packaged unit was touched: %v", err)
	}

	log, _ := os.ReadFile(calls)
	for _, want := range []string{"enable " + name + ".service", "daemon-reload", "start " + name + ".service", "disable " + name + ".service"} {
		if !strings.Contains(string(log), want+"\n") {
			t.Errorf("systemctl was not asked to %q; calls:\n%s", want, log)
		}
	}
}
