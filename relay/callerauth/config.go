package callerauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Defaults applied to zero-valued configuration fields.
const (
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 60 * time.Second
	// MaxLeeway is the largest Config.Leeway accepted.
	MaxLeeway = 5 * time.Minute

	// MinRefetchInterval is the least time between two JWKS fetches caused
	// by tokens whose kid is not in the cached key set. It bounds the load
	// an attacker sending random kids puts on the IdP; a freshly rotated key
	// is accepted at most this long after the first token that uses it.
	MinRefetchInterval = 15 * time.Second
	// MaxKeyAge is how long a fetched key set is used before it is
	// refetched on next use (so keys the IdP withdraws stop being accepted).
	// If that refetch fails, the old key set stays in use.
	MaxKeyAge = time.Hour
	// Initial and maximum delay between attempts to reach an IdP that failed.
	retryBackoffMin = time.Second
	retryBackoffMax = 30 * time.Second
	// fetchTimeout bounds one discovery + JWKS fetch.
	fetchTimeout = 10 * time.Second
	// maxJWKSBytes bounds the JWKS document read.
	maxJWKSBytes = 1 << 20
	// maxTokenBytes bounds the bearer token accepted.
	maxTokenBytes = 16 << 10
)

// ClaimMap names the token claims a [Caller] is read from. A zero field
// means its default.
type ClaimMap struct {
	// UserID is the claim holding the user's stable id. Zero means "sub".
	UserID string `yaml:"user_id"`
	// Email is the claim holding the user's email (optional in the token).
	// Zero means "email".
	Email string `yaml:"email"`
	// Tenant is the claim holding the tenant id; it must be present and a
	// safe identifier ([a-z0-9][a-z0-9._-]{0,62}). Zero means "custom:tenant".
	Tenant string `yaml:"tenant"`
	// TenantName is the claim holding the tenant's display name. Zero means
	// none: Caller.TenantName is then the tenant id. If the claim is absent
	// from a token, Caller.TenantName is also the tenant id.
	TenantName string `yaml:"tenant_name"`
	// Roles is the claim holding the user's roles: a JSON array of strings or
	// a space- or comma-separated string. Zero means "cognito:groups".
	Roles string `yaml:"roles"`
}

func (m ClaimMap) withDefaults() ClaimMap {
	if m.UserID == "" {
		m.UserID = "sub"
	}
	if m.Email == "" {
		m.Email = "email"
	}
	if m.Tenant == "" {
		m.Tenant = "custom:tenant"
	}
	if m.Roles == "" {
		m.Roles = "cognito:groups"
	}
	return m
}

// Config configures the OIDC issuer whose tokens an [Authenticator] accepts.
// The zero Config accepts no OIDC issuer (dev mode only).
type Config struct {
	// Issuer is the issuer URL, exactly as in the tokens' iss claim, e.g.
	// "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123".
	// It must be https (http only for loopback hosts). Required unless only
	// dev mode is used; zero means no OIDC issuer is accepted.
	Issuer string `yaml:"issuer"`
	// Audiences lists the accepted values of the "aud" claim or, for
	// tokens without aud (Cognito access tokens), of the "client_id" claim.
	// At least one is required when Issuer is set.
	Audiences []string `yaml:"audiences"`
	// JWKSURL is the URL of the issuer's JSON Web Key Set. Zero means the
	// jwks_uri of the issuer's /.well-known/openid-configuration.
	JWKSURL string `yaml:"jwks_url"`
	// Claims names the claims the Caller is read from.
	Claims ClaimMap `yaml:"claims"`
	// Leeway is the clock skew allowed on exp, nbf and iat, at most
	// MaxLeeway. Zero means DefaultLeeway (60s).
	Leeway time.Duration `yaml:"leeway"`
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	var errs []error
	if c.Issuer == "" {
		if len(c.Audiences) > 0 || c.JWKSURL != "" {
			errs = append(errs, errors.New("issuer is required when audiences or jwks_url is set"))
		}
	} else {
		if err := checkURL(c.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("issuer: %w", err))
		}
		if len(c.Audiences) == 0 {
			errs = append(errs, errors.New("audiences: at least one is required"))
		}
	}
	for i, a := range c.Audiences {
		if a == "" {
			errs = append(errs, fmt.Errorf("audiences[%d] is empty", i))
		}
	}
	if c.JWKSURL != "" {
		if err := checkURL(c.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("jwks_url: %w", err))
		}
	}
	if c.Leeway < 0 || c.Leeway > MaxLeeway {
		errs = append(errs, fmt.Errorf("leeway %v is outside [0, %v]", c.Leeway, MaxLeeway))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("callerauth: invalid config: %w", err)
	}
	return nil
}

// checkURL accepts absolute https URLs, and http URLs to loopback hosts.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("parse %q: %w", s, err)
	}
	if u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: http is allowed only for loopback hosts", s)
	default:
		return fmt.Errorf("%q: scheme must be https", s)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Options carries an Authenticator's dependencies. The zero Options is usable.
type Options struct {
	// Logger receives fetch failures (Warn), key-set updates (Info) and
	// refused tokens (Debug). Nil means discard.
	Logger *slog.Logger
	// HTTPClient fetches discovery documents and key sets. Nil means a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock for token validity and fetch rate limits. Nil means
	// time.Now.
	Now func() time.Time
	// Dev, if set, makes the Authenticator also accept tokens minted by this
	// dev issuer. Nil refuses them (KindIssuer).
	Dev *DevIssuer
}
