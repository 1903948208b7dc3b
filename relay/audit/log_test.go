package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

func TestAppendQuery(t *testing.T) {
	l := openLog(t, "", audit.Options{}, nil)
	recs := appendN(t, l, "acme", 30)

	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d: got seq %d, want %d", i, r.Seq, i+1)
		}
		wantPrev := strings.Repeat("0", 64)
		if i > 0 {
			wantPrev = recs[i-1].Hash
		}
		if r.PrevHash != wantPrev {
			t.Fatalf("record %d: got prevHash %s, want %s", i, r.PrevHash, wantPrev)
		}
		if len(r.Hash) != 64 {
			t.Fatalf("record %d: got hash %q, want 64 hex digits", i, r.Hash)
		}
	}

	tests := []struct {
		name string
		q    audit.Query
		want func(r audit.Record) bool // nil: every record
		max  int                       // most records expected; 0 means no limit
	}{
		{name: "all", q: audit.Query{}},
		{name: "user", q: audit.Query{UserID: "user-1"}, want: func(r audit.Record) bool { return r.User.ID == "user-1" }},
		{name: "target", q: audit.Query{TargetSystem: "jira"}, want: func(r audit.Record) bool { return r.TargetSystem == "jira" }},
		{name: "operation", q: audit.Query{Operation: "files.write"}, want: func(r audit.Record) bool { return r.Operation == "files.write" }},
		{name: "trace", q: audit.Query{TraceID: "trace-7"}, want: func(r audit.Record) bool { return r.TraceID == "trace-7" }},
		{name: "event type", q: audit.Query{EventType: audit.EventDispatchDenied}, want: func(r audit.Record) bool { return r.EventType == audit.EventDispatchDenied }},
		{
			name: "since until", q: audit.Query{Since: base.Add(5 * time.Minute), Until: base.Add(9 * time.Minute)},
			want: func(r audit.Record) bool { return r.Seq >= 6 && r.Seq <= 9 },
		},
		{
			name: "since in another zone", q: audit.Query{Since: base.Add(25 * time.Minute).In(time.FixedZone("CET", 3600))},
			want: func(r audit.Record) bool { return r.Seq >= 26 },
		},
		{name: "after", q: audit.Query{After: 25}, want: func(r audit.Record) bool { return r.Seq > 25 }},
		{name: "limit", q: audit.Query{Limit: 4}, max: 4},
		{
			name: "combined", q: audit.Query{UserID: "user-0", TargetSystem: "sharepoint", After: 4, Until: base.Add(20 * time.Minute)},
			want: func(r audit.Record) bool {
				return r.User.ID == "user-0" && r.TargetSystem == "sharepoint" && r.Seq > 4 && r.Seq <= 20
			},
		},
		{name: "no match", q: audit.Query{UserID: "nobody"}, want: func(audit.Record) bool { return false }},
		{name: "value only in request does not match", q: audit.Query{Operation: "/docs/3.txt"}, want: func(audit.Record) bool { return false }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.q.Tenant = "acme"
			got, err := l.Query(t.Context(), tc.q)
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			var want []audit.Record
			for _, r := range recs {
				if tc.want == nil || tc.want(r) {
					want = append(want, r)
				}
			}
			if tc.max > 0 && len(want) > tc.max {
				want = want[:tc.max]
			}
			if gs, ws := seqs(got), seqs(want); !slices.Equal(gs, ws) {
				t.Fatalf("got seqs %v, want %v", gs, ws)
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("seq %d: got %+v, want %+v (as Append returned it)", got[i].Seq, got[i], want[i])
				}
			}
		})
	}

	t.Run("paging with the cursor", func(t *testing.T) {
		var all []uint64
		after := uint64(0)
		for pages := 0; ; pages++ {
			page, err := l.Query(t.Context(), audit.Query{Tenant: "acme", Limit: 7, After: after})
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if len(page) == 0 {
				if pages != 5 {
					t.Errorf("got %d pages, want 5", pages)
				}
				break
			}
			all = append(all, seqs(page)...)
			after = page[len(page)-1].Seq
		}
		if want := seqs(recs); !slices.Equal(all, want) {
			t.Fatalf("got seqs %v, want %v", all, want)
		}
	})
}

