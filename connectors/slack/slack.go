package slack

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
const ID = "slack"

// DefaultBaseURL is Slack's origin; the Web API is under it at /api.
const DefaultBaseURL = "https://slack.com"

// Config configures the connector. The zero value of every field means
// its default.
type Config struct {
	// BaseURL is Slack's origin (scheme and host, optionally a path
	// prefix); methods are called at BaseURL + "/api/" + method. Empty
	// means DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Nil means a client with a 60s
	// overall timeout (each execution's context usually ends sooner).
	HTTPClient *http.Client
	// Logger receives failures of Slack (never tokens or bodies). Nil
	// means none.
	Logger *slog.Logger
	// Health, when set, is HealthCheck. Nil means an unauthenticated
	// call of api.test: it shows Slack is reachable and answering, not
	// that the tenant's token works (HealthCheck has no credential).
	Health func(ctx context.Context, tenant string) error
	// MaxPages bounds the pages one list_channels follows. Zero means 50.
	MaxPages int
}

// Connector is the Slack connector. It is safe for concurrent use.
type Connector struct {
	base     string // without a trailing slash
	hc       *http.Client
	log      *slog.Logger
	health   func(ctx context.Context, tenant string) error
	maxPages int
}

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New("slack connector: BaseURL must be an http(s) URL with a host and no query, fragment or user info")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPages <= 0 {
		cfg.MaxPages = 50
	}
	return &Connector{base: strings.TrimRight(cfg.BaseURL, "/"), hc: cfg.HTTPClient, log: cfg.Logger, health: cfg.Health, maxPages: cfg.MaxPages}, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Slack (Web API, bot token)" }

// AuthMethod implements connectors.Connector: the bot token of the app's
// OAuth v2 installation.
func (c *Connector) AuthMethod() string { return "oauth2" }

// HealthCheck implements connectors.Connector: Config.Health when set,
// else an unauthenticated api.test call (Slack reachable and answering
// {"ok": true}).
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.health != nil {
		return c.health(ctx, tenant)
	}
	_, err := c.call(ctx, http.MethodGet, "api.test", nil, nil, "")
	if err != nil {
		return fmt.Errorf("slack health: %w", err)
	}
	return nil
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opPost:
		return c.postMessage(ctx, ec)
	case opList:
		return c.listChannels(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "slack has no operation %q", op)
}
