// Package sharepoint is a client for the SharePoint Server 2016/2019/SE REST
// API (/_api): sites, webs, lists, items, files, role assignments and the
// change log. It speaks odata=verbose or JSON Light (Config.OData), follows
// absolute and relative next links, retries throttling (429/503/504, Retry-After or
// capped exponential backoff with jitter, and slows down when the
// X-SharePointHealthScore rises), keeps a form digest for POSTs, and
// streams file content, resuming with Range after a reset.
//
// Credentials come from the configuration's file or environment variable,
// never from the command line, and never reach a log or an error.
package sharepoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/go-ntlmssp"
	"golang.org/x/time/rate"
)

// Auth is how the client authenticates.
type Auth struct {
	// Method is "ntlm" (NTLM/Negotiate), "kerberos" (SPNEGO Negotiate),
	// "basic" (over TLS), or "none".
	Method string
	// Username is DOMAIN\user or user@domain; with kerberos, user or
	// user@REALM.
	Username string
	// Password is the secret; it is never logged. With kerberos it may be
	// empty when Kerberos.Keytab is set.
	Password Secret
	// Kerberos configures Method "kerberos"; other methods ignore it.
	Kerberos Kerberos
}

// Secret is a string that never prints.
type Secret string

// String redacts.
func (Secret) String() string { return "[redacted]" }

// GoString redacts.
func (Secret) GoString() string { return "[redacted]" }

// LogValue redacts in slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Config configures a Client. The zero value of every field but SiteURL
// means its default.
type Config struct {
	// SiteURL is the site collection, e.g. https://sp.corp.example/sites/mkt.
	SiteURL string
	// Auth authenticates every request.
	Auth Auth
	// Version goes into the User-Agent: NONISV|MCC|MCCBridge/<Version>.
	Version string
	// Transport carries the requests. Nil means a clone of http.DefaultTransport.
	Transport http.RoundTripper
	// RequestsPerSecond caps the request rate. Zero means 20.
	RequestsPerSecond float64
	// MaxRetries bounds retries of a throttled or failed request. Zero means 10.
	MaxRetries int
	// BackoffBase and BackoffMax shape retries without Retry-After: 1s
	// doubling up to 300s by default, with full jitter.
	BackoffBase, BackoffMax time.Duration
	// HealthScoreSlowdown is the X-SharePointHealthScore from which the
	// client pauses before its next request (score-threshold+1 seconds).
	// Zero means 8.
	HealthScoreSlowdown int
	// Connections bounds the connections to SharePoint (with NTLM, each
	// authenticated connection serves one request at a time). Zero means 8.
	Connections int
	// Timeout bounds one request's headers. Zero means 2 minutes.
	Timeout time.Duration
	// Location is the site's time zone, for DateTimes without an offset.
	// Nil means UTC.
	Location *time.Location
	// Logger receives retries and slowdowns. Nil means none.
	Logger *slog.Logger
	// Sleep waits; nil means a timer that honours ctx (tests shorten it).
	Sleep func(ctx context.Context, d time.Duration) error
	// OData is the JSON format asked for in Accept and sent in
	// Content-Type: ODataVerbose, ODataMinimalMetadata or ODataNoMetadata
	// (JSON Light, SharePoint 2013 SP1 and later). POST bodies carry
	// __metadata only in verbose, as the server requires. With
	// nometadata the server names no types, so Change.ObjectType is
	// empty. Empty means ODataVerbose.
	OData string
}

// OData formats for Config.OData.
const (
	// ODataVerbose is odata=verbose: {"d":...} with __metadata and
	// absolute __next links. Every SharePoint Server version answers it.
	ODataVerbose = "verbose"
	// ODataMinimalMetadata is JSON Light with odata.type and odata.etag;
	// next links may be relative to /_api/.
	ODataMinimalMetadata = "minimalmetadata"
	// ODataNoMetadata is JSON Light without metadata: the smallest answers.
	ODataNoMetadata = "nometadata"
)

