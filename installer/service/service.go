// Package service installs and controls bridge-agent as an operating-system
// service: a systemd unit on Linux, a service of the service control manager
// on Windows. It is a thin layer over github.com/kardianos/service that adds
// what the agent needs: the hardened systemd unit the packages also ship,
// the dedicated unprivileged user on Linux, restart on failure on both, and
// the default locations of configuration, state and logs.
package service

import (
	"context"
	_ "embed"
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

	kservice "github.com/kardianos/service"
)

// Name is the service's name on both systems (systemd unit
// mcc-bridge-agent.service; Windows service mcc-bridge-agent).
const Name = "mcc-bridge-agent"

// DisplayName is what service lists show.
const DisplayName = "MCC Bridge agent"

// Description is the service's one-line description.
const Description = "MCC Bridge agent: outbound-only tunnel to the MCC Bridge relays"

// User is the dedicated unprivileged account the agent runs as on Linux.
const User = "mcc-bridge"

// unitFile is the systemd unit, with the paths of a package install. The
// .deb and .rpm ship it as it is; Install turns it into a template for the
// binary, configuration and user it is given.
//
//go:embed mcc-bridge-agent.service
var unitFile string

// The lines of unitFile that Install rewrites.
const (
	unitExecStart = "ExecStart=/usr/bin/bridge-agent run --config /etc/mcc-bridge/agent.yaml\n"
	unitUser      = "User=mcc-bridge\nGroup=mcc-bridge\n"
)

// UnitFile returns the systemd unit as the packages install it.
func UnitFile() string { return unitFile }

// systemdTemplate is unitFile as a template of kardianos/service: its
// ExecStart runs the installed binary with Arguments, and User/Group name
// the configured user (none when it is empty).
func systemdTemplate() (string, error) {
	if strings.Count(unitFile, unitExecStart) != 1 || strings.Count(unitFile, unitUser) != 1 {
		return "", errors.New("service: the embedded unit file lost its ExecStart or User lines")
	}
	t := strings.Replace(unitFile, unitExecStart,
		"ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}\n", 1)
	t = strings.Replace(t, unitUser, "{{if UserName}}User={{UserName}}\nGroup={{UserName}}\n{{end}}", 1)
	return t, nil
}

// Paths are where an installed agent keeps its files.
type Paths struct {
	// Config is the agent configuration file.
	Config string
	// StateDir holds the enrolled identity (StateDir/pki) and the crawl
	// checkpoints (StateDir/crawl).
	StateDir string
	// LogFile is the rotating log file.
	LogFile string
}

// DefaultPaths returns the locations for this operating system: the ones
// the packages use.
func DefaultPaths() Paths { return defaultPaths(runtime.GOOS, os.Getenv) }

func defaultPaths(goos string, getenv func(string) string) Paths {
	if goos == "windows" {
		base := getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		base += `\MCC Bridge`
		return Paths{Config: base + `\agent.yaml`, StateDir: base + `\state`, LogFile: base + `\logs\agent.log`}
	}
	return Paths{
		Config:   "/etc/mcc-bridge/agent.yaml",
		StateDir: "/var/lib/mcc-bridge",
		LogFile:  "/var/log/mcc-bridge/agent.log",
	}
}

// Spec describes the service to install or control.
type Spec struct {
	// Name overrides the service name (tests). Default Name.
	Name string
	// Config is the configuration file the service runs with. Required for
	// Install.
	Config string
	// Executable is the binary the service runs. Default: this program.
	Executable string
	// UserName is the account on Linux. Default User; "-" runs as root.
	// Windows services run as WindowsAccount.
	UserName string
}

func (s Spec) name() string {
	if s.Name == "" {
		return Name
	}
	return s.Name
}

// WindowsAccount is the account the Windows service runs as (the MSI
// registers the same).
const WindowsAccount = `NT AUTHORITY\LocalService`

// userName is the Linux account, "" for root or on Windows.
func (s Spec) userName() string {
	switch {
	case runtime.GOOS == "windows", s.UserName == "-":
		return ""
	case s.UserName == "":
		return User
	}
	return s.UserName
}

