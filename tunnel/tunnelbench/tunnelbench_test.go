package tunnelbench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

var benchReport = flag.Bool("bench.report", false, "run TestReport: the full measurements, printed as BENCH lines")

func testConfig(t testing.TB) Config {
	pki := tunneltest.NewPKI(t)
	return Config{ServerTLS: pki.ServerTLS(), ClientTLS: pki.ClientTLS(pki.Agent)}
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestThroughput(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	cfg := testConfig(t)
	const size = 3<<20 + 12345 // not a multiple of the write size or the pattern period
	kinds := []Kind{KindTLS, KindYamux, KindQUIC}
	opts := ThroughputOptions{Size: size, Runs: 2, Warmup: 1 << 20, Transfer: TransferOptions{WriteSize: 64 << 10, Verify: true}}
	res, err := Throughput(testContext(t, 30*time.Second), kinds, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(kinds) {
		t.Fatalf("got %d results, want %d", len(res), len(kinds))
	}
	for i, r := range res {
		if r.Kind != kinds[i] {
			t.Errorf("result %d is for %s, want %s", i, r.Kind, kinds[i])
		}
		if len(r.Runs) != 2 {
			t.Fatalf("%s: got %d runs, want 2", r.Kind, len(r.Runs))
		}
		for j, run := range r.Runs {
			if run.Bytes != size || run.Verified != size {
				t.Errorf("%s run %d: received %d bytes and verified %d, want %d", r.Kind, j+1, run.Bytes, run.Verified, size)
			}
		}
		if r.Verified != 2*size {
			t.Errorf("%s: verified %d bytes in all, want %d", r.Kind, r.Verified, 2*size)
		}
		if r.Elapsed <= 0 || r.MBPerSec() <= 0 {
			t.Errorf("%s: elapsed %v, %.1f MB/s: want both positive", r.Kind, r.Elapsed, r.MBPerSec())
		}
		if r.CPU <= 0 || r.CPUPerGB() <= 0 {
			t.Errorf("%s: CPU %v, %.2f s/GB: want both positive", r.Kind, r.CPU, r.CPUPerGB())
		}
		t.Logf("%s: %.1f MB/s, %.2f CPU s/GB (not a measurement under -race)", r.Kind, r.MBPerSec(), r.CPUPerGB())
	}
}

func TestThroughputRejectsDirect(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	_, err := Throughput(testContext(t, 10*time.Second), []Kind{KindTLS, KindDirect}, testConfig(t), ThroughputOptions{Size: 1 << 10})
	if err == nil {
		t.Error("Throughput over direct HTTP returned no error")
	}
}

// TestTransferDetectsCorruption checks that verification can fail: the
// reader of one transfer gets the bytes of another that starts elsewhere in
// the pattern.
func TestTransferDetectsCorruption(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	cfg := testConfig(t)
	p, err := newTLSPair(testContext(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Skew the stream by one byte: the reader sees the pattern shifted.
	if _, err := p.client.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	_, err = Transfer(testContext(t, 10*time.Second), p.client, p.server, 100_000, TransferOptions{Verify: true})
	if err == nil {
		t.Fatal("a shifted stream passed verification")
	}
	t.Logf("got the error %v", err)
}

func TestTransferContextEnds(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	cfg := testConfig(t)
	p, err := newTLSPair(testContext(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	// Nobody reads the server side after the first bytes, so the transfer
	// can only end through ctx: cancel it soon.
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err = Transfer(ctx, p.client, p.server, 1<<50, TransferOptions{})
	if err == nil {
		t.Fatal("an endless transfer returned no error")
	}
}

func TestHTTPLatency(t *testing.T) {
	cfg := testConfig(t)
	kinds := []Kind{KindDirect, KindYamux, KindQUIC}
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keepalive=%v", keepAlive), func(t *testing.T) {
			tunneltest.VerifyNoLeaks(t)
			opts := LoadOptions{Rate: 400, Duration: 250 * time.Millisecond, Rounds: 2, Warmup: 50 * time.Millisecond, BodySize: 1500, FreshStreams: !keepAlive}
			res, err := HTTPLatency(testContext(t, 30*time.Second), kinds, cfg, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if r.Kind != kinds[i] {
					t.Errorf("result %d is for %s, want %s", i, r.Kind, kinds[i])
				}
				if r.Requests != 100 || r.Verified != 100 {
					t.Errorf("%s: sent %d requests and verified %d responses, want 100 and 100", r.Kind, r.Requests, r.Verified)
				}
				if !(0 < r.P50 && r.P50 <= r.P99 && r.P99 <= r.Max && r.Max < 10*time.Second) {
					t.Errorf("%s: p50 %v, p99 %v, max %v: want 0 < p50 <= p99 <= max < 10s", r.Kind, r.P50, r.P99, r.Max)
				}
				// Paced: each round's last request starts 49 intervals after its first.
				if r.Elapsed < 2*49*2500*time.Microsecond || r.Elapsed > 10*time.Second {
					t.Errorf("%s: the load took %v, want at least 245ms (paced at 400/s) and well under 10s", r.Kind, r.Elapsed)
				}
				if r.CPUPerRequest() <= 0 {
					t.Errorf("%s: CPU per request %v, want > 0", r.Kind, r.CPUPerRequest())
				}
				t.Logf("%s: p50 %v p99 %v max %v, %d throttled, %v CPU a request", r.Kind, r.P50, r.P99, r.Max, r.Throttled, r.CPUPerRequest())
			}
		})
	}
}

func TestHTTPLatencyRejectsTLS(t *testing.T) {
	tunneltest.VerifyNoLeaks(t)
	_, err := HTTPLatency(testContext(t, 10*time.Second), []Kind{KindDirect, KindTLS}, testConfig(t), LoadOptions{Warmup: -1})
	if err == nil {
		t.Error("HTTPLatency over plain TLS returned no error")
	}
}

func TestOpenLatency(t *testing.T) {
	cfg := testConfig(t)
	for _, kind := range TunnelKinds() {
		t.Run(string(kind), func(t *testing.T) {
			tunneltest.VerifyNoLeaks(t)
			r, err := OpenLatency(testContext(t, 30*time.Second), kind, cfg, 50)
			if err != nil {
				t.Fatal(err)
			}
			if r.Samples != 50 {
				t.Errorf("got %d samples, want 50", r.Samples)
			}
			if r.NewStream <= 0 || r.OpenStream <= 0 || r.OpenStream > time.Second {
				t.Errorf("new stream %v, open stream %v: want both positive and under a second", r.NewStream, r.OpenStream)
			}
			t.Logf("%s: new stream %v, open stream %v, added %v", kind, r.NewStream, r.OpenStream, r.Added())
		})
	}
}

func TestIdleStreamMemory(t *testing.T) {
	cfg := testConfig(t)
	for _, kind := range TunnelKinds() {
		t.Run(string(kind), func(t *testing.T) {
			tunneltest.VerifyNoLeaks(t)
			const n = 200
			r, err := IdleStreamMemory(testContext(t, 30*time.Second), kind, cfg, n)
			if err != nil {
				t.Fatal(err)
			}
			if r.Streams != n {
				t.Errorf("got %d streams, want %d", r.Streams, n)
			}
			// One goroutine per server-side stream; the transports may add
			// their own, and a few of theirs from the set-up may have ended.
			if r.Goroutines < n-10 {
				t.Errorf("%d more goroutines with the streams open, want about %d or more", r.Goroutines, n)
			}
			// At least the 200 goroutine stacks (2 KiB minimum), at most 1 MiB a stream.
			if d := r.Delta(); d < n*2<<10 || d > n<<20 {
				t.Errorf("streams held %d bytes, want between %d and %d", d, n*2<<10, n<<20)
			}
			t.Logf("%s: %d streams hold %.1f KiB each", kind, n, r.PerStream()/1024)
		})
	}
}

func TestPairRejectsBaselines(t *testing.T) {
	cfg := testConfig(t)
	for _, kind := range []Kind{KindTLS, KindDirect, "sctp"} {
		if p, err := NewPair(context.Background(), kind, cfg); err == nil {
			p.Close()
			t.Errorf("NewPair(%q) returned no error", kind)
		}
	}
	if _, err := NewPair(context.Background(), KindQUIC, Config{}); err == nil {
		t.Error("NewPair without TLS configuration returned no error")
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median odd", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median even takes the lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100", ms(100, 99, 98, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95, 96, 97), 99, 99 * time.Millisecond},
		{"max", ms(3, 9, 1), 100, 9 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
		})
	}
}

// benchThroughput moves b.N writes of 256 KiB over one stream or connection
// of kind, after a warm-up on the same stream.
func benchThroughput(b *testing.B, kind Kind) {
	cfg := testConfig(b)
	ctx := testContext(b, 10*time.Minute)
	c, err := newCarrier(ctx, kind, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	w, r, release, err := c.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	const ws = 256 << 10
	// Warm up: congestion and flow-control windows grow, buffers are made.
	if _, err := Transfer(ctx, w, r, 32<<20, TransferOptions{WriteSize: ws}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(ws)
	b.ResetTimer()
	res, err := Transfer(ctx, w, r, int64(b.N)*ws, TransferOptions{WriteSize: ws})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(res.CPUPerGB(), "cpu-s/GB")
}

func BenchmarkThroughputTLS(b *testing.B)   { benchThroughput(b, KindTLS) }
func BenchmarkThroughputYamux(b *testing.B) { benchThroughput(b, KindYamux) }
func BenchmarkThroughputQUIC(b *testing.B)  { benchThroughput(b, KindQUIC) }

// report prints one figure as a BENCH line on stdout.
func report(name string, value float64, unit string) {
	fmt.Printf("BENCH %s %.4g %s\n", name, value, unit)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// cpuSteal returns the steal and total jiffies of all CPUs from /proc/stat,
// or -1 where there is no such file.
func cpuSteal() (steal, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1, -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1, -1
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1, -1
		}
		if i < 8 { // user nice system idle iowait irq softirq steal; guest is in user
			total += n
		}
		if i == 7 {
			steal = n
		}
	}
	return steal, total
}

// TestReport runs every measurement at full size and prints the figures.
// It runs only with -bench.report, and not under the race detector.
func TestReport(t *testing.T) {
	if !*benchReport {
		t.Skip("run with -args -bench.report")
	}
	if raceEnabled {
		t.Skip("the race detector distorts every figure")
	}
	start := time.Now()
	steal0, total0 := cpuSteal()
	cfg := testConfig(t)
	cfg.Logger, _ = tunneltest.Logger(t)
	ctx := testContext(t, 15*time.Minute)
	var missed []string
	target := func(ok bool, format string, args ...any) {
		if !ok {
			missed = append(missed, fmt.Sprintf(format, args...))
		}
	}
	t.Logf("%s %s/%s, %d CPUs", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	report("gomaxprocs", float64(runtime.GOMAXPROCS(0)), "cpus")
	report("num_cpu", float64(runtime.NumCPU()), "cpus")

	// 1. Throughput and CPU per GB, against plain TLS.
	res, err := Throughput(ctx, []Kind{KindTLS, KindYamux, KindQUIC}, cfg, ThroughputOptions{Size: 1 << 30, Runs: 3, Transfer: TransferOptions{WriteSize: 256 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	tput := map[Kind]ThroughputResult{}
	for _, r := range res {
		tput[r.Kind] = r
		for i, run := range r.Runs {
			t.Logf("%s run %d: %.1f MB/s, %.3f CPU s/GB", r.Kind, i+1, run.MBPerSec(), run.CPUPerGB())
		}
		report("throughput_"+string(r.Kind), r.MBPerSec(), "MB/s")
		report("cpu_per_gb_"+string(r.Kind), r.CPUPerGB(), "s/GB")
	}
	base := tput[KindTLS]
	yt, qt := tput[KindYamux].MBPerSec()/base.MBPerSec(), tput[KindQUIC].MBPerSec()/base.MBPerSec()
	yc, qc := tput[KindYamux].CPUPerGB()/base.CPUPerGB(), tput[KindQUIC].CPUPerGB()/base.CPUPerGB()
	report("throughput_ratio_yamux_vs_tls", yt, "x")
	report("throughput_ratio_quic_vs_tls", qt, "x")
	report("cpu_ratio_yamux_vs_tls", yc, "x")
	report("cpu_ratio_quic_vs_tls", qc, "x")
	target(yt >= 0.8, "throughput yamux/TLS %.2fx, target >= 0.8x", yt)
	target(qt >= 0.5, "throughput QUIC/TLS %.2fx, target >= 0.5x", qt)
	target(yc <= 1.3, "CPU per GB yamux/TLS %.2fx, target <= 1.3x", yc)
	target(qc <= 2.5, "CPU per GB QUIC/TLS %.2fx, target <= 2.5x", qc)

	// 2. 1 KiB request/response at 2000 req/s, against direct HTTP with
	// keep-alive, through the product path (Links, tunnel.HTTPTransport);
	// then, for comparison, with a fresh stream per request over bare
	// sessions (suffix _fresh_stream, the direct baseline measured again
	// alongside).
	for _, fresh := range []bool{false, true} {
		suffix := ""
		if fresh {
			suffix = "_fresh_stream"
		}
		opts := LoadOptions{Rate: 2000, Duration: 5 * time.Second, BodySize: 1024, FreshStreams: fresh}
		res, err := HTTPLatency(ctx, []Kind{KindDirect, KindYamux, KindQUIC}, cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		direct := res[0]
		for _, r := range res {
			t.Logf("%s%s: %d requests at %.0f req/s, %d throttled, max %v, %v CPU a request",
				r.Kind, suffix, r.Requests, r.Rate(), r.Throttled, r.Max, r.CPUPerRequest())
			target(r.Throttled == 0, "%s%s: %d requests throttled, the load was not open-loop", r.Kind, suffix, r.Throttled)
			report("http_p50_"+string(r.Kind)+suffix, ms(r.P50), "ms")
			report("http_p99_"+string(r.Kind)+suffix, ms(r.P99), "ms")
			report("http_cpu_per_req_"+string(r.Kind)+suffix, us(r.CPUPerRequest()), "µs")
			if r.Kind == KindDirect {
				report("http_rate_direct"+suffix, r.Rate(), "req/s")
				continue
			}
			a50, a99 := r.P50-direct.P50, r.P99-direct.P99
			report("http_added_p50_"+string(r.Kind)+suffix, ms(a50), "ms")
			report("http_added_p99_"+string(r.Kind)+suffix, ms(a99), "ms")
			if !fresh {
				target(a99 <= time.Millisecond, "%s adds %v to p99, target <= 1ms", r.Kind, a99)
			}
		}
	}

	// 3. Opening a stream costs no round trip.
	for _, kind := range TunnelKinds() {
		r, err := OpenLatency(ctx, kind, cfg, 2000)
		if err != nil {
			t.Fatal(err)
		}
		report("open_new_stream_echo_"+string(kind), us(r.NewStream), "µs")
		report("open_existing_stream_echo_"+string(kind), us(r.OpenStream), "µs")
		report("open_added_"+string(kind), us(r.Added()), "µs")
		target(r.Added() < r.OpenStream/2, "%s: opening a stream adds %v to a %v round trip", kind, r.Added(), r.OpenStream)
	}

	// 4. Memory of 10,000 idle streams, both ends.
	for _, kind := range TunnelKinds() {
		r, err := IdleStreamMemory(ctx, kind, cfg, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		mib := float64(r.Delta()) / (1 << 20)
		report("idle_10k_streams_mem_"+string(kind), mib, "MiB")
		report("idle_stream_mem_per_stream_"+string(kind), r.PerStream()/1024, "KiB")
		t.Logf("%s: %d more goroutines with 10k streams open", kind, r.Goroutines)
		target(mib < 200, "%s: 10k idle streams hold %.1f MiB, target < 200 MiB", kind, mib)
	}

	report("report_wall_time", time.Since(start).Seconds(), "s")
	if steal0 >= 0 {
		if steal1, total1 := cpuSteal(); steal1 >= 0 && total1 > total0 {
			// Time the hypervisor gave the vCPUs to others: throughput and
			// latency suffer from it, CPU time per unit of work much less.
			report("cpu_steal", 100*float64(steal1-steal0)/float64(total1-total0), "%")
		}
	}
	for _, m := range missed {
		t.Logf("MISSED TARGET: %s", m)
	}
}
