package crawl_test

// Crash safety with the real binaries: bridge-agent and bridge-relay run as
// child processes that the tests SIGKILL in the middle of a crawl, and a
// TCP forwarder in the test cuts the tunnel while a batch is on the wire.
// The SharePoint emulator runs in the test process. After each recovery the
// relay's store (opened here once the relay is down) must equal the source
// exactly, and the emulator's request counters must show that the crawl
// went on from its checkpoint instead of starting over.

import (
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/relay/store"
)

// TestCrashKillAgentAndRelay SIGKILLs the agent and then the relay in the
// middle of a full crawl, with the real binaries, and mutates the source
// after the recovery:
//   - the agent's checkpoint survives its kill, and the restarted agent
//     downloads only the files the checkpoint does not cover;
//   - every document the checkpoint covers when the relay is killed is in
//     the store that the killed relay left, equal to the source;
//   - after the relay comes back the agent downloads only what is left;
//   - the store equals the source exactly, after the crawl and after adds,
//     an update and deletes.
func TestCrashKillAgentAndRelay(t *testing.T) {
	w := newProcWorld(t, spemu.Spec{Seed: 13, SiteNames: []string{"crash"}, Libraries: 2, Lists: 1, ItemsPerList: 800,
		FolderDepth: 1, FolderBreadth: 3, MaxSize: 4 << 10}, procOptions{protocol: "auto"})
	entries := w.entries()
	files := countFiles(entries, nil)
	t.Logf("source: %d documents, %d files", len(entries), files)

	// 1. SIGKILL the agent once a quarter is delivered.
	st := w.waitAgent(90*time.Second, "a quarter of the crawl delivered", func(s crawl.SiteStatus) bool {
		return s.Delivered >= int64(len(entries)/4)
	})
	time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond) // land anywhere in the next batch
	w.agent.kill(t)
	w.emu.ResetStats()
	if st.Phase != crawl.PhaseFull {
		t.Fatalf("the full crawl was over (%+v) before the agent was killed; make the site larger", st)
	}
	cp1 := w.checkpoint()
	if cp1.Phase != crawl.PhaseFull || cp1.Generation == "" || (len(cp1.DoneLists) == 0 && cp1.AfterID == 0) {
		t.Fatalf("the checkpoint the killed agent left keeps no progress: %+v", cp1)
	}
	uncovered1 := countFiles(entries, func(e spemu.Entry) bool { return !covered(cp1, e) })
	if files-uncovered1 < 100 {
		t.Fatalf("the checkpoint covers %d files: too few to tell a resumed crawl from a new one", files-uncovered1)
	}
	t.Logf("agent killed: the checkpoint covers %d of %d files (generation %s, %d lists done, list %s after item %d)",
		files-uncovered1, files, cp1.Generation, len(cp1.DoneLists), cp1.ListID, cp1.AfterID)

	// 2. Restart it; SIGKILL the relay once more than half is delivered,
	// somewhere in the first two batches of files after that: while files
	// download, their blobs go up, or a batch is applied.
	w.agent.start(t)
	w.waitAgent(90*time.Second, "more than half of the crawl delivered", func(s crawl.SiteStatus) bool {
		return s.Delivered >= int64(len(entries)*55/100)
	})
	target := w.emu.Stats().Requests[spemu.EndpointContent] + 150 + rand.Int64N(200)
	for deadline := time.Now().Add(time.Minute); w.emu.Stats().Requests[spemu.EndpointContent] < target; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent downloads no more files: %+v", w.status())
		}
	}
	cp2 := w.checkpoint() // it only moves on, so what it covers now is acknowledged
	w.relay.kill(t)
	beforeRelayKill := w.emu.Stats().Requests[spemu.EndpointContent]
	if cp2.Phase != crawl.PhaseFull {
		t.Fatalf("the full crawl was over (%+v) before the relay was killed; make the site larger", cp2)
	}
	uncovered2 := countFiles(entries, func(e spemu.Entry) bool { return !covered(cp2, e) })
	coveredDocs, coveredBefore := 0, 0
	for _, e := range entries {
		if covered(cp2, e) {
			coveredDocs++
		}
		if covered(cp1, e) {
			coveredBefore++
		}
	}
	if coveredDocs-coveredBefore < 100 {
		t.Fatalf("the restarted agent's checkpoint moved over %d documents only before the relay was killed", coveredDocs-coveredBefore)
	}
	if d := w.storeDiff(func(e spemu.Entry) bool { return covered(cp2, e) }); d != "" {
		t.Fatalf("the relay lost what it had acknowledged: after SIGKILL, of the %d documents the agent's checkpoint covers: %s", coveredDocs, d)
	}
	t.Logf("relay killed: the %d documents the checkpoint covers are in its store, equal to the source", coveredDocs)

	// 3. Restart the relay on the same address; the agent reconnects and
	// finishes without starting over.
	w.relay.start(t)
	w.waitSynced(2*time.Minute, "after the agent and the relay were killed")
	w.relay.start(t)
	downloads := w.emu.Stats().Requests[spemu.EndpointContent]
	t.Logf("downloads after the agent restart: %d (the checkpoint left %d files to crawl); after the relay kill: %d (%d left)",
		downloads, uncovered1, downloads-beforeRelayKill, uncovered2)
	// Slack: requests the killed agent had in flight may be counted after the reset.
	if downloads > int64(uncovered1)+4 {
		t.Errorf("the restarted agent downloaded %d files, but its checkpoint left only %d of %d: it repeated work it had done", downloads, uncovered1, files)
	}
	if n := downloads - beforeRelayKill; n > int64(uncovered2) {
		t.Errorf("after the relay kill the agent downloaded %d files, but only %d of %d were left: it repeated work it had done", n, uncovered2, files)
	}
	if !strings.Contains(w.agent.logs(), "resuming the full crawl from its checkpoint") {
		t.Error("the restarted agent did not say it resumed from its checkpoint")
	}
	if n := strings.Count(w.agent.logs(), "full crawl started"); n != 1 {
		t.Errorf("the agent logged %d full crawl starts, want 1", n)
	}

	// 4. The source changes after the recovery: adds, an update, deletes.
	var added, gone []string
	lib := ""
	for _, e := range entries {
		if e.Kind == spemu.KindFile && strings.Contains(e.FileRef, "/Shared Documents/") {
			lib = e.WebURL + "/Shared Documents"
			break
		}
	}
	for i := range 3 {
		it, err := w.emu.AddFile(lib, fmt.Sprintf("after-crash-%d.txt", i), spemu.FileSpec{Size: 1000 + int64(i)})
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, it.FileRef)
	}
	var victims []spemu.Entry
	for _, e := range entries {
		if e.Kind == spemu.KindFile && len(victims) < 3 {
			victims = append(victims, e)
		}
	}
	if _, err := w.emu.UpdateFile(victims[0].FileRef, spemu.FileSpec{Size: 3333, Seed: 42}); err != nil {
		t.Fatal(err)
	}
	for _, e := range victims[1:] {
		if err := w.emu.Delete(e.FileRef); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, e.FileRef)
	}
	w.waitSynced(time.Minute, fmt.Sprintf("after adding %v, updating %s, deleting %v", added, victims[0].FileRef, gone))
	w.checkLogs()
}

