package quip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// ID is the connector's target system id.
const ID = "quip"

// DefaultBaseURL is the Quip platform's origin; the API is under /1/. VPC
// customers use their own host (e.g. https://platform.acme.onquip.com).
const DefaultBaseURL = "https://platform.quip.com"

// Config configures the connector. The zero value of every field means
// its default.
type Config struct {
	// BaseURL is Quip's API origin (optionally with a path prefix); the
	// API is at BaseURL + "/1/". Empty means DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Nil means a client with a 60s
	// overall timeout (each execution's context usually ends sooner).
	HTTPClient *http.Client
	// Logger receives failures of Quip (never tokens or bodies). Nil
	// means none.
	Logger *slog.Logger
	// Health, when set, is HealthCheck. Nil means an unauthenticated GET
	// of /1/users/current: any answer below 500 shows Quip is reachable
	// (HealthCheck has no credential, so it cannot show a token works).
	Health func(ctx context.Context, tenant string) error
	// Now is the clock, for turning X-Ratelimit-Reset into RetryAfter.
	// Nil means time.Now.
	Now func() time.Time
}

// Connector is the Quip connector. It is safe for concurrent use.
type Connector struct {
	base   string // without a trailing slash
	hc     *http.Client
	log    *slog.Logger
	health func(ctx context.Context, tenant string) error
	now    func() time.Time
}

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("quip connector: BaseURL must be an http(s) URL with a host and no query, fragment or user info")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Connector{base: strings.TrimRight(cfg.BaseURL, "/"), hc: cfg.HTTPClient, log: cfg.Logger, health: cfg.Health, now: cfg.Now}, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Quip (Automation API)" }

// AuthMethod implements connectors.Connector: a bearer token (an OAuth
// access token or a personal API token).
func (c *Connector) AuthMethod() string { return "oauth2" }

// HealthCheck implements connectors.Connector: Config.Health when set,
// else an unauthenticated GET /1/users/current, healthy on any answer
// below 500 (Quip answers 401 without a token).
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.health != nil {
		return c.health(ctx, tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/1/users/current", nil)
	if err != nil {
		return fmt.Errorf("quip health: %w", err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("quip health: %w", transportError("users/current", err))
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("quip health: %w", connectors.Errorf(connectors.ClassUnavailable, "Quip answered HTTP %d", resp.StatusCode))
	}
	return nil
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opGet:
		return c.getThread(ctx, ec)
	case opCreate:
		return c.createDocument(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "quip has no operation %q", op)
}
