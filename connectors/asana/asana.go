package asana

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcc-bridge/bridge/connectors"
)

// ID is the connector's target system id.
const ID = "asana"

// APIPath is the REST API's path under the base URL.
const APIPath = "/api/1.0"

// DefaultBaseURL is Asana's API host.
const DefaultBaseURL = "https://app.asana.com"

// MaxPageSize is the largest limit Asana accepts on a list.
const MaxPageSize = 100

// UserContextHeader carries the calling user of attributed operations.
const UserContextHeader = "X-MCC-User-Context"

// Config configures the connector. The zero value of every field means
// its default.
type Config struct {
	// BaseURL is the API host. Empty means DefaultBaseURL.
	BaseURL string
	// HTTPClient sends the requests. Nil means a client of the
	// connector's own. Either way redirects are never followed.
	HTTPClient *http.Client
	// Logger receives failures. Nil means none.
	Logger *slog.Logger
	// PageSize is the limit of each list page. Zero means MaxPageSize;
	// more than MaxPageSize is an error.
	PageSize int
	// Health, when set, is HealthCheck (e.g. GET /users/me with the
	// tenant's credential). Nil means HealthCheck checks that the API
	// answers an unauthenticated GET /users/me (with 401, as it does)
	// rather than failing or throttling.
	Health func(ctx context.Context, tenant string) error
}

// Connector is the Asana connector. It is safe for concurrent use.
type Connector struct {
	base      string // BaseURL + APIPath
	hc        *http.Client
	log       *slog.Logger
	pageSize  int
	healthFn  func(ctx context.Context, tenant string) error
	userAgent string
}

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, errors.New("asana connector: BaseURL must be an http(s) URL of a host, e.g. https://app.asana.com")
	}
	if cfg.PageSize < 0 || cfg.PageSize > MaxPageSize {
		return nil, fmt.Errorf("asana connector: PageSize must be from 1 to %d (0 for %d)", MaxPageSize, MaxPageSize)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = MaxPageSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Connector{
		base: strings.TrimSuffix(u.String(), "/") + APIPath, hc: hc, log: cfg.Logger, pageSize: cfg.PageSize,
		healthFn: cfg.Health, userAgent: "mcc-bridge-asana/1",
	}, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Asana" }

// AuthMethod implements connectors.Connector.
func (c *Connector) AuthMethod() string { return "oauth2" }

// HealthCheck implements connectors.Connector: Config.Health when set;
// otherwise an unauthenticated GET /users/me, healthy when Asana answers
// it at all (401 is the expected answer) and unhealthy on 5xx, 429 or no
// answer.
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.healthFn != nil {
		return c.healthFn(ctx, tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/users/me", nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return statusError(resp, body, "")
	}
	return nil
}

// Resource implements dispatch.Resourcer: the workspace or task a payload
// names, for policies.
func (c *Connector) Resource(_ string, payload json.RawMessage) map[string]string {
	var p struct {
		Workspace string `json:"workspace"`
		TaskGID   string `json:"task_gid"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return nil
	}
	out := map[string]string{}
	if p.Workspace != "" {
		out["workspace"] = p.Workspace
	}
	if p.TaskGID != "" {
		out["task_gid"] = p.TaskGID
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opCreateTask:
		return c.createTask(ctx, ec)
	case opGetTask:
		return c.getTask(ctx, ec)
	case opListProjects:
		return c.listProjects(ctx, ec)
	case opBatch:
		return c.batch(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "asana has no operation %q", op)
}
