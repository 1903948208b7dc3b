package spemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the emulator: an http.Handler serving every site collection
// under one origin (http://host/sites/<name>/_api/...), plus the Go
// mutation, generator and fault-injection API. All methods are safe for
// concurrent use.
type Server struct {
	opts   Options
	log    *slog.Logger
	offset atomic.Int64 // nanoseconds added to opts.Now by Advance

	mu    sync.RWMutex     // guards the content model below
	sites []*site          // in creation order
	byURL map[string]*site // key: lower(server-relative URL)
	webs  map[string]*web  // key: lower(server-relative URL), every web of every site
	rng   *rand.Rand       // ids and content seeds of mutations

	hmu    sync.Mutex            // guards hashes
	hashes map[contentKey]string // SHA-256 of generated contents (data == nil)

	ctl control     // faults, stats, digests, auth state; has its own mutex
	krb replayCache // Kerberos authenticators seen; has its own mutex

	lmu      sync.Mutex // guards hs, ln, closed
	hs       *http.Server
	ln       net.Listener
	closed   bool
	linkFlip atomic.Uint64 // NextLinkAlternate toggle
}

// New returns an emulator without content; add it with Generate, AddSite
// and the mutation methods. New does not fail: out-of-range Options fall
// back to their defaults (see Options.Validate).
func New(opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		byURL:  map[string]*site{},
		webs:   map[string]*web{},
		rng:    rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed5eed)),
		hashes: map[contentKey]string{},
	}
	s.ctl.init(opts)
	return s
}

// Now is the emulator's clock: Options.Now plus every Advance.
func (s *Server) Now() time.Time {
	return s.opts.Now().Add(time.Duration(s.offset.Load()))
}

// Advance moves the emulator's clock forward by d (for retention and digest
// expiry tests).
func (s *Server) Advance(d time.Duration) { s.offset.Add(int64(d)) }

// Start listens on addr ("127.0.0.1:0") and serves in the background until
// Close. It returns the base URL, "http://127.0.0.1:port".
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("spemu: start: %w", err)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.ConfigureServer(hs)
	s.lmu.Lock()
	if s.closed || s.hs != nil {
		s.lmu.Unlock()
		ln.Close()
		return "", errors.New("spemu: start: already started or closed")
	}
	s.hs, s.ln = hs, ln
	s.lmu.Unlock()
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

// Serve serves on ln until ctx ends, then shuts down. It is the standalone
// emulator's main loop.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.ConfigureServer(hs)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("spemu: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("spemu: serve: %w", err)
	}
	return nil
}

// ConfigureServer installs the connection hooks NTLM's per-connection
// authentication needs (forgetting a connection's state when it closes) on
// an http.Server serving s, e.g. httptest.NewUnstartedServer(s).Config.
// Without it NTLM still works; state is then kept per remote address.
func (s *Server) ConfigureServer(hs *http.Server) {
	prev := hs.ConnState
	hs.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed || st == http.StateHijacked {
			s.ctl.forgetConn(c.RemoteAddr().String())
		}
		if prev != nil {
			prev(c, st)
		}
	}
}

// Close stops a server started with Start. It is idempotent.
func (s *Server) Close() error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.hs == nil {
		return nil
	}
	if err := s.hs.Close(); err != nil {
		return fmt.Errorf("spemu: close: %w", err)
	}
	return nil
}

// ---- lookups (callers hold mu) ----

// target is what a server-relative URL names.
type target struct {
	web  *web
	list *list // nil: the web itself
	item *item // nil: the list root folder (or the web)
}

// resolve finds the web, list and item of a server-relative URL.
func (s *Server) resolve(ref string) (target, error) {
	ref = cleanRef(ref)
	w := s.webOf(ref)
	if w == nil {
		return target{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if equalFoldUnicode(ref, w.url) {
		return target{web: w}, nil
	}
	lref := lowerKey(ref)
	for _, l := range w.lists {
		root := lowerKey(l.rootURL())
		if lref == root {
			return target{web: w, list: l}, nil
		}
		if strings.HasPrefix(lref, root+"/") {
			if it := l.byRef[lref]; it != nil {
				return target{web: w, list: l, item: it}, nil
			}
			return target{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
		}
	}
	return target{}, fmt.Errorf("%w: %s", ErrNotFound, ref)
}

// webOf returns the deepest web whose URL is ref or a parent of it.
func (s *Server) webOf(ref string) *web {
	for p := ref; ; {
		if w := s.webs[lowerKey(p)]; w != nil {
			return w
		}
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			return s.webs["/"]
		}
		p = p[:i]
	}
}

// cleanRef trims a trailing slash and makes the URL server-relative.
func cleanRef(ref string) string {
	if !strings.HasPrefix(ref, "/") {
		ref = "/" + ref
	}
	for len(ref) > 1 && strings.HasSuffix(ref, "/") {
		ref = ref[:len(ref)-1]
	}
	return ref
}

// ---- change log (callers hold mu for writing) ----

func (s *Server) logChange(st *site, c change) {
	st.lastChange++
	c.num = st.lastChange
	c.time = s.Now()
	st.changes = append(st.changes, c)
}

func itemChange(it *item, typ ChangeType, editor *principal) change {
	c := change{
		typ: typ, obj: objItem, webID: it.list.web.id, listID: it.list.id, itemID: it.id,
		uniqueID: it.uniqueID, url: it.fileRef(), fsType: it.fsType, title: it.displayTitle(),
		listTtl: it.list.title,
	}
	if editor != nil {
		c.editor = editor.login
	}
	return c
}

// displayTitle is the ChangeItem Title: the Title field, or the name.
func (it *item) displayTitle() string {
	if it.title != "" {
		return it.title
	}
	return it.name
}

func listChange(l *list, typ ChangeType) change {
	return change{typ: typ, obj: objList, webID: l.web.id, listID: l.id, url: l.rootURL(),
		title: l.title, listTtl: l.title, template: l.template, hidden: l.hidden}
}

func webChange(w *web, typ ChangeType) change {
	return change{typ: typ, obj: objWeb, webID: w.id, url: w.url, title: w.title}
}

// prune drops changes older than the retention period.
func (s *Server) prune(st *site) {
	cutoff := s.Now().Add(-s.opts.Retention)
	i := 0
	for i < len(st.changes) && st.changes[i].time.Before(cutoff) {
		i++
	}
	if i > 0 {
		st.prunedUntil = st.changes[i-1].num
		st.changes = append([]change(nil), st.changes[i:]...)
	}
}

// ---- content hashes ----

// hashOf returns the content's SHA-256, memoizing generated contents.
func (s *Server) hashOf(c content) string {
	if c.data != nil {
		return c.sha256Hex()
	}
	k := contentKey{c.seed, c.size}
	s.hmu.Lock()
	h, ok := s.hashes[k]
	s.hmu.Unlock()
	if ok {
		return h
	}
	h = c.sha256Hex()
	s.hmu.Lock()
	s.hashes[k] = h
	s.hmu.Unlock()
	return h
}

// contentKey identifies generated content.
type contentKey struct {
	seed uint64
	size int64
}
