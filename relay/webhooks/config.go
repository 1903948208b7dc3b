package webhooks

import (
	"log/slog"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/prometheus/client_golang/prometheus"
)

// The verification schemes, the values of Endpoint.Scheme.
const (
	// SchemeSlack is Slack's request signing: X-Slack-Signature holds
	// "v0=" + hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + body))
	// and X-Slack-Request-Timestamp the Unix time it was signed.
	SchemeSlack = "slack"
	// SchemeAsana is Asana's webhooks: an X-Hook-Secret handshake, then
	// X-Hook-Signature = hex(HMAC-SHA256(that secret, body)).
	SchemeAsana = "asana"
	// SchemeWorkfront is Workfront event subscriptions: the subscription's
	// authToken in the Authorization header, and, when Endpoint.Secret is
	// set, X-Workfront-Signature = hex(HMAC-SHA256(secret, body)).
	SchemeWorkfront = "workfront"
	// SchemeHMAC is a generic shared-key scheme: Header holds
	// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)), or of the
	// body alone when the endpoint has no TimestampHeader.
	SchemeHMAC = "hmac"
)

// Limits and windows.
const (
	// MaxBodyBytes is the largest request body accepted (413 beyond).
	MaxBodyBytes = 1 << 20
	// DefaultWindow is how far a signed timestamp may be from now.
	DefaultWindow = 5 * time.Minute
	// ReplayWindow is how long an accepted request is remembered: the same
	// event within it is answered 200 and not queued again.
	ReplayWindow = 24 * time.Hour
	// DefaultMaxAttempts is Config.MaxAttempts' default.
	DefaultMaxAttempts = 8
	// BaseBackoff and MaxBackoff bound the delay between delivery attempts:
	// BaseBackoff doubling per failed attempt, at most MaxBackoff.
	BaseBackoff = time.Second
	MaxBackoff  = 5 * time.Minute
)

// Config configures a Hub. Only Dir is required.
type Config struct {
	// Dir is the directory of webhooks.db; it is created if needed.
	Dir string
	// Endpoints lists the webhook endpoints, one per (System, Tenant).
	// Requests to any other path are answered 404.
	Endpoints []Endpoint
	// MaxAttempts is how many times an event is offered to its subscriber
	// before it is dead. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// Now is the clock of timestamp windows, replay expiry and retry
	// backoff. Nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; secrets, header values and
	// bodies are never logged. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the Hub's metrics. Nil means no metrics.
	Registerer prometheus.Registerer
}

// Endpoint configures one webhook endpoint, /webhooks/{System}/{Tenant}.
// Secrets are connectors.Secret values and never print.
type Endpoint struct {
	// System and Tenant name the endpoint: letters, digits, '.', '_' and
	// '-'. System also selects the Subscriber the events are delivered to.
	System, Tenant string
	// Scheme is one of SchemeSlack, SchemeAsana, SchemeWorkfront, SchemeHMAC.
	Scheme string
	// Secret is the HMAC key: Slack's signing secret (required), the
	// generic scheme's key (required), or Workfront's signature key
	// (optional: empty means the authToken alone). Asana endpoints learn
	// theirs from the handshake and must leave it empty.
	Secret connectors.Secret
	// Header names the signature header. Empty means the scheme's own:
	// X-Slack-Signature, X-Hook-Signature, X-Workfront-Signature or
	// X-Signature.
	Header string
	// TimestampHeader names the header with the signed Unix time, in
	// seconds. Empty means X-Slack-Request-Timestamp for Slack and none for
	// the generic scheme (the body alone is signed and no window applies);
	// Asana and Workfront sign no timestamp and must leave it empty.
	TimestampHeader string
	// Window is how far the signed timestamp may be from now, either way.
	// Zero means DefaultWindow; it must be zero when no timestamp is signed.
	Window time.Duration
	// AuthToken is, for Workfront (required there, refused elsewhere), the
	// subscription's authToken, compared in constant time with the
	// AuthHeader value, bare or after "Bearer ".
	AuthToken connectors.Secret
	// AuthHeader names the header carrying AuthToken. Empty means
	// Authorization.
	AuthHeader string
}

// withDefaults validates c and returns it with its zero fields set.
func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, invalidf("config: Dir is required")
	}
	if c.MaxAttempts < 0 {
		return c, invalidf("config: MaxAttempts %d is negative", c.MaxAttempts)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	seen := make(map[endpointKey]bool, len(c.Endpoints))
	eps := make([]Endpoint, len(c.Endpoints))
	for i, ep := range c.Endpoints {
		ep, err := ep.withDefaults()
		if err != nil {
			return c, err
		}
		k := endpointKey{ep.System, ep.Tenant}
		if seen[k] {
			return c, invalidf("config: endpoint %s/%s listed twice", ep.System, ep.Tenant)
		}
		seen[k] = true
		eps[i] = ep
	}
	c.Endpoints = eps
	return c, nil
}

// withDefaults validates ep and returns it with its zero fields set to the
// scheme's defaults. Errors name the endpoint, never a secret.
func (ep Endpoint) withDefaults() (Endpoint, error) {
	if !validName(ep.System) || !validName(ep.Tenant) {
		return ep, invalidf("config: endpoint %q/%q: system and tenant must be 1 to 128 letters, digits, '.', '_' or '-'", ep.System, ep.Tenant)
	}
	fail := func(format string, args ...any) (Endpoint, error) {
		return ep, invalidf("config: endpoint %s/%s (%s): "+format, append([]any{ep.System, ep.Tenant, ep.Scheme}, args...)...)
	}
	if ep.Window < 0 {
		return fail("negative window")
	}
	if ep.Scheme != SchemeWorkfront && (ep.AuthToken != "" || ep.AuthHeader != "") {
		return fail("AuthToken and AuthHeader are for workfront endpoints only")
	}
	switch ep.Scheme {
	case SchemeSlack:
		if ep.Secret == "" {
			return fail("the signing secret is required")
		}
		ep.Header = defaultString(ep.Header, "X-Slack-Signature")
		ep.TimestampHeader = defaultString(ep.TimestampHeader, "X-Slack-Request-Timestamp")
	case SchemeAsana:
		if ep.Secret != "" {
			return fail("the secret comes from the X-Hook-Secret handshake; leave Secret empty")
		}
		ep.Header = defaultString(ep.Header, "X-Hook-Signature")
	case SchemeWorkfront:
		if ep.AuthToken == "" {
			return fail("the subscription's authToken is required")
		}
		ep.AuthHeader = defaultString(ep.AuthHeader, "Authorization")
		ep.Header = defaultString(ep.Header, "X-Workfront-Signature")
	case SchemeHMAC:
		if ep.Secret == "" {
			return fail("the secret is required")
		}
		ep.Header = defaultString(ep.Header, "X-Signature")
	default:
		return fail("unknown scheme (want slack, asana, workfront or hmac)")
	}
	signsTime := ep.Scheme == SchemeSlack || (ep.Scheme == SchemeHMAC && ep.TimestampHeader != "")
	switch {
	case !signsTime && ep.TimestampHeader != "":
		return fail("the scheme signs no timestamp; leave TimestampHeader empty")
	case !signsTime && ep.Window != 0:
		return fail("the scheme signs no timestamp; leave Window zero")
	case signsTime && ep.Window == 0:
		ep.Window = DefaultWindow
	}
	return ep, nil
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validName reports whether s may be a system or tenant: a path segment
// and a metric label that need no escaping.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != "." && s != ".."
}

// endpointKey identifies an endpoint.
type endpointKey struct{ system, tenant string }
