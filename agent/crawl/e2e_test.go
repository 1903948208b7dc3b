package crawl_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent"
	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/relay"
	"github.com/mcc-bridge/bridge/relay/store"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

const tenant = "acme"

// world is an emulated SharePoint, a relay with its CA and store, and an
// enrolled agent crawling the SharePoint through the tunnel.
type world struct {
	t      *testing.T
	emu    *spemu.Server
	emuURL string
	relay  *relay.Relay
	agent  *agent.Agent
	site   string // the crawled site URL
	dir    string

	stopAgent func()
	agentLogs func() string
	stopRelay func()
	relayAddr string
	timeZone  *time.Location
	opts      worldOptions
}

// worldOptions adjust a world.
type worldOptions struct {
	agentEdit func(*agent.Config) // adjusts the agent's configuration
	quiet     bool                // keep logs below Warn out of the test log (benchmarks)
}

// logger returns the logger of one part of the world and its output so far.
func (w *world) logger() (*slog.Logger, func() string) {
	if !w.opts.quiet {
		return tunneltest.Logger(w.t)
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	h := slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if buf.Len() < 1<<20 {
			buf.Write(p)
		}
		return len(p), nil
	}), &slog.HandlerOptions{Level: slog.LevelWarn})
	return slog.New(h), func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func newWorld(t *testing.T, spec spemu.Spec, edit ...func(*spemu.Options)) *world {
	t.Helper()
	return newWorldWith(t, spec, worldOptions{}, edit...)
}

// newWorldWith is newWorld adjusted by wo.
func newWorldWith(t *testing.T, spec spemu.Spec, wo worldOptions, edit ...func(*spemu.Options)) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), opts: wo}
	elog, _ := w.logger()
	opts := spemu.Options{Auth: spemu.AuthNTLM, Users: map[string]string{`CONTOSO\svc-bridge`: "Zq9-sp-password"}, Logger: elog.With("part", "emu")}
	for _, e := range edit {
		e(&opts)
	}
	w.emu = spemu.New(opts)
	w.timeZone = opts.TimeZone
	if err := w.emu.Generate(spec); err != nil {
		t.Fatal(err)
	}
	u, err := w.emu.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.emu.Close() })
	w.emuURL = u
	w.site = u + "/sites/" + spec.SiteNames[0]
	w.startRelay()
	w.startAgent()
	return w
}

