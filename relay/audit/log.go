package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/mcc-bridge/bridge/relay/internal/durable"
)

// Options configure a Log. The zero value is usable.
type Options struct {
	// Logger receives repairs made by Open and write failures. Nil
	// discards them.
	Logger *slog.Logger
	// Now stamps records appended with a zero Timestamp. Nil means
	// time.Now.
	Now func() time.Time
	// MaxBatch is the most records one group commit makes durable, and the
	// number of Appends that can wait for it without blocking. Zero means
	// 256; negative is refused.
	MaxBatch int
	// Registerer receives the log's metrics (bridge_audit_*). Nil means no
	// metrics.
	Registerer prometheus.Registerer
}

// defaultMaxBatch is Options.MaxBatch when zero.
const defaultMaxBatch = 256

// parallelSyncs bounds how many tenant files one group commit writes and
// fsyncs at once.
const parallelSyncs = 16

// warnEvery rate-limits the log line of a failed write, per tenant.
const warnEvery = 10 * time.Second

// Log is an open audit log directory. Append, Query and Head may be called
// from any goroutine; Close once they have returned (later calls fail with
// ErrClosed). Only one Log may have a directory open at a time; Open
// enforces it with a lock file.
type Log struct {
	dir      string
	lock     *os.File // dir/LOCK, locked until Close
	log      *slog.Logger
	now      func() time.Time
	maxBatch int
	m        *metrics
	openFile openFileFunc
	syncs    atomic.Int64 // fsyncs of tenant files after Open, for tests

	reqs    chan *request // to the writer; closed by Close
	stopped chan struct{} // closed when the writer has returned

	// mu guards closed. Append holds it for reading while it hands a
	// request to the writer, so Close cannot close reqs under it.
	mu     sync.RWMutex
	closed bool

	chainsMu sync.Mutex        // guards chains (the map, not the chains)
	chains   map[string]*chain // by tenant; added to by the writer

	closeOnce sync.Once
	closeErr  error
}

// request is one Append waiting for the writer.
type request struct {
	ctx    context.Context // the Append's; a request whose ctx is done is dropped
	tenant string
	body   []byte      // encodeBody of the record
	done   chan result // buffered; the writer sends exactly once
}

// result is the writer's answer to a request.
type result struct {
	seq        uint64
	prev, hash string
	err        error
	reason     string // failure reason for metrics when err != nil
}

// Open opens the audit log in dir, creating the directory if need be. It
// reads the end of every tenant's file to recover the chain: a torn last
// line is truncated (and logged); a last record that does not verify fails
// Open with a *ChainError, so that the operator runs Verify before the log
// takes more records. Close the Log when done.
func Open(ctx context.Context, dir string, opts Options) (*Log, error) {
	return openLog(ctx, dir, opts, osOpenFile)
}

func openLog(ctx context.Context, dir string, opts Options, openFile openFileFunc) (*Log, error) {
	if opts.MaxBatch < 0 {
		return nil, fmt.Errorf("open audit log: %w: MaxBatch must not be negative", ErrInvalid)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("open audit log: register metrics: %w", err)
	}
	l := &Log{
		dir:      dir,
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:      opts.Now,
		maxBatch: cmp.Or(opts.MaxBatch, defaultMaxBatch),
		m:        m,
		openFile: openFile,
		stopped:  make(chan struct{}),
		chains:   make(map[string]*chain),
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.reqs = make(chan *request, l.maxBatch)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// A new log: make its directory's name durable too.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
		if err := durable.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	if l.lock, err = lockDir(dir); err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		l.lock.Close()
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || checkTenant(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), fileName)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		c, err := loadChain(ctx, dir, e.Name(), openFile, l.log)
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			if c != nil {
				c.f.Close()
			}
			l.closeFiles()
			l.lock.Close()
			return nil, fmt.Errorf("open audit log %s: %w", dir, err)
		}
		l.chains[c.tenant] = c
	}
	go l.run()
	return l, nil
}

