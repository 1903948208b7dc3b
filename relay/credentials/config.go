package credentials

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/connectors"
)

// Method is how a connection or service authenticates to its system. Its
// values are those of connectors.Credential.Method.
type Method string

// The methods.
const (
	// MethodOAuth2 is the integration owner's OAuth 2.0 authorization-code
	// grant (with PKCE), refreshed with its refresh token.
	MethodOAuth2 Method = "oauth2"
	// MethodAPIKey is a static key stored sealed, with a rotation date.
	MethodAPIKey Method = "api-key"
	// MethodClientCredentials is the OAuth 2.0 client-credentials grant
	// (Adobe IMS server-to-server).
	MethodClientCredentials Method = "client-credentials"
	// MethodJWTBearer is the RFC 7523 JWT bearer grant with an RS256
	// assertion (Salesforce).
	MethodJWTBearer Method = "jwt-bearer"
	// MethodSTSAssumeRole hands out the relay's base AWS keys; the
	// connector assumes the tenant's role with them.
	MethodSTSAssumeRole Method = "sts-assume-role"
	// MethodMTLS is a client certificate (mutual TLS): the relay's own
	// from step-ca, or one the system issued.
	MethodMTLS Method = "mtls"
)

// State is where a connection is in its life (the seed's 3.4):
//
//	INITIAL -> ACTIVE -> REFRESHING -> ACTIVE
//	                              \-> EXPIRED -> ALERT
//	any -> REVOKED (admin); REVOKED, EXPIRED, ALERT -> ACTIVE (authorized again)
type State string

// The states.
const (
	// StateInitial: an authorization was started; there is no token yet.
	StateInitial State = "INITIAL"
	// StateActive: the connection has a token that works or can be refreshed.
	StateActive State = "ACTIVE"
	// StateRefreshing: a process holds the refresh lease; the stored token
	// is still handed out while it is valid.
	StateRefreshing State = "REFRESHING"
	// StateExpired: the provider refused the refresh token (or the token
	// expired with none); the integration owner must authorize again. The
	// alert has not been sent yet.
	StateExpired State = "EXPIRED"
	// StateAlert: as StateExpired, and the alert was sent.
	StateAlert State = "ALERT"
	// StateRevoked: an administrator revoked the connection; its tokens
	// are deleted.
	StateRevoked State = "REVOKED"
)

// Provider is a system's OAuth 2.0 authorization server, for
// integration-owner connections.
type Provider struct {
	// System is the target system's id (connectors.Connector.ID).
	System string
	// AuthURL and TokenURL are the authorization and token endpoints.
	AuthURL, TokenURL string
	// ClientID and ClientSecret are the relay's client at the provider.
	ClientID     string
	ClientSecret connectors.Secret
	// Scopes are requested at authorization.
	Scopes []string
	// AuthStyle says how the client authenticates at the token endpoint.
	// Set it: zero (oauth2.AuthStyleAutoDetect) tries the header, then the
	// body, until one works, so a refused request is sent twice.
	AuthStyle oauth2.AuthStyle
	// ResponseValues names token-response fields that are kept with the
	// connection and handed out in Credential.Values, e.g. "instance_url"
	// for Salesforce. Nil keeps none.
	ResponseValues []string
}

// Service is the relay's own identity at a system, for service-to-service
// credentials obtained without a person (API keys are stored per tenant
// with SetAPIKey instead).
type Service struct {
	// System is the target system's id.
	System string
	// Tenant restricts the service to one tenant; empty serves every
	// tenant that has no service of its own for the system.
	Tenant string
	// Method is MethodClientCredentials, MethodJWTBearer or MethodSTSAssumeRole.
	Method Method
	// TokenURL is the token endpoint (client credentials, JWT bearer), e.g.
	// https://ims-na1.adobelogin.com/ims/token/v3 or
	// https://login.salesforce.com/services/oauth2/token.
	TokenURL string
	// ClientID is the client (client credentials) or the connected app's
	// consumer key, the assertion's issuer (JWT bearer). It is also handed
	// out as Values["client_id"] (Adobe wants it as x-api-key).
	ClientID string
	// ClientSecret is the client-credentials secret.
	ClientSecret connectors.Secret
	// Scopes are requested with client credentials, joined with spaces
	// (RFC 6749). Adobe IMS wants commas: give it one element,
	// "openid,AdobeID,read_organizations".
	Scopes []string
	// AuthStyle is how the client authenticates (client credentials); zero
	// sends the credentials in the body, as Adobe IMS wants.
	AuthStyle oauth2.AuthStyle
	// Subject is who the credential acts as: the assertion's sub (JWT
	// bearer: the integration user's username), and Credential.Subject.
	// Empty means ClientID.
	Subject string
	// Audience is the assertion's aud (JWT bearer); empty means
	// https://login.salesforce.com.
	Audience string
	// PrivateKeyPEM is the RSA private key (PKCS #1 or PKCS #8 PEM) that
	// signs assertions (JWT bearer).
	PrivateKeyPEM connectors.Secret
	// TokenTTL is how long a token is assumed to live when the token
	// response has no expires_in (Salesforce's has none); zero means 15
	// minutes.
	TokenTTL time.Duration
	// AccessKeyID, SecretAccessKey and SessionToken are the relay's base
	// AWS credentials (STS AssumeRole); SessionToken may be empty.
	AccessKeyID, SecretAccessKey, SessionToken connectors.Secret
	// RoleARN and ExternalID, when set, are handed out in Values
	// ("role_arn", "external_id") for the connector to assume.
	RoleARN, ExternalID string
	// CertificateFile and KeyFile are a client certificate chain and its
	// key (PEM files; mTLS). They are read again whenever either file
	// changes, so a certificate renewed in place (the relay's own, from
	// step-ca) is followed.
	CertificateFile, KeyFile string
}

