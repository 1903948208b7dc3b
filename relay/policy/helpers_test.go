package policy_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcc-bridge/bridge/relay/policy"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// testLogger returns a logger writing to t.Log and a function returning
// everything logged so far.
func testLogger(t testing.TB) (*slog.Logger, func() string) { return tunneltest.Logger(t) }

// writeFiles writes files (paths relative to dir, slash-separated) into dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// load writes files into a new directory and loads it.
func load(t testing.TB, files map[string]string) (*policy.Engine, string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	log, _ := testLogger(t)
	e, err := policy.Load(context.Background(), policy.Config{Dir: dir}, log)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e, dir
}

// counterValue is the value of the counter name with labels, 0 when absent.
func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if matches(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func matches(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// checkDecision compares a decision with the wanted one; wantReason is a
// substring of the reason.
func checkDecision(t testing.TB, got policy.Decision, wantAllow bool, wantPolicies []string, wantReason string) {
	t.Helper()
	if got.Allow != wantAllow {
		t.Errorf("Allow = %v, want %v (reason %q)", got.Allow, wantAllow, got.Reason)
	}
	if strings.Join(got.Policies, ",") != strings.Join(wantPolicies, ",") {
		t.Errorf("Policies = %q, want %q", got.Policies, wantPolicies)
	}
	if !strings.Contains(got.Reason, wantReason) {
		t.Errorf("Reason = %q, want it to contain %q", got.Reason, wantReason)
	}
}
