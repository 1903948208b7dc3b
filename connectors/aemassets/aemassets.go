package aemassets

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
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// ID is the connector's target system id.
const ID = "aem_assets"

// Limits.
const (
	// maxResponse caps the bytes read of one AEM answer.
	maxResponse = 16 << 20
	// DefaultMaxUpload is the default (and largest) MaxUploadBytes: the
	// content travels base64 in the dispatch request, so the dispatcher's
	// MaxBody must allow about 4/3 of it plus the envelope.
	DefaultMaxUpload = 8 << 20
)

// Config configures the connector. BaseURL is required; the zero value of
// every other field means its default.
type Config struct {
	// BaseURL is the AEM author host, e.g.
	// https://author-p123-e456.adobeaemcloud.com. Requests go to the
	// credential's "base_url" value instead when it has one. It must be
	// https (http only for loopback hosts, in tests).
	BaseURL string
	// HTTPClient sends the requests, to AEM and to the upload URIs. Nil
	// means a client of its own without a timeout: each call is bounded
	// by its context.
	HTTPClient *http.Client
	// Logger receives failures. Nil means none.
	Logger *slog.Logger
	// DAMRoot is the folder every path must be in. Empty means /content/dam.
	DAMRoot string
	// MaxUploadBytes caps an uploaded asset, at most DefaultMaxUpload.
	// Zero means DefaultMaxUpload.
	MaxUploadBytes int
	// PageSize is the hits or entities asked for per request. Zero means 100.
	PageSize int
	// RetryAfter is the wait suggested after a 429 without Retry-After.
	// Zero means 5s.
	RetryAfter time.Duration
	// Health, when set, is the health check. Nil means a GET of BaseURL
	// without a credential: healthy when the host answers below 500.
	Health func(ctx context.Context, tenant string) error
	// Now is the clock, for Retry-After dates. Nil means time.Now.
	Now func() time.Time
}

// Connector is the AEM Assets connector. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	base   *url.URL
	client *http.Client
	log    *slog.Logger
}

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	base, err := parseBase(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("aem assets connector: BaseURL: %w", err)
	}
	if cfg.DAMRoot == "" {
		cfg.DAMRoot = "/content/dam"
	}
	if cfg.DAMRoot != "/content/dam" && (!strings.HasPrefix(cfg.DAMRoot, "/content/dam/") || checkSegments(cfg.DAMRoot[len("/content/dam/"):]) != nil) {
		return nil, fmt.Errorf("aem assets connector: DAMRoot %q: want /content/dam or a folder in it", cfg.DAMRoot)
	}
	switch {
	case cfg.MaxUploadBytes == 0:
		cfg.MaxUploadBytes = DefaultMaxUpload
	case cfg.MaxUploadBytes < 1 || cfg.MaxUploadBytes > DefaultMaxUpload:
		return nil, fmt.Errorf("aem assets connector: MaxUploadBytes %d: want 1 to %d", cfg.MaxUploadBytes, DefaultMaxUpload)
	}
	switch {
	case cfg.PageSize == 0:
		cfg.PageSize = 100
	case cfg.PageSize < 1 || cfg.PageSize > 1000:
		return nil, fmt.Errorf("aem assets connector: PageSize %d: want 1 to 1000", cfg.PageSize)
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
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
	return &Connector{cfg: cfg, base: base, client: cfg.HTTPClient, log: cfg.Logger}, nil
}

// parseBase checks a base URL: absolute, https (or http to a loopback
// host), no user, query or fragment.
func parseBase(raw string) (*url.URL, error) {
	u, err := checkURL(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil {
		return nil, err
	}
	if u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, errors.New("want scheme://host with no path, query or fragment")
	}
	u.Path = ""
	return u, nil
}