// Config configures a Manager. The zero value of every field but Dir and
// the master key means its default.
type Config struct {
	// Dir holds credentials.db; it is created (0700) when missing.
	// Several processes may share it. Required.
	Dir string
	// MasterKey is the master key, base64 of 32 random bytes, typically
	// read by main from the environment variable MasterKeyEnv. Exactly one
	// of MasterKey and MasterKeyFile is set.
	MasterKey connectors.Secret
	// MasterKeyFile is a file holding the master key (base64, surrounding
	// white space ignored).
	MasterKeyFile string

	// Providers are the OAuth providers of integration-owner connections,
	// one per system.
	Providers []Provider
	// Services are the relay's service-to-service identities, one per
	// system and tenant (or system, for every tenant).
	Services []Service

	// RefreshAhead: a Credential call refreshes a token that expires
	// within it. Zero means 5 minutes.
	RefreshAhead time.Duration
	// ScanInterval is how often Run's scanner looks for tokens to refresh.
	// Zero means 10 minutes.
	ScanInterval time.Duration
	// MaxRefreshDuration bounds one refresh at the provider, retries
	// included. Zero means 1 minute.
	MaxRefreshDuration time.Duration
	// Window: the scanner refreshes tokens that expire within it. It must
	// be at least ScanInterval + MaxRefreshDuration, or a token that enters
	// the window just after a scan expires before the next scan has
	// refreshed it. Zero means ScanInterval + MaxRefreshDuration +
	// RefreshAhead.
	Window time.Duration
	// LeaseDuration is how long a refresh lease in the store is held
	// before another process may take it over (a process that died while
	// refreshing). It must be at least MaxRefreshDuration. Zero means
	// 2 × MaxRefreshDuration.
	LeaseDuration time.Duration
	// LeasePoll is how often (wall-clock time) a process that waits for
	// another's refresh reads the store again. Zero means 25ms.
	LeasePoll time.Duration
	// StateTTL is how long an authorization (state and PKCE verifier)
	// may take. Zero means 10 minutes.
	StateTTL time.Duration
	// TokenMargin: service tokens (client credentials, JWT bearer) are
	// reused until they expire within it (or within half their lifetime,
	// when that is shorter). Zero means 5 minutes.
	TokenMargin time.Duration
	// APIKeyReminder: an alert is sent this long before an API key's
	// rotation date. Zero means 14 days.
	APIKeyReminder time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the full-jitter backoff
	// between attempts at the token endpoint within one refresh (transient
	// failures only: connection errors, 429, 5xx). Zero means 200ms and 5s.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// BackoffBase and BackoffMax bound the time, doubling with each failed
	// refresh of a connection, before it is tried again while its token is
	// still valid. Zero means 30s and 30 minutes.
	BackoffBase, BackoffMax time.Duration
	// ScanParallelism is how many refreshes one scan runs at once. Zero
	// means 4.
	ScanParallelism int

	// AlertURL receives alerts as Slack incoming-webhook JSON, {"text":
	// "..."}; alerts never carry a secret. The URL itself is one (Slack's
	// holds the hook's key). Empty means alerts are only logged.
	AlertURL connectors.Secret
	// HTTPClient sends token requests and alerts. Nil means a client with
	// a timeout of MaxRefreshDuration.
	HTTPClient *http.Client
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives the manager's logs; nil discards them.
	Logger *slog.Logger
	// Metrics records refreshes and token requests; nil records nothing.
	Metrics *Metrics
	// Owner names this process in refresh leases. Empty means
	// host/pid/random.
	Owner string
	// BusyTimeout is how long a write waits for another process's write
	// lock on credentials.db. Zero means 5s.
	BusyTimeout time.Duration
}

