package policy_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcc-bridge/bridge/relay/policy"
	"github.com/prometheus/client_golang/prometheus"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		cfg      func(dir string) policy.Config
		wantFile string // the ParseError's file, relative to dir; "" when no ParseError
		wantLine int
		wantErr  []string // substrings of the error
	}{
		{
			name: "syntax error names file and position",
			files: map[string]string{
				"acme/a.cedar": `permit (principal, action, resource);`,
				"acme/b.cedar": "permit (principal, action, resource);\n\nforbid (principal, action resource);",
			},
			wantFile: "acme/b.cedar", wantLine: 3, wantErr: []string{"acme/b.cedar:3:"},
		},
		{
			name:     "error in global folder",
			files:    map[string]string{"acme/a.cedar": `permit (principal, action, resource);`, "_global/g.cedar": `forbid (principal, action, resource) when { context.pii == };`},
			wantFile: "_global/g.cedar", wantLine: 1, wantErr: []string{"_global/g.cedar:1:"},
		},
		{
			name:     "unknown function",
			files:    map[string]string{"acme/a.cedar": `permit (principal, action, resource) when { nope(1) };`},
			wantFile: "acme/a.cedar", wantLine: 1, wantErr: []string{"acme/a.cedar:1:", "nope"},
		},
		{
			name: "duplicate id across files",
			files: map[string]string{
				"acme/a.cedar": `@id("x") permit (principal, action, resource);`,
				"acme/b.cedar": "// second\n@id(\"x\") forbid (principal, action, resource);",
			},
			wantFile: "acme/b.cedar", wantLine: 2, wantErr: []string{`acme/b.cedar:2:1: duplicate policy id "x", first used at `, "acme/a.cedar:1:1"},
		},
		{
			name:     "id reserved for global policies",
			files:    map[string]string{"acme/a.cedar": `@id("_global/x") permit (principal, action, resource);`},
			wantFile: "acme/a.cedar", wantLine: 1, wantErr: []string{"reserved"},
		},
		{
			name:     "empty id",
			files:    map[string]string{"acme/a.cedar": `@id("") permit (principal, action, resource);`},
			wantFile: "acme/a.cedar", wantLine: 1, wantErr: []string{"empty @id"},
		},
		{
			name:    "missing directory",
			cfg:     func(dir string) policy.Config { return policy.Config{Dir: filepath.Join(dir, "nope")} },
			wantErr: []string{"read policy directory", "nope"},
		},
		{
			name:    "no directory configured",
			cfg:     func(string) policy.Config { return policy.Config{} },
			wantErr: []string{"Config.Dir is required"},
		},
		{
			name:    "negative interval",
			cfg:     func(dir string) policy.Config { return policy.Config{Dir: dir, ReloadInterval: -time.Second} },
			wantErr: []string{"negative Config.ReloadInterval"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			cfg := policy.Config{Dir: dir}
			if tt.cfg != nil {
				cfg = tt.cfg(dir)
			}
			log, _ := testLogger(t)
			e, err := policy.Load(context.Background(), cfg, log)
			if err == nil {
				t.Fatalf("Load: got engine %v and nil error, want an error", e)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), filepath.FromSlash(want)) {
					t.Errorf("Load error %q, want it to contain %q", err, want)
				}
			}
			var pe *policy.ParseError
			switch {
			case tt.wantFile == "":
				if errors.As(err, &pe) {
					t.Errorf("Load error %v is a ParseError, want another error", err)
				}
			case !errors.As(err, &pe):
				t.Errorf("Load error %v is no ParseError", err)
			default:
				if want := filepath.Join(dir, filepath.FromSlash(tt.wantFile)); pe.File != want {
					t.Errorf("ParseError.File = %q, want %q", pe.File, want)
				}
				if pe.Line != tt.wantLine || pe.Column < 1 {
					t.Errorf("ParseError position = %d:%d, want line %d and a column", pe.Line, pe.Column, tt.wantLine)
				}
			}
		})
	}
}

