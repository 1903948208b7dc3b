package crawl_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
	"golang.org/x/sync/errgroup"
)

var benchReport = flag.Bool("bench.report", false, "run TestCrawlReport: the crawl measurements, printed as BENCH lines")

// Benchmark shape: 100,000 files in 25 libraries of 4,000 (under the view
// threshold), a crawl of 8 concurrent items, polling every 2 s.
const (
	benchLibraries   = 25
	benchPerLibrary  = 4000
	benchConcurrency = 8
	benchPoll        = 2 * time.Second
	benchLatency     = 5 * time.Millisecond
	benchLatencyRuns = 8
)

// TestCrawlReport measures the crawl and prints BENCH lines (make bench):
//   - full-crawl items/s into the relay's store through the tunnel, against
//     the emulator's own serving rate (the same listing and downloads by a
//     bare client at the same concurrency) measured in the same world
//     afterwards: once with agent and relay in this process (one Go
//     scheduler shares the two cores), once with the real bridge-agent and
//     bridge-relay binaries as child processes;
//   - the requests of an incremental pass after 1 % churn, against those of
//     the full crawl;
//   - the time from a change in the emulator to its presence in the store,
//     against the poll interval plus 1 s.
//
// It runs only with -bench.report, and not under the race detector.
func TestCrawlReport(t *testing.T) {
	if !*benchReport {
		t.Skip("run with -args -bench.report")
	}
	if raceEnabled {
		t.Skip("the race detector distorts the figures")
	}
	spec := spemu.Spec{Seed: 11, SiteNames: []string{"bench"}, Libraries: benchLibraries, ItemsPerList: benchPerLibrary,
		MinSize: 512, MaxSize: 4 << 10, PlainNames: true, UniqueEvery: 100}

	// Full crawl in process.
	w := newWorldWith(t, spec, worldOptions{quiet: true, agentEdit: func(c *agent.Config) {
		c.SharePoint.PollInterval = benchPoll
		c.SharePoint.Concurrency = benchConcurrency
		c.SharePoint.RequestsPerSecond = 1e6
	}})
	deadline := time.Now().Add(15 * time.Minute)
	for w.status().Phase != crawl.PhaseIncremental {
		if time.Now().After(deadline) {
			t.Fatalf("the full crawl did not finish: %+v", w.status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	fullRequests := requests(w.emu.Stats())
	st := w.status()
	entries := len(w.emu.Snapshot())
	if st.Items < int64(entries) {
		t.Fatalf("the full crawl read %d items of %d", st.Items, entries)
	}
	crawlRate := float64(entries) / st.FullDone.Sub(st.FullStarted).Seconds()
	if diff := w.diff(); diff != "" {
		t.Fatalf("after the full crawl the store differs: %s", diff)
	}
	served, elapsed := serve(t, w.site, "Zq9-sp-password")
	if served != entries {
		t.Fatalf("the bare client read %d items, the snapshot has %d", served, entries)
	}
	serveRate := float64(served) / elapsed.Seconds()
	report("crawl_full_items_per_s", crawlRate, "items/s")
	report("crawl_emulator_serving_items_per_s", serveRate, "items/s")
	report("crawl_full_vs_serving", crawlRate/serveRate, "ratio")
	report("crawl_full_requests", float64(fullRequests), "requests")

	// 1 % churn: updates, adds, deletes and renames.
	w.emu.ResetStats()
	churn := churn(t, w, entries/100)
	w.agent.Crawler().PollNow()
	w.waitSynced(5*time.Minute, "after 1% churn")
	incRequests := requests(w.emu.Stats())
	report("crawl_incremental_changes", float64(churn), "changes")
	report("crawl_incremental_requests", float64(incRequests), "requests")
	report("crawl_full_vs_incremental_requests", float64(fullRequests)/float64(incRequests), "ratio")

	// Change to store latency.
	lat := latencies(t, w)
	slices.Sort(lat)
	budget := benchPoll + time.Second
	report("crawl_change_latency_p50", lat[len(lat)/2].Seconds(), "s")
	report("crawl_change_latency_max", lat[len(lat)-1].Seconds(), "s")
	report("crawl_change_latency_budget", budget.Seconds(), "s")
	report("crawl_change_latency_max_vs_budget", lat[len(lat)-1].Seconds()/budget.Seconds(), "ratio")
	w.stopAgent()
	w.stopRelay()

	// The same against a farm across a network: every request waits
	// benchLatency before it is served, for the crawl and for the bare
	// client alike. This measures whether the crawl keeps its requests in
	// flight; the figures above measure its CPU against the emulator's on
	// these shared cores.
	lspec := spec
	lspec.Libraries, lspec.ItemsPerList = 4, 1000
	lw := newWorldWith(t, lspec, worldOptions{quiet: true, agentEdit: func(c *agent.Config) {
		c.SharePoint.PollInterval = benchPoll
		c.SharePoint.Concurrency = benchConcurrency
		c.SharePoint.RequestsPerSecond = 1e6
	}}, func(o *spemu.Options) { o.Latency = benchLatency })
	for lw.status().Phase != crawl.PhaseIncremental {
		if time.Now().After(deadline) {
			t.Fatalf("the full crawl with latency did not finish: %+v", lw.status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	lst, lentries := lw.status(), len(lw.emu.Snapshot())
	latRate := float64(lentries) / lst.FullDone.Sub(lst.FullStarted).Seconds()
	lw.stopAgent()
	served, elapsed = serve(t, lw.site, "Zq9-sp-password")
	if served != lentries {
		t.Fatalf("the bare client read %d items, the snapshot has %d", served, lentries)
	}
	lw.stopRelay()
	latServe := float64(served) / elapsed.Seconds()
	lat5 := fmt.Sprintf("latency%dms", benchLatency.Milliseconds())
	report("crawl_full_"+lat5+"_items_per_s", latRate, "items/s")
	report("crawl_emulator_serving_"+lat5+"_items_per_s", latServe, "items/s")
	report("crawl_full_vs_serving_"+lat5, latRate/latServe, "ratio")

	// Full crawl by the real binaries.
	pw := newProcWorld(t, spec, procOptions{protocol: "auto", poll: benchPoll, concurrency: benchConcurrency, rate: 1e6})
	st = pw.waitAgent(15*time.Minute, "the full crawl", func(s crawl.SiteStatus) bool { return s.Phase == crawl.PhaseIncremental })
	if st.Items < int64(entries) {
		t.Fatalf("the binaries' full crawl read %d items of %d", st.Items, entries)
	}
	procRate := float64(entries) / st.FullDone.Sub(st.FullStarted).Seconds()
	pw.agent.kill(t) // the baseline runs alone
	served, elapsed = serve(t, pw.site, pw.password)
	if served != entries {
		t.Fatalf("the bare client read %d items, the snapshot has %d", served, entries)
	}
	pw.relay.kill(t)
	if d := pw.storeDiff(nil); d != "" {
		t.Fatalf("after the binaries' full crawl the relay's store differs from the source: %s", d)
	}
	procServe := float64(served) / elapsed.Seconds()
	report("crawl_full_processes_items_per_s", procRate, "items/s")
	report("crawl_emulator_serving_processes_items_per_s", procServe, "items/s")
	report("crawl_full_processes_vs_serving", procRate/procServe, "ratio")

	// As deployed, SharePoint runs on its own machine: the emulator (this
	// process) gets CPU 0 alone, and whatever reads it gets CPU 1 alone:
	// the agent and the relay for the crawl, a bare client process for the
	// baseline. The ratio then says whether the crawl keeps up with the
	// source, not how the two share two cores.
	if runtime.NumCPU() < 2 {
		t.Log("one CPU: no figure with the source on its own core")
		return
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Log("no taskset: no figure with the source on its own core")
		return
	}
	pin := func(cpus string) {
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			t.Fatalf("taskset: %v: %s", err, out)
		}
	}
	pin("0")
	defer pin(fmt.Sprintf("0-%d", runtime.NumCPU()-1))
	sw := newProcWorld(t, spec, procOptions{protocol: "auto", poll: benchPoll, concurrency: benchConcurrency, rate: 1e6, cpus: "1"})
	st = sw.waitAgent(15*time.Minute, "the full crawl", func(s crawl.SiteStatus) bool { return s.Phase == crawl.PhaseIncremental })
	if st.Items < int64(entries) {
		t.Fatalf("the pinned full crawl read %d items of %d", st.Items, entries)
	}
	ownRate := float64(entries) / st.FullDone.Sub(st.FullStarted).Seconds()
	sw.agent.kill(t)
	sw.relay.kill(t)
	served, elapsed, clientCPU := serveFrom(t, "1", sw.site, sw.password)
	if served != entries {
		t.Fatalf("the bare client process read %d items, the snapshot has %d", served, entries)
	}
	ownServe := float64(served) / elapsed.Seconds()
	report("crawl_full_source_own_core_items_per_s", ownRate, "items/s")
	report("crawl_emulator_serving_source_own_core_items_per_s", ownServe, "items/s")
	report("crawl_full_source_own_core_vs_serving", ownRate/ownServe, "ratio")

	// CPU per item of each reader (process CPU time, start-up included, so
	// the agent's and the relay's are upper bounds). As deployed the relay
	// runs on a host of its own: the agent alone then reads at most
	// 1/agent-CPU items/s on a core, against 1/client-CPU for the bare
	// client, which is what the last ratio says.
	perItem := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(entries) }
	report("crawl_cpu_per_item_agent", perItem(sw.agent.cpu), "us")
	report("crawl_cpu_per_item_relay", perItem(sw.relay.cpu), "us")
	report("crawl_cpu_per_item_bare_client", perItem(clientCPU), "us")
	report("crawl_agent_alone_vs_serving", perItem(clientCPU)/perItem(sw.agent.cpu), "ratio")
}

// serveFrom runs serve in a child process (this test binary, in
// TestServeHelper) on cpus and returns what it read, how long it took and
// the CPU time the process used.
func serveFrom(t *testing.T, cpus, site, password string) (int, time.Duration, time.Duration) {
	t.Helper()
	cmd := exec.Command("taskset", "-c", cpus, os.Args[0], "-test.run", "^TestServeHelper$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), "CRAWL_BENCH_SERVE_SITE="+site, "CRAWL_BENCH_SERVE_PASSWORD="+password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the bare client process: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		var n int
		var ns int64
		if _, err := fmt.Sscanf(line, "SERVED %d %d", &n, &ns); err == nil {
			return n, time.Duration(ns), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
	}
	t.Fatalf("the bare client process printed no SERVED line:\n%s", out)
	return 0, 0, 0
}

// TestServeHelper is the bare client process of serveFrom.
func TestServeHelper(t *testing.T) {
	site := os.Getenv("CRAWL_BENCH_SERVE_SITE")
	if site == "" {
		t.Skip("a helper process of TestCrawlReport")
	}
	n, d := serve(t, site, os.Getenv("CRAWL_BENCH_SERVE_PASSWORD"))
	fmt.Printf("SERVED %d %d\n", n, d.Nanoseconds())
}

func report(name string, value float64, unit string) {
	fmt.Printf("BENCH %s %.4g %s\n", name, value, unit)
}

func requests(s spemu.Stats) int64 {
	var n int64
	for _, v := range s.Requests {
		n += v
	}
	return n
}

// serve reads every item of the site the way the crawl does (webs, lists,
// item pages, file content) with a bare client at the crawl's
// concurrency, discarding what it reads.
func serve(t *testing.T, site, password string) (int, time.Duration) {
	t.Helper()
	c, err := sharepoint.New(sharepoint.Config{SiteURL: site, Version: "bench", RequestsPerSecond: 1e6, Connections: benchConcurrency,
		Auth: sharepoint.Auth{Method: "ntlm", Username: `CONTOSO\svc-bridge`, Password: sharepoint.Secret(password)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	webs, err := c.Webs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(benchConcurrency)
	for _, web := range webs {
		lists, err := c.Lists(ctx, web)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lists {
			err := c.Items(ctx, l, 0, 500, func(it sharepoint.Item) error {
				if it.Kind() != "file" {
					n.Add(1)
					return nil
				}
				g.Go(func() error {
					r, err := c.OpenFile(gctx, l.WebURL, it.FileRef)
					if err != nil {
						return err
					}
					defer r.Close()
					if _, err := io.Copy(io.Discard, r); err != nil {
						return err
					}
					n.Add(1)
					return nil
				})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return int(n.Load()), time.Since(start)
}

// churn changes n items: 70 % content updates, 15 % new files, 10 %
// deletes and 5 % renames. It returns the number of changes made.
func churn(t *testing.T, w *world, n int) int {
	t.Helper()
	var files []spemu.Entry
	for _, e := range w.emu.Snapshot() {
		if e.Kind == spemu.KindFile {
			files = append(files, e)
		}
	}
	step := len(files) / n
	made := 0
	for i := 0; i < n; i++ {
		e := files[i*step]
		var err error
		switch {
		case i%20 < 14:
			_, err = w.emu.UpdateFile(e.FileRef, spemu.FileSpec{Size: 2048, Seed: uint64(i + 1)})
		case i%20 < 17:
			_, err = w.emu.AddFile(e.FileRef[:len(e.FileRef)-len(e.Name)-1], fmt.Sprintf("churn-%d.txt", i), spemu.FileSpec{Size: 1024, Seed: uint64(i + 1)})
		case i%20 < 19:
			err = w.emu.Delete(e.FileRef)
		default:
			_, err = w.emu.Rename(e.FileRef, fmt.Sprintf("renamed-%d-%s", i, e.Name))
		}
		if err != nil {
			t.Fatalf("churn %d on %s: %v", i, e.FileRef, err)
		}
		made++
	}
	return made
}

// latencies updates one file at a time, at a random point of the poll
// cycle, and returns how long each took to reach the relay's store.
func latencies(t *testing.T, w *world) []time.Duration {
	t.Helper()
	var target spemu.Entry
	for _, e := range w.emu.Snapshot() {
		if e.Kind == spemu.KindFile {
			target = e
			break
		}
	}
	key := ingestapi.Key{Site: w.site, ListID: target.ListID, ItemID: target.ItemID}
	ctx := context.Background()
	var out []time.Duration
	for i := range benchLatencyRuns {
		// Spread the changes over the poll cycle.
		time.Sleep(benchPoll * time.Duration(i) / benchLatencyRuns)
		it, err := w.emu.UpdateFile(target.FileRef, spemu.FileSpec{Size: 3000, Seed: uint64(1000 + i)})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			d, err := w.relay.Store().Get(ctx, tenant, key)
			if err == nil && d.Version == it.Version {
				break
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("change %d (version %s) not in the store after a minute: %+v %v", i, it.Version, d, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		out = append(out, time.Since(start))
	}
	return out
}

// TestStreamMemoryReport measures the real bridge-agent's memory while it
// crawls a 1 GiB file: downloaded from the emulator, spooled, hashed and
// uploaded to the relay through the tunnel. It prints the agent's resident
// set when idle after a small crawl and its peak (VmHWM, since the process
// started) once the file is in the relay's store, against the 100 MiB
// target, and the file's end-to-end rate. It runs only with -bench.report.
func TestStreamMemoryReport(t *testing.T) {
	if !*benchReport {
		t.Skip("run with -args -bench.report")
	}
	if raceEnabled {
		t.Skip("the race detector distorts the figures")
	}
	const size = 1 << 30
	w := newProcWorld(t, spemu.Spec{Seed: 19, SiteNames: []string{"big"}, Libraries: 1, Lists: 0, ItemsPerList: 50,
		PlainNames: true, MaxSize: 4 << 10}, procOptions{protocol: "auto", maxFileSizeMB: 2 << 10})
	w.waitAgent(time.Minute, "the small crawl done", func(s crawl.SiteStatus) bool { return s.Phase == crawl.PhaseIncremental })
	idle := procMemory(t, w.agent.cmd.Process.Pid, "VmRSS")

	lib := ""
	for _, e := range w.entries() {
		if e.Kind == spemu.KindFile {
			lib = e.FileRef[:len(e.FileRef)-len(e.Name)-1]
			break
		}
	}
	start := time.Now()
	big, err := w.emu.AddFile(lib, "one-gibibyte.bin", spemu.FileSpec{Size: size, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(w.entries()))
	for deadline := time.Now().Add(5 * time.Minute); w.relayDocuments() < want; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not in the relay's store after 5 minutes: %+v", big.FileRef, w.status())
		}
	}
	elapsed := time.Since(start)
	peak := procMemory(t, w.agent.cmd.Process.Pid, "VmHWM")
	w.waitSynced(time.Minute, "after the 1 GiB file") // the stored blob has the file's SHA-256

	report("crawl_1gib_file_agent_idle_rss", float64(idle)/(1<<20), "MiB")
	report("crawl_1gib_file_agent_peak_rss", float64(peak)/(1<<20), "MiB")
	report("crawl_1gib_file_agent_peak_rss_target", 100, "MiB")
	report("crawl_1gib_file_agent_peak_rss_vs_target", float64(peak)/(100<<20), "ratio")
	report("crawl_1gib_file_end_to_end", size/elapsed.Seconds()/1e6, "MB/s")
}

// procMemory reads one memory figure (VmRSS, VmHWM) of process pid, in
// bytes, from /proc/pid/status.
func procMemory(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read the agent's memory: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status: %q: %v", pid, line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}