// MasterKeyEnv is the environment variable from which the relay reads the
// master key (the library itself never reads the environment).
const MasterKeyEnv = "BRIDGE_CREDENTIALS_MASTER_KEY"

// withDefaults returns c with its zero fields set.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.RefreshAhead, 5*time.Minute)
	def(&c.ScanInterval, 10*time.Minute)
	def(&c.MaxRefreshDuration, time.Minute)
	def(&c.Window, c.ScanInterval+c.MaxRefreshDuration+c.RefreshAhead)
	def(&c.LeaseDuration, 2*c.MaxRefreshDuration)
	def(&c.LeasePoll, 25*time.Millisecond)
	def(&c.StateTTL, 10*time.Minute)
	def(&c.TokenMargin, 5*time.Minute)
	def(&c.APIKeyReminder, 14*24*time.Hour)
	def(&c.RetryBaseDelay, 200*time.Millisecond)
	def(&c.RetryMaxDelay, 5*time.Second)
	def(&c.BackoffBase, 30*time.Second)
	def(&c.BackoffMax, 30*time.Minute)
	def(&c.BusyTimeout, 5*time.Second)
	if c.ScanParallelism <= 0 {
		c.ScanParallelism = 4
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.MaxRefreshDuration}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate checks the schedule and the providers and services, after
// defaults. Errors wrap ErrConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrConfig)
	}
	if (c.MasterKey == "") == (c.MasterKeyFile == "") {
		return fmt.Errorf("%w: set exactly one of MasterKey and MasterKeyFile", ErrConfig)
	}
	for name, d := range map[string]time.Duration{
		"RefreshAhead": c.RefreshAhead, "ScanInterval": c.ScanInterval, "MaxRefreshDuration": c.MaxRefreshDuration,
		"Window": c.Window, "LeaseDuration": c.LeaseDuration, "LeasePoll": c.LeasePoll, "StateTTL": c.StateTTL,
		"TokenMargin": c.TokenMargin, "APIKeyReminder": c.APIKeyReminder, "RetryBaseDelay": c.RetryBaseDelay,
		"RetryMaxDelay": c.RetryMaxDelay, "BackoffBase": c.BackoffBase, "BackoffMax": c.BackoffMax, "BusyTimeout": c.BusyTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("%w: %s is negative (%v)", ErrConfig, name, d)
		}
	}
	if need := c.ScanInterval + c.MaxRefreshDuration; c.Window < need {
		gap := need - c.Window
		return fmt.Errorf("%w: refresh Window %v is shorter than ScanInterval %v + MaxRefreshDuration %v = %v: "+
			"a token with just over %v left at one scan is looked at again only %v later and refreshed up to %v after that, "+
			"so it can be expired for up to %v before the scanner refreshes it (a 1-hour token, for up to %v of its hour); "+
			"set Window to at least %v or scan more often",
			ErrConfig, c.Window, c.ScanInterval, c.MaxRefreshDuration, need,
			c.Window, c.ScanInterval, c.MaxRefreshDuration, gap, min(gap, time.Hour), need)
	}
	if c.LeaseDuration < c.MaxRefreshDuration {
		return fmt.Errorf("%w: LeaseDuration %v is shorter than MaxRefreshDuration %v: another process could take over a refresh still in flight",
			ErrConfig, c.LeaseDuration, c.MaxRefreshDuration)
	}
	if c.AlertURL != "" {
		if err := checkHTTPURL(c.AlertURL.Reveal()); err != nil {
			return fmt.Errorf("%w: AlertURL: %w", ErrConfig, err)
		}
	}
	seen := map[string]bool{}
	for i, p := range c.Providers {
		if err := p.validate(); err != nil {
			return fmt.Errorf("%w: Providers[%d]: %w", ErrConfig, i, err)
		}
		if seen[p.System] {
			return fmt.Errorf("%w: Providers[%d]: a second provider for system %q", ErrConfig, i, p.System)
		}
		seen[p.System] = true
	}
	seen = map[string]bool{}
	for i, s := range c.Services {
		if _, err := s.prepare(); err != nil {
			return fmt.Errorf("%w: Services[%d]: %w", ErrConfig, i, err)
		}
		k := serviceKey(s.System, s.Tenant)
		if seen[k] {
			return fmt.Errorf("%w: Services[%d]: a second service for system %q, tenant %q", ErrConfig, i, s.System, s.Tenant)
		}
		seen[k] = true
	}
	return nil
}

