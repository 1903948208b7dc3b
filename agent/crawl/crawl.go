// Package crawl is the agent's SharePoint crawl: a full crawl that reads the
// change token first and then enumerates every web, list and item, and an
// incremental crawl that follows the site's change log. Documents, their
// content and ACLs go to the relay in idempotent batches; the checkpoint
// (change token, crawl cursor) moves only after the relay acknowledged a
// durable commit, so a crash, a restart or a tunnel outage loses nothing
// and repeats little.
package crawl

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
)

// Config configures a Crawler. The zero value of every field but Sites,
// Relay and StateDir means its default.
type Config struct {
	// Sites are the site collections to crawl, one client each.
	Sites []*sharepoint.Client
	// Relay receives the documents.
	Relay *Relay
	// StateDir keeps the checkpoints; TempDir (default StateDir/tmp) spools
	// downloads while they are hashed.
	StateDir, TempDir string
	// PollInterval is how often the change log is read. Zero means 30s.
	PollInterval time.Duration
	// FullInterval forces a full crawl (with orphan reconciliation) this
	// long after the last one. Zero means never (only when the change
	// token has expired).
	FullInterval time.Duration
	// MaxFileSize skips the content of larger files (metadata is still
	// sent). Zero means 100 MiB; negative means no content at all.
	MaxFileSize int64
	// Concurrency is how many items are fetched at once. Zero means 4.
	Concurrency int
	// BatchSize is how many documents go in one batch. Zero means 200.
	BatchSize int
	// PageSize is the item page size. Zero means 500.
	PageSize int
	// IncludeLists and ExcludeLists filter lists by title (path.Match
	// globs); empty IncludeLists means all.
	IncludeLists, ExcludeLists []string
	// ExcludePaths skips items by server-relative path: a glob, or a
	// prefix when it ends with "/".
	ExcludePaths []string
	// Logger receives progress and errors. Nil means none.
	Logger *slog.Logger
	// Metrics records progress. Nil means none.
	Metrics *Metrics
	// ProgressEvery is how often progress is logged. Zero means 10s.
	ProgressEvery time.Duration
}

// Crawler crawls the configured sites.
type Crawler struct {
	cfg   Config
	log   *slog.Logger
	cps   checkpoints
	sites []*siteCrawler
}

// New checks cfg and returns a Crawler.
func New(cfg Config) (*Crawler, error) {
	if len(cfg.Sites) == 0 {
		return nil, errors.New("crawl: no sites configured")
	}
	if cfg.Relay == nil || cfg.StateDir == "" {
		return nil, errors.New("crawl: a relay and a state directory are required")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 30 * time.Second
	}
	if cfg.MaxFileSize == 0 {
		cfg.MaxFileSize = 100 << 20
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 200
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 500
	}
	if cfg.TempDir == "" {
		cfg.TempDir = cfg.StateDir + "/tmp"
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, pats := range [][]string{cfg.IncludeLists, cfg.ExcludeLists, cfg.ExcludePaths} {
		for _, p := range pats {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("crawl: pattern %q: %w", p, err)
			}
		}
	}
	for _, d := range []string{cfg.StateDir, cfg.TempDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("crawl: %w", err)
		}
	}
	c := &Crawler{cfg: cfg, log: cfg.Logger, cps: checkpoints{dir: cfg.StateDir}}
	if cfg.Relay.Logger == nil {
		cfg.Relay.Logger = cfg.Logger
	}
	for _, sc := range cfg.Sites {
		c.sites = append(c.sites, &siteCrawler{c: c, sp: sc, site: sc.SiteURL(), log: cfg.Logger.With("site", sc.SiteURL())})
	}
	return c, nil
}