// account is the service's account as the service manager takes it.
func (s Spec) account() string {
	if runtime.GOOS == "windows" {
		return WindowsAccount
	}
	return s.userName()
}

// ServiceConfig returns the kardianos/service configuration for s.
func (s Spec) ServiceConfig() (*kservice.Config, error) {
	tmpl, err := systemdTemplate()
	if err != nil {
		return nil, err
	}
	args := []string{"run"}
	if s.Config != "" {
		cfg, err := filepath.Abs(s.Config)
		if err != nil {
			return nil, fmt.Errorf("service: %w", err)
		}
		args = append(args, "--config", cfg)
	}
	return &kservice.Config{
		Name:        s.name(),
		DisplayName: DisplayName,
		Description: Description,
		UserName:    s.account(),
		Arguments:   args,
		Executable:  s.Executable,
		Option: kservice.KeyValue{
			"SystemdScript": tmpl,
			// Windows: restart 5 s after a failure; the count resets after a day.
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "5s",
			"OnFailureResetPeriod":   86400,
			"StartType":              "automatic",
			"DelayedAutoStart":       true,
			// SysV and other Linux init systems: keep restarting.
			"Restart": "on-failure",
		},
	}, nil
}

// Control installs, starts, stops and inspects the service.
type Control struct {
	spec Spec
	svc  kservice.Service
	log  *slog.Logger
}

// New returns the control for spec. prg runs the agent when the service
// manager starts this program (see Runner); it may be nil for a control
// that only installs and inspects.
func New(spec Spec, prg kservice.Interface, log *slog.Logger) (*Control, error) {
	cfg, err := spec.ServiceConfig()
	if err != nil {
		return nil, err
	}
	if prg == nil {
		prg = noProgram{}
	}
	svc, err := kservice.New(prg, cfg)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Control{spec: spec, svc: svc, log: log}, nil
}

// Service returns the underlying kardianos/service handle.
func (c *Control) Service() kservice.Service { return c.svc }

// Platform names the service manager in use, e.g. "linux-systemd" or
// "windows-service".
func (c *Control) Platform() string { return c.svc.Platform() }

// State is the service state as the service manager reports it.
type State string

// The service states.
const (
	StateRunning      State = "running"
	StateStopped      State = "stopped"
	StateNotInstalled State = "not installed"
	StateUnknown      State = "unknown"
)

// Status returns the service state.
func (c *Control) Status() (State, error) {
	st, err := c.svc.Status()
	switch {
	case errors.Is(err, kservice.ErrNotInstalled):
		return StateNotInstalled, nil
	case err != nil:
		return StateUnknown, fmt.Errorf("service %s: %w", c.spec.name(), err)
	case st == kservice.StatusRunning:
		return StateRunning, nil
	case st == kservice.StatusStopped:
		return StateStopped, nil
	}
	return StateUnknown, nil
}

// Install registers the service (enabled at boot) after making sure its
// account exists on Linux and can read the configuration and write the
// state and log directories. An installed service is left as it is.
func (c *Control) Install(ctx context.Context, paths Paths) error {
	if c.spec.Config == "" {
		return errors.New("service: install needs the configuration file")
	}
	if u := c.spec.userName(); u != "" {
		if err := EnsureUser(ctx, u, paths.StateDir); err != nil {
			return err
		}
		for _, dir := range []string{paths.StateDir, filepath.Dir(paths.LogFile)} {
			if err := OwnDir(dir, u); err != nil {
				return err
			}
		}
		if err := GroupReadable(c.spec.Config, u); err != nil {
			return err
		}
	}
	if runtime.GOOS == "windows" {
		if err := lockDown(ctx, filepath.Dir(paths.Config)); err != nil {
			return err
		}
	}
	if st, err := c.Status(); err == nil && st != StateNotInstalled {
		c.log.Info("service already installed", "service", c.spec.name(), "state", string(st))
		return nil
	}
	if err := c.svc.Install(); err != nil {
		return fmt.Errorf("service: install %s on %s: %w", c.spec.name(), c.Platform(), err)
	}
	c.log.Info("service installed", "service", c.spec.name(), "platform", c.Platform())
	return nil
}