// Append adds r to its tenant's chain and returns it as stored: Seq,
// PrevHash and Hash set, Timestamp filled from Options.Now when zero and in
// UTC (strings that are not valid UTF-8 are stored with U+FFFD in their
// place). It returns only once the record is durable.
//
// An error means the action must be refused. It is ErrInvalid for a record
// that cannot be stored, ErrClosed after Close, or a write or fsync error,
// in which case the record is not in the log. When ctx ends first, Append
// returns ctx's error and the record may or may not be in the log: it was
// dropped if the writer had not yet taken it, and may be durable if it had.
func (l *Log) Append(ctx context.Context, r Record) (Record, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		l.m.failed(failCanceled)
		return Record{}, fmt.Errorf("audit append: %w", err)
	}
	if err := checkTenant(r.Tenant.ID); err != nil {
		l.m.failed(failInvalid)
		return Record{}, fmt.Errorf("audit append: %w", err)
	}
	if r.EventType == "" {
		l.m.failed(failInvalid)
		return Record{}, fmt.Errorf("audit append: %w: eventType is required", ErrInvalid)
	}
	if r.Timestamp.IsZero() {
		r.Timestamp = l.now()
	}
	r.Timestamp = r.Timestamp.UTC()
	r.Seq, r.PrevHash, r.Hash = 0, "", ""
	body, err := encodeBody(&r)
	if err != nil {
		l.m.failed(failInvalid)
		return Record{}, fmt.Errorf("audit append: %w: %w", ErrInvalid, err)
	}
	req := &request{ctx: ctx, tenant: r.Tenant.ID, body: body, done: make(chan result, 1)}

	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		l.m.failed(failClosed)
		return Record{}, fmt.Errorf("audit append: %w", ErrClosed)
	}
	select {
	case l.reqs <- req:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		l.m.failed(failCanceled)
		return Record{}, fmt.Errorf("audit append: record not written: %w", ctx.Err())
	}

	select {
	case res := <-req.done:
		if res.err != nil {
			l.m.failed(res.reason)
			return Record{}, fmt.Errorf("audit append: %w", res.err)
		}
		r.Seq, r.PrevHash, r.Hash = res.seq, res.prev, res.hash
		l.m.appended(time.Since(start))
		return r, nil
	case <-ctx.Done():
		l.m.failed(failCanceled)
		return Record{}, fmt.Errorf("audit append: record may or may not be durable: %w", ctx.Err())
	}
}

// Head returns the sequence number and hash of the tenant's last durable
// record: 0 and 64 zeros for a tenant with none. Record it outside the
// relay's host to detect records cut off the end of the chain.
func (l *Log) Head(tenant string) (seq uint64, hash string, err error) {
	if err := checkTenant(tenant); err != nil {
		return 0, "", fmt.Errorf("audit head: %w", err)
	}
	c, err := l.lookup(tenant)
	if err != nil {
		return 0, "", fmt.Errorf("audit head: %w", err)
	}
	if c == nil {
		return 0, zeroHash, nil
	}
	h := c.head.Load()
	return h.seq, h.hash, nil
}

// lookup returns the tenant's chain, nil if it has none, or ErrClosed.
func (l *Log) lookup(tenant string) (*chain, error) {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	l.chainsMu.Lock()
	defer l.chainsMu.Unlock()
	return l.chains[tenant], nil
}

// Close waits for every Append already handed to the writer to become
// durable (or fail), then closes the files. It is idempotent and returns
// the same error each time.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.reqs)
		l.mu.Unlock()
		<-l.stopped
		err := l.closeFiles()
		if lerr := l.lock.Close(); err == nil {
			err = lerr
		}
		if err != nil {
			l.closeErr = fmt.Errorf("close audit log: %w", err)
		}
	})
	return l.closeErr
}

// closeFiles closes every tenant file and returns the first error.
func (l *Log) closeFiles() error {
	l.chainsMu.Lock()
	defer l.chainsMu.Unlock()
	var first error
	for _, c := range l.chains {
		if err := c.f.Close(); err != nil && first == nil {
			first = fmt.Errorf("tenant %s: %w", c.tenant, err)
		}
	}
	return first
}

// run is the writer goroutine: it takes what is queued, up to maxBatch,
// and commits it, until Close closes reqs and it has drained them.
func (l *Log) run() {
	defer close(l.stopped)
	batch := make([]*request, 0, l.maxBatch)
	for req := range l.reqs {
		batch = append(batch[:0], req)
	fill:
		for len(batch) < l.maxBatch {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		l.commit(batch)
		clear(batch)
	}
}

// group is the requests of one tenant within a batch, in arrival order.
type group struct {
	c    *chain
	reqs []*request
}

// commit makes a batch durable: one write and one fsync per tenant, the
// tenants in parallel.
func (l *Log) commit(batch []*request) {
	var groups []group
	index := make(map[string]int)
	var failed map[string]error // tenants whose file would not open
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.done <- result{err: fmt.Errorf("record not written: %w", err), reason: failCanceled}
			continue
		}
		if err := failed[r.tenant]; err != nil {
			r.done <- result{err: err, reason: failIO}
			continue
		}
		i, ok := index[r.tenant]
		if !ok {
			c, err := l.chain(r.ctx, r.tenant)
			if err != nil {
				if failed == nil {
					failed = make(map[string]error)
				}
				failed[r.tenant] = err
				r.done <- result{err: err, reason: failIO}
				continue
			}
			i = len(groups)
			index[r.tenant] = i
			groups = append(groups, group{c: c})
		}
		groups[i].reqs = append(groups[i].reqs, r)
	}
	if len(groups) == 1 {
		l.commitChain(groups[0].c, groups[0].reqs)
		return
	}
	var g errgroup.Group
	g.SetLimit(parallelSyncs)
	for _, gr := range groups {
		g.Go(func() error {
			l.commitChain(gr.c, gr.reqs)
			return nil
		})
	}
	_ = g.Wait() // commitChain answers its requests itself
}