// reloadEnv is an engine over a temporary directory, with its metrics and log.
type reloadEnv struct {
	e      *policy.Engine
	dir    string
	reg    *prometheus.Registry
	logged func() string
}

func newReloadEnv(t *testing.T, files map[string]string, interval time.Duration) *reloadEnv {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	reg := prometheus.NewRegistry()
	m, err := policy.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	log, logged := testLogger(t)
	e, err := policy.Load(context.Background(), policy.Config{Dir: dir, ReloadInterval: interval, Metrics: m}, log)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return &reloadEnv{e: e, dir: dir, reg: reg, logged: logged}
}

func (r *reloadEnv) reloadErrors(t *testing.T) float64 {
	return counterValue(t, r.reg, "bridge_policy_reload_errors_total", nil)
}

// allowed decides read() for tenant and returns whether it is allowed.
func (r *reloadEnv) allowed(tenant string) bool {
	return r.e.Decide(context.Background(), with(func(q *policy.Request) { q.Tenant = tenant })).Allow
}

func TestReload(t *testing.T) {
	const (
		permit = `permit (principal, action, resource);`
		forbid = `forbid (principal, action, resource);`
		broken = `permit (principal, action resource);`
	)
	// Each step changes files (a nil value removes the path) and reloads.
	type step struct {
		name        string
		files       map[string]*string
		wantErr     string // substring of Reload's error; "" for none
		wantVersion int64
		wantAllowed map[string]bool
		wantTenants []string
		wantCount   float64 // reload errors counted so far
	}
	s := func(v string) *string { return &v }
	tests := []struct {
		name  string
		start map[string]string
		steps []step
	}{
		{
			name:  "changed file is picked up",
			start: map[string]string{"acme/main.cedar": forbid},
			steps: []step{
				{name: "no change", wantVersion: 1, wantAllowed: map[string]bool{"acme": false}, wantTenants: []string{"acme"}},
				{name: "permit", files: map[string]*string{"acme/main.cedar": s(permit)}, wantVersion: 2, wantAllowed: map[string]bool{"acme": true}, wantTenants: []string{"acme"}},
				{name: "same again", files: map[string]*string{"acme/main.cedar": s(permit)}, wantVersion: 2, wantAllowed: map[string]bool{"acme": true}, wantTenants: []string{"acme"}},
				{name: "new file forbids", files: map[string]*string{"acme/z.cedar": s(forbid)}, wantVersion: 3, wantAllowed: map[string]bool{"acme": false}, wantTenants: []string{"acme"}},
				{name: "file removed", files: map[string]*string{"acme/z.cedar": nil}, wantVersion: 4, wantAllowed: map[string]bool{"acme": true}, wantTenants: []string{"acme"}},
				{name: "other files ignored", files: map[string]*string{"acme/notes.txt": s(forbid), "acme/.main.cedar.swp": s(forbid)}, wantVersion: 4, wantAllowed: map[string]bool{"acme": true}, wantTenants: []string{"acme"}},
			},
		},
		{
			name:  "broken edit keeps the old policies",
			start: map[string]string{"acme/main.cedar": permit, "globex/main.cedar": forbid},
			steps: []step{
				{name: "break acme", files: map[string]*string{"acme/main.cedar": s(broken)}, wantErr: filepath.FromSlash("acme/main.cedar:1:"),
					wantVersion: 1, wantAllowed: map[string]bool{"acme": true, "globex": false}, wantTenants: []string{"acme", "globex"}, wantCount: 1},
				{name: "still broken, counted once", wantErr: filepath.FromSlash("acme/main.cedar:1:"),
					wantVersion: 1, wantAllowed: map[string]bool{"acme": true, "globex": false}, wantTenants: []string{"acme", "globex"}, wantCount: 1},
				{name: "other tenant still reloads", files: map[string]*string{"globex/main.cedar": s(permit)}, wantErr: filepath.FromSlash("acme/main.cedar:1:"),
					wantVersion: 2, wantAllowed: map[string]bool{"acme": true, "globex": true}, wantTenants: []string{"acme", "globex"}, wantCount: 1},
				{name: "broken differently, counted again", files: map[string]*string{"acme/main.cedar": s("\n" + broken)}, wantErr: filepath.FromSlash("acme/main.cedar:2:"),
					wantVersion: 2, wantAllowed: map[string]bool{"acme": true, "globex": true}, wantTenants: []string{"acme", "globex"}, wantCount: 2},
				{name: "fixed", files: map[string]*string{"acme/main.cedar": s(forbid)},
					wantVersion: 3, wantAllowed: map[string]bool{"acme": false, "globex": true}, wantTenants: []string{"acme", "globex"}, wantCount: 2},
			},
		},
		{
			name:  "broken global keeps the old globals",
			start: map[string]string{"acme/main.cedar": permit, "_global/g.cedar": forbid},
			steps: []step{
				{name: "break global", files: map[string]*string{"_global/g.cedar": s(broken)}, wantErr: filepath.FromSlash("_global/g.cedar:1:"),
					wantVersion: 1, wantAllowed: map[string]bool{"acme": false}, wantTenants: []string{"acme"}, wantCount: 1},
				{name: "new tenant gets the old globals", files: map[string]*string{"globex/main.cedar": s(permit)}, wantErr: filepath.FromSlash("_global/g.cedar:1:"),
					wantVersion: 2, wantAllowed: map[string]bool{"acme": false, "globex": false}, wantTenants: []string{"acme", "globex"}, wantCount: 1},
				{name: "global fixed", files: map[string]*string{"_global/g.cedar": s("// no rules\n")},
					wantVersion: 3, wantAllowed: map[string]bool{"acme": true, "globex": true}, wantTenants: []string{"acme", "globex"}, wantCount: 1},
			},
		},
		{
			name:  "tenant folders come and go",
			start: map[string]string{"acme/main.cedar": permit, "globex/main.cedar": permit, "_global/g.cedar": `forbid (principal, action, resource) when { context.tenant == "globex" };`},
			steps: []step{
				{name: "start", wantVersion: 1, wantAllowed: map[string]bool{"acme": true, "globex": false}, wantTenants: []string{"acme", "globex"}},
				{name: "remove acme", files: map[string]*string{"acme": nil}, wantVersion: 2, wantAllowed: map[string]bool{"acme": false, "globex": false}, wantTenants: []string{"globex"}},
				{name: "remove global", files: map[string]*string{"_global": nil}, wantVersion: 3, wantAllowed: map[string]bool{"acme": false, "globex": true}, wantTenants: []string{"globex"}},
				{name: "new tenant broken", files: map[string]*string{"initech/main.cedar": s(broken)}, wantErr: filepath.FromSlash("initech/main.cedar:1:"),
					wantVersion: 3, wantAllowed: map[string]bool{"initech": false, "globex": true}, wantTenants: []string{"globex"}, wantCount: 1},
				{name: "broken tenant removed", files: map[string]*string{"initech": nil}, wantVersion: 3, wantAllowed: map[string]bool{"initech": false}, wantTenants: []string{"globex"}, wantCount: 1},
				{name: "acme back", files: map[string]*string{"acme/main.cedar": s(permit)}, wantVersion: 4, wantAllowed: map[string]bool{"acme": true}, wantTenants: []string{"acme", "globex"}, wantCount: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newReloadEnv(t, tt.start, 0)
			for _, st := range tt.steps {
				applyFiles(t, env.dir, st.files)
				err := env.e.Reload(context.Background())
				version, lastErr := env.e.Loaded()
				switch {
				case st.wantErr == "" && err != nil:
					t.Errorf("%s: Reload: %v, want nil", st.name, err)
				case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
					t.Errorf("%s: Reload: %v, want an error containing %q", st.name, err, st.wantErr)
				case (lastErr == nil) != (err == nil):
					t.Errorf("%s: Loaded error %v, Reload error %v: want both or neither", st.name, lastErr, err)
				}
				if st.wantErr != "" {
					var pe *policy.ParseError
					if !errors.As(lastErr, &pe) {
						t.Errorf("%s: Loaded error %v is no ParseError", st.name, lastErr)
					}
				}
				if version != st.wantVersion {
					t.Errorf("%s: version %d, want %d", st.name, version, st.wantVersion)
				}
				for tenant, want := range st.wantAllowed {
					if got := env.allowed(tenant); got != want {
						t.Errorf("%s: tenant %s allowed = %v, want %v", st.name, tenant, got, want)
					}
				}
				if got := env.e.Tenants(); !slices.Equal(got, st.wantTenants) {
					t.Errorf("%s: Tenants() = %q, want %q", st.name, got, st.wantTenants)
				}
				if got := env.reloadErrors(t); got != st.wantCount {
					t.Errorf("%s: reload_errors_total = %v, want %v", st.name, got, st.wantCount)
				}
			}
		})
	}
}

// applyFiles writes files (paths relative to dir); a nil content removes
// the path and everything under it.
func applyFiles(t *testing.T, dir string, files map[string]*string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if content == nil {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		writeFiles(t, dir, map[string]string{name: *content})
	}
}

func TestReloadLogsOncePerChange(t *testing.T) {
	env := newReloadEnv(t, map[string]string{"acme/main.cedar": `permit (principal, action, resource);`}, 0)
	writeFiles(t, env.dir, map[string]string{"acme/main.cedar": `permit (principal action, resource);`})
	for range 3 {
		if err := env.e.Reload(context.Background()); err == nil {
			t.Fatal("Reload of a broken file: got nil error")
		}
	}
	if got := strings.Count(env.logged(), "policy reload failed"); got != 1 {
		t.Errorf("logged the failure %d times, want once", got)
	}
}

func TestReloadUnreadableDir(t *testing.T) {
	env := newReloadEnv(t, map[string]string{"acme/main.cedar": `permit (principal, action, resource);`}, 0)
	moved := env.dir + ".moved"
	if err := os.Rename(env.dir, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(moved) })
	for range 2 {
		if err := env.e.Reload(context.Background()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Reload of a missing dir: %v, want ErrNotExist", err)
		}
	}
	if !env.allowed("acme") {
		t.Error("acme denied after its directory vanished: want the loaded policies kept")
	}
	if got := env.reloadErrors(t); got != 1 {
		t.Errorf("reload_errors_total = %v, want 1", got)
	}
	if err := os.Rename(moved, env.dir); err != nil {
		t.Fatal(err)
	}
	if err := env.e.Reload(context.Background()); err != nil {
		t.Errorf("Reload after the directory came back: %v", err)
	}
}

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 2 * time.Second
		env := newReloadEnv(t, map[string]string{"acme/main.cedar": `forbid (principal, action, resource);`}, interval)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- env.e.Run(ctx) }()

		writeFiles(t, env.dir, map[string]string{"acme/main.cedar": `permit (principal, action, resource);`})
		time.Sleep(interval / 2)
		synctest.Wait()
		if env.allowed("acme") {
			t.Error("reloaded before the interval elapsed")
		}
		time.Sleep(interval)
		synctest.Wait()
		if !env.allowed("acme") {
			t.Error("changed file not picked up after one interval")
		}
		if v, err := env.e.Loaded(); v != 2 || err != nil {
			t.Errorf("Loaded() = %d, %v; want 2, nil", v, err)
		}

		writeFiles(t, env.dir, map[string]string{"acme/main.cedar": `permit (principal, action resource);`})
		time.Sleep(interval)
		synctest.Wait()
		if _, err := env.e.Loaded(); err == nil {
			t.Error("broken file: Loaded reports no error")
		}
		if !env.allowed("acme") {
			t.Error("broken file replaced the loaded policies")
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	})
}