func (w *world) startRelay() {
	t := w.t
	cfg := relay.DefaultConfig()
	cfg.Listen, cfg.Ops.Listen, cfg.RelayID = "127.0.0.1:0", "127.0.0.1:0", "relay-e2e"
	if w.relayAddr != "" {
		cfg.Listen = w.relayAddr // a restart keeps the address the agent knows
	}
	cfg.PKI.CA = relay.EmbeddedCAConfig{Dir: filepath.Join(w.dir, "ca"), Listen: "127.0.0.1:0", Init: true}
	cfg.PKI.StateDir = filepath.Join(w.dir, "relay-state")
	cfg.Store.Dir = filepath.Join(w.dir, "store")
	cfg.Tunnel.DrainTimeout = 2 * time.Second
	log, _ := w.logger()
	r, err := relay.New(cfg, log.With("part", "relay"), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Listen(); err != nil {
		r.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	w.stopRelay = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(w.stopRelay)
	w.relay = r
	w.relayAddr = r.Server().TCPAddr().String()
}

func (w *world) startAgent() {
	t := w.t
	st := enroll.Store{Dir: filepath.Join(w.dir, "agent-state"), Name: "agent"}
	if !st.Exists() {
		m, err := w.relay.EmbeddedCA().Minter(stepca.AgentProvisioner)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := m.AgentToken(tenant, "agent-01", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := enroll.Enroll(context.Background(), tok, st, enroll.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := agent.DefaultConfig()
	cfg.Relays = []string{w.relayAddr}
	cfg.Connections, cfg.Proxy, cfg.Ops.Listen = 1, "direct", "127.0.0.1:0"
	cfg.PKI.StateDir = st.Dir
	cfg.SharePoint = agent.SharePointConfig{
		Sites:             []string{w.site},
		Auth:              agent.SharePointAuth{Method: "ntlm", Username: `CONTOSO\svc-bridge`, PasswordEnv: "SP_PASSWORD"},
		PollInterval:      500 * time.Millisecond,
		Concurrency:       4,
		RequestsPerSecond: 2000,
	}
	if w.timeZone != nil {
		cfg.SharePoint.TimeZone = w.timeZone.String()
	}
	if w.opts.agentEdit != nil {
		w.opts.agentEdit(&cfg)
	}
	log, logs := w.logger()
	a, err := agent.New(cfg, log.With("part", "agent"), "test", func(k string) string {
		if k == "SP_PASSWORD" {
			return "Zq9-sp-password"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	w.stopAgent = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(w.stopAgent)
	w.agent, w.agentLogs = a, logs
}

func (w *world) status() crawl.SiteStatus {
	st := w.agent.Crawler().Status()
	return st[0]
}

// waitSynced waits until the relay's store equals the emulator's state.
func (w *world) waitSynced(d time.Duration, what string) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	var diff string
	for time.Now().Before(deadline) {
		if st := w.status(); st.Phase == crawl.PhaseIncremental {
			if diff = w.diff(); diff == "" {
				return
			}
		} else {
			diff = "still in the full crawl"
		}
		time.Sleep(300 * time.Millisecond)
	}
	w.t.Fatalf("%s: the store does not equal the source after %v: %s\nstatus %+v", what, d, diff, w.status())
}

// diff compares the store with the emulator's snapshot: same documents,
// versions, paths, content and readers, no extras.
func (w *world) diff() string {
	stored, err := w.storedDocs()
	if err != nil {
		return err.Error()
	}
	var entries []spemu.Entry
	for _, e := range w.emu.Snapshot() {
		if strings.HasPrefix(e.SiteURL+"/", "/sites/"+strings.TrimPrefix(w.site, w.emuURL+"/sites/")+"/") {
			entries = append(entries, e)
		}
	}
	return strings.Join(compareStore(entries, stored, nil), "; ")
}

// compareStore compares documents stored (keyed "<list id>|<item id>")
// with the source's entries: of the entries only selects (nil: all, and
// then no others may be stored), the same documents, versions, paths,
// content and readers. It returns at most a few problems.
func compareStore(entries []spemu.Entry, stored map[string]ingestapi.Document, only func(spemu.Entry) bool) []string {
	var problems []string
	seen := map[string]bool{}
	for _, e := range entries {
		if only != nil && !only(e) {
			continue
		}
		k := fmt.Sprintf("%s|%d", e.ListID, e.ItemID)
		seen[k] = true
		d, ok := stored[k]
		switch {
		case !ok:
			problems = append(problems, "missing "+e.FileRef)
		case d.Path != e.FileRef || d.Name != e.Name || d.Kind != string(e.Kind) || d.Version != e.Version || d.UniqueID != e.UniqueID:
			problems = append(problems, fmt.Sprintf("differs %s: store %s %s %s v%s, source %s %s %s v%s", k, d.Path, d.Name, d.Kind, d.Version, e.FileRef, e.Name, e.Kind, e.Version))
		case e.Kind == spemu.KindFile && (d.Size != e.Size || d.ContentSHA256 != e.SHA256):
			problems = append(problems, fmt.Sprintf("content of %s: store %d %s, source %d %s", e.FileRef, d.Size, d.ContentSHA256, e.Size, e.SHA256))
		case !sameReaders(d.ACL, "user", e.Readers) || !sameReaders(d.ACL, "directory group", e.ReaderGroups):
			problems = append(problems, fmt.Sprintf("readers of %s: store %v, source %v and groups %v", e.FileRef, d.ACL, e.Readers, e.ReaderGroups))
		}
		if len(problems) > 5 {
			return problems
		}
	}
	if only == nil {
		for k, d := range stored {
			if !seen[k] && len(problems) <= 5 {
				problems = append(problems, "extra "+d.Path)
			}
		}
	}
	return problems
}

// storedDocs reads the relay's store, keyed "<list id>|<item id>".
func (w *world) storedDocs() (map[string]ingestapi.Document, error) {
	ctx := context.Background()
	stored := map[string]ingestapi.Document{}
	q := store.ListQuery{Limit: store.MaxListLimit}
	for {
		page, err := w.relay.Store().List(ctx, tenant, q)
		if err != nil {
			return nil, fmt.Errorf("list the store: %w", err)
		}
		for _, d := range page.Documents {
			stored[fmt.Sprintf("%s|%d", d.ListID, d.ItemID)] = d
		}
		if page.Next == "" {
			return stored, nil
		}
		q.Cursor = page.Next
	}
}

// stored is storedDocs, failing the test on an error.
func (w *world) stored() map[string]ingestapi.Document {
	w.t.Helper()
	docs, err := w.storedDocs()
	if err != nil {
		w.t.Fatal(err)
	}
	return docs
}

// sameReaders compares the users (or the directory groups, whose logins
// are claims like c:0+.w|s-1-5-...) of an ACL with the source's readers.
func sameReaders(acl []ingestapi.ACE, kind string, readers []string) bool {
	var users []string
	for _, a := range acl {
		switch {
		case kind == "user" && a.Kind == "user",
			kind == "directory group" && a.Kind == "group" && strings.Contains(a.Login, "|"):
			users = append(users, strings.ToLower(a.Login))
		}
	}
	want := make([]string, len(readers))
	for i, r := range readers {
		want[i] = strings.ToLower(r)
	}
	sort.Strings(users)
	sort.Strings(want)
	return slices.Equal(slices.Compact(users), slices.Compact(want))
}

// TestCrawlEndToEnd crawls a generated site of several thousand items
// through a real tunnel, mutates it in every way the change log reports,
// and checks after each step that the relay's store equals the source.
func TestCrawlEndToEnd(t *testing.T) {
	w := newWorld(t, spemu.Spec{Seed: 7, SiteNames: []string{"mkt"}, WebsPerSite: 1, Libraries: 2, Lists: 1,
		ItemsPerList: 700, FolderDepth: 2, FolderBreadth: 2, MaxSize: 8 << 10})
	start := time.Now()
	w.waitSynced(3*time.Minute, "full crawl")
	t.Logf("full crawl of %d documents in %v", w.status().Delivered, time.Since(start).Round(time.Millisecond))
	if w.status().Delivered < 4000 {
		t.Errorf("delivered %d documents, want several thousand", w.status().Delivered)
	}

	// Mutate the source in every way the change log reports, and check
	// after each step that the store follows exactly.
	snap := w.emu.Snapshot()
	pick := func(kind spemu.Kind, inFolder bool, skip ...string) spemu.Entry {
		for _, e := range snap {
			if e.Kind != kind || !strings.Contains(e.FileRef, "Shared Documents") || slices.Contains(skip, e.FileRef) {
				continue
			}
			depth := strings.Count(strings.TrimPrefix(e.FileRef, e.WebURL+"/Shared Documents/"), "/")
			if (depth > 0) == inFolder {
				return e
			}
		}
		t.Fatalf("no %s to mutate", kind)
		return spemu.Entry{}
	}
	file := pick(spemu.KindFile, false)
	folder := pick(spemu.KindFolder, true)
	other := pick(spemu.KindFolder, false, folder.FileRef, path.Dir(folder.FileRef))
	lib := path.Dir(file.FileRef)
	steps := []struct {
		name string
		do   func() error
	}{
		{"add a file", func() error {
			_, err := w.emu.AddFile(lib, "New plan (v2) – O'Neil's.txt", spemu.FileSpec{Data: []byte("hello from the change log")})
			return err
		}},
		{"update a file", func() error {
			_, err := w.emu.UpdateFile(file.FileRef, spemu.FileSpec{Size: 5000, Seed: 99})
			return err
		}},
		{"rename a folder (descendants move)", func() error { _, err := w.emu.Rename(folder.FileRef, folder.Name+" renamed"); return err }},
		{"move a folder into another", func() error {
			_, err := w.emu.Move(path.Dir(folder.FileRef)+"/"+folder.Name+" renamed", other.FileRef)
			return err
		}},
		{"permission change without content change", func() error {
			return w.emu.SetPermissions(other.FileRef, spemu.Grant{Login: `i:0#.w|contoso\user03`, Role: "Read"})
		}},
		{"delete a folder (one log entry)", func() error { return w.emu.DeleteFolder(other.FileRef) }},
		{"restore it with its subtree", func() error { _, err := w.emu.Restore(other.FileRef); return err }},
		{"delete a file", func() error { return w.emu.Delete(file.FileRef) }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		start := time.Now()
		w.waitSynced(30*time.Second, st.name)
		t.Logf("%s: in the store after %v", st.name, time.Since(start).Round(time.Millisecond))
	}

	if ua := w.emu.LastUserAgent(); ua != "NONISV|MCC|MCCBridge/test" {
		t.Errorf("User-Agent %q", ua)
	}
	if strings.Contains(w.agentLogs(), "Zq9-sp-password") {
		t.Error("the SharePoint password reached the agent log")
	}
}

var _ = tunnel.ProtocolTCP

// TestCrawlSurvivesRestarts stops the agent and then the relay in the
// middle of a full crawl: after each comes back, the crawl resumes from
// its checkpoint (not from zero) and the store ends equal to the source.
func TestCrawlSurvivesRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	w := newWorld(t, spemu.Spec{Seed: 11, SiteNames: []string{"ops"}, Libraries: 2, Lists: 1, ItemsPerList: 900, FolderDepth: 1, FolderBreadth: 3, MaxSize: 4 << 10})
	waitDelivered := func(n int64) {
		deadline := time.Now().Add(2 * time.Minute)
		for w.status().Delivered < n {
			if time.Now().After(deadline) {
				t.Fatalf("delivered %d, waiting for %d", w.status().Delivered, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitDelivered(600)
	w.stopAgent() // mid-crawl
	before := w.status().Delivered
	if before >= 2700 {
		t.Fatalf("the crawl finished (%d) before the agent was stopped; make the site larger", before)
	}
	w.emu.ResetStats()
	w.startAgent()
	waitDelivered(before + 600)
	if !strings.Contains(w.agentLogs(), "resuming the full crawl from its checkpoint") {
		t.Error("the restarted agent did not resume from its checkpoint")
	}
	// Now the relay goes away mid-crawl and comes back on the same address.
	w.stopRelay()
	time.Sleep(500 * time.Millisecond)
	w.startRelay()
	w.waitSynced(3*time.Minute, "after an agent and a relay restart")
	// The restarted agent did not download everything again.
	files := int64(0)
	for _, e := range w.emu.Snapshot() {
		if e.Kind == spemu.KindFile {
			files++
		}
	}
	downloads := w.emu.Stats().Requests[spemu.EndpointContent]
	t.Logf("%d files; %d delivered before the agent restart; %d downloads after it", files, before, downloads)
	if downloads > files-before/2 {
		t.Errorf("the restarted agent downloaded %d of %d files: it started over", downloads, files)
	}
}

// TestCrawlQuirks: lists over the view threshold (RenderListDataAsStream,
// paged without duplicates: the agent delivers each item once), throttling
// with and without Retry-After, a rising health score, and a download reset
// mid-file: the store still ends equal to the source. The emulator writes
// local times, but RenderListDataAsStream rows carry UTC too ("Modified."),
// which the agent reads; TestCrawlLocalTimes covers dates without an
// offset. NextLinks only shapes JSON Light next links, and the agent runs
// with the default sharepoint.odata, verbose, whose __next links are
// always absolute: relative links are not covered here.
func TestCrawlQuirks(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	w := newWorld(t, spemu.Spec{Seed: 3, SiteNames: []string{"big"}, Libraries: 1, Lists: 1, ItemsPerList: 450, FolderDepth: 1, FolderBreadth: 2,
		LargeFiles: 1, LargeSize: 3 << 20}, func(o *spemu.Options) {
		o.ViewThreshold = 300
		o.NextLinks = spemu.NextLinkRelative
		o.LocalTimes = true
		o.TimeZone = la
	})
	w.emu.InjectFault(spemu.Fault{Endpoint: spemu.EndpointRenderListData, Count: 2, Status: 503})
	w.emu.InjectFault(spemu.Fault{Endpoint: spemu.EndpointContent, Count: 2, Status: 429, RetryAfter: time.Second})
	w.emu.SetHealthScore(9)
	time.AfterFunc(3*time.Second, func() { w.emu.SetHealthScore(2) }) // the farm recovers
	for _, e := range w.emu.Snapshot() {
		if e.Kind == spemu.KindFile && e.Size == 3<<20 {
			w.emu.ResetDownloadAfter(e.FileRef, 1<<20)
		}
	}
	w.waitSynced(3*time.Minute, "full crawl with quirks")
	st := w.emu.Stats()
	if st.Requests[spemu.EndpointRenderListData] == 0 || st.Throttled < 4 || st.Resets == 0 {
		t.Errorf("the quirks were not exercised: %+v", st)
	}
	// The store dedupes by key, so the diff cannot see an item delivered
	// twice; the count of deliveries can.
	if got, want := w.status().Delivered, int64(len(w.source())); got != want {
		t.Errorf("delivered %d documents for %d items: RenderListDataAsStream paging repeated or lost some", got, want)
	}
	// Dates: the store holds UTC equal to the source.
	ctx := context.Background()
	for _, e := range w.emu.Snapshot() {
		d, err := w.relay.Store().Get(ctx, tenant, ingestapi.Key{Site: w.site, ListID: e.ListID, ItemID: e.ItemID})
		if err != nil || !d.Modified.Equal(e.Modified) {
			t.Fatalf("%s: modified %v in the store, %v in the source (%v)", e.FileRef, d.Modified, e.Modified, err)
		}
	}
	for _, want := range []string{"RenderListDataAsStream", "download broke; resuming", "sharepoint is busy", "throttled the crawl"} {
		if !strings.Contains(w.agentLogs(), want) {
			t.Errorf("the agent log does not say %q", want)
		}
	}
}

// TestExpiredChangeToken: an agent that was away longer than the change
// log's retention finds its token expired, crawls everything again and
// deletes the orphans, never replaying the log from its start.
func TestExpiredChangeToken(t *testing.T) {
	w := newWorld(t, spemu.Spec{Seed: 5, SiteNames: []string{"hr"}, Libraries: 1, ItemsPerList: 300, FolderDepth: 1, FolderBreadth: 2, MaxSize: 2 << 10})
	w.waitSynced(2*time.Minute, "full crawl")
	w.stopAgent()
	var gone []string
	for _, e := range w.emu.Snapshot() {
		if e.Kind == spemu.KindFile && len(gone) < 5 {
			if err := w.emu.Delete(e.FileRef); err != nil {
				t.Fatal(err)
			}
			gone = append(gone, e.FileRef)
		}
	}
	w.emu.Advance(61 * 24 * time.Hour) // past the 60-day retention
	w.startAgent()
	w.waitSynced(2*time.Minute, "after the token expired")
	if !strings.Contains(w.agentLogs(), "change token is no longer valid") {
		t.Error("the agent log does not say the token expired")
	}
	ctx := context.Background()
	page, err := w.relay.Store().List(ctx, tenant, store.ListQuery{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range page.Documents {
		if slices.Contains(gone, d.Path) {
			t.Errorf("orphan %s survived the reconciliation", d.Path)
		}
	}
}