// chain returns the tenant's chain, opening its file the first time.
// Called by the writer only.
func (l *Log) chain(ctx context.Context, tenant string) (*chain, error) {
	l.chainsMu.Lock()
	c := l.chains[tenant]
	l.chainsMu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := loadChain(context.WithoutCancel(ctx), l.dir, tenant, l.openFile, l.log)
	if err != nil {
		l.log.ErrorContext(ctx, "audit: cannot open tenant log", "tenant", tenant, "err", err)
		return nil, err
	}
	l.chainsMu.Lock()
	l.chains[tenant] = c
	l.chainsMu.Unlock()
	return c, nil
}

// commitChain appends reqs to c with one write and one fsync and answers
// each request. On failure the file is truncated back to its last durable
// size; if that fails too, or the fsync failed, the chain refuses every
// later Append until the log is reopened. Called by the writer only, for
// one chain at a time.
func (l *Log) commitChain(c *chain, reqs []*request) {
	fail := func(err error) {
		for _, r := range reqs {
			r.done <- result{err: err, reason: failIO}
		}
	}
	if c.err != nil {
		fail(c.err)
		return
	}
	res := make([]result, len(reqs))
	buf := c.buf[:0]
	seq, prev := c.seq, c.hash
	for i, r := range reqs {
		seq++
		var hash string
		buf, hash = appendLine(buf, r.body, seq, prev)
		res[i] = result{seq: seq, prev: prev, hash: hash}
		prev = hash
	}
	if cap(buf) <= 1<<20 {
		c.buf = buf[:0]
	} else {
		c.buf = nil // do not keep a huge batch's buffer
	}

	_, werr := c.f.WriteAt(buf, c.size)
	var serr error
	if werr == nil {
		serr = c.f.Sync()
		l.syncs.Add(1)
	}
	if werr != nil || serr != nil {
		fail(l.rollback(c, werr, serr, len(reqs)))
		return
	}
	c.seq, c.hash, c.size = seq, prev, c.size+int64(len(buf))
	c.head.Store(&head{seq: c.seq, hash: c.hash, size: c.size})
	l.m.committed(len(reqs))
	for i, r := range reqs {
		r.done <- res[i]
	}
}

// rollback cuts a failed write off c's file and returns the error to give
// the waiting Appends. A failed fsync leaves the kernel's copy of the file
// in doubt, so after one the chain is closed to Appends whatever happens.
func (l *Log) rollback(c *chain, werr, serr error, n int) error {
	var err error
	if werr != nil {
		err = fmt.Errorf("tenant %s: write %d records: %w", c.tenant, n, werr)
	} else {
		err = fmt.Errorf("tenant %s: fsync %d records: %w", c.tenant, n, serr)
	}
	terr := c.f.Truncate(c.size)
	if terr == nil {
		terr = c.f.Sync()
	}
	switch {
	case terr != nil:
		c.err = fmt.Errorf("tenant %s: log unusable until reopened: cannot remove a failed write: %w", c.tenant, terr)
	case serr != nil:
		c.err = fmt.Errorf("tenant %s: log unusable until reopened: fsync failed: %w", c.tenant, serr)
	}
	if c.err != nil {
		l.log.Error("audit: tenant log closed to appends", "tenant", c.tenant, "err", c.err)
		return err
	}
	now := time.Now()
	if now.Sub(c.lastWarn) >= warnEvery {
		l.log.Warn("audit: write failed and was rolled back; its appends were refused", "tenant", c.tenant, "err", err, "suppressed", c.suppressed)
		c.lastWarn, c.suppressed = now, 0
	} else {
		c.suppressed++
	}
	return err
}