// Client talks to one site collection.
type Client struct {
	cfg     Config
	base    *url.URL
	http    *http.Client
	conns   chan *http.Client // NTLM: connection-affine clients, one request each at a time
	krb     *kerberos         // Kerberos: makes each request's Negotiate token; nil otherwise
	limiter *rate.Limiter
	log     *slog.Logger

	mu           sync.Mutex
	digest       string    // guarded by mu
	digestUntil  time.Time // guarded by mu
	pauseUntil   time.Time // guarded by mu: health-score slowdown
	lastScore    int       // guarded by mu: the last high health score logged
	lastScoreLog time.Time // guarded by mu

	reach       Reach // guarded by mu
	stats       Stats
	singleItems sync.Map // list ID -> true: ItemsByID reads one item at a time
}

// Reach is what the client last saw of its site, for the status screen:
// whether SharePoint answered and whether it took the credentials.
type Reach struct {
	// LastOK is the last successful answer.
	LastOK time.Time `json:"last_ok,omitzero"`
	// LastFailure is the last failed request, if after LastOK.
	LastFailure time.Time `json:"last_failure,omitzero"`
	// Failure is "unreachable" (no answer: DNS, connection, TLS), "auth"
	// (401: SharePoint refused the account) or "denied" (403); empty once
	// a request succeeds again.
	Failure string `json:"failure,omitempty"`
	// Error describes the failure; it never holds a credential.
	Error string `json:"error,omitempty"`
}

// Reach returns what the client last saw of its site.
func (c *Client) Reach() Reach {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reach
}

func (c *Client) noteReach(failure string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if failure == "" {
		c.reach = Reach{LastOK: now}
		return
	}
	c.reach.LastFailure, c.reach.Failure = now, failure
	if err != nil {
		c.reach.Error = err.Error()
	}
}

// Stats counts requests by kind, for benchmarks and status.
type Stats struct {
	mu       sync.Mutex
	requests map[string]int
	retries  int
}

// Snapshot returns a copy of the counts.
func (s *Stats) Snapshot() (map[string]int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out, s.retries
}

func (s *Stats) count(kind string, retry bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.requests == nil {
		s.requests = map[string]int{}
	}
	s.requests[kind]++
	if retry {
		s.retries++
	}
}

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.SiteURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sharepoint: site URL %q: want http(s)://host/path", cfg.SiteURL)
	}
	switch cfg.Auth.Method {
	case "", "none", "ntlm", "basic", "kerberos":
	default:
		return nil, fmt.Errorf("sharepoint: auth method %q: want ntlm, kerberos, basic or none", cfg.Auth.Method)
	}
	switch cfg.OData {
	case "":
		cfg.OData = ODataVerbose
	case ODataVerbose, ODataMinimalMetadata, ODataNoMetadata:
	default:
		return nil, fmt.Errorf("sharepoint: OData format %q: want verbose, minimalmetadata or nometadata", cfg.OData)
	}
	if cfg.Auth.Method == "basic" && u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("sharepoint: basic auth sends the password in the clear: use https for %s", u.Host)
	}
	if cfg.RequestsPerSecond <= 0 {
		cfg.RequestsPerSecond = 20
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 10
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 300 * time.Second
	}
	if cfg.HealthScoreSlowdown <= 0 {
		cfg.HealthScoreSlowdown = 8
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleepCtx
	}
	if cfg.Connections <= 0 {
		cfg.Connections = 8
	}
	newTransport := func(perHost int) http.RoundTripper {
		if cfg.Transport != nil {
			return cfg.Transport
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = cfg.Timeout
		t.MaxIdleConnsPerHost = perHost
		t.MaxConnsPerHost = perHost
		return t
	}
	burst := max(1, int(cfg.RequestsPerSecond))
	c := &Client{
		cfg:     cfg,
		base:    u,
		limiter: rate.NewLimiter(rate.Limit(cfg.RequestsPerSecond), burst),
		log:     cfg.Logger.With("site", u.String()),
	}
	if cfg.Auth.Method == "kerberos" {
		if c.krb, err = newKerberos(cfg.Auth, u, c.log); err != nil {
			return nil, err
		}
	}
	if cfg.Auth.Method == "ntlm" {
		// NTLM authenticates a connection, and its last two legs must use
		// the same one: each client here serves one request (body
		// included) at a time over its own two connections (go-ntlmssp
		// holds the first, anonymous 401 until the handshake ends).
		c.conns = make(chan *http.Client, cfg.Connections)
		for range cfg.Connections {
			c.conns <- &http.Client{Transport: ntlmssp.Negotiator{RoundTripper: newTransport(2)}}
		}
	} else {
		c.http = &http.Client{Transport: newTransport(cfg.Connections)}
	}
	return c, nil
}

