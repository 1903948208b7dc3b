package dashboard_test

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/relay/dashboard"
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// t0 is 10:10 UTC, so that hours and minutes have room on both sides.
var t0 = time.Date(2026, 3, 10, 10, 10, 0, 0, time.UTC)

// obs is one Observe at t0+at.
type obs struct {
	at      time.Duration
	system  string
	ok      bool
	latency time.Duration
}

// calls returns n observations of system at t0+at.
func calls(n int, at time.Duration, system string, ok bool) []obs {
	out := make([]obs, n)
	for i := range out {
		out[i] = obs{at: at, system: system, ok: ok}
	}
	return out
}

// concat joins observation lists.
func concat(lists ...[]obs) []obs {
	var out []obs
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// record replays observations on a new Recorder.
func record(list []obs) *dashboard.Recorder {
	c := &clock{}
	r := dashboard.NewRecorder(c.Now)
	for _, o := range list {
		c.Set(t0.Add(o.at))
		r.Observe(o.system, o.ok, o.latency)
	}
	return r
}

// stats returns the statistics of system, failing when it is missing.
func stats(t *testing.T, r *dashboard.Recorder, now time.Time, system string) dashboard.SystemStats {
	t.Helper()
	for _, s := range r.Systems(now) {
		if s.System == system {
			return s
		}
	}
	t.Fatalf("Systems(%v) has no %q", now, system)
	return dashboard.SystemStats{}
}

// buckets builds the hourly array from {index: bucket}.
func buckets(m map[int]dashboard.Bucket) (h [dashboard.Hours]dashboard.Bucket) {
	for i, b := range m {
		h[i] = b
	}
	return h
}

func TestRecorderWindows(t *testing.T) {
	const sp = "sharepoint"
	tests := []struct {
		name string
		obs  []obs
		at   time.Duration // Systems(t0+at)
		want dashboard.SystemStats
	}{
		{
			name: "current hour",
			obs:  concat(calls(2, 0, sp, true), calls(1, time.Minute, sp, false)),
			at:   2 * time.Minute,
			want: dashboard.SystemStats{
				System: sp, Calls1h: 3, Errors1h: 1, Calls24h: 3, Errors24h: 1, ErrorRate24h: 1.0 / 3,
				Hourly: buckets(map[int]dashboard.Bucket{23: {3, 1}}), Uptime24h: 1, Status: dashboard.StatusDegraded,
			},
		},
		{
			name: "calls 25 h ago vanish",
			obs:  calls(5, 0, sp, false),
			at:   25 * time.Hour,
			want: dashboard.SystemStats{System: sp, Uptime24h: 1, Status: dashboard.StatusIdle},
		},
		{
			name: "calls 23 h ago are the oldest bucket",
			obs:  calls(2, 0, sp, true),
			at:   23 * time.Hour,
			want: dashboard.SystemStats{
				System: sp, Calls24h: 2, Hourly: buckets(map[int]dashboard.Bucket{0: {2, 0}}),
				Uptime24h: 1, Status: dashboard.StatusIdle,
			},
		},
		{
			name: "a bucket is reused after 24 h",
			obs:  concat(calls(7, 0, sp, false), calls(1, 24*time.Hour, sp, true)),
			at:   24 * time.Hour,
			want: dashboard.SystemStats{
				System: sp, Calls1h: 1, Calls24h: 1, Hourly: buckets(map[int]dashboard.Bucket{23: {1, 0}}),
				Uptime24h: 1, Status: dashboard.StatusUp,
			},
		},
		{
			name: "the last hour spans an hour boundary",
			obs:  calls(1, 40*time.Minute, sp, true), // 10:50
			at:   70 * time.Minute,                   // 11:20
			want: dashboard.SystemStats{
				System: sp, Calls1h: 1, Calls24h: 1, Hourly: buckets(map[int]dashboard.Bucket{22: {1, 0}}),
				Uptime24h: 1, Status: dashboard.StatusUp,
			},
		},
		{
			name: "the last hour ends 60 minutes later",
			obs:  calls(1, 40*time.Minute, sp, true), // 10:50
			at:   101 * time.Minute,                  // 11:51
			want: dashboard.SystemStats{
				System: sp, Calls24h: 1, Hourly: buckets(map[int]dashboard.Bucket{22: {1, 0}}),
				Uptime24h: 1, Status: dashboard.StatusIdle,
			},
		},
		{
			name: "an observation older than its slot is dropped",
			obs:  concat(calls(1, 24*time.Hour, sp, true), calls(3, 0, sp, false)), // the clock stepped back a day
			at:   24 * time.Hour,
			want: dashboard.SystemStats{
				System: sp, Calls1h: 1, Calls24h: 1, Hourly: buckets(map[int]dashboard.Bucket{23: {1, 0}}),
				Uptime24h: 1, Status: dashboard.StatusUp,
			},
		},
		{
			name: "error rate and uptime over several hours",
			obs: concat(
				calls(9, -3*time.Hour, sp, true), calls(1, -3*time.Hour, sp, false), // 10% errors: up
				calls(4, -2*time.Hour, sp, true), calls(6, -2*time.Hour, sp, false), // 60%: down
				calls(10, 0, sp, true),
			),
			at: 0,
			want: dashboard.SystemStats{
				System: sp, Calls1h: 10, Calls24h: 30, Errors24h: 7, ErrorRate24h: 7.0 / 30,
				Hourly:    buckets(map[int]dashboard.Bucket{20: {10, 1}, 21: {10, 6}, 23: {10, 0}}),
				Uptime24h: 2.0 / 3, Status: dashboard.StatusUp,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := record(tt.obs)
			if got := stats(t, r, t0.Add(tt.at), sp); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRecorderPercentiles(t *testing.T) {
	const ms = time.Millisecond
	// spread returns one observation per latency, 30 s apart, ending at 0.
	spread := func(lat []time.Duration) []obs {
		out := make([]obs, len(lat))
		for i, l := range lat {
			out[i] = obs{at: time.Duration(i-len(lat)+1) * 30 * time.Second, system: "s", ok: true, latency: l}
		}
		return out
	}
	ramp := func(n int, unit time.Duration) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * unit
		}
		return out
	}
	// dense returns n observations per minute for the hour ending at 0,
	// with latencies cycling through 1..1000 ms.
	dense := func(n int) []obs {
		var out []obs
		for m := range 60 {
			for i := range n {
				k := m*n + i
				out = append(out, obs{at: -time.Duration(m) * time.Minute, system: "s", ok: true, latency: time.Duration(k%1000+1) * ms})
			}
		}
		return out
	}
	tests := []struct {
		name             string
		obs              []obs
		at               time.Duration // Systems(t0+at)
		wantP50, wantP95 time.Duration
		tolerance        float64 // relative
		wantCalls1h      int64
	}{
		{name: "exact ranks of 1..100 ms", obs: spread(ramp(100, ms)), wantP50: 50 * ms, wantP95: 95 * ms, wantCalls1h: 100},
		{name: "one sample", obs: spread([]time.Duration{7 * ms}), wantP50: 7 * ms, wantP95: 7 * ms, wantCalls1h: 1},
		{name: "a slow tail", obs: spread(append(repeat(90, 120*ms), repeat(10, 480*ms)...)), wantP50: 120 * ms, wantP95: 480 * ms, wantCalls1h: 100},
		{name: "zero latencies are counted, not sampled", obs: calls(10, 0, "s", true), wantCalls1h: 10},
		{
			name: "samples older than an hour are left out",
			obs:  concat(spread(repeat(50, 900*ms)), shift(spread(repeat(10, 10*ms)), 61*time.Minute)),
			at:   61 * time.Minute, wantP50: 10 * ms, wantP95: 10 * ms, wantCalls1h: 10,
		},
		{
			name: "the reservoir estimates 30,000 calls", obs: dense(500),
			wantP50: 500 * ms, wantP95: 950 * ms, tolerance: 0.05, wantCalls1h: 30000,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stats(t, record(tt.obs), t0.Add(tt.at), "s")
			if got.Calls1h != tt.wantCalls1h {
				t.Errorf("Calls1h: got %d, want %d", got.Calls1h, tt.wantCalls1h)
			}
			near := func(got, want time.Duration) bool {
				return math.Abs(float64(got-want)) <= tt.tolerance*float64(want)
			}
			if !near(got.P50, tt.wantP50) || !near(got.P95, tt.wantP95) {
				t.Errorf("got p50 %v p95 %v, want %v %v (±%.0f%%)", got.P50, got.P95, tt.wantP50, tt.wantP95, tt.tolerance*100)
			}
		})
	}
}

// repeat returns n copies of d.
func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// shift moves observations by d.
func shift(list []obs, d time.Duration) []obs {
	for i := range list {
		list[i].at += d
	}
	return list
}

func TestRecorderStatus(t *testing.T) {
	tests := []struct {
		name       string
		obs        []obs
		wantStatus string
		wantUptime float64
	}{
		{name: "no calls in 24 h", obs: calls(1, -25*time.Hour, "s", false), wantStatus: dashboard.StatusIdle, wantUptime: 1},
		{name: "no errors", obs: calls(100, 0, "s", true), wantStatus: dashboard.StatusUp, wantUptime: 1},
		{name: "4% errors", obs: concat(calls(96, 0, "s", true), calls(4, 0, "s", false)), wantStatus: dashboard.StatusUp, wantUptime: 1},
		{name: "5% errors", obs: concat(calls(95, 0, "s", true), calls(5, 0, "s", false)), wantStatus: dashboard.StatusDegraded, wantUptime: 1},
		{name: "49% errors", obs: concat(calls(51, 0, "s", true), calls(49, 0, "s", false)), wantStatus: dashboard.StatusDegraded, wantUptime: 1},
		{name: "50% errors", obs: concat(calls(50, 0, "s", true), calls(50, 0, "s", false)), wantStatus: dashboard.StatusDown, wantUptime: 0},
		{name: "all errors", obs: calls(3, 0, "s", false), wantStatus: dashboard.StatusDown, wantUptime: 0},
		{name: "errors 2 h ago, quiet since", obs: calls(10, -2*time.Hour, "s", false), wantStatus: dashboard.StatusIdle, wantUptime: 0},
		{
			name: "one bad hour in four",
			obs: concat(calls(5, -3*time.Hour, "s", true), calls(5, -2*time.Hour, "s", true),
				calls(2, -time.Hour-time.Minute, "s", true), calls(3, -time.Hour-time.Minute, "s", false), calls(5, 0, "s", true)),
			wantStatus: dashboard.StatusUp, wantUptime: 0.75,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stats(t, record(tt.obs), t0, "s")
			if got.Status != tt.wantStatus || got.Uptime24h != tt.wantUptime {
				t.Errorf("got status %q uptime %v, want %q %v", got.Status, got.Uptime24h, tt.wantStatus, tt.wantUptime)
			}
		})
	}
}

func TestRecorderConcurrentObserve(t *testing.T) {
	c := &clock{t: t0}
	r := dashboard.NewRecorder(c.Now)
	systems := []string{"sharepoint", "workfront", "slack"}
	const workers, perWorker = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				r.Observe(systems[(w+i)%len(systems)], i%10 != 0, time.Duration(i+1)*time.Microsecond)
			}
		})
	}
	wg.Go(func() { // a reader and a clock that moves, at the same time
		for i := range 50 {
			c.Set(t0.Add(time.Duration(i) * time.Second))
			_ = r.Systems(c.Now())
		}
	})
	wg.Wait()

	var total, errs int64
	for _, s := range r.Systems(t0.Add(time.Minute)) {
		total += s.Calls1h
		errs += s.Errors24h
		if s.Calls1h != s.Calls24h {
			t.Errorf("%s: Calls1h %d != Calls24h %d", s.System, s.Calls1h, s.Calls24h)
		}
	}
	if want := int64(workers * perWorker); total != want {
		t.Errorf("got %d calls, want %d", total, want)
	}
	if want := int64(workers * perWorker / 10); errs != want {
		t.Errorf("got %d errors, want %d", errs, want)
	}
}

func TestRecorderBoundsSystems(t *testing.T) {
	c := &clock{t: t0}
	r := dashboard.NewRecorder(c.Now)
	const extra = 6
	for i := range dashboard.MaxSystems + extra {
		r.Observe(fmt.Sprintf("system-%03d", i), true, time.Millisecond)
	}
	got := r.Systems(t0)
	if len(got) != dashboard.MaxSystems+1 {
		t.Fatalf("got %d systems, want %d", len(got), dashboard.MaxSystems+1)
	}
	other := stats(t, r, t0, dashboard.OtherSystem)
	if other.Calls1h != extra {
		t.Errorf("got %d calls under %q, want %d", other.Calls1h, dashboard.OtherSystem, extra)
	}
}

func BenchmarkObserve(b *testing.B) {
	c := &clock{t: t0}
	r := dashboard.NewRecorder(c.Now)
	systems := []string{"sharepoint", "workfront", "slack", "box"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			r.Observe(systems[i%len(systems)], i%20 != 0, time.Duration(i%1000+1)*time.Millisecond)
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "observations/s")
}