// TestCrashCutTunnelMidBatch runs the agent over TCP through a forwarder
// that cuts every connection while a batch is on the wire: once in the
// middle of its body (the relay reads an incomplete body and stores
// nothing of it) and once right after the relay committed it, before the
// acknowledgement reaches the agent (the agent sends it again and the relay
// recognises the replay). The agent reconnects and goes on: it never
// downloads a file twice, every document is acknowledged exactly once, and
// the store equals the source with no duplicates.
func TestCrashCutTunnelMidBatch(t *testing.T) {
	w := newProcWorld(t, spemu.Spec{Seed: 17, SiteNames: []string{"cut"}, Libraries: 2, Lists: 1, ItemsPerList: 700,
		FolderDepth: 1, FolderBreadth: 2, MaxSize: 4 << 10}, procOptions{protocol: "tcp", forward: true})
	entries := w.entries()
	files := countFiles(entries, nil)
	t.Logf("source: %d documents, %d files", len(entries), files)

	problem := `bridge_ingest_problems_total{endpoint="batches",problem="incomplete-body"}`
	duplicate := `bridge_ingest_batch_duration_seconds_count{outcome="duplicate"}`
	cuts := []struct {
		name   string
		mode   cutMode
		metric string
	}{
		{"in the middle of a batch body", cutMidBody, problem},
		{"after the relay committed a batch, before its acknowledgement", cutAckLost, duplicate},
	}
	var lastDelivered int64
	for _, c := range cuts {
		hit := false
		for attempt := 1; attempt <= 6 && !hit; attempt++ {
			// Let a batch through since the last cut, so that the agent is
			// back and crawling.
			st := w.waitAgent(60*time.Second, "progress since the last cut", func(s crawl.SiteStatus) bool {
				return s.Delivered > lastDelivered
			})
			if st.Phase != crawl.PhaseFull {
				t.Fatalf("the full crawl was over (%+v) before the tunnel was cut %s; make the site larger", st, c.name)
			}
			before := w.relayMetric(c.metric)
			w.fwd.arm(c.mode)
			select {
			case <-w.fwd.fired:
			case <-time.After(30 * time.Second):
				t.Fatalf("cut %s: no batch went through the forwarder in 30s", c.name)
			}
			st = w.status()
			lastDelivered = st.Delivered
			deadline := time.Now().Add(15 * time.Second)
			for !hit && time.Now().Before(deadline) {
				hit = w.relayMetric(c.metric) > before
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("cut %d %s (attempt %d, %d delivered): confirmed by the relay: %v", w.fwd.cuts.Load(), c.name, attempt, st.Delivered, hit)
		}
		if !hit {
			t.Errorf("the tunnel was never cut %s: the relay's %s did not move", c.name, c.metric)
		}
	}
	w.waitSynced(2*time.Minute, "after the tunnel cuts")

	st := w.status()
	if st.Delivered != int64(len(entries)) {
		t.Errorf("the agent counted %d documents acknowledged, want %d: each exactly once", st.Delivered, len(entries))
	}
	if n := w.emu.Stats().Requests[spemu.EndpointContent]; n != int64(files) {
		t.Errorf("the agent downloaded %d times for %d files: a cut made it repeat work", n, files)
	}
	if !strings.Contains(w.agent.logs(), "delivery to the relay failed; the crawl waits and retries") {
		t.Error("the agent log does not show a delivery retried after a cut")
	}
	if got := w.fwd.accepted.Load(); got < int64(len(cuts))+1 {
		t.Errorf("the forwarder saw %d connections, want at least %d (a reconnection after each cut)", got, len(cuts)+1)
	}
	w.checkLogs()
}

// procWorld is the SharePoint emulator in the test process, and
// bridge-relay and bridge-agent as child processes.
type procWorld struct {
	t        *testing.T
	dir      string
	emu      *spemu.Server
	emuURL   string
	site     string // the crawled site URL
	sitePath string // its server-relative URL
	password string

	relayAddr, relayOps, agentOps string
	relay, agent                  *proc
	fwd                           *forwarder // nil unless the agent goes through one
	client                        *http.Client
}

// procOptions shape a procWorld.
type procOptions struct {
	protocol      string // the agent's tunnel protocol: auto, quic or tcp
	forward       bool   // put a cutting forwarder between agent and relay
	maxFileSizeMB int64  // the agent's sharepoint.max_file_size_mb; 0 keeps the default
	// The agent's sharepoint.poll_interval, concurrency and
	// requests_per_second; zero means 500ms, 4 and 2000.
	poll              time.Duration
	concurrency, rate int
	// cpus, when set, runs the agent and the relay on these CPUs only
	// (taskset -c), e.g. "1".
	cpus string
}

func newProcWorld(t *testing.T, spec spemu.Spec, o procOptions) *procWorld {
	t.Helper()
	agentBin, relayBin := crashBinaries(t)
	w := &procWorld{t: t, dir: t.TempDir(), client: &http.Client{Timeout: 5 * time.Second}}
	w.password = crand.Text()
	w.relayAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t, true))
	w.relayOps = fmt.Sprintf("127.0.0.1:%d", freePort(t, false))
	w.agentOps = fmt.Sprintf("127.0.0.1:%d", freePort(t, false))
	caAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, false))

	// Registered first, so that it runs last: after the processes are gone.
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"relay.log", "agent.log", "emulator.log"} {
				t.Logf("--- last lines of %s:\n%s", name, tail(filepath.Join(w.dir, name), 60))
			}
		}
	})

	elog, err := os.Create(filepath.Join(w.dir, "emulator.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { elog.Close() })
	w.emu = spemu.New(spemu.Options{Auth: spemu.AuthNTLM, Users: map[string]string{`CONTOSO\svc-bridge`: w.password},
		Logger: slog.New(slog.NewTextHandler(elog, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err := w.emu.Generate(spec); err != nil {
		t.Fatal(err)
	}
	if w.emuURL, err = w.emu.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.emu.Close() })
	w.sitePath = "/sites/" + spec.SiteNames[0]
	w.site = w.emuURL + w.sitePath

	w.write("relay.yaml", fmt.Sprintf(`listen: %s
relay_id: relay-crash
pki:
  ca:
    dir: ca
    listen: %s
    init: true
  state_dir: relay-state
ops:
  listen: %s
  pprof: true
store:
  dir: store
tunnel:
  drain_timeout: 2s
`, w.relayAddr, caAddr, w.relayOps))
	w.relay = &proc{name: "relay", bin: relayBin, args: []string{"serve", "--config", filepath.Join(w.dir, "relay.yaml")}, log: filepath.Join(w.dir, "relay.log"), cpus: o.cpus}
	w.relay.ready = func() error { _, err := w.get("http://" + w.relayOps + "/status"); return err }
	w.relay.start(t)

	// Enroll the agent as an operator would.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var tok, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, relayBin, "agents", "token", "--tenant", tenant, "--agent", "agent-01", "--ops", w.relayOps)
	cmd.Stdout, cmd.Stderr = &tok, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bridge-relay agents token: %v: %s", err, stderr.String())
	}
	stderr.Reset()
	cmd = exec.CommandContext(ctx, agentBin, "enroll", "--token", "-", "--state-dir", filepath.Join(w.dir, "agent-state"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &tok, io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bridge-agent enroll: %v: %s", err, stderr.String())
	}

	relays := w.relayAddr
	if o.forward {
		w.fwd = newForwarder(t, w.relayAddr)
		relays = w.fwd.addr()
	}
	w.write("sp-password", w.password)
	extra := ""
	if o.maxFileSizeMB > 0 {
		extra = fmt.Sprintf("  max_file_size_mb: %d\n", o.maxFileSizeMB)
	}
	w.write("agent.yaml", fmt.Sprintf(`relays: [%q]
connections: 1
protocol: %s
proxy: direct
pki:
  state_dir: agent-state
ops:
  listen: %s
  pprof: true
tunnel:
  backoff_max: 1s
  drain_timeout: 2s
sharepoint:
  sites: [%q]
  auth:
    method: ntlm
    username: CONTOSO\svc-bridge
    password_file: sp-password
  poll_interval: %s
  concurrency: %d
  requests_per_second: %d
  state_dir: crawl-state
%s`, relays, o.protocol, w.agentOps, w.site, cmp.Or(o.poll, 500*time.Millisecond), cmp.Or(o.concurrency, 4), cmp.Or(o.rate, 2000), extra))
	w.agent = &proc{name: "agent", bin: agentBin, args: []string{"run", "--config", filepath.Join(w.dir, "agent.yaml")}, log: filepath.Join(w.dir, "agent.log"), cpus: o.cpus}
	w.agent.ready = func() error { _, err := w.get("http://" + w.agentOps + "/status"); return err }
	w.agent.start(t)
	return w
}

func (w *procWorld) write(name, data string) {
	w.t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, name), []byte(data), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *procWorld) get(url string) ([]byte, error) {
	resp, err := w.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

// entries are the source's items of the crawled site.
func (w *procWorld) entries() []spemu.Entry {
	var out []spemu.Entry
	for _, e := range w.emu.Snapshot() {
		if e.SiteURL == w.sitePath {
			out = append(out, e)
		}
	}
	return out
}

// status is the agent's crawl status from its ops server, or the zero
// value while the agent is down.
func (w *procWorld) status() crawl.SiteStatus {
	b, err := w.get("http://" + w.agentOps + "/status")
	if err != nil {
		return crawl.SiteStatus{}
	}
	var st agent.Status
	if err := json.Unmarshal(b, &st); err != nil || len(st.Crawl) != 1 {
		w.t.Fatalf("agent /status: %v: %.300s", err, b)
	}
	return st.Crawl[0]
}

// waitAgent waits until the agent's crawl status satisfies ok.
func (w *procWorld) waitAgent(d time.Duration, what string, ok func(crawl.SiteStatus) bool) crawl.SiteStatus {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		st := w.status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("waited %v for %s; agent crawl status %+v", d, what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// relayDocuments is the relay's count of the tenant's documents, or -1.
func (w *procWorld) relayDocuments() int64 {
	b, err := w.get("http://" + w.relayOps + "/status")
	if err != nil {
		return -1
	}
	var st relay.Status
	if json.Unmarshal(b, &st) != nil {
		return -1
	}
	s, ok := st.Store[tenant]
	if !ok {
		return -1
	}
	return s.Documents
}

// relayMetric is the value of one series of the relay's /metrics (0 when
// absent); series is the name with its labels, as the text format prints it.
func (w *procWorld) relayMetric(series string) float64 {
	w.t.Helper()
	b, err := w.get("http://" + w.relayOps + "/metrics")
	if err != nil {
		w.t.Fatalf("relay metrics: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				w.t.Fatalf("relay metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// checkpoint reads the crawl checkpoint the agent keeps on disk.
func (w *procWorld) checkpoint() crawl.Checkpoint {
	w.t.Helper()
	paths, _ := filepath.Glob(filepath.Join(w.dir, "crawl-state", "crawl-*.json"))
	if len(paths) != 1 {
		w.t.Fatalf("want one crawl checkpoint, found %v", paths)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		w.t.Fatal(err)
	}
	var cp crawl.Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		w.t.Fatalf("checkpoint %s: %v", paths[0], err)
	}
	if cp.Site != w.site {
		w.t.Fatalf("checkpoint for %q, want %q", cp.Site, w.site)
	}
	return cp
}

// waitSynced waits until the agent has finished its full crawl, the relay
// counts as many documents as the source has, and two change-log passes
// have completed since (so the second one started after the source last
// changed and found nothing more to deliver). Then it SIGKILLs the relay
// and compares its store with the source exactly; the relay stays down.
func (w *procWorld) waitSynced(d time.Duration, what string) {
	w.t.Helper()
	want := int64(len(w.entries()))
	deadline := time.Now().Add(d)
	var polls []time.Time
	for {
		st := w.status()
		n := w.relayDocuments()
		if st.Phase == crawl.PhaseIncremental && n == want {
			if len(polls) == 0 || !st.LastPoll.Equal(polls[len(polls)-1]) {
				polls = append(polls, st.LastPoll)
			}
			if len(polls) >= 3 {
				break
			}
		} else {
			polls = polls[:0]
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%s: not synced after %v: the relay counts %d documents, the source has %d; agent crawl status %+v", what, d, n, want, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.relay.kill(w.t)
	if diff := w.storeDiff(nil); diff != "" {
		w.t.Fatalf("%s: the store does not equal the source: %s", what, diff)
	}
}

// storeDiff opens the store the (stopped) relay left and compares it with
// the source: of the entries only selects (nil: all, and no others may be
// stored), the same documents, versions, paths, content and readers, and
// the counts agree (the store keys by tenant, site, list and item).
func (w *procWorld) storeDiff(only func(spemu.Entry) bool) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(w.dir, "store"), store.Config{})
	if err != nil {
		w.t.Fatalf("open the relay's store: %v", err)
	}
	defer st.Close()
	stored := map[string]ingestapi.Document{}
	q := store.ListQuery{Limit: store.MaxListLimit}
	listed := 0
	for {
		page, err := st.List(ctx, tenant, q)
		if err != nil {
			return err.Error()
		}
		for _, d := range page.Documents {
			listed++
			if d.Site != w.site {
				return "a document of another site: " + d.Site + " " + d.Path
			}
			stored[fmt.Sprintf("%s|%d", d.ListID, d.ItemID)] = d
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	entries := w.entries()
	problems := compareStore(entries, stored, only)
	if only == nil {
		stats, err := st.Stats(ctx, tenant)
		if err != nil {
			return err.Error()
		}
		if stats.Documents != int64(len(entries)) || listed != len(entries) || len(stored) != len(entries) {
			problems = append(problems, fmt.Sprintf("counts: the store counts %d documents and lists %d (%d keys), the source has %d",
				stats.Documents, listed, len(stored), len(entries)))
		}
	}
	return strings.Join(problems, "; ")
}

// checkLogs fails the test on a data race or a panic in a child process,
// and on the SharePoint password in any log.
func (w *procWorld) checkLogs() {
	w.t.Helper()
	for _, name := range []string{"relay.log", "agent.log", "emulator.log"} {
		b, _ := os.ReadFile(filepath.Join(w.dir, name))
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", w.password} {
			if bytes.Contains(b, []byte(bad)) {
				if bad == w.password {
					bad = "the SharePoint password"
				}
				w.t.Errorf("%s contains %s", name, bad)
			}
		}
	}
}

// covered reports whether the checkpoint says e was delivered and
// acknowledged in the current full crawl.
func covered(cp crawl.Checkpoint, e spemu.Entry) bool {
	return slices.Contains(cp.DoneLists, e.ListID) || (cp.ListID == e.ListID && e.ItemID <= cp.AfterID)
}

func countFiles(entries []spemu.Entry, keep func(spemu.Entry) bool) int {
	n := 0
	for _, e := range entries {
		if e.Kind == spemu.KindFile && (keep == nil || keep(e)) {
			n++
		}
	}
	return n
}

// proc is a child process that can be started again after it was killed.
// Its stdout and stderr go to the file log, each start marked.
type proc struct {
	name, bin string
	args      []string
	log       string
	ready     func() error // returns nil once the process answers
	cpus      string       // taskset -c CPUs; empty means any

	cmd    *exec.Cmd
	done   chan struct{}
	starts int
	// cpu is the user and system CPU time the last run used (start-up
	// included), set when it has been killed.
	cpu time.Duration
}

func (p *proc) start(t *testing.T) {
	t.Helper()
	if p.cmd != nil {
		t.Fatalf("%s is already running", p.name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.starts++
	fmt.Fprintf(f, "=== start %d of %s at %s\n", p.starts, p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	if p.cpus != "" {
		// taskset execs the program: the PID is the program's.
		cmd = exec.Command("taskset", append([]string{"-c", p.cpus, p.bin}, p.args...)...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", p.name, err)
	}
	f.Close()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(time.Minute)
	for {
		err := p.ready()
		if err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited at start: %v\n%s", p.name, cmd.ProcessState, tail(p.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after a minute: %v", p.name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill SIGKILLs the process and waits until it is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if p.cmd == nil {
		t.Fatalf("%s is not running", p.name)
	}
	select {
	case <-p.done:
		t.Fatalf("%s had exited before it was killed: %v", p.name, p.cmd.ProcessState)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
	if st := p.cmd.ProcessState; st != nil {
		p.cpu = st.UserTime() + st.SystemTime()
	}
	p.cmd = nil
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var crashBins struct {
	once                sync.Once
	agent, relay, where string
	err                 error
}

// crashBinaries builds bridge-agent and bridge-relay once per test binary,
// with the race detector when the tests run with it, into a cache directory
// that go build keeps up to date across runs.
func crashBinaries(t *testing.T) (agentBin, relayBin string) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: builds the agent and relay binaries and runs them")
	}
	crashBins.once.Do(func() {
		race := false
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				race = race || (s.Key == "-race" && s.Value == "true")
			}
		}
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			crashBins.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "mcc-bridge-test", "crash-bin")
		args := []string{"build", "-o", dir + string(filepath.Separator)}
		if race {
			dir += "-race"
			args = []string{"build", "-race", "-o", dir + string(filepath.Separator)}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			crashBins.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", append(args, "./agent/cmd/bridge-agent", "./relay/cmd/bridge-relay")...)
		cmd.Dir = root
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			crashBins.err = fmt.Errorf("go %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, b)
			return
		}
		crashBins.agent, crashBins.relay = filepath.Join(dir, "bridge-agent"), filepath.Join(dir, "bridge-relay")
		crashBins.where = fmt.Sprintf("built in %v into %s (race %v)", time.Since(start).Round(time.Millisecond), dir, race)
	})
	if crashBins.err != nil {
		t.Fatal(crashBins.err)
	}
	t.Log("binaries", crashBins.where)
	return crashBins.agent, crashBins.relay
}

// freePort finds a loopback port that is free on TCP (and UDP, for the
// relay's QUIC listener on the same port), to be fixed in configurations
// so that restarts keep their addresses.
func freePort(t *testing.T, udp bool) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if !udp {
			ln.Close()
			return port
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// cutMode selects when the forwarder cuts.
type cutMode int32

const (
	cutNone cutMode = iota
	// cutMidBody cuts once a batch body is partly through: more than
	// burstBytes went to the relay with nothing coming back. Only a batch
	// body is that large here; blob uploads (files of at most 4 KiB, four at
	// a time) each wait for an answer.
	cutMidBody
	// cutAckLost lets a batch body through and cuts at the first answer
	// of the relay after it large enough to be an HTTP response, before
	// passing it on: the relay committed, the agent never hears of it.
	cutAckLost
)

const (
	burstBytes  = 40 << 10
	answerBytes = 150 // TLS records of window updates and heartbeats are smaller
)

// forwarder relays TCP connections to target and cuts them all when armed.
type forwarder struct {
	ln       net.Listener
	target   string
	mode     atomic.Int32
	fired    chan struct{}
	cuts     atomic.Int64
	accepted atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool // guarded by mu
}

func newForwarder(t *testing.T, target string) *forwarder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, target: target, fired: make(chan struct{}, 1), conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.accepted.Add(1)
			wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		f.cutAll()
		f.mu.Lock()
		f.conns = nil // connections dialled from now on are closed at once
		f.mu.Unlock()
		wg.Wait()
	})
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) arm(m cutMode) { f.mode.Store(int32(m)) }

// fire disarms m and cuts every connection, once per arming.
func (f *forwarder) fire(m cutMode) bool {
	if !f.mode.CompareAndSwap(int32(m), int32(cutNone)) {
		return false
	}
	f.cuts.Add(1)
	f.cutAll()
	select {
	case f.fired <- struct{}{}:
	default:
	}
	return true
}

func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	for _, c := range cs {
		f.conns[c] = true
	}
	return true
}

func (f *forwarder) cutAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}

func (f *forwarder) serve(down net.Conn) {
	up, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		down.Close()
		return
	}
	if !f.track(down, up) {
		down.Close()
		up.Close()
		return
	}
	defer func() {
		down.Close()
		up.Close()
		f.mu.Lock()
		delete(f.conns, down)
		delete(f.conns, up)
		f.mu.Unlock()
	}()
	var (
		run   atomic.Int64 // bytes to the relay since the last bytes from it
		burst atomic.Bool  // a burst went up since cutAckLost was armed
	)
	var wg sync.WaitGroup
	wg.Go(func() { // agent -> relay
		defer up.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := down.Read(buf)
			if n > 0 {
				if _, err := up.Write(buf[:n]); err != nil {
					return
				}
				if run.Add(int64(n)) >= burstBytes {
					switch cutMode(f.mode.Load()) {
					case cutMidBody:
						if f.fire(cutMidBody) {
							return
						}
					case cutAckLost:
						burst.Store(true)
					}
				}
			}
			if err != nil {
				return
			}
		}
	})
	wg.Go(func() { // relay -> agent
		defer down.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 {
				if n >= answerBytes && burst.Load() && cutMode(f.mode.Load()) == cutAckLost && f.fire(cutAckLost) {
					return // not passed on
				}
				run.Store(0)
				if _, err := down.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	wg.Wait()
}
