package s3

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// ID is the connector's target system id.
const ID = "s3"

// Defaults and bounds.
const (
	defaultRegion     = "us-east-1"
	defaultDuration   = time.Hour // AssumeRole's own default
	minDuration       = 15 * time.Minute
	maxDuration       = 12 * time.Hour
	defaultPageSize   = 1000 // ListObjectsV2's maximum MaxKeys
	defaultMaxPut     = 8 << 20
	defaultMaxClients = 256
	defaultListLimit  = 1000
	maxListLimit      = 10000
)

// Config configures the connector. Buckets, RoleARN and ExternalID are
// required; the zero value of every other field means its default.
type Config struct {
	// Buckets are the buckets the connector may reach; a request naming
	// any other is refused (ClassInvalid) before anything is sent.
	Buckets []string
	// RoleARN is the IAM role the relay assumes in the tenant's account,
	// e.g. arn:aws:iam::111122223333:role/mcc-bridge.
	RoleARN string
	// ExternalID is sent with AssumeRole; the role's trust policy checks
	// it (sts:ExternalId), which keeps another customer of the relay from
	// having it assume this role (the confused-deputy problem).
	ExternalID string
	// Region is the buckets' region, also used for STS. Zero means
	// us-east-1.
	Region string
	// STSEndpoint is the STS endpoint URL. Zero means the SDK's regional
	// endpoint, https://sts.{Region}.amazonaws.com.
	STSEndpoint string
	// S3Endpoint is the URL of an S3-compatible server, addressed
	// path-style ({S3Endpoint}/{bucket}/{key}); it plays the BaseURL role
	// of other connectors. Zero means AWS S3, addressed virtual-hosted
	// style.
	S3Endpoint string
	// SessionDuration is AssumeRole's DurationSeconds, 15m to 12h (the
	// role's maximum session duration must allow it). Zero means 1h.
	SessionDuration time.Duration
	// PageSize is MaxKeys per ListObjectsV2 page, 1 to 1000. Zero means 1000.
	PageSize int
	// MaxPutBytes bounds put_object's decoded content, at most 8 MiB.
	// Zero means 8 MiB. The dispatcher's MaxBody must allow the base64
	// payload (4/3 of this, plus the rest of the request).
	MaxPutBytes int
	// MaxClients bounds the cache of assumed-role sessions, one per
	// (tenant, base access key); the least recently used is dropped.
	// Zero means 256.
	MaxClients int
	// HTTPClient sends requests to STS and S3. Nil means the SDK's default.
	HTTPClient *http.Client
	// Logger receives errors. Nil means none.
	Logger *slog.Logger
	// Health, when set, is HealthCheck. Nil means: with a cached session
	// for the tenant, HeadBucket on every allowed bucket; without one
	// (HealthCheck gets no credential), an unauthenticated request to the
	// S3 endpoint, where any answer but a 5xx counts as reachable.
	Health func(ctx context.Context, tenant string) error
}

// Connector is the S3 connector. It is safe for concurrent use.
type Connector struct {
	cfg     Config
	log     *slog.Logger
	buckets map[string]bool
	http    *http.Client // for the unauthenticated health probe

	mu       sync.Mutex
	sessions map[sessionKey]*session // guarded by mu
	tick     uint64                  // guarded by mu; LRU clock
}

// bucketRE is S3's bucket naming rule (general purpose buckets).
var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// roleARNRE accepts IAM role ARNs in every partition.
var roleARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)

// externalIDRE is AssumeRole's ExternalId constraint.
var externalIDRE = regexp.MustCompile(`^[\w+=,.@:/-]+$`)

