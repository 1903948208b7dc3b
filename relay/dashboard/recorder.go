package dashboard

import (
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// Status values of [SystemStats.Status].
const (
	StatusUp       = "up"       // error rate over the last hour below DegradedErrorRate
	StatusDegraded = "degraded" // error rate over the last hour at least DegradedErrorRate
	StatusDown     = "down"     // error rate over the last hour at least DownErrorRate
	StatusIdle     = "idle"     // no calls in the last hour
)

// Thresholds of the status rules, applied to the error rate over the last
// hour. An hour of the 24 h uptime counts as up when its error rate is below
// DownErrorRate.
const (
	DegradedErrorRate = 0.05
	DownErrorRate     = 0.5
)

// Bounds of a Recorder's memory.
const (
	// Hours is the number of hourly buckets kept per system.
	Hours = 24
	// MaxSystems is the number of distinct systems a Recorder tracks;
	// observations of further systems are counted under OtherSystem.
	MaxSystems = 64
	// OtherSystem collects the observations beyond MaxSystems.
	OtherSystem = "other"

	minutes          = 60 // per-minute slots of the last hour
	samplesPerMinute = 32 // latency reservoir per minute slot
)

// Bucket is the number of calls and failed calls in one hour.
type Bucket struct {
	Calls  int64 `json:"calls"`
	Errors int64 `json:"errors"`
}

// SystemStats is what a [Recorder] knows of one target system at a moment.
type SystemStats struct {
	// System names the target system, e.g. "sharepoint".
	System string `json:"system"`
	// Calls1h and Errors1h count calls and failed calls in the last hour.
	Calls1h  int64 `json:"calls_1h"`
	Errors1h int64 `json:"errors_1h"`
	// Calls24h and Errors24h count calls and failed calls in the 24 hourly
	// buckets, the current (partial) hour included.
	Calls24h  int64 `json:"calls_24h"`
	Errors24h int64 `json:"errors_24h"`
	// ErrorRate24h is Errors24h/Calls24h, 0 without calls.
	ErrorRate24h float64 `json:"error_rate_24h"`
	// Hourly holds the 24 hourly buckets, oldest first; the last one is
	// the current hour.
	Hourly [Hours]Bucket `json:"hourly"`
	// P50 and P95 are latency percentiles over the last hour, 0 without
	// samples. JSON carries them in nanoseconds.
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	// Uptime24h is the share of hours with traffic whose error rate is
	// below DownErrorRate, or 1 when no hour had traffic.
	Uptime24h float64 `json:"uptime_24h"`
	// Status is StatusUp, StatusDegraded, StatusDown or StatusIdle.
	Status string `json:"status"`
}

// Recorder accumulates call outcomes per system in 24 hourly buckets (a
// ring, driven by an injected clock) plus per-minute counters and a latency
// reservoir for the last hour. It is safe for concurrent use; Observe is
// O(1) and memory is bounded by MaxSystems (about 20 KiB per system).
type Recorder struct {
	now func() time.Time

	mu      sync.RWMutex       // guards systems (the map, not the series)
	systems map[string]*series // by system name, at most MaxSystems+1
}

// series is one system's counters.
type series struct {
	mu      sync.Mutex // guards the fields below
	hours   [Hours]hourBucket
	minutes [minutes]minuteSlot
	rng     *rand.Rand // reservoir sampling; deterministic per series
}

// hourBucket counts the calls of the hour numbered hour (Unix hours).
type hourBucket struct {
	hour          int64
	calls, errors int64
}

// minuteSlot counts the calls of the minute numbered minute (Unix minutes)
// and keeps a uniform sample of their latencies (Algorithm R).
type minuteSlot struct {
	minute        int64
	calls, errors int64
	seen          int64 // latencies offered to the reservoir
	n             int   // samples held
	samples       [samplesPerMinute]time.Duration
}

// NewRecorder returns an empty Recorder whose Observe stamps calls with now;
// nil means time.Now.
func NewRecorder(now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{now: now, systems: map[string]*series{}}
}

// Observe records one call to system that succeeded when ok and took
// latency. A latency of zero or less is counted but not sampled.
func (r *Recorder) Observe(system string, ok bool, latency time.Duration) {
	t := r.now()
	s := r.series(system)
	h, m := floorDiv(t.Unix(), 3600), floorDiv(t.Unix(), 60)

	s.mu.Lock()
	defer s.mu.Unlock()
	if b := &s.hours[mod(h, Hours)]; b.hour <= h {
		if b.hour != h {
			*b = hourBucket{hour: h}
		}
		b.calls++
		if !ok {
			b.errors++
		}
	} // else: older than the bucket's hour (clock stepped back); dropped
	sl := &s.minutes[mod(m, minutes)]
	if sl.minute > m {
		return
	}
	if sl.minute != m {
		*sl = minuteSlot{minute: m}
	}
	sl.calls++
	if !ok {
		sl.errors++
	}
	if latency <= 0 {
		return
	}
	sl.seen++
	switch {
	case sl.n < samplesPerMinute:
		sl.samples[sl.n] = latency
		sl.n++
	default:
		if j := s.rng.Int64N(sl.seen); j < samplesPerMinute {
			sl.samples[j] = latency
		}
	}
}

// series returns the series of system, creating it when there is room, or
// the OtherSystem series when there is not.
func (r *Recorder) series(system string) *series {
	r.mu.RLock()
	s := r.systems[system]
	r.mu.RUnlock()
	if s != nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s = r.systems[system]; s != nil {
		return s
	}
	if len(r.systems) >= MaxSystems {
		system = OtherSystem
		if s = r.systems[system]; s != nil {
			return s
		}
	}
	s = &series{rng: rand.New(rand.NewPCG(uint64(len(r.systems))+1, 0x6461736862))}
	// Mark every slot as belonging to no hour or minute yet.
	for i := range s.hours {
		s.hours[i].hour = -1 << 62
	}
	for i := range s.minutes {
		s.minutes[i].minute = -1 << 62
	}
	r.systems[system] = s
	return s
}

// Systems returns the statistics of every system seen, sorted by name, as of
// now: the 24 hours ending with now's hour and the 60 minutes ending with
// now's minute.
func (r *Recorder) Systems(now time.Time) []SystemStats {
	r.mu.RLock()
	names := make([]string, 0, len(r.systems))
	all := make(map[string]*series, len(r.systems))
	for name, s := range r.systems {
		names = append(names, name)
		all[name] = s
	}
	r.mu.RUnlock()
	slices.Sort(names)

	out := make([]SystemStats, 0, len(names))
	for _, name := range names {
		out = append(out, all[name].stats(name, now))
	}
	return out
}

// sample is one latency with the number of calls it stands for.
type sample struct {
	d      time.Duration
	weight float64
}

// stats computes one system's statistics as of now.
func (s *series) stats(name string, now time.Time) SystemStats {
	st := SystemStats{System: name}
	curH, curM := floorDiv(now.Unix(), 3600), floorDiv(now.Unix(), 60)
	var samples []sample

	s.mu.Lock()
	for i := range Hours {
		h := curH - Hours + 1 + int64(i)
		if b := s.hours[mod(h, Hours)]; b.hour == h {
			st.Hourly[i] = Bucket{Calls: b.calls, Errors: b.errors}
		}
	}
	for i := range s.minutes {
		sl := &s.minutes[i]
		if sl.minute <= curM-minutes || sl.minute > curM {
			continue
		}
		st.Calls1h += sl.calls
		st.Errors1h += sl.errors
		if sl.n == 0 {
			continue
		}
		w := float64(sl.seen) / float64(sl.n)
		for _, d := range sl.samples[:sl.n] {
			samples = append(samples, sample{d, w})
		}
	}
	s.mu.Unlock()

	hoursWithTraffic, hoursUp := 0, 0
	for _, b := range st.Hourly {
		st.Calls24h += b.Calls
		st.Errors24h += b.Errors
		if b.Calls > 0 {
			hoursWithTraffic++
			if float64(b.Errors) < DownErrorRate*float64(b.Calls) {
				hoursUp++
			}
		}
	}
	if st.Calls24h > 0 {
		st.ErrorRate24h = float64(st.Errors24h) / float64(st.Calls24h)
	}
	st.Uptime24h = 1
	if hoursWithTraffic > 0 {
		st.Uptime24h = float64(hoursUp) / float64(hoursWithTraffic)
	}
	st.P50, st.P95 = percentiles(samples, 0.50, 0.95)
	st.Status = status(st.Calls1h, st.Errors1h)
	return st
}

// status applies the status rules to the last hour's counts.
func status(calls, errors int64) string {
	if calls == 0 {
		return StatusIdle
	}
	rate := float64(errors) / float64(calls)
	switch {
	case rate >= DownErrorRate:
		return StatusDown
	case rate >= DegradedErrorRate:
		return StatusDegraded
	default:
		return StatusUp
	}
}

// percentiles returns the weighted nearest-rank percentiles p and q of
// samples, which it sorts; 0 for none.
func percentiles(samples []sample, p, q float64) (time.Duration, time.Duration) {
	if len(samples) == 0 {
		return 0, 0
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].d < samples[j].d })
	var total float64
	for _, s := range samples {
		total += s.weight
	}
	rank := func(f float64) time.Duration {
		target, cum := f*total, 0.0
		for _, s := range samples {
			cum += s.weight
			// A small tolerance keeps float sums of equal weights from
			// skipping the exact rank.
			if cum >= target-1e-9 {
				return s.d
			}
		}
		return samples[len(samples)-1].d
	}
	return rank(p), rank(q)
}

// floorDiv is a/b rounded toward negative infinity, for b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// mod is a modulo n in [0, n).
func mod(a int64, n int) int {
	m := int(a % int64(n))
	if m < 0 {
		m += n
	}
	return m
}