// send sends req on a client of its own (NTLM) or the shared one; the
// client is released when the response body is closed.
func (c *Client) send(ctx context.Context, req *http.Request) (*http.Response, error) {
	if c.conns == nil {
		return c.http.Do(req)
	}
	var hc *http.Client
	select {
	case hc = <-c.conns:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.conns <- hc
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { c.conns <- hc }}
	return resp, nil
}

// releaseBody gives its client back once, on Close.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// Close stops the Kerberos ticket renewal and forgets the tickets; later
// requests fail. It is a no-op for other methods, and idempotent.
func (c *Client) Close() error {
	if c.krb != nil {
		c.krb.close()
	}
	return nil
}

// SiteURL is the site collection's URL.
func (c *Client) SiteURL() string { return c.base.String() }

// Stats are the request counts.
func (c *Client) Stats() *Stats { return &c.stats }

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// abs resolves a path under the site, an absolute URL, or a next link
// relative to /_api/ (JSON Light returns those).
func (c *Client) abs(webURL, ref string) string {
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		return ref
	}
	base := strings.TrimRight(webURL, "/")
	if base == "" {
		base = c.base.String()
	}
	if strings.HasPrefix(ref, "/_api/") {
		return base + ref
	}
	return base + "/_api/" + strings.TrimPrefix(ref, "/")
}

// request is one call.
type request struct {
	method  string
	url     string
	body    []byte
	kind    string // for stats: web, lists, items, file, changes, contextinfo, roles, render
	headers map[string]string
	digest  bool // needs X-RequestDigest
}

