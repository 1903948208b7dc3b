package workfront

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
const ID = "workfront"

// APIPath is the REST API's path under the base URL.
const APIPath = "/attask/api/v20.0"

// DefaultCampaignField is the custom field create_project sets.
const DefaultCampaignField = "DE:MCC_Campaign_ID"

// MaxPageSize is the largest $$LIMIT Workfront accepts.
const MaxPageSize = 2000

// UserContextHeader carries the calling user of attributed operations.
const UserContextHeader = "X-MCC-User-Context"

// OAuth header choices for Config.OAuthHeader.
const (
	// OAuthSessionID sends OAuth2 access tokens in the sessionID header
	// (Workfront's own OAuth2 applications).
	OAuthSessionID = "sessionID"
	// OAuthBearer sends them as "Authorization: Bearer" (Adobe IMS tokens).
	OAuthBearer = "bearer"
)

// Config configures the connector. BaseURL is required; the zero value of
// every other field means its default.
type Config struct {
	// BaseURL is the customer's Workfront host, e.g.
	// "https://acme.my.workfront.com" (no path).
	BaseURL string
	// HTTPClient sends the requests. Nil means a client of the
	// connector's own. Either way redirects are never followed (they
	// would carry the sessionID or apiKey header to another host).
	HTTPClient *http.Client
	// Logger receives failures. Nil means none.
	Logger *slog.Logger
	// PageSize is the $$LIMIT of each search page. Zero means
	// MaxPageSize; more than MaxPageSize is an error.
	PageSize int
	// CampaignField is the custom field holding the campaign id. Empty
	// means DefaultCampaignField.
	CampaignField string
	// OAuthHeader says where OAuth2 access tokens go: OAuthSessionID
	// (the default when empty) or OAuthBearer.
	OAuthHeader string
	// Health, when set, is HealthCheck (e.g. an authenticated call with
	// the tenant's service credential). Nil means HealthCheck checks that
	// the API answers an unauthenticated request (with 401, as it does)
	// rather than failing or throttling.
	Health func(ctx context.Context, tenant string) error
}

// Connector is the Workfront connector. It is safe for concurrent use.
type Connector struct {
	base      string // BaseURL + APIPath, no trailing slash
	hc        *http.Client
	log       *slog.Logger
	pageSize  int
	campaign  string
	oauthHdr  string
	healthFn  func(ctx context.Context, tenant string) error
	userAgent string
}

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, errors.New("workfront connector: BaseURL must be an http(s) URL of a host, e.g. https://acme.my.workfront.com")
	}
	if cfg.PageSize < 0 || cfg.PageSize > MaxPageSize {
		return nil, fmt.Errorf("workfront connector: PageSize must be from 1 to %d (0 for %d)", MaxPageSize, MaxPageSize)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = MaxPageSize
	}
	if cfg.CampaignField == "" {
		cfg.CampaignField = DefaultCampaignField
	}
	if !strings.HasPrefix(cfg.CampaignField, "DE:") {
		return nil, errors.New("workfront connector: CampaignField must name a custom field, DE:<name>")
	}
	switch cfg.OAuthHeader {
	case "":
		cfg.OAuthHeader = OAuthSessionID
	case OAuthSessionID, OAuthBearer:
	default:
		return nil, fmt.Errorf("workfront connector: OAuthHeader must be %q or %q", OAuthSessionID, OAuthBearer)
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
		campaign: cfg.CampaignField, oauthHdr: cfg.OAuthHeader, healthFn: cfg.Health, userAgent: "mcc-bridge-workfront/1",
	}, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Adobe Workfront" }

// AuthMethod implements connectors.Connector: OAuth2 for the integration
// owner's writes, an API key for the aggregated search.
func (c *Connector) AuthMethod() string { return "oauth2" }

// HealthCheck implements connectors.Connector: Config.Health when set;
// otherwise an unauthenticated GET of /proj/count, which is healthy when
// Workfront answers it at all (401 is the expected answer) and unhealthy
// on 5xx, 429 or no answer.
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.healthFn != nil {
		return c.healthFn(ctx, tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/proj/count", nil)
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
		return c.statusError(resp, body, "")
	}
	return nil
}

// Resource implements dispatch.Resourcer: the record a payload names, for
// policies.
func (c *Connector) Resource(_ string, payload json.RawMessage) map[string]string {
	var p struct {
		ProjectID  string `json:"project_id"`
		TaskID     string `json:"task_id"`
		CampaignID string `json:"campaign_id"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range map[string]string{"project_id": p.ProjectID, "task_id": p.TaskID, "campaign_id": p.CampaignID} {
		if v != "" {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opCreateProject:
		return c.createProject(ctx, ec)
	case opGetProject:
		return c.getProject(ctx, ec)
	case opSearchProjects:
		return c.searchProjects(ctx, ec)
	case opUpdateTask:
		return c.updateTask(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "workfront has no operation %q", op)
}