// Uninstall stops the service and removes its registration. The
// configuration, the state (certificate, checkpoints) and the account stay.
func (c *Control) Uninstall() error {
	st, err := c.Status()
	if err == nil && st == StateNotInstalled {
		return fmt.Errorf("service %s is not installed", c.spec.name())
	}
	if pkg := packagedUnit(c.spec.name()); pkg != "" {
		return fmt.Errorf("service %s was installed by the package (%s): remove the package instead (apt remove mcc-bridge-agent, or dnf remove mcc-bridge-agent); configuration and state stay", c.spec.name(), pkg)
	}
	if st == StateRunning {
		if err := c.svc.Stop(); err != nil {
			c.log.Warn("stopping the service before removal failed", "err", err)
		}
	}
	if err := c.svc.Uninstall(); err != nil {
		return fmt.Errorf("service: uninstall %s: %w", c.spec.name(), err)
	}
	return nil
}

// Start starts the installed service.
func (c *Control) Start() error { return c.wrap("start", c.svc.Start()) }

// Stop stops the service; the agent drains its tunnel sessions first.
func (c *Control) Stop() error { return c.wrap("stop", c.svc.Stop()) }

// Restart stops and starts the service.
func (c *Control) Restart() error { return c.wrap("restart", c.svc.Restart()) }

func (c *Control) wrap(op string, err error) error {
	if err != nil {
		return fmt.Errorf("service: %s %s: %w", op, c.spec.name(), err)
	}
	return nil
}

// EnsureUser creates the system account name (its own group, no login
// shell, home home) unless it exists. It needs root.
func EnsureUser(ctx context.Context, name, home string) error {
	if _, err := user.Lookup(name); err == nil {
		return nil
	}
	shell := "/usr/sbin/nologin"
	if _, err := os.Stat(shell); err != nil {
		shell = "/bin/false"
	}
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", home, "--shell", shell, "--comment", "MCC Bridge agent", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("service: create the account %s (useradd, needs root): %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// OwnDir creates dir (mode 0750) and hands it and everything in it to the
// account name, so that the service can write its state and logs.
func OwnDir(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("service: account %s has a non-numeric uid or gid", name)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return fmt.Errorf("service: hand %s to %s: %w", path, name, err)
		}
		return nil
	})
}

// GroupReadable gives path to the group of account name, mode 0640: the
// service reads its configuration, which may hold a proxy password, and
// nobody else does.
func GroupReadable(path, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("service: account %s has a non-numeric gid", name)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}

// packagedUnit returns the unit file a .deb or .rpm installed for name, if
// it is the one systemd uses ("" otherwise, and on Windows).
func packagedUnit(name string) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	if _, err := os.Stat("/etc/systemd/system/" + name + ".service"); err == nil {
		return ""
	}
	for _, dir := range []string{"/lib/systemd/system/", "/usr/lib/systemd/system/"} {
		if _, err := os.Stat(dir + name + ".service"); err == nil {
			return dir + name + ".service"
		}
	}
	return ""
}

// lockDown makes dir (configuration, state, logs) private to the service
// account and administrators on Windows, as the MSI does: without it,
// ProgramData lets every local user read the agent's key.
func lockDown(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	out, err := exec.CommandContext(ctx, "icacls", dir, "/inheritance:r",
		"/grant:r", "*S-1-5-18:(OI)(CI)F", // SYSTEM
		"/grant:r", "*S-1-5-32-544:(OI)(CI)F", // Administrators
		"/grant:r", "*S-1-5-19:(OI)(CI)M", // LocalService
	).CombinedOutput()
	if err != nil {
		return fmt.Errorf("service: make %s private (icacls): %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// noProgram is the program of a control that never runs the agent.
type noProgram struct{}

func (noProgram) Start(kservice.Service) error { return errors.New("service: no program to run") }
func (noProgram) Stop(kservice.Service) error  { return nil }