// do sends r with retries and returns a successful response (2xx), whose
// body the caller closes. Other statuses become *APIError.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	refreshedDigest, freshTicket := false, false
	krbGen := 0 // the Kerberos client generation that made this attempt's token
	for attempt := 0; ; attempt++ {
		if err := c.pace(ctx); err != nil {
			return nil, err
		}
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
		if err != nil {
			return nil, fmt.Errorf("sharepoint: %w", err)
		}
		req.Header.Set("Accept", "application/json;odata="+c.cfg.OData)
		req.Header.Set("User-Agent", "NONISV|MCC|MCCBridge/"+c.cfg.Version)
		if r.body != nil {
			req.Header.Set("Content-Type", "application/json;odata="+c.cfg.OData)
		}
		for k, v := range r.headers {
			req.Header.Set(k, v)
		}
		switch c.cfg.Auth.Method {
		case "ntlm", "basic":
			req.SetBasicAuth(c.cfg.Auth.Username, string(c.cfg.Auth.Password))
		case "kerberos":
			if krbGen, err = c.krb.authorize(req); err != nil {
				if !errors.Is(err, ErrKDCUnreachable) || attempt >= c.cfg.MaxRetries {
					return nil, err
				}
				wait := c.backoff(attempt)
				c.log.Warn("no KDC answered; retrying", "err", err, "retry_in", wait)
				if err := c.cfg.Sleep(ctx, wait); err != nil {
					return nil, err
				}
				continue
			}
		}
		if r.digest {
			d, err := c.formDigest(ctx, r.url)
			if err != nil {
				return nil, err
			}
			req.Header.Set("X-RequestDigest", d)
		}
		c.stats.count(r.kind, attempt > 0)
		resp, err := c.send(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c.noteReach("unreachable", fmt.Errorf("%s: %w", redactURL(r.url), err))
			if attempt >= c.cfg.MaxRetries {
				return nil, fmt.Errorf("sharepoint %s: %w (after %d attempts)", redactURL(r.url), err, attempt+1)
			}
			wait := c.backoff(attempt)
			c.log.Warn("sharepoint request failed; retrying", "url", redactURL(r.url), "err", err, "retry_in", wait)
			if err := c.cfg.Sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		c.noteHealth(resp)
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			c.noteReach("auth", fmt.Errorf("%s: HTTP 401", redactURL(r.url)))
		case resp.StatusCode == http.StatusForbidden && !r.digest:
			c.noteReach("denied", fmt.Errorf("%s: HTTP 403", redactURL(r.url)))
		default:
			c.noteReach("", nil)
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return resp, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		apiErr := parseAPIError(resp.StatusCode, b, redactURL(r.url))
		switch {
		case resp.StatusCode == http.StatusForbidden && apiErr.Code == CodeBadDigest && r.digest && !refreshedDigest:
			// The digest expired: get a new one, once, and retry.
			refreshedDigest = true
			c.mu.Lock()
			c.digest = ""
			c.mu.Unlock()
			c.log.Info("form digest expired; refreshing it once")
			continue
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout:
			if attempt >= c.cfg.MaxRetries {
				return nil, fmt.Errorf("sharepoint keeps throttling (%d retries): %w", attempt, apiErr)
			}
			wait := c.backoff(attempt)
			if ra := retryAfter(resp.Header.Get("Retry-After")); ra > 0 {
				wait = min(ra, c.cfg.BackoffMax)
			}
			c.log.Warn("sharepoint throttled the crawl; backing off", "status", resp.StatusCode, "url", redactURL(r.url),
				"retry_in", wait, "attempt", attempt+1, "health_score", resp.Header.Get("X-SharePointHealthScore"))
			if err := c.cfg.Sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		case resp.StatusCode == http.StatusUnauthorized && c.krb != nil && !freshTicket:
			// The service key may have changed since the ticket was
			// issued: log in afresh, once.
			freshTicket = true
			c.krb.reset(krbGen)
			c.log.Info("sharepoint refused the kerberos ticket; logging in again once", "spn", c.krb.spn, "url", redactURL(r.url))
			continue
		case resp.StatusCode == http.StatusUnauthorized:
			hint := "check the SharePoint account in the agent configuration"
			if c.krb != nil {
				hint = "SharePoint refused the Kerberos ticket for " + c.krb.spn + ": check the SPN and that the web application's account holds its key"
			}
			apiErr.Message = "authentication failed (" + hint + "): " + apiErr.Message
			return nil, apiErr
		}
		return nil, apiErr
	}
}

// pace waits for the rate limiter and any health-score pause.
func (c *Client) pace(ctx context.Context) error {
	c.mu.Lock()
	until := c.pauseUntil
	c.mu.Unlock()
	if d := time.Until(until); d > 0 {
		if err := c.cfg.Sleep(ctx, d); err != nil {
			return err
		}
	}
	return c.limiter.Wait(ctx)
}

// noteHealth slows the crawl when SharePoint says it is busy.
func (c *Client) noteHealth(resp *http.Response) {
	score, err := strconv.Atoi(resp.Header.Get("X-SharePointHealthScore"))
	if err != nil || score < c.cfg.HealthScoreSlowdown {
		return
	}
	pause := time.Duration(score-c.cfg.HealthScoreSlowdown+1) * c.cfg.BackoffBase
	c.mu.Lock()
	c.pauseUntil = time.Now().Add(pause)
	logIt := score != c.lastScore || time.Since(c.lastScoreLog) > time.Minute
	if logIt {
		c.lastScore, c.lastScoreLog = score, time.Now()
	}
	c.mu.Unlock()
	if logIt {
		c.log.Info("sharepoint is busy; slowing down", "health_score", score, "pause_per_request", pause)
	}
}

