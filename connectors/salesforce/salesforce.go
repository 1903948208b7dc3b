package salesforce

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
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// ID is the connector's target system id.
const ID = "salesforce"

// maxResponse caps the bytes read of one Salesforce answer.
const maxResponse = 32 << 20

// Config configures the connector. BaseURL is required; the zero value of
// every other field means its default.
type Config struct {
	// BaseURL is the org's My Domain URL, e.g.
	// https://acme.my.salesforce.com. Requests go to the credential's
	// "instance_url" value instead when it has one. It must be https
	// (http only for loopback hosts, in tests).
	BaseURL string
	// HTTPClient sends the requests. Nil means a client of its own
	// without a timeout: each call is bounded by its context.
	HTTPClient *http.Client
	// Logger receives the API usage Salesforce reports (debug) and
	// failures. Nil means none.
	Logger *slog.Logger
	// APIVersion is the REST API version, e.g. "60.0". Empty means "60.0".
	APIVersion string
	// BatchSize asks Salesforce for this many records per query page
	// (Sforce-Query-Options batchSize, 200 to 2000; Salesforce may send
	// fewer). Zero means 2000.
	BatchSize int
	// LimitRetryAfter is how long to wait after REQUEST_LIMIT_EXCEEDED
	// when Salesforce sends no Retry-After and the limit is not a
	// concurrency limit (those clear in seconds: 5s). Zero means 1 minute.
	LimitRetryAfter time.Duration
	// Health, when set, is the health check. Nil means GET
	// {BaseURL}/services/data/, the versions list Salesforce serves
	// without authentication: healthy when it answers 200.
	Health func(ctx context.Context, tenant string) error
	// Now is the clock, for Retry-After dates. Nil means time.Now.
	Now func() time.Time
}

// Connector is the Salesforce connector. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	base   *url.URL
	prefix string // "/services/data/v60.0"
	client *http.Client
	log    *slog.Logger
}

var versionRE = regexp.MustCompile(`^[0-9]{2,3}\.[0-9]$`)

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	base, err := connectors.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("salesforce connector: BaseURL: %w", err)
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = "60.0"
	}
	cfg.APIVersion = strings.TrimPrefix(cfg.APIVersion, "v")
	if !versionRE.MatchString(cfg.APIVersion) {
		return nil, fmt.Errorf("salesforce connector: APIVersion %q: want e.g. 60.0", cfg.APIVersion)
	}
	switch {
	case cfg.BatchSize == 0:
		cfg.BatchSize = 2000
	case cfg.BatchSize < 200 || cfg.BatchSize > 2000:
		return nil, fmt.Errorf("salesforce connector: BatchSize %d: want 200 to 2000", cfg.BatchSize)
	}
	if cfg.LimitRetryAfter <= 0 {
		cfg.LimitRetryAfter = time.Minute
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
	return &Connector{cfg: cfg, base: base, prefix: "/services/data/v" + cfg.APIVersion, client: cfg.HTTPClient, log: cfg.Logger}, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Salesforce (REST API)" }

// AuthMethod implements connectors.Connector: OAuth 2.0 bearer tokens
// (JWT bearer grant for service-to-service, the integration owner's
// connection for writes).
func (c *Connector) AuthMethod() string { return "oauth2" }

// HealthCheck implements connectors.Connector: Config.Health when set,
// else GET {BaseURL}/services/data/ (no credential needed) must answer 200.
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.cfg.Health != nil {
		return c.cfg.Health(ctx, tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/services/data/", nil)
	if err != nil {
		return fmt.Errorf("salesforce health: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return c.classify(ctx, resp, body, "")
	}
	return nil
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opQuery:
		return c.query(ctx, ec)
	case opCreate:
		return c.create(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "salesforce has no operation %q", op)
}

// session is what one execution sends requests with.
type session struct {
	base  *url.URL
	token connectors.Secret
	ec    connectors.ExecContext
}

// session picks the instance and token of ec's credential.
func (c *Connector) session(ec connectors.ExecContext) (*session, error) {
	if ec.Credential.Token.Reveal() == "" {
		return nil, connectors.Errorf(connectors.ClassUnauthorized, "the Salesforce credential has no access token")
	}
	s := &session{base: c.base, token: ec.Credential.Token, ec: ec}
	if v := ec.Credential.Values["instance_url"].Reveal(); v != "" {
		u, err := connectors.ParseBaseURL(v)
		if err != nil {
			// The value is not repeated: it came with the credential.
			return nil, connectors.Errorf(connectors.ClassUnauthorized, "the Salesforce credential's instance_url is unusable: %v", err)
		}
		s.base = u
	}
	return s, nil
}

// do sends one request to ref (a path and query under the instance, e.g.
// "/services/data/v60.0/query?q=...") and decodes a 2xx JSON answer into
// out. Other answers become classified errors.
func (c *Connector) do(ctx context.Context, s *session, method, ref string, body any, hdr http.Header, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return connectors.Errorf(connectors.ClassInvalid, "encode the request: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base.String()+ref, rd)
	if err != nil {
		return connectors.Errorf(connectors.ClassInvalid, "build the request: bad path")
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+s.token.Reveal())
	resp, err := c.client.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	c.logUsage(ctx, s.ec, resp.Header.Get("Sforce-Limit-Info"))
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.classify(ctx, resp, data, s.token.Reveal())
	}
	if len(data) > maxResponse {
		return connectors.Errorf(connectors.ClassUnavailable, "Salesforce's answer exceeds %d bytes", maxResponse)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Salesforce answered with JSON of an unexpected shape", Err: err}
		}
	}
	return nil
}

// logUsage logs the org's API usage from Sforce-Limit-Info at debug.
func (c *Connector) logUsage(ctx context.Context, ec connectors.ExecContext, h string) {
	used, limit, ok := parseLimitInfo(h)
	if !ok {
		return
	}
	c.log.DebugContext(ctx, "salesforce api usage", "tenant", ec.Tenant, "trace_id", ec.TraceID,
		"used", used, "limit", limit, "remaining", limit-used)
}

// jsonResult encodes v as a result.
func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, fmt.Errorf("salesforce: encode the result: %w", err)
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
