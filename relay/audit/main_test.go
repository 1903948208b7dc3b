package audit_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mcc-bridge/bridge/relay/audit"
)

// TestMain fails the run if a test leaves a goroutine behind: every Log is
// closed in t.Cleanup, which waits for its writer.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// base is the timestamp of record 0; record i is i minutes later.
var base = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

// testLogger writes to the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openLog opens a Log in dir (a fresh temp dir when empty) that t.Cleanup
// closes. open, when not nil, opens the tenant files.
func openLog(t testing.TB, dir string, opts audit.Options, open func(string, int, fs.FileMode) (audit.File, error)) *audit.Log {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	var l *audit.Log
	var err error
	if open != nil {
		l, err = audit.OpenWithFiles(t.Context(), dir, opts, open)
	} else {
		l, err = audit.Open(t.Context(), dir, opts)
	}
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// newRecord is record i of tenant: its fields vary with i so that every
// filter selects a different subset.
func newRecord(tenant string, i int) audit.Record {
	ev := audit.EventDispatch
	effect := audit.EffectAllow
	if i%5 == 4 {
		ev, effect = audit.EventDispatchDenied, audit.EffectDeny
	}
	return audit.Record{
		Timestamp:    base.Add(time.Duration(i) * time.Minute),
		TraceID:      fmt.Sprintf("trace-%d", i/2),
		EventType:    ev,
		TargetSystem: []string{"sharepoint", "jira"}[i%2],
		Operation:    []string{"files.read", "files.write", "issues.create"}[i%3],
		User:         audit.User{ID: fmt.Sprintf("user-%d", i%4), Email: fmt.Sprintf("user%d@example.com", i%4), Roles: []string{"member"}},
		Tenant:       audit.Tenant{ID: tenant, Name: "Tenant " + tenant},
		Request:      audit.Redact(map[string]any{"path": fmt.Sprintf("/docs/%d.txt", i), "password": "hunter2"}),
		Response:     audit.Response{Success: ev == audit.EventDispatch, IDs: []string{fmt.Sprint("id-", i)}, LatencyMs: 12.5 + float64(i)},
		AuthMethod:   "oidc/integration-owner",
		Policy:       audit.PolicyDecision{Effect: effect, Policies: []string{"default"}, Reason: "role member"},
	}
}

// appendN appends records 0..n-1 of tenant, in order, and returns them as
// stored.
func appendN(t testing.TB, l *audit.Log, tenant string, n int) []audit.Record {
	t.Helper()
	out := make([]audit.Record, n)
	for i := range n {
		r, err := l.Append(t.Context(), newRecord(tenant, i))
		if err != nil {
			t.Fatalf("Append(%s #%d): %v", tenant, i, err)
		}
		out[i] = r
	}
	return out
}

// logPath is where a tenant's log lives under dir.
func logPath(dir, tenant string) string { return filepath.Join(dir, tenant, "audit.jsonl") }

// faults opens tenant files whose writes, syncs and truncates fail while the
// matching error is set, and whose syncs can be slowed or held.
type faults struct {
	mu          sync.Mutex
	openErr     error
	writeErr    error
	partial     bool // a failing write writes half its bytes first
	syncErr     error
	truncateErr error
	syncDelay   time.Duration
	gate        chan struct{} // when not nil, Sync waits for it to close...
	waiting     chan struct{} // ...after sending on this, when not nil
}

func (fl *faults) set(f func(fl *faults)) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	f(fl)
}

func (fl *faults) get() faults {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return faults{openErr: fl.openErr, writeErr: fl.writeErr, partial: fl.partial, syncErr: fl.syncErr,
		truncateErr: fl.truncateErr, syncDelay: fl.syncDelay, gate: fl.gate, waiting: fl.waiting}
}

func (fl *faults) open(name string, flag int, perm fs.FileMode) (audit.File, error) {
	if err := fl.get().openErr; err != nil {
		return nil, err
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: f, fl: fl}, nil
}

type faultFile struct {
	audit.File
	fl *faults
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	fl := f.fl.get()
	if fl.writeErr == nil {
		return f.File.WriteAt(b, off)
	}
	n := 0
	if fl.partial {
		n, _ = f.File.WriteAt(b[:len(b)/2], off)
	}
	return n, fl.writeErr
}

func (f *faultFile) Sync() error {
	fl := f.fl.get()
	if fl.gate != nil {
		if fl.waiting != nil {
			fl.waiting <- struct{}{}
		}
		<-fl.gate
	}
	time.Sleep(fl.syncDelay)
	if fl.syncErr != nil {
		return fl.syncErr
	}
	return f.File.Sync()
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fl.get().truncateErr; err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// errDisk is the injected I/O failure.
var errDisk = errors.New("injected disk failure")

// discard is a logger that drops everything, for benchmarks.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
