package s3

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/mcc-bridge/bridge/connectors"
)

// sessionKey names a cached session: a tenant and the access key id of
// the base credential the dispatcher gave for it (access key ids are
// identifiers, not secrets).
type sessionKey struct{ tenant, accessKeyID string }

// session is an assumed-role session: an S3 client whose credentials come
// from a cache over an AssumeRole provider signed with the base credential.
type session struct {
	tenant string
	// fp is the SHA-256 of the base secret and session token: a base
	// credential re-issued under the same key id replaces the session.
	fp    [32]byte
	creds *aws.CredentialsCache
	s3    *awss3.Client
	used  uint64 // guarded by Connector.mu
}

// expiryWindow is how long before their expiry the assumed-role keys are
// refreshed (jittered down to half of it, so sessions do not refresh in step).
const expiryWindow = 2 * time.Minute

// session returns the tenant's session for ec's base credential, making
// it (without calling STS yet) when there is none.
func (c *Connector) session(ec connectors.ExecContext) (*session, error) {
	v := ec.Credential.Values
	akid, secret, token := v["access_key_id"].Reveal(), v["secret_access_key"].Reveal(), v["session_token"].Reveal()
	if akid == "" || secret == "" {
		return nil, connectors.Errorf(connectors.ClassUnauthorized,
			"the credential for tenant %s lacks an AWS access key id or secret access key", ec.Tenant)
	}
	key := sessionKey{ec.Tenant, akid}
	fp := sha256.Sum256([]byte(secret + "\x00" + token))

	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick++
	if s := c.sessions[key]; s != nil && s.fp == fp {
		s.used = c.tick
		return s, nil
	}
	// The tenant's base credential changed: its older sessions are dead.
	for k := range c.sessions {
		if k.tenant == ec.Tenant {
			delete(c.sessions, k)
		}
	}
	for len(c.sessions) >= c.cfg.MaxClients {
		var oldest sessionKey
		first := true
		for k, s := range c.sessions {
			if first || s.used < c.sessions[oldest].used {
				oldest, first = k, false
			}
		}
		delete(c.sessions, oldest)
	}
	s := c.newSession(ec.Tenant, akid, secret, token)
	s.fp, s.used = fp, c.tick
	c.sessions[key] = s
	return s, nil
}

// newSession builds the clients; STS is called at the first request.
func (c *Connector) newSession(tenant, akid, secret, token string) *session {
	base := aws.Config{
		Region:      c.cfg.Region,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, token),
		// The dispatcher retries; the SDK must not retry underneath it.
		Retryer: func() aws.Retryer { return aws.NopRetryer{} },
	}
	if c.cfg.HTTPClient != nil {
		base.HTTPClient = c.cfg.HTTPClient
	}
	stsClient := sts.NewFromConfig(base, func(o *sts.Options) {
		if c.cfg.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(c.cfg.STSEndpoint)
		}
	})
	provider := stscreds.NewAssumeRoleProvider(stsClient, c.cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.ExternalID = aws.String(c.cfg.ExternalID)
		o.RoleSessionName = sessionName(tenant)
		o.Duration = c.cfg.SessionDuration
	})
	creds := aws.NewCredentialsCache(provider, func(o *aws.CredentialsCacheOptions) {
		o.ExpiryWindow = expiryWindow
		o.ExpiryWindowJitterFrac = 0.5
	})
	s3cfg := base.Copy()
	s3cfg.Credentials = creds
	client := awss3.NewFromConfig(s3cfg, func(o *awss3.Options) {
		if c.cfg.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(c.cfg.S3Endpoint)
			o.UsePathStyle = true
		}
	})
	return &session{tenant: tenant, creds: creds, s3: client}
}

// tenantSession returns a cached session of tenant, or nil.
func (c *Connector) tenantSession(tenant string) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.sessions {
		if k.tenant == tenant {
			return s
		}
	}
	return nil
}

// assume makes sure the session holds valid assumed-role keys, calling
// AssumeRole when it has none or they are about to expire; its errors
// are STS's (S3 calls would fail with them wrapped).
func (s *session) assume(ctx context.Context) error {
	if _, err := s.creds.Retrieve(ctx); err != nil {
		return &assumeError{err: err}
	}
	return nil
}

// assumeError marks an error of the AssumeRole call.
type assumeError struct{ err error }

func (e *assumeError) Error() string { return "assume role: " + e.err.Error() }
func (e *assumeError) Unwrap() error { return e.err }

func (s *session) headBucket(ctx context.Context, bucket string) error {
	if err := s.assume(ctx); err != nil {
		return err
	}
	_, err := s.s3.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)})
	return err
}

// sessionName is the RoleSessionName CloudTrail shows: "mcc-bridge-"
// and the tenant, in AssumeRole's alphabet ([\w+=,.@-]), at most 64.
func sessionName(tenant string) string {
	n := []byte("mcc-bridge-" + tenant)
	for i, b := range n {
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("_+=,.@-", b) >= 0) {
			n[i] = '-'
		}
	}
	if len(n) > 64 {
		n = n[:64]
	}
	return string(n)
}