// Run crawls every site until ctx ends. A site whose crawl fails (for
// instance SharePoint keeps throttling) is reported and retried at the next
// poll; the others go on.
func (c *Crawler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range c.sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// SiteStatus is one site's progress, for status pages.
type SiteStatus struct {
	Site        string    `json:"site"`
	Phase       string    `json:"phase"`
	Running     bool      `json:"running"`
	Items       int64     `json:"items"`
	Bytes       int64     `json:"bytes"`
	Total       int64     `json:"total_estimate,omitempty"`
	Delivered   int64     `json:"delivered"`
	Queue       int64     `json:"queue"`
	LastChange  time.Time `json:"last_change,omitzero"`
	LastPoll    time.Time `json:"last_poll,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	FullStarted time.Time `json:"full_started,omitzero"`
	FullDone    time.Time `json:"full_finished,omitzero"`
	// SharePoint is whether the site answers and accepts the account.
	SharePoint sharepoint.Reach `json:"sharepoint"`
}

// Status returns each site's progress.
func (c *Crawler) Status() []SiteStatus {
	out := make([]SiteStatus, 0, len(c.sites))
	for _, s := range c.sites {
		out = append(out, s.status())
	}
	return out
}

// PollNow asks every site to read its change log now.
func (c *Crawler) PollNow() {
	for _, s := range c.sites {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

type siteCrawler struct {
	c    *Crawler
	sp   *sharepoint.Client
	site string
	log  *slog.Logger
	kick chan struct{}

	mu      sync.Mutex
	cp      Checkpoint // guarded by mu
	lastErr string     // guarded by mu
	running bool       // guarded by mu
	total   int64      // guarded by mu

	items, bytes, queue atomic.Int64

	lists   map[string]sharepoint.List // list index by ID; crawl goroutine only
	webs    map[string]sharepoint.Web
	acls    map[string][]ingestapi.ACE // readers by securable, per pass
	folders map[string]folderPerm      // folders' permission source by path, per pass
}

func (s *siteCrawler) status() SiteStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SiteStatus{Site: s.site, Phase: s.cp.Phase, Running: s.running, Items: s.items.Load(), Bytes: s.bytes.Load(), Total: s.total,
		Delivered: s.cp.Delivered, Queue: s.queue.Load(), LastChange: s.cp.LastChange, LastPoll: s.cp.LastPoll, LastError: s.lastErr,
		FullStarted: s.cp.FullStarted, FullDone: s.cp.FullFinished, SharePoint: s.sp.Reach()}
}

func (s *siteCrawler) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.lastErr = ""
	} else {
		s.lastErr = err.Error()
	}
}

func (s *siteCrawler) save(update func(*Checkpoint)) error {
	s.mu.Lock()
	update(&s.cp)
	cp := s.cp
	s.mu.Unlock()
	return s.c.cps.save(cp)
}

func (s *siteCrawler) checkpoint() Checkpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cp
}

func (s *siteCrawler) run(ctx context.Context) {
	if s.kick == nil {
		s.kick = make(chan struct{}, 1)
	}
	cp, err := s.c.cps.load(s.site)
	if err != nil {
		s.log.Error("crawl checkpoint unreadable; starting a full crawl", "err", err)
		cp = Checkpoint{Site: s.site}
	}
	s.mu.Lock()
	s.cp = cp
	s.mu.Unlock()
	stopProgress := s.progress(ctx)
	defer stopProgress()
	for ctx.Err() == nil {
		s.mu.Lock()
		s.running = true
		s.mu.Unlock()
		err := s.pass(ctx)
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		s.setErr(err)
		if err != nil {
			s.c.cfg.Metrics.failed(s.site)
			s.log.Error("crawl pass failed; it resumes from the checkpoint at the next poll", "err", err)
		}
		t := time.NewTimer(s.c.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// pass runs what the checkpoint calls for: (the rest of) a full crawl, or
// one incremental pass.
func (s *siteCrawler) pass(ctx context.Context) error {
	s.acls = map[string][]ingestapi.ACE{}
	s.folders = map[string]folderPerm{}
	cp := s.checkpoint()
	due := s.c.cfg.FullInterval > 0 && !cp.FullFinished.IsZero() && time.Since(cp.FullFinished) > s.c.cfg.FullInterval
	if cp.Phase != PhaseIncremental || cp.ChangeToken == "" || due {
		return s.full(ctx)
	}
	err := s.incremental(ctx)
	if sharepoint.IsCode(err, sharepoint.CodeTokenExpired, sharepoint.CodeTokenWrongObj) {
		s.log.Warn("the change token is no longer valid (older than the change log, or for another object): full recrawl with reconciliation", "err", err)
		if err := s.save(func(c *Checkpoint) { c.Phase, c.Generation = PhaseFull, "" }); err != nil {
			return err
		}
		return s.full(ctx)
	}
	return err
}

func newGeneration() string {
	b := make([]byte, 8)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// full runs or resumes a full crawl.
func (s *siteCrawler) full(ctx context.Context) error {
	cp := s.checkpoint()
	if cp.Phase != PhaseFull || cp.Generation == "" {
		// Read the change token before enumerating, so that nothing that
		// changes during the crawl is missed afterwards.
		site, err := s.sp.Site(ctx)
		if err != nil {
			return err
		}
		if site.CurrentChangeToken == "" {
			s.log.Warn("this SharePoint has no change token (2013?): every pass is a full crawl")
		}
		if err := s.save(func(c *Checkpoint) {
			*c = Checkpoint{Site: s.site, Phase: PhaseFull, Generation: newGeneration(), ChangeToken: site.CurrentChangeToken,
				FullStarted: time.Now().UTC(), Delivered: c.Delivered, LastChange: c.LastChange, FullFinished: c.FullFinished}
		}); err != nil {
			return err
		}
		cp = s.checkpoint()
		s.log.Info("full crawl started", "generation", cp.Generation)
	} else {
		s.log.Info("resuming the full crawl from its checkpoint", "generation", cp.Generation, "lists_done", len(cp.DoneLists), "list", cp.ListID, "after_item", cp.AfterID)
	}
	if err := s.index(ctx); err != nil {
		return err
	}
	var total int64
	for _, l := range s.lists {
		total += int64(l.ItemCount)
	}
	s.mu.Lock()
	s.total = total
	s.mu.Unlock()
	s.c.cfg.Metrics.phase(s.site, PhaseFull)
	lists := s.sortedLists()
	deliveries := newPipeline()
	defer deliveries.wait()
	for _, l := range lists {
		if slices.Contains(cp.DoneLists, l.ID) {
			continue
		}
		after := 0
		if cp.ListID == l.ID {
			after = cp.AfterID
		}
		var buf []sharepoint.Item
		flush := func() error {
			if len(buf) == 0 {
				return nil
			}
			inline := &inlineBlobs{}
			docs, err := s.documents(ctx, l, buf, inline)
			if err != nil {
				return err
			}
			last := buf[len(buf)-1].ID
			buf = buf[:0]
			b := &ingestapi.Batch{ID: newGeneration(), Upserts: docs, Blobs: inline.blobs}
			// The relay commits this batch while the next one downloads.
			return deliveries.do(func() error {
				return s.send(ctx, b)
			}, func() error {
				return s.acknowledged(b, func(c *Checkpoint) { c.ListID, c.AfterID = l.ID, last })
			})
		}
		err := s.sp.Items(ctx, l, after, s.c.cfg.PageSize, func(it sharepoint.Item) error {
			if s.excluded(it.FileRef) {
				return nil
			}
			buf = append(buf, it)
			s.queue.Store(int64(len(buf)))
			if len(buf) >= s.c.cfg.BatchSize {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err == nil {
			err = deliveries.do(nil, func() error {
				return s.save(func(c *Checkpoint) { c.DoneLists = append(c.DoneLists, l.ID); c.ListID, c.AfterID = "", 0 })
			})
		}
		if err != nil {
			return fmt.Errorf("list %q: %w", l.Title, err)
		}
	}
	if err := deliveries.wait(); err != nil {
		return err
	}
	res, err := s.c.cfg.Relay.FinishGeneration(ctx, ingestapi.Generation{Site: s.site, Generation: cp.Generation})
	if err != nil {
		return err
	}
	phase := PhaseIncremental
	if cp.ChangeToken == "" {
		phase = PhaseFull
	}
	if err := s.save(func(c *Checkpoint) {
		c.Phase, c.DoneLists, c.ListID, c.AfterID, c.FullFinished = phase, nil, "", 0, time.Now().UTC()
		if phase == PhaseFull {
			c.Generation = ""
		}
	}); err != nil {
		return err
	}
	s.c.cfg.Metrics.phase(s.site, phase)
	s.log.Info("full crawl finished", "generation", cp.Generation, "orphans_deleted", res.Deleted, "items", s.items.Load(), "bytes", s.bytes.Load())
	return nil
}

// index reads the webs and lists of the site, filtered.
func (s *siteCrawler) index(ctx context.Context) error {
	webs, err := s.sp.Webs(ctx)
	if err != nil {
		return err
	}
	s.webs = map[string]sharepoint.Web{}
	s.lists = map[string]sharepoint.List{}
	for _, w := range webs {
		s.webs[w.ID] = w
		lists, err := s.sp.Lists(ctx, w)
		if err != nil {
			return err
		}
		for _, l := range lists {
			if s.listWanted(l) {
				s.lists[l.ID] = l
			}
		}
	}
	return nil
}

func (s *siteCrawler) sortedLists() []sharepoint.List {
	out := make([]sharepoint.List, 0, len(s.lists))
	for _, l := range s.lists {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b sharepoint.List) int { return strings.Compare(a.WebURL+"|"+a.ID, b.WebURL+"|"+b.ID) })
	return out
}

func (s *siteCrawler) listWanted(l sharepoint.List) bool {
	match := func(pats []string) bool {
		for _, p := range pats {
			if ok, _ := path.Match(p, l.Title); ok {
				return true
			}
		}
		return false
	}
	if len(s.c.cfg.IncludeLists) > 0 && !match(s.c.cfg.IncludeLists) {
		return false
	}
	return !match(s.c.cfg.ExcludeLists)
}

func (s *siteCrawler) excluded(p string) bool {
	for _, pat := range s.c.cfg.ExcludePaths {
		if strings.HasSuffix(pat, "/") && (strings.HasPrefix(p+"/", pat)) {
			return true
		}
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

// deliver sends a batch and, once the relay acknowledged it, moves the
// checkpoint with update.
func (s *siteCrawler) deliver(ctx context.Context, b *ingestapi.Batch, update func(*Checkpoint)) error {
	if err := s.send(ctx, b); err != nil {
		return err
	}
	return s.acknowledged(b, update)
}

// send delivers a batch, retrying until the relay acknowledges it.
func (s *siteCrawler) send(ctx context.Context, b *ingestapi.Batch) error {
	deletes := len(b.Deletes) + len(b.DeletePrefixes) + len(b.DeleteFolders)
	if len(b.Upserts)+deletes == 0 {
		return nil
	}
	if _, err := s.c.cfg.Relay.Apply(ctx, b); err != nil {
		return err
	}
	s.c.cfg.Metrics.delivered(s.site, len(b.Upserts), deletes)
	return nil
}

// acknowledged moves the checkpoint past a batch the relay acknowledged.
func (s *siteCrawler) acknowledged(b *ingestapi.Batch, update func(*Checkpoint)) error {
	n := int64(len(b.Upserts) + len(b.Deletes) + len(b.DeletePrefixes) + len(b.DeleteFolders))
	s.queue.Store(0)
	return s.save(func(c *Checkpoint) {
		update(c)
		c.Delivered += n
	})
}

// pipeline delivers batches of a full crawl, deliveriesInFlight at once,
// while the crawl downloads the next: the relay decodes one batch while it
// commits another. Each delivery's follow-up (moving the checkpoint past
// the batch) runs in order, once that delivery and every earlier one are
// acknowledged, so the checkpoint never passes a batch the relay does not
// have. The batches of a full crawl hold distinct documents, so the order
// in which the relay applies them does not matter. Once a job fails, no
// later follow-up runs.
type pipeline struct {
	slots  chan struct{} // one per delivery in flight
	queue  chan *pipelineJob
	failed chan struct{} // closed at the first error
	done   chan struct{} // closed when the committer ends
	err    error         // the first error, set before failed closes
	once   sync.Once
}

// deliveriesInFlight bounds a full crawl's batches between the agent and
// the relay's acknowledgement.
const deliveriesInFlight = 2

type pipelineJob struct {
	result chan error
	then   func() error
}

func newPipeline() *pipeline {
	p := &pipeline{
		slots:  make(chan struct{}, deliveriesInFlight),
		queue:  make(chan *pipelineJob, deliveriesInFlight),
		failed: make(chan struct{}),
		done:   make(chan struct{}),
	}
	go func() {
		defer close(p.done)
		for j := range p.queue {
			err := <-j.result
			if p.err != nil {
				continue // drain
			}
			if err == nil && j.then != nil {
				err = j.then()
			}
			if err != nil {
				p.err = err
				close(p.failed)
			}
		}
	}()
	return p
}

// do starts deliver (nil: nothing to deliver) and queues then to run after
// it and every earlier job, waiting while deliveriesInFlight are under
// way. It returns the error of an earlier job, if one failed; nothing more
// runs then.
func (p *pipeline) do(deliver, then func() error) error {
	select {
	case <-p.failed:
		return p.err
	default:
	}
	j := &pipelineJob{result: make(chan error, 1), then: then}
	if deliver == nil {
		j.result <- nil
	} else {
		select {
		case <-p.failed:
			return p.err
		case p.slots <- struct{}{}:
		}
		go func() {
			err := deliver()
			<-p.slots
			j.result <- err
		}()
	}
	select {
	case <-p.failed:
		return p.err
	case p.queue <- j:
		return nil
	}
}

// wait lets what is under way finish and returns the first error. Calls
// after the first return the same.
func (p *pipeline) wait() error {
	p.once.Do(func() { close(p.queue) })
	<-p.done
	return p.err
}

// inlineBlobs gathers the small files one batch carries, within
// ingestapi.MaxInlineBatchBytes.
type inlineBlobs struct {
	mu    sync.Mutex
	size  int
	blobs []ingestapi.InlineBlob
}

// add takes data for the batch, unless that would make it too large.
func (b *inlineBlobs) add(sum string, data []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, have := range b.blobs {
		if have.SHA256 == sum {
			return true
		}
	}
	if b.size+len(data) > ingestapi.MaxInlineBatchBytes {
		return false
	}
	b.size += len(data)
	b.blobs = append(b.blobs, ingestapi.InlineBlob{SHA256: sum, Data: data})
	return true
}

// documents builds the documents of items, fetching content and ACLs
// Concurrency at a time, in the items' order. Small files go into inline
// (the batch carries them); others are uploaded as blobs.
func (s *siteCrawler) documents(ctx context.Context, l sharepoint.List, items []sharepoint.Item, inline *inlineBlobs) ([]ingestapi.Document, error) {
	docs := make([]ingestapi.Document, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.c.cfg.Concurrency)
	// ACLs are cached per securable; fill the shared ones first, serially.
	if _, err := s.readers(ctx, l, sharepoint.Item{}); err != nil {
		return nil, err
	}
	var aclMu sync.Mutex
	for i, it := range items {
		g.Go(func() error {
			d, err := s.document(gctx, l, it, &aclMu, inline)
			if err != nil {
				return fmt.Errorf("item %d (%s): %w", it.ID, it.FileRef, err)
			}
			docs[i] = d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return docs, nil
}

func (s *siteCrawler) document(ctx context.Context, l sharepoint.List, it sharepoint.Item, aclMu *sync.Mutex, inline *inlineBlobs) (ingestapi.Document, error) {
	cp := s.checkpoint()
	d := ingestapi.Document{
		Key:        ingestapi.Key{Site: s.site, ListID: l.ID, ItemID: it.ID},
		WebID:      l.WebID,
		WebURL:     l.WebURL,
		ListTitle:  l.Title,
		UniqueID:   it.UniqueID,
		Path:       it.FileRef,
		Name:       it.FileLeafRef,
		Title:      it.Title,
		Kind:       it.Kind(),
		Version:    it.Version,
		ETag:       it.ETag,
		Created:    it.Created.UTC(),
		Modified:   it.Modified.UTC(),
		Generation: cp.Generation,
	}
	if d.Path == "" {
		d.Path = l.RootFolder + "/" + fmt.Sprint(it.ID) + "_.000"
	}
	if d.Name == "" {
		d.Name = it.Title
	}
	if d.Kind == "file" {
		d.Size = it.Length
		d.ContentType = mime.TypeByExtension(path.Ext(d.Name))
		if d.ContentType == "" {
			d.ContentType = "application/octet-stream"
		}
		if max := s.c.cfg.MaxFileSize; max > 0 && it.Length <= max {
			sum, n, err := s.content(ctx, l, it, inline)
			if err != nil {
				return d, err
			}
			d.ContentSHA256 = sum
			s.bytes.Add(n)
			s.c.cfg.Metrics.bytes(s.site, n)
		}
	}
	aclMu.Lock()
	acl, err := s.readers(ctx, l, it)
	aclMu.Unlock()
	if err != nil {
		return d, err
	}
	d.ACL = acl
	s.items.Add(1)
	s.c.cfg.Metrics.item(s.site)
	return d, nil
}

// content downloads a file and returns its SHA-256 and size. A small file
// is read into memory and carried by the batch (inline) while the batch
// has room; any other is spooled to a temporary file while hashing it and
// uploaded to the relay as a blob, never held in memory whole.
func (s *siteCrawler) content(ctx context.Context, l sharepoint.List, it sharepoint.Item, inline *inlineBlobs) (string, int64, error) {
	rc, err := s.sp.OpenFile(ctx, l.WebURL, it.FileRef)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	var r io.Reader = rc
	if it.Length <= ingestapi.MaxInlineBlobBytes {
		data, err := io.ReadAll(io.LimitReader(rc, ingestapi.MaxInlineBlobBytes+1))
		if err != nil {
			return "", 0, fmt.Errorf("download: %w", err)
		}
		if len(data) <= ingestapi.MaxInlineBlobBytes {
			h := sha256.Sum256(data)
			sum := hex.EncodeToString(h[:])
			if inline.add(sum, data) {
				return sum, int64(len(data)), nil
			}
		}
		// Longer than its listed length, or the batch is full.
		r = io.MultiReader(bytes.NewReader(data), rc)
	}
	f, err := os.CreateTemp(s.c.cfg.TempDir, "dl-*")
	if err != nil {
		return "", 0, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return "", 0, fmt.Errorf("download: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := s.c.cfg.Relay.PutBlob(ctx, sum, f.Name()); err != nil {
		return "", 0, err
	}
	return sum, n, nil
}

// securable finds where it gets its permissions: itself when it has
// unique ones, else the nearest parent folder that has, else the list when
// it has, else the web.
func (s *siteCrawler) securable(ctx context.Context, l sharepoint.List, it sharepoint.Item) (string, error) {
	if it.ID > 0 && it.RolesUnknown {
		// Read through RenderListDataAsStream: ask the item itself.
		full, err := s.sp.Item(ctx, l, it.ID)
		if err != nil {
			return "", err
		}
		it.HasUniqueRoles = full.HasUniqueRoles
	}
	if it.ID > 0 && it.HasUniqueRoles {
		return fmt.Sprintf("web/lists(guid'%s')/items(%d)", l.ID, it.ID), nil
	}
	root := strings.TrimRight(l.RootFolder, "/")
	dir := it.FileDirRef
	if dir == "" && it.FileRef != "" {
		dir = path.Dir(it.FileRef)
	}
	for it.ID > 0 && root != "" && strings.HasPrefix(dir, root+"/") {
		f, ok := s.folders[dir]
		if !ok {
			fi, err := s.sp.FolderItem(ctx, l.WebURL, dir)
			if err != nil && !sharepoint.IsNotFound(err) {
				return "", fmt.Errorf("folder %s: %w", dir, err)
			}
			f = folderPerm{id: fi.ID, unique: err == nil && fi.HasUniqueRoles}
			s.folders[dir] = f
		}
		if f.unique {
			return fmt.Sprintf("web/lists(guid'%s')/items(%d)", l.ID, f.id), nil
		}
		dir = path.Dir(dir)
	}
	if l.HasUniqueRoles {
		return fmt.Sprintf("web/lists(guid'%s')", l.ID), nil
	}
	return "web", nil
}

// folderPerm is what securable caches of a folder.
type folderPerm struct {
	id     int
	unique bool
}

// readers returns the ACL of it (a zero Item: of the list), following
// inheritance: item, parent folders, list, web. Results are cached per pass.
func (s *siteCrawler) readers(ctx context.Context, l sharepoint.List, it sharepoint.Item) ([]ingestapi.ACE, error) {
	securable, err := s.securable(ctx, l, it)
	if err != nil {
		return nil, err
	}
	key := l.WebURL + "|" + securable
	if acl, ok := s.acls[key]; ok {
		return acl, nil
	}
	ps, err := s.sp.Readers(ctx, l.WebURL, securable)
	if err != nil {
		return nil, fmt.Errorf("permissions: %w", err)
	}
	acl := make([]ingestapi.ACE, 0, len(ps))
	for _, p := range ps {
		acl = append(acl, ingestapi.ACE{Kind: p.Kind, Login: p.Login, Email: p.Email})
	}
	slices.SortFunc(acl, func(a, b ingestapi.ACE) int { return strings.Compare(a.Kind+a.Login, b.Kind+b.Login) })
	s.acls[key] = acl
	return acl, nil
}

// progress logs items/s, bytes/s, queue depth and ETA every ProgressEvery.
func (s *siteCrawler) progress(ctx context.Context) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.c.cfg.ProgressEvery)
		defer t.Stop()
		lastItems, lastBytes, last := s.items.Load(), s.bytes.Load(), time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				items, bytes := s.items.Load(), s.bytes.Load()
				if items == lastItems {
					continue
				}
				secs := now.Sub(last).Seconds()
				rate := float64(items-lastItems) / secs
				st := s.status()
				attrs := []any{"phase", st.Phase, "items", items, "items_per_s", round1(rate), "mb_per_s", round1(float64(bytes-lastBytes) / secs / 1e6), "queue", st.Queue}
				if st.Phase == PhaseFull && st.Total > 0 && rate > 0 && items < st.Total {
					attrs = append(attrs, "eta", (time.Duration(float64(st.Total-items)/rate) * time.Second).Round(time.Second))
				}
				s.log.Info("crawl progress", attrs...)
				lastItems, lastBytes, last = items, bytes, now
			}
		}
	}()
	return func() { cancel(); <-done }
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
