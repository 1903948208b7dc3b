package adobeanalytics

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mcc-bridge/bridge/connectors"
)

// ID is the connector's target system id.
const ID = "adobe_analytics"

// maxResponse caps the bytes read of one Adobe answer.
const maxResponse = 32 << 20

// Config configures the connector. The zero value of every field means
// its default.
type Config struct {
	// BaseURL is the Analytics API host. Empty means https://analytics.adobe.io.
	// It must be https (http only for loopback hosts, in tests).
	BaseURL string
	// HTTPClient sends the requests. Nil means a client of its own
	// without a timeout: each call is bounded by its context.
	HTTPClient *http.Client
	// Logger receives failures and rate-limit waits. Nil means none.
	Logger *slog.Logger
	// GlobalCompanyID is the company used when a credential carries no
	// "global_company_id" value. Empty means credentials must carry one.
	GlobalCompanyID string
	// PageSize is the rows asked for per page (settings.limit, at most
	// 50000). Zero means 1000.
	PageSize int
	// Rate and Burst bound the requests of each (tenant, client id) with
	// a token bucket: Adobe allows 12 requests per 6 seconds per user, and
	// a bucket never exceeds Burst + Rate*6s requests in any 6 seconds.
	// Zero means 1/s and a burst of 6 (12 in any 6 seconds).
	Rate  rate.Limit
	Burst int
	// RetryAfter is the wait suggested after a 429 without Retry-After.
	// Zero means 6s (Adobe's rate-limit window).
	RetryAfter time.Duration
	// Health, when set, is the health check. Nil means a GET of BaseURL
	// without a credential: healthy when the host answers below 500.
	Health func(ctx context.Context, tenant string) error
	// Now is the clock, for Retry-After dates. Nil means time.Now.
	Now func() time.Time
}

// Connector is the Adobe Analytics connector. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	base   *url.URL
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // guarded by mu; key tenant + "\x00" + client id
}

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://analytics.adobe.io"
	}
	base, err := connectors.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("adobe analytics connector: BaseURL: %w", err)
	}
	if cfg.GlobalCompanyID != "" && !companyRE.MatchString(cfg.GlobalCompanyID) {
		return nil, fmt.Errorf("adobe analytics connector: GlobalCompanyID %q: want letters and digits", cfg.GlobalCompanyID)
	}
	switch {
	case cfg.PageSize == 0:
		cfg.PageSize = 1000
	case cfg.PageSize < 1 || cfg.PageSize > 50000:
		return nil, fmt.Errorf("adobe analytics connector: PageSize %d: want 1 to 50000", cfg.PageSize)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 1
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 6
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 6 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Connector{cfg: cfg, base: base, client: cfg.HTTPClient, log: cfg.Logger, limiters: map[string]*rate.Limiter{}}, nil
}

var companyRE = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Adobe Analytics (Reports API 2.0)" }

// AuthMethod implements connectors.Connector: an IMS access token from the
// OAuth client credentials grant, with the client id as API key.
func (c *Connector) AuthMethod() string { return "oauth2-client-credentials" }

// HealthCheck implements connectors.Connector: Config.Health when set,
// else an unauthenticated GET of BaseURL, healthy when the host answers
// with a status below 500 (Adobe's API gateway answers 4xx without a token).
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.cfg.Health != nil {
		return c.cfg.Health(ctx, tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/", nil)
	if err != nil {
		return fmt.Errorf("adobe analytics health: %w", err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 500 {
		return connectors.Errorf(connectors.ClassUnavailable, "Adobe Analytics answered %d", resp.StatusCode)
	}
	return nil
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opReport:
		return c.report(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "adobe analytics has no operation %q", op)
}

// session is what one execution sends requests with.
type session struct {
	token    connectors.Secret
	clientID connectors.Secret
	company  string
	limiter  *rate.Limiter
}

// session reads ec's credential: the access token, the client id and the
// global company id.
func (c *Connector) session(ec connectors.ExecContext) (*session, error) {
	s := &session{token: ec.Credential.Token, clientID: ec.Credential.Values["client_id"], company: c.cfg.GlobalCompanyID}
	switch {
	case s.token.Reveal() == "":
		return nil, connectors.Errorf(connectors.ClassUnauthorized, "the Adobe credential has no access token")
	case s.clientID.Reveal() == "":
		return nil, connectors.Errorf(connectors.ClassUnauthorized, "the Adobe credential has no client_id (sent as x-api-key)")
	}
	if v := ec.Credential.Values["global_company_id"].Reveal(); v != "" {
		s.company = v
	}
	if !companyRE.MatchString(s.company) {
		return nil, connectors.Errorf(connectors.ClassUnauthorized, "no usable global company id: set the credential's global_company_id or Config.GlobalCompanyID")
	}
	s.limiter = c.limiter(ec.Tenant + "\x00" + s.clientID.Reveal())
	return s, nil
}

func (c *Connector) limiter(key string) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.limiters[key]
	if !ok {
		l = rate.NewLimiter(c.cfg.Rate, c.cfg.Burst)
		c.limiters[key] = l
	}
	return l
}

// wait takes a token from the session's bucket. When the wait would not
// fit in ctx's deadline it gives up at once, rate limited.
func (c *Connector) wait(ctx context.Context, s *session) error {
	r := s.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		r.Cancel()
		return &connectors.Error{Class: connectors.ClassRateLimited, RetryAfter: d,
			Detail: "the request would exceed Adobe's rate limit for this client (12 requests per 6 seconds)"}
	}
	c.log.DebugContext(ctx, "adobe analytics: waiting for the rate limit", "wait", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		r.Cancel()
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: "the operation did not finish in time", Err: ctx.Err()}
	case <-t.C:
		return nil
	}
}

// post sends body to path (under BaseURL) and decodes a 2xx JSON answer
// into out.
func (c *Connector) post(ctx context.Context, s *session, path string, body, out any) error {
	if err := c.wait(ctx, s); err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return connectors.Errorf(connectors.ClassInvalid, "encode the request: %v", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(b))
	if err != nil {
		return connectors.Errorf(connectors.ClassInvalid, "build the request: bad path")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-proxy-global-company-id", s.company)
	req.Header.Set("x-api-key", s.clientID.Reveal())
	req.Header.Set("Authorization", "Bearer "+s.token.Reveal())
	resp, err := c.client.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.classify(ctx, resp, data, s.token.Reveal(), s.clientID.Reveal())
	}
	if len(data) > maxResponse {
		return connectors.Errorf(connectors.ClassUnavailable, "Adobe's answer exceeds %d bytes", maxResponse)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Adobe answered with JSON of an unexpected shape", Err: err}
	}
	return nil
}