func (c *Client) backoff(attempt int) time.Duration {
	cp := c.cfg.BackoffBase
	for i := 0; i < attempt && cp < c.cfg.BackoffMax; i++ {
		cp *= 2
	}
	cp = min(cp, c.cfg.BackoffMax)
	// Full jitter, but never less than half the cap, so retries spread
	// without hammering.
	return cp/2 + time.Duration(rand.Int64N(int64(cp/2)+1))
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

// redactURL drops the query (it can carry search terms) for logs.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// formDigest returns a valid X-RequestDigest for the web of target.
func (c *Client) formDigest(ctx context.Context, target string) (string, error) {
	c.mu.Lock()
	if c.digest != "" && time.Now().Before(c.digestUntil) {
		d := c.digest
		c.mu.Unlock()
		return d, nil
	}
	c.mu.Unlock()
	webURL := target
	if i := strings.Index(webURL, "/_api/"); i >= 0 {
		webURL = webURL[:i]
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, url: webURL + "/_api/contextinfo", body: []byte{}, kind: "contextinfo"})
	if err != nil {
		return "", fmt.Errorf("form digest: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("form digest: %w", err)
	}
	raw, err := decodeEntity(b)
	if err != nil {
		return "", err
	}
	var ci struct {
		GetContextWebInformation *struct {
			FormDigestValue          string
			FormDigestTimeoutSeconds int
		}
		FormDigestValue          string
		FormDigestTimeoutSeconds int
	}
	if err := json.Unmarshal(raw, &ci); err != nil {
		return "", fmt.Errorf("form digest: %w", err)
	}
	if ci.GetContextWebInformation != nil {
		ci.FormDigestValue, ci.FormDigestTimeoutSeconds = ci.GetContextWebInformation.FormDigestValue, ci.GetContextWebInformation.FormDigestTimeoutSeconds
	}
	if ci.FormDigestValue == "" {
		return "", errors.New("form digest: contextinfo returned none")
	}
	life := time.Duration(ci.FormDigestTimeoutSeconds) * time.Second
	if life <= 0 {
		life = 30 * time.Minute
	}
	c.mu.Lock()
	c.digest = ci.FormDigestValue
	c.digestUntil = time.Now().Add(life - min(life/10, time.Minute))
	c.mu.Unlock()
	return ci.FormDigestValue, nil
}

// getJSON GETs url and returns the body.
func (c *Client) getJSON(ctx context.Context, u, kind string) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, url: u, kind: kind})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("sharepoint %s: read: %w", redactURL(u), err)
	}
	return b, nil
}

// typed returns fields for a POST body of OData type typ: with the
// __metadata verbose requires, or without it for JSON Light, which
// refuses it.
func (c *Client) typed(typ string, fields map[string]any) map[string]any {
	if c.cfg.OData == ODataVerbose {
		fields["__metadata"] = map[string]string{"type": typ}
	}
	return fields
}

// postJSON POSTs body (with a form digest) and returns the response body.
func (c *Client) postJSON(ctx context.Context, u, kind string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, url: u, body: b, kind: kind, digest: true})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("sharepoint %s: read: %w", redactURL(u), err)
	}
	return out, nil
}

// each GETs a collection and calls fn for every entry, following next
// links (absolute or relative) to the end.
func (c *Client) each(ctx context.Context, webURL, u, kind string, fn func(json.RawMessage) error) error {
	return eachOf(ctx, c, webURL, u, kind, fn)
}

// eachOf is each with the entries decoded as T.
func eachOf[T any](ctx context.Context, c *Client, webURL, u, kind string, fn func(T) error) error {
	for u != "" {
		b, err := c.getJSON(ctx, u, kind)
		if err != nil {
			return err
		}
		entries, next, err := decodeCollectionOf[T](b)
		if err != nil {
			return fmt.Errorf("sharepoint %s: %w", redactURL(u), err)
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if next != "" {
			next = c.abs(webURL, next)
			if next == u {
				return fmt.Errorf("sharepoint %s: the next link points to the same page", redactURL(u))
			}
		}
		u = next
	}
	return nil
}