func seqs(rs []audit.Record) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func TestQueryLimits(t *testing.T) {
	l := openLog(t, "", audit.Options{}, nil)
	const n = 1100
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := l.Append(t.Context(), newRecord("acme", i)); err != nil {
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()

	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"zero means default", 0, audit.DefaultLimit},
		{"explicit", 10, 10},
		{"at max", audit.MaxLimit, audit.MaxLimit},
		{"above max is clamped", 5000, audit.MaxLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Query(t.Context(), audit.Query{Tenant: "acme", Limit: tc.limit})
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if len(got) != tc.want {
				t.Fatalf("got %d records, want %d", len(got), tc.want)
			}
		})
	}
}

func TestQueryInvalid(t *testing.T) {
	l := openLog(t, "", audit.Options{}, nil)
	appendN(t, l, "acme", 1)
	tests := []struct {
		name string
		q    audit.Query
	}{
		{"no tenant", audit.Query{}},
		{"path in tenant", audit.Query{Tenant: "../acme"}},
		{"upper case tenant", audit.Query{Tenant: "Acme"}},
		{"negative limit", audit.Query{Tenant: "acme", Limit: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := l.Query(t.Context(), tc.q)
			if !errors.Is(err, audit.ErrInvalid) {
				t.Fatalf("got %d records, error %v; want ErrInvalid", len(got), err)
			}
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{}, nil)
	appendN(t, l, "globex", 3)
	before, err := os.ReadFile(logPath(dir, "globex"))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "acme", 5)
	appendN(t, l, "_unauthenticated", 2) // a reserved pseudo-tenant

	after, err := os.ReadFile(logPath(dir, "globex"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("globex's file changed when acme appended")
	}
	if bytes.Contains(after, []byte(`"acme"`)) {
		t.Errorf("globex's file mentions acme")
	}

	tests := []struct {
		tenant   string
		wantSeqs []uint64
	}{
		{"acme", []uint64{1, 2, 3, 4, 5}},
		{"globex", []uint64{1, 2, 3}},
		{"_unauthenticated", []uint64{1, 2}},
		{"initech", []uint64{}},
	}
	for _, tc := range tests {
		t.Run(tc.tenant, func(t *testing.T) {
			got, err := l.Query(t.Context(), audit.Query{Tenant: tc.tenant, Limit: audit.MaxLimit})
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if !slices.Equal(seqs(got), tc.wantSeqs) {
				t.Errorf("got seqs %v, want %v", seqs(got), tc.wantSeqs)
			}
			for _, r := range got {
				if r.Tenant.ID != tc.tenant {
					t.Errorf("seq %d: got tenant %q, want %q", r.Seq, r.Tenant.ID, tc.tenant)
				}
			}
			if _, err := os.Stat(logPath(dir, "initech")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("querying created a file for initech: %v", err)
			}
		})
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(t.Context(), dir)
	if err != nil || res.Tenants != 3 || res.Records != 10 {
		t.Fatalf("Verify: got %+v, %v; want 3 tenants, 10 records", res, err)
	}
	l = openLog(t, dir, audit.Options{}, nil)
	if seq, _, err := l.Head("_unauthenticated"); seq != 2 || err != nil {
		t.Errorf("after reopen, Head(_unauthenticated): got %d, %v; want 2", seq, err)
	}
}

func TestGroupCommit(t *testing.T) {
	const n = 200
	tests := []struct {
		name      string
		tenants   []string
		syncDelay time.Duration
		maxSyncs  int64 // 0: only logged (real fsync, timing depends on the disk)
	}{
		{"one tenant, slow disk", []string{"acme"}, 2 * time.Millisecond, n / 10},
		{"four tenants, slow disk", []string{"acme", "globex", "initech", "umbrella"}, 2 * time.Millisecond, n / 5},
		{"one tenant, real disk", []string{"acme"}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fl := &faults{syncDelay: tc.syncDelay}
			l := openLog(t, dir, audit.Options{}, fl.open)
			var wg sync.WaitGroup
			var mu sync.Mutex
			got := map[string][]uint64{}
			start := time.Now()
			for i := range n {
				wg.Go(func() {
					tenant := tc.tenants[i%len(tc.tenants)]
					r, err := l.Append(t.Context(), newRecord(tenant, i))
					if err != nil {
						t.Errorf("Append: %v", err)
						return
					}
					mu.Lock()
					got[tenant] = append(got[tenant], r.Seq)
					mu.Unlock()
				})
			}
			wg.Wait()
			took := time.Since(start)
			syncs := audit.Syncs(l)
			t.Logf("%d appends over %d tenants: %d fsyncs (%.1f records/fsync) in %v", n, len(tc.tenants), syncs, float64(n)/float64(syncs), took)
			if tc.maxSyncs > 0 && syncs > tc.maxSyncs {
				t.Errorf("got %d fsyncs for %d appends, want at most %d", syncs, n, tc.maxSyncs)
			}
			for _, tenant := range tc.tenants {
				s := got[tenant]
				slices.Sort(s)
				want := make([]uint64, n/len(tc.tenants))
				for i := range want {
					want[i] = uint64(i + 1)
				}
				if !slices.Equal(s, want) {
					t.Errorf("tenant %s: got seqs %v, want 1..%d once each", tenant, s, len(want))
				}
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, err := audit.Verify(t.Context(), dir); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestReopenContinuesChain(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{}, nil)
	first := appendN(t, l, "acme", 3)
	appendN(t, l, "globex", 2)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l = openLog(t, dir, audit.Options{}, nil)
	tests := []struct {
		tenant   string
		wantSeq  uint64
		wantPrev string
	}{
		{"acme", 4, first[2].Hash},
		{"globex", 3, ""}, // checked against Head below
	}
	for _, tc := range tests {
		t.Run(tc.tenant, func(t *testing.T) {
			seq, hash, err := l.Head(tc.tenant)
			if err != nil {
				t.Fatalf("Head: %v", err)
			}
			if seq != tc.wantSeq-1 {
				t.Errorf("Head: got seq %d, want %d", seq, tc.wantSeq-1)
			}
			if tc.wantPrev == "" {
				tc.wantPrev = hash
			}
			r, err := l.Append(t.Context(), newRecord(tc.tenant, 9))
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if r.Seq != tc.wantSeq || r.PrevHash != tc.wantPrev {
				t.Errorf("got seq %d prevHash %s, want seq %d prevHash %s", r.Seq, r.PrevHash, tc.wantSeq, tc.wantPrev)
			}
		})
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	res, err := audit.Verify(t.Context(), dir)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if res.Tenants != 2 || res.Records != 7 {
		t.Errorf("Verify: got %d tenants %d records, want 2 and 7", res.Tenants, res.Records)
	}
}

func TestOpenRepairsTornLine(t *testing.T) {
	tests := []struct {
		name string
		good int    // records before the torn line
		torn string // bytes of the write that crashed
	}{
		{"half a record", 3, `{"timestamp":"2025-03-14T09:00:00Z","traceId":"tr`},
		{"zeros from a lost block", 3, "\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"only line of the file", 0, `{"timestamp":"2025`},
		{"one byte", 2, `{`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, audit.Options{}, nil)
			recs := appendN(t, l, "acme", max(tc.good, 1))[:tc.good]
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			path := logPath(dir, "acme")
			if tc.good == 0 {
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
			}
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, append(slices.Clip(good), tc.torn...), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := audit.Verify(t.Context(), dir); !errors.Is(err, audit.ErrChainBroken) || !strings.Contains(err.Error(), "torn") {
				t.Errorf("Verify before repair: got %v, want a torn-line ChainError", err)
			}

			logger, logs := tunneltest.Logger(t)
			l = openLog(t, dir, audit.Options{Logger: logger}, nil)
			if !strings.Contains(logs(), "torn") {
				t.Errorf("Open logged %q, want a line about the torn write", logs())
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, good) {
				t.Errorf("after Open the file has %d bytes, want the %d good ones", len(after), len(good))
			}
			r, err := l.Append(t.Context(), newRecord("acme", 50))
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			wantPrev := strings.Repeat("0", 64)
			if tc.good > 0 {
				wantPrev = recs[tc.good-1].Hash
			}
			if r.Seq != uint64(tc.good+1) || r.PrevHash != wantPrev {
				t.Errorf("got seq %d prevHash %s, want seq %d prevHash %s", r.Seq, r.PrevHash, tc.good+1, wantPrev)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := audit.Verify(t.Context(), dir); err != nil {
				t.Errorf("Verify after repair: %v", err)
			}
		})
	}
}

func TestOpenRefusesBadLastRecord(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(last []byte) []byte
	}{
		{"edited", func(last []byte) []byte { return bytes.Replace(last, []byte("user-2"), []byte("user-9"), 1) }},
		{"not json", func([]byte) []byte { return []byte("garbage") }},
		{"another tenant's record", func(last []byte) []byte { return bytes.Replace(last, []byte(`"id":"acme"`), []byte(`"id":"evil"`), 1) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, audit.Options{}, nil)
			appendN(t, l, "acme", 3)
			l.Close()
			path := logPath(dir, "acme")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := bytes.SplitAfter(b, []byte("\n"))
			last := bytes.TrimSuffix(lines[2], []byte("\n"))
			lines[2] = append(tc.mutate(slices.Clone(last)), '\n')
			if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
				t.Fatal(err)
			}
			l2, err := audit.Open(t.Context(), dir, audit.Options{Logger: testLogger(t)})
			if err == nil {
				l2.Close()
				t.Fatal("Open succeeded, want ErrChainBroken")
			}
			if !errors.Is(err, audit.ErrChainBroken) || !strings.Contains(err.Error(), "tenant acme") {
				t.Fatalf("Open: got %v, want ErrChainBroken naming tenant acme", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	l := openLog(t, "", audit.Options{}, nil)
	appendN(t, l, "acme", 1)
	for i := range 2 {
		if err := l.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := l.Append(t.Context(), newRecord("acme", 1)); return err }},
		{"Query", func() error { _, err := l.Query(t.Context(), audit.Query{Tenant: "acme"}); return err }},
		{"Head", func() error { _, _, err := l.Head("acme"); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, audit.ErrClosed) {
				t.Fatalf("%s after Close: got %v, want ErrClosed", tc.name, err)
			}
		})
	}
}

func TestCloseFlushesPending(t *testing.T) {
	dir := t.TempDir()
	fl := &faults{syncDelay: time.Millisecond}
	l := openLog(t, dir, audit.Options{MaxBatch: 8}, fl.open)
	const n = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []uint64
	for i := range n {
		wg.Go(func() {
			r, err := l.Append(t.Context(), newRecord("acme", i))
			switch {
			case err == nil:
				mu.Lock()
				acked = append(acked, r.Seq)
				mu.Unlock()
			case !errors.Is(err, audit.ErrClosed):
				t.Errorf("Append during Close: got %v, want success or ErrClosed", err)
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	t.Logf("%d of %d appends acknowledged before Close", len(acked), n)

	l = openLog(t, dir, audit.Options{}, nil)
	got, err := l.Query(t.Context(), audit.Query{Tenant: "acme", Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(acked)
	if !slices.Equal(seqs(got), acked) {
		t.Fatalf("after reopen got seqs %v, want the acknowledged %v", seqs(got), acked)
	}
}

func TestAppendInvalid(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{}, nil)
	tests := []struct {
		name   string
		mutate func(r *audit.Record)
	}{
		{"no tenant", func(r *audit.Record) { r.Tenant.ID = "" }},
		{"path in tenant", func(r *audit.Record) { r.Tenant.ID = "../etc" }},
		{"upper case tenant", func(r *audit.Record) { r.Tenant.ID = "Acme" }},
		{"tenant too long", func(r *audit.Record) { r.Tenant.ID = strings.Repeat("a", 64) }},
		{"underscore alone", func(r *audit.Record) { r.Tenant.ID = "_" }},
		{"two underscores", func(r *audit.Record) { r.Tenant.ID = "__x" }},
		{"underscore inside", func(r *audit.Record) { r.Tenant.ID = "a_b" }},
		{"no event type", func(r *audit.Record) { r.EventType = "" }},
		{"request not json", func(r *audit.Record) { r.Request = json.RawMessage(`{"a":`) }},
		{"latency NaN", func(r *audit.Record) { r.Response.LatencyMs = math.NaN() }},
		{"year 10000", func(r *audit.Record) { r.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecord("acme", 0)
			tc.mutate(&r)
			got, err := l.Append(t.Context(), r)
			if !errors.Is(err, audit.ErrInvalid) {
				t.Fatalf("got seq %d, error %v; want ErrInvalid", got.Seq, err)
			}
		})
	}
	if seq, _, _ := l.Head("acme"); seq != 0 {
		t.Errorf("after refused appends got head seq %d, want 0", seq)
	}
}

// TestAppendEncodings stores values whose JSON encoding is tricky and checks
// that Verify, which requires every line to be exactly Marshal of its
// record, accepts them and that Query returns them intact.
func TestAppendEncodings(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *audit.Record)
		check  func(t *testing.T, got audit.Record)
	}{
		{"html characters", func(r *audit.Record) { r.Operation = "<script>&</script>" }, nil},
		{"line separators", func(r *audit.Record) { r.Policy.Reason = "a\u2028b\u2029c\nd\te\x01" }, nil},
		{"emoji and accents", func(r *audit.Record) { r.User.Email = "zoë+🚀@example.com" }, nil},
		{"invalid utf-8", func(r *audit.Record) { r.TraceID = "bad\xffbyte" }, func(t *testing.T, got audit.Record) {
			if got.TraceID != "bad\uFFFDbyte" {
				t.Errorf("got traceId %q, want the bad byte as U+FFFD", got.TraceID)
			}
		}},
		{"literal U+FFFD", func(r *audit.Record) { r.TraceID = "x\uFFFDy" }, nil},
		{"nil and empty slices", func(r *audit.Record) { r.User.Roles = nil; r.Response.IDs = []string{} }, nil},
		{"request with spaces and html", func(r *audit.Record) { r.Request = json.RawMessage(" { \"q\" : \"<b>\" , \"n\": [1, 2.50] } ") }, nil},
		{"nil request", func(r *audit.Record) { r.Request = nil }, nil},
		{"request with unicode escapes", func(r *audit.Record) { r.Request = json.RawMessage(`{"q":"\u00e9\ufffd"}`) }, nil},
		{"awkward floats", func(r *audit.Record) { r.Response.LatencyMs = 0.1 + 0.2 }, nil},
		{"huge float", func(r *audit.Record) { r.Response.LatencyMs = 1e21 }, nil},
		{"negative zero", func(r *audit.Record) { r.Response.LatencyMs = math.Copysign(0, -1) }, nil},
		{"local time zone", func(r *audit.Record) { r.Timestamp = time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", -7*3600)) }, nil},
		{"zero timestamp is filled", func(r *audit.Record) { r.Timestamp = time.Time{} }, func(t *testing.T, got audit.Record) {
			if !got.Timestamp.Equal(base.Add(time.Hour)) {
				t.Errorf("got timestamp %v, want Options.Now's %v", got.Timestamp, base.Add(time.Hour))
			}
		}},
		{"chain fields passed in are ignored", func(r *audit.Record) { r.Seq, r.PrevHash, r.Hash = 99, "x", "y" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, audit.Options{Now: func() time.Time { return base.Add(time.Hour) }}, nil)
			appendN(t, l, "acme", 1)
			r := newRecord("acme", 1)
			tc.mutate(&r)
			stored, err := l.Append(t.Context(), r)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if stored.Seq != 2 {
				t.Errorf("got seq %d, want 2", stored.Seq)
			}
			got, err := l.Query(t.Context(), audit.Query{Tenant: "acme", After: 1})
			if err != nil || len(got) != 1 {
				t.Fatalf("Query: got %d records, %v; want 1", len(got), err)
			}
			if got[0].Hash != stored.Hash || !got[0].Timestamp.Equal(stored.Timestamp) {
				t.Errorf("got hash %s at %v, want %s at %v", got[0].Hash, got[0].Timestamp, stored.Hash, stored.Timestamp)
			}
			if tc.check != nil {
				tc.check(t, got[0])
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := audit.Verify(t.Context(), dir); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			// Reopening checks the last record again.
			openLog(t, dir, audit.Options{}, nil)
		})
	}
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(fl *faults)
		sticky bool // later appends fail after the fault is cleared, until reopen
	}{
		{"write fails", func(fl *faults) { fl.writeErr = errDisk }, false},
		{"write fails part way", func(fl *faults) { fl.writeErr, fl.partial = errDisk, true }, false},
		{"fsync fails", func(fl *faults) { fl.syncErr = errDisk }, true},
		{"write and rollback fail", func(fl *faults) { fl.writeErr, fl.partial, fl.truncateErr = errDisk, true, errDisk }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fl := &faults{}
			l := openLog(t, dir, audit.Options{}, fl.open)
			recs := appendN(t, l, "acme", 2)
			good, err := os.ReadFile(logPath(dir, "acme"))
			if err != nil {
				t.Fatal(err)
			}

			fl.set(tc.fault)
			if _, err := l.Append(t.Context(), newRecord("acme", 2)); !errors.Is(err, errDisk) {
				t.Fatalf("Append with a failing disk: got %v, want the disk's error", err)
			}
			if seq, _, _ := l.Head("acme"); seq != 2 {
				t.Errorf("Head after the failure: got seq %d, want 2", seq)
			}
			if got, _ := l.Query(t.Context(), audit.Query{Tenant: "acme"}); len(got) != 2 {
				t.Errorf("Query after the failure: got %d records, want 2", len(got))
			}
			fl.set(func(fl *faults) { fl.writeErr, fl.partial, fl.syncErr, fl.truncateErr = nil, false, nil, nil })

			r, err := l.Append(t.Context(), newRecord("acme", 3))
			if tc.sticky {
				if err == nil || !strings.Contains(err.Error(), "until reopened") {
					t.Fatalf("Append after the fault cleared: got seq %d, %v; want the log to stay closed until reopened", r.Seq, err)
				}
				// Other tenants are unaffected.
				if _, err := l.Append(t.Context(), newRecord("globex", 0)); err != nil {
					t.Errorf("Append for another tenant: %v", err)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				if tc.name == "write and rollback fail" {
					// Half a record is still there: Open cuts it off.
					if b, _ := os.ReadFile(logPath(dir, "acme")); len(b) <= len(good) {
						t.Errorf("got %d bytes in the file, want more than the %d good ones", len(b), len(good))
					}
				}
				l = openLog(t, dir, audit.Options{}, nil)
				r, err = l.Append(t.Context(), newRecord("acme", 3))
			}
			if err != nil {
				t.Fatalf("Append after the fault cleared: %v", err)
			}
			if r.Seq != 3 || r.PrevHash != recs[1].Hash {
				t.Errorf("got seq %d prevHash %s, want seq 3 chained to seq 2's %s", r.Seq, r.PrevHash, recs[1].Hash)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := audit.Verify(t.Context(), dir); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestFailClosedNewTenant(t *testing.T) {
	dir := t.TempDir()
	fl := &faults{openErr: errDisk}
	l := openLog(t, dir, audit.Options{}, fl.open)
	if _, err := l.Append(t.Context(), newRecord("acme", 0)); !errors.Is(err, errDisk) {
		t.Fatalf("Append when the file cannot be opened: got %v, want the disk's error", err)
	}
	fl.set(func(fl *faults) { fl.openErr = nil })
	r, err := l.Append(t.Context(), newRecord("acme", 0))
	if err != nil || r.Seq != 1 {
		t.Fatalf("Append after the fault cleared: got seq %d, %v; want seq 1", r.Seq, err)
	}
}

func TestAppendContext(t *testing.T) {
	t.Run("done before Append", func(t *testing.T) {
		l := openLog(t, "", audit.Options{}, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := l.Append(ctx, newRecord("acme", 0)); !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if seq, _, _ := l.Head("acme"); seq != 0 {
			t.Errorf("got head seq %d, want 0: nothing written", seq)
		}
	})
	t.Run("done while queued", func(t *testing.T) {
		dir := t.TempDir()
		fl := &faults{}
		l := openLog(t, dir, audit.Options{}, fl.open)
		appendN(t, l, "acme", 1)
		gate, waiting := make(chan struct{}), make(chan struct{}, 1)
		fl.set(func(fl *faults) { fl.gate, fl.waiting = gate, waiting })
		first := make(chan error, 1)
		go func() {
			_, err := l.Append(t.Context(), newRecord("acme", 1))
			first <- err
		}()
		<-waiting // the writer is in the first append's fsync

		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := l.Append(ctx, newRecord("acme", 2))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "may or may not be durable") {
			t.Fatalf("got %v, want DeadlineExceeded saying the record may or may not be durable", err)
		}
		fl.set(func(fl *faults) { fl.waiting = nil })
		close(gate)
		if err := <-first; err != nil {
			t.Fatalf("first Append: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// The writer took the expired append after the fsync and dropped it.
		if n := audit.Syncs(l); n != 2 {
			t.Errorf("got %d fsyncs, want 2", n)
		}
		l = openLog(t, dir, audit.Options{}, nil)
		if seq, _, _ := l.Head("acme"); seq != 2 {
			t.Errorf("after reopen got head seq %d, want 2", seq)
		}
	})
}

func TestHead(t *testing.T) {
	l := openLog(t, "", audit.Options{}, nil)
	recs := appendN(t, l, "acme", 3)
	tests := []struct {
		tenant   string
		wantSeq  uint64
		wantHash string
		wantErr  error
	}{
		{"acme", 3, recs[2].Hash, nil},
		{"globex", 0, strings.Repeat("0", 64), nil},
		{"Bad", 0, "", audit.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.tenant, func(t *testing.T) {
			seq, hash, err := l.Head(tc.tenant)
			if !errors.Is(err, tc.wantErr) || seq != tc.wantSeq || hash != tc.wantHash {
				t.Fatalf("got %d %q %v, want %d %q %v", seq, hash, err, tc.wantSeq, tc.wantHash, tc.wantErr)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{Registerer: reg}, nil)
	appendN(t, l, "acme", 3)
	if _, err := l.Append(t.Context(), audit.Record{Tenant: audit.Tenant{ID: "acme"}}); err == nil {
		t.Fatal("Append without an event type succeeded")
	}
	l.Close()
	// A reopened log on the same registry reuses the collectors.
	l = openLog(t, dir, audit.Options{Registerer: reg}, nil)
	appendN(t, l, "acme", 1)
	if _, err := l.Append(t.Context(), audit.Record{Tenant: audit.Tenant{ID: "acme"}}); err == nil {
		t.Fatal("Append without an event type succeeded")
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, lp := range m.GetLabel() {
				name += "{" + lp.GetName() + "=" + lp.GetValue() + "}"
			}
			got[name] = metricValue(m)
		}
	}
	tests := []struct {
		name string
		want float64
	}{
		{"bridge_audit_records_total", 4},
		{"bridge_audit_failures_total{reason=invalid}", 2},
		{"bridge_audit_append_seconds", 4}, // sample count
		{"bridge_audit_batch_size", 4},     // one commit per sequential append
	}
	for _, tc := range tests {
		if got[tc.name] != tc.want {
			t.Errorf("%s: got %v, want %v (all: %v)", tc.name, got[tc.name], tc.want, got)
		}
	}
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return math.NaN()
}

func TestOpenLocksDir(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, audit.Options{}, nil)
	if l2, err := audit.Open(t.Context(), dir, audit.Options{}); !errors.Is(err, audit.ErrLocked) {
		if err == nil {
			l2.Close()
		}
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	openLog(t, dir, audit.Options{}, nil) // free again after Close
}

func TestOpenInvalidOptions(t *testing.T) {
	if _, err := audit.Open(t.Context(), t.TempDir(), audit.Options{MaxBatch: -1}); !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}