func (p Provider) validate() error {
	if err := checkName("system", p.System); err != nil {
		return err
	}
	for name, u := range map[string]string{"AuthURL": p.AuthURL, "TokenURL": p.TokenURL} {
		if err := checkHTTPURL(u); err != nil {
			return fmt.Errorf("system %s: %s: %w", p.System, name, err)
		}
	}
	if p.ClientID == "" {
		return fmt.Errorf("system %s: ClientID is required", p.System)
	}
	return nil
}

// preparedService is a validated Service with its private key parsed.
type preparedService struct {
	Service
	key  *rsa.PrivateKey
	cert *certFiles // MethodMTLS
}

func serviceKey(system, tenant string) string { return system + "\x00" + tenant }

func (s Service) prepare() (*preparedService, error) {
	if err := checkName("system", s.System); err != nil {
		return nil, err
	}
	if s.Tenant != "" {
		if err := checkName("tenant", s.Tenant); err != nil {
			return nil, err
		}
	}
	ps := &preparedService{Service: s}
	switch s.Method {
	case MethodClientCredentials:
		if err := checkHTTPURL(s.TokenURL); err != nil {
			return nil, fmt.Errorf("system %s: TokenURL: %w", s.System, err)
		}
		if s.ClientID == "" || s.ClientSecret == "" {
			return nil, fmt.Errorf("system %s: client credentials need ClientID and ClientSecret", s.System)
		}
		if ps.AuthStyle == oauth2.AuthStyleAutoDetect {
			ps.AuthStyle = oauth2.AuthStyleInParams
		}
	case MethodJWTBearer:
		if err := checkHTTPURL(s.TokenURL); err != nil {
			return nil, fmt.Errorf("system %s: TokenURL: %w", s.System, err)
		}
		if s.ClientID == "" || s.Subject == "" {
			return nil, fmt.Errorf("system %s: the JWT bearer grant needs ClientID (issuer) and Subject (username)", s.System)
		}
		if ps.Audience == "" {
			ps.Audience = "https://login.salesforce.com"
		}
		key, err := parseRSAKey(s.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("system %s: PrivateKeyPEM: %w", s.System, err)
		}
		ps.key = key
	case MethodSTSAssumeRole:
		if s.AccessKeyID == "" || s.SecretAccessKey == "" {
			return nil, fmt.Errorf("system %s: STS AssumeRole needs AccessKeyID and SecretAccessKey", s.System)
		}
	case MethodMTLS:
		if s.CertificateFile == "" || s.KeyFile == "" {
			return nil, fmt.Errorf("system %s: mTLS needs CertificateFile and KeyFile", s.System)
		}
		ps.cert = &certFiles{cert: s.CertificateFile, key: s.KeyFile}
		if _, err := ps.cert.load(); err != nil {
			return nil, fmt.Errorf("system %s: %w", s.System, err)
		}
	default:
		return nil, fmt.Errorf("system %s: Method %q is not one of %s, %s, %s, %s (API keys are stored with SetAPIKey)",
			s.System, s.Method, MethodClientCredentials, MethodJWTBearer, MethodSTSAssumeRole, MethodMTLS)
	}
	if ps.TokenTTL <= 0 {
		ps.TokenTTL = 15 * time.Minute
	}
	if ps.Subject == "" {
		ps.Subject = s.ClientID
	}
	return ps, nil
}

// parseRSAKey parses a PKCS #1 or PKCS #8 PEM RSA private key. Its errors
// never quote the key.
func parseRSAKey(pemKey connectors.Secret) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(pemKey.Reveal()))
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS #1 or PKCS #8 private key (PEM type %q)", block.Type)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an RSA key (RS256 needs RSA)", k)
	}
	return rk, nil
}

// checkName refuses empty names, names over 128 bytes, and names with '|'
// (the AAD separator) or control characters.
func checkName(what, s string) error {
	if s == "" || len(s) > 128 {
		return fmt.Errorf("%w: %s name must be 1 to 128 bytes", ErrInvalid, what)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r == '|' || r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: %s name %q has '|' or a control character", ErrInvalid, what, s)
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("not an absolute http(s) URL") // the URL is not quoted: it may hold a key
	}
	return nil
}
