package spemu

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"strings"
	"sync"
	"time"
)

// Endpoint is a kind of request, for Stats and Fault matching.
type Endpoint string

// Endpoint kinds.
const (
	EndpointWeb            Endpoint = "web"            // /web, /site, /webs, their properties, /web/currentuser
	EndpointLists          Endpoint = "lists"          // /web/lists and one list
	EndpointItems          Endpoint = "items"          // .../items, items(N) and their File/Folder
	EndpointFile           Endpoint = "file"           // GetFileBy.../GetFolderBy... metadata, Files, Folders
	EndpointContent        Endpoint = "content"        // .../$value and direct file URLs
	EndpointChanges        Endpoint = "changes"        // getchanges
	EndpointContextInfo    Endpoint = "contextinfo"    // /_api/contextinfo
	EndpointRenderListData Endpoint = "renderlistdata" // RenderListDataAsStream
	EndpointRoles          Endpoint = "roles"          // roleassignments, roledefinitions, HasUniqueRoleAssignments
	EndpointUsers          Endpoint = "users"          // siteusers, sitegroups
	EndpointOther          Endpoint = "other"          // anything else
)

// Fault makes matching requests fail as a throttled SharePoint does.
// Matching is on authenticated requests, before they are served.
type Fault struct {
	// Endpoint restricts the fault to one kind of request; "" matches all.
	Endpoint Endpoint
	// PathContains restricts it to URL paths containing this
	// (case-insensitive, decoded path); "" matches all.
	PathContains string
	// Method restricts it to one HTTP method; "" matches all.
	Method string
	// Count is how many matching requests fail; 0 means 1.
	Count int
	// Status is the response status; 0 means 503. Use 429 for
	// "Too Many Requests".
	Status int
	// RetryAfter, if positive, is sent as Retry-After in whole seconds
	// (rounded up); zero sends no Retry-After, as SharePoint Server may.
	RetryAfter time.Duration
}

// Stats are request counters since New or ResetStats.
type Stats struct {
	Requests       map[Endpoint]int64 // authenticated requests per kind
	Throttled      int64              // requests failed by injected faults
	AuthFailures   int64              // 401s for wrong or missing credentials (not NTLM's first challenge legs)
	AuthHandshakes int64              // NTLM handshakes completed
	DigestFailures int64              // POSTs refused for a bad or expired X-RequestDigest
	Resets         int64              // downloads cut by ResetDownloadAfter
	LastUserAgent  string             // User-Agent of the last authenticated request
}

// control is the emulator's non-content state, guarded by mu.
type control struct {
	mu      sync.Mutex
	faults  []*Fault
	resets  []resetRule
	health  int
	stats   Stats
	digests map[string]digestInfo
	conns   map[string]*connAuth // remote address -> NTLM state
}

// digestInfo is what a form digest is valid for.
type digestInfo struct {
	expiry time.Time
	site   *site // the site collection it was issued for
}

type resetRule struct {
	ref   string // lower(server-relative URL); "" = any file
	after int64
}

func (c *control) init(o Options) {
	c.health = o.HealthScore
	c.stats.Requests = map[Endpoint]int64{}
	c.digests = map[string]digestInfo{}
	c.conns = map[string]*connAuth{}
}

// InjectFault queues a fault; faults fire in the order injected.
func (s *Server) InjectFault(f Fault) {
	if f.Count <= 0 {
		f.Count = 1
	}
	if f.Status == 0 {
		f.Status = 503
	}
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	s.ctl.faults = append(s.ctl.faults, &f)
}

// ClearFaults drops every pending fault and download reset.
func (s *Server) ClearFaults() {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	s.ctl.faults = nil
	s.ctl.resets = nil
}

// SetHealthScore sets X-SharePointHealthScore (clamped to 0-10) on every
// later response; raise it step by step to emulate a server under load.
func (s *Server) SetHealthScore(n int) {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	s.ctl.health = min(max(n, 0), 10)
}

// HealthScore is the current X-SharePointHealthScore.
func (s *Server) HealthScore() int {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	return s.ctl.health
}

// ResetDownloadAfter makes the next content download of fileRef ("" for
// any file) send its headers and n bytes, then close the TCP connection
// abruptly; once. Clients must retry, ideally with Range.
func (s *Server) ResetDownloadAfter(fileRef string, n int64) {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	key := ""
	if fileRef != "" {
		key = lowerKey(cleanRef(fileRef))
	}
	s.ctl.resets = append(s.ctl.resets, resetRule{key, max(n, 0)})
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	st := s.ctl.stats
	st.Requests = maps.Clone(s.ctl.stats.Requests)
	return st
}

// ResetStats zeroes the counters (LastUserAgent is kept).
func (s *Server) ResetStats() {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	s.ctl.stats = Stats{Requests: map[Endpoint]int64{}, LastUserAgent: s.ctl.stats.LastUserAgent}
}

// LastUserAgent is the User-Agent of the last authenticated request;
// SharePoint asks for "NONISV|Company|App/Version".
func (s *Server) LastUserAgent() string {
	s.ctl.mu.Lock()
	defer s.ctl.mu.Unlock()
	return s.ctl.stats.LastUserAgent
}

func (c *control) count(kind Endpoint, ua string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Requests[kind]++
	c.stats.LastUserAgent = ua
}

func (c *control) add(p *int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*p++
}

func (c *control) healthScore() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// fault returns the fault the request triggers, if any, consuming one.
func (c *control) fault(kind Endpoint, method, path string) *Fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	lp := strings.ToLower(path)
	for i, f := range c.faults {
		if (f.Endpoint == "" || f.Endpoint == kind) &&
			(f.PathContains == "" || strings.Contains(lp, strings.ToLower(f.PathContains))) &&
			(f.Method == "" || strings.EqualFold(f.Method, method)) {
			hit := *f
			f.Count--
			if f.Count <= 0 {
				c.faults = append(c.faults[:i], c.faults[i+1:]...)
			}
			c.stats.Throttled++
			return &hit
		}
	}
	return nil
}

// takeReset consumes the reset rule for a download of ref.
func (c *control) takeReset(ref string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := lowerKey(ref)
	for i, r := range c.resets {
		if r.ref == "" || r.ref == key {
			c.resets = append(c.resets[:i], c.resets[i+1:]...)
			return r.after, true
		}
	}
	return 0, false
}

// newDigest issues a form digest valid until now+ttl for one site collection.
func (c *control) newDigest(st *site, now time.Time, ttl time.Duration) string {
	var b [64]byte
	rand.Read(b[:])
	d := "0x" + strings.ToUpper(hex.EncodeToString(b[:])) + "," + now.UTC().Format("02 Jan 2006 15:04:05 -0000")
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, di := range c.digests {
		if now.After(di.expiry) {
			delete(c.digests, k)
		}
	}
	c.digests[d] = digestInfo{now.Add(ttl), st}
	return d
}

// checkDigest reports whether d was issued for the site collection and has
// not expired.
func (c *control) checkDigest(d string, st *site, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	di, ok := c.digests[d]
	if ok && di.site == st && !now.After(di.expiry) {
		return true
	}
	c.stats.DigestFailures++
	return false
}

func (c *control) conn(addr string) *connAuth {
	c.mu.Lock()
	defer c.mu.Unlock()
	ca := c.conns[addr]
	if ca == nil {
		ca = &connAuth{}
		c.conns[addr] = ca
	}
	return ca
}

func (c *control) forgetConn(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, addr)
}