// New checks cfg and returns the connector.
func New(cfg Config) (*Connector, error) {
	if len(cfg.Buckets) == 0 {
		return nil, errors.New("s3 connector: at least one bucket is required")
	}
	c := &Connector{buckets: map[string]bool{}, sessions: map[sessionKey]*session{}}
	for _, b := range cfg.Buckets {
		if !bucketRE.MatchString(b) {
			return nil, fmt.Errorf("s3 connector: bucket %q is not a valid bucket name", b)
		}
		c.buckets[b] = true
	}
	if !roleARNRE.MatchString(cfg.RoleARN) {
		return nil, fmt.Errorf("s3 connector: role ARN %q is not an IAM role ARN", cfg.RoleARN)
	}
	if len(cfg.ExternalID) < 2 || len(cfg.ExternalID) > 1224 || !externalIDRE.MatchString(cfg.ExternalID) {
		return nil, errors.New("s3 connector: an external id of 2 to 1224 characters of [A-Za-z0-9_+=,.@:/-] is required")
	}
	for _, e := range []struct{ name, u string }{{"STS", cfg.STSEndpoint}, {"S3", cfg.S3Endpoint}} {
		if e.u == "" {
			continue
		}
		if u, err := url.Parse(e.u); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("s3 connector: %s endpoint %q is not an http(s) URL", e.name, e.u)
		}
	}
	if cfg.Region == "" {
		cfg.Region = defaultRegion
	}
	switch {
	case cfg.SessionDuration == 0:
		cfg.SessionDuration = defaultDuration
	case cfg.SessionDuration < minDuration || cfg.SessionDuration > maxDuration:
		return nil, fmt.Errorf("s3 connector: session duration %v is outside 15m..12h", cfg.SessionDuration)
	}
	switch {
	case cfg.PageSize == 0:
		cfg.PageSize = defaultPageSize
	case cfg.PageSize < 0 || cfg.PageSize > 1000:
		return nil, fmt.Errorf("s3 connector: page size %d is outside 1..1000", cfg.PageSize)
	}
	switch {
	case cfg.MaxPutBytes == 0:
		cfg.MaxPutBytes = defaultMaxPut
	case cfg.MaxPutBytes < 0 || cfg.MaxPutBytes > defaultMaxPut:
		return nil, fmt.Errorf("s3 connector: max put size %d is outside 1..%d", cfg.MaxPutBytes, defaultMaxPut)
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = defaultMaxClients
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c.http = cfg.HTTPClient
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	c.cfg, c.log = cfg, cfg.Logger
	return c, nil
}

// ID implements connectors.Connector.
func (c *Connector) ID() string { return ID }

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "Amazon S3 (service buckets, through an assumed IAM role)" }

// AuthMethod implements connectors.Connector: STS AssumeRole with an
// external id, signed with the relay's base credential.
func (c *Connector) AuthMethod() string { return "sts-assume-role" }

// Execute implements connectors.Connector. When S3 refuses the cached
// assumed-role keys (they expired early or were revoked), the role is
// assumed again and the operation runs once more, so the caller does not
// pay for a session the relay held; a second refusal is returned.
func (c *Connector) Execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	res, err := c.execute(ctx, op, ec)
	var f *awsFailure
	if err != nil && errors.As(err, &f) && f.keysRefused && ctx.Err() == nil {
		c.log.Info("S3 refused the assumed-role keys; assuming the role again and retrying once",
			"operation", op, "tenant", ec.Tenant, "code", f.Code)
		res, err = c.execute(ctx, op, ec)
	}
	return res, err
}

func (c *Connector) execute(ctx context.Context, op string, ec connectors.ExecContext) (connectors.Result, error) {
	switch op {
	case opList:
		return c.list(ctx, ec)
	case opGet:
		return c.get(ctx, ec)
	case opPut:
		return c.put(ctx, ec)
	}
	return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "no operation %q", op)
}

// Resource implements dispatch.Resourcer: the bucket, and the key or
// prefix, a payload names, for policies.
func (c *Connector) Resource(_ string, payload json.RawMessage) map[string]string {
	var p struct {
		Bucket string  `json:"bucket"`
		Key    *string `json:"key"`
		Prefix *string `json:"prefix"`
	}
	if json.Unmarshal(payload, &p) != nil || p.Bucket == "" {
		return nil
	}
	m := map[string]string{"bucket": p.Bucket}
	if p.Key != nil {
		m["key"] = *p.Key
	}
	if p.Prefix != nil {
		m["prefix"] = *p.Prefix
	}
	return m
}

// HealthCheck implements connectors.Connector; see Config.Health.
func (c *Connector) HealthCheck(ctx context.Context, tenant string) error {
	if c.cfg.Health != nil {
		return c.cfg.Health(ctx, tenant)
	}
	if s := c.tenantSession(tenant); s != nil {
		for b := range c.buckets {
			if err := s.headBucket(ctx, b); err != nil {
				return c.classify(ctx, s, "HeadBucket", b, err)
			}
		}
		return nil
	}
	endpoint := c.cfg.S3Endpoint
	if endpoint == "" {
		endpoint = "https://s3." + c.cfg.Region + ".amazonaws.com/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, endpoint, nil)
	if err != nil {
		return fmt.Errorf("s3 health: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "the S3 endpoint cannot be reached", Err: err}
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return connectors.Errorf(connectors.ClassUnavailable, "the S3 endpoint answers HTTP %d", resp.StatusCode)
	}
	return nil
}