// checkURL checks an absolute URL: https (or http to a loopback host), no user.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Host == "" || u.User != nil || u.Opaque != "" {
		return nil, errors.New("want an absolute URL with no user")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !connectors.Loopback(u.Hostname()) {
			return nil, errors.New("want https (http only to a loopback host)")
		}
	default:
		return nil, errors.New("want https")
	}
	return u, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Adobe Experience Manager Assets" }

// AuthMethod implements connectors.Connector: IMS / OAuth bearer tokens.
func (c *Connector) AuthMethod() string { return "oauth2" }

// HealthCheck implements connectors.Connector: Config.Health when set,
// else an unauthenticated GET of BaseURL, healthy when AEM answers with a
// status below 500 (it answers 401 or a login page without a token).
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.cfg.Health != nil {
		return c.cfg.Health(ctx, tenant)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+"/", nil)
	if err != nil {
		return fmt.Errorf("aem assets health: %w", err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return transportError(ctx, "AEM", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 500 {
		return connectors.Errorf(connectors.ClassUnavailable, "AEM answered %d", resp.StatusCode)
	}
	return nil
}

// Execute implements connectors.Connector.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opSearch:
		return c.search(ctx, ec)
	case opMetadata:
		return c.metadata(ctx, ec)
	case opUpload:
		return c.upload(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "aem assets has no operation %q", op)
}

// Resource implements dispatch.Resourcer: the DAM path a payload names,
// for policies.
func (c *Connector) Resource(_ string, payload json.RawMessage) map[string]string {
	var p struct {
		Path   string `json:"path"`
		Folder string `json:"folder"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return nil
	}
	switch {
	case p.Path != "":
		return map[string]string{"path": p.Path}
	case p.Folder != "":
		return map[string]string{"path": p.Folder}
	}
	return nil
}

// session is what one execution sends requests with.
type session struct {
	base  *url.URL
	token connectors.Secret
}

// session picks the AEM host and token of ec's credential.
func (c *Connector) session(ec connectors.ExecContext) (*session, error) {
	if ec.Credential.Token.Reveal() == "" {
		return nil, connectors.Errorf(connectors.ClassUnauthorized, "the AEM credential has no access token")
	}
	s := &session{base: c.base, token: ec.Credential.Token}
	if v := ec.Credential.Values["base_url"].Reveal(); v != "" {
		u, err := parseBase(v)
		if err != nil {
			return nil, connectors.Errorf(connectors.ClassUnauthorized, "the AEM credential's base_url is unusable: %v", err)
		}
		s.base = u
	}
	return s, nil
}

// do sends a request to ref (an escaped path and query on the AEM host)
// with the bearer token and returns the answer's body when it is 2xx.
// form, when not nil, is sent as application/x-www-form-urlencoded.
func (c *Connector) do(ctx context.Context, s *session, method, ref string, form url.Values, secrets ...string) ([]byte, int, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base.String()+ref, body)
	if err != nil {
		return nil, 0, connectors.Errorf(connectors.ClassInvalid, "build the request: bad path")
	}
	req.Header.Set("Accept", "application/json")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", "Bearer "+s.token.Reveal())
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, transportError(ctx, "AEM", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, 0, transportError(ctx, "AEM", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, c.classify(ctx, "AEM", resp, data, append(secrets, s.token.Reveal())...)
	}
	if len(data) > maxResponse {
		return nil, resp.StatusCode, connectors.Errorf(connectors.ClassUnavailable, "AEM's answer exceeds %d bytes", maxResponse)
	}
	return data, resp.StatusCode, nil
}

// getJSON GETs ref and decodes the JSON answer into out.
func (c *Connector) getJSON(ctx context.Context, s *session, ref string, out any) error {
	data, _, err := c.do(ctx, s, http.MethodGet, ref, nil)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "AEM answered with JSON of an unexpected shape", Err: err}
	}
	return nil
}

// jsonResult encodes v as a result.
func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, connectors.Errorf(connectors.ClassUnavailable, "encode the result: %v", err)
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
