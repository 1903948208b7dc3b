package callerauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Authentication methods reported in Caller.AuthMethod.
const (
	// MethodOIDC marks a caller authenticated by the configured OIDC issuer.
	MethodOIDC = "oidc"
	// MethodDev marks a caller authenticated by the dev issuer.
	MethodDev = "dev"
)

// Caller is the verified identity of a request.
type Caller struct {
	// UserID is the user's stable id (by default the "sub" claim).
	UserID string
	// Email is the user's email, or "" if the token has none.
	Email string
	// Tenant is the tenant id, a safe identifier ([a-z0-9][a-z0-9._-]{0,62}).
	Tenant string
	// TenantName is the tenant's display name; Tenant if the token has none.
	TenantName string
	// Roles are the user's roles (by default Cognito groups); nil if none.
	Roles []string
	// Issuer is the token's verified issuer.
	Issuer string
	// AuthMethod is "oidc" or "dev".
	AuthMethod string
}

// HasRole reports whether c has role r.
func (c Caller) HasRole(r string) bool { return slices.Contains(c.Roles, r) }

// acceptedAlgs returns the only signature algorithms accepted.
func acceptedAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
}

// Authenticator verifies bearer tokens. Its methods may be called from any
// goroutine.
type Authenticator struct {
	logger *slog.Logger
	now    func() time.Time
	leeway time.Duration
	oidc   *issuerVerifier // nil when no OIDC issuer is configured
	dev    *issuerVerifier // nil when dev mode is off

	verified verifiedCache
}

// issuerVerifier holds what is checked for tokens of one issuer.
type issuerVerifier struct {
	issuer    string
	audiences []string
	claims    ClaimMap // with defaults applied
	method    string
	keys      keySource
}

// New builds an Authenticator accepting tokens of cfg.Issuer and, if
// opts.Dev is set, of the dev issuer. It does not contact the identity
// provider: discovery and the key set are fetched on first use and retried
// with backoff, so a relay starts while the IdP is unreachable. ctx is not
// retained.
func New(ctx context.Context, cfg Config, opts Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Issuer == "" && opts.Dev == nil {
		return nil, errors.New("callerauth: new: no issuer configured and dev mode is off")
	}
	if opts.Dev != nil && opts.Dev.Issuer() == cfg.Issuer {
		return nil, fmt.Errorf("callerauth: new: dev issuer %q is also the OIDC issuer", cfg.Issuer)
	}
	a := &Authenticator{
		logger: opts.Logger,
		now:    opts.Now,
		leeway: cfg.Leeway,
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.leeway == 0 {
		a.leeway = DefaultLeeway
	}
	if cfg.Issuer != "" {
		client := opts.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: fetchTimeout}
		}
		a.oidc = &issuerVerifier{
			issuer:    cfg.Issuer,
			audiences: slices.Clone(cfg.Audiences),
			claims:    cfg.Claims.withDefaults(),
			method:    MethodOIDC,
			keys:      newRemoteKeys(cfg.Issuer, cfg.JWKSURL, client, a.logger, a.now),
		}
	}
	if opts.Dev != nil {
		a.dev = &issuerVerifier{
			issuer:    opts.Dev.Issuer(),
			audiences: []string{DevAudience},
			claims:    ClaimMap{}.withDefaults(),
			method:    MethodDev,
			keys:      staticKeys{opts.Dev.publicKey()},
		}
		a.logger.WarnContext(ctx, "callerauth: dev token issuer enabled; do not use in production",
			"issuer", opts.Dev.Issuer())
	}
	return a, nil
}

// Authenticate reads "Authorization: Bearer <jwt>" from r and returns the
// caller, or an *Error.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request) (Caller, error) {
	raw, err := bearerToken(r)
	if err != nil {
		a.logger.DebugContext(ctx, "callerauth: request refused", "kind", KindOf(err), "err", err)
		return Caller{}, err
	}
	return a.AuthenticateToken(ctx, raw)
}

// AuthenticateToken verifies a raw JWT (without the "Bearer " prefix) and
// returns the caller, or an *Error.
//
// A token that verified is remembered (by its SHA-256) for at most
// VerifiedTTL and never past its exp, so a caller's next requests skip the
// signature check; everything else is checked every time.
func (a *Authenticator) AuthenticateToken(ctx context.Context, raw string) (Caller, error) {
	now := a.now()
	key := sha256.Sum256([]byte(raw))
	if c, ok := a.verified.get(key, now); ok {
		return c, nil
	}
	c, exp, err := a.verify(ctx, raw)
	if err != nil {
		a.logger.DebugContext(ctx, "callerauth: token refused", "kind", KindOf(err), "err", err)
		return Caller{}, err
	}
	until := now.Add(VerifiedTTL)
	if exp.Before(until) {
		until = exp
	}
	a.verified.put(key, c, until, now)
	return c, nil
}

// bearerToken extracts the token of an "Authorization: Bearer" header.
// A scheme other than Bearer counts as no token (RFC 6750 section 3.1).
func bearerToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", newError(KindMissing, "no Authorization header", nil)
	case 1:
	default:
		return "", newError(KindMalformed, "more than one Authorization header", nil)
	}
	v := strings.TrimSpace(vals[0])
	if v == "" {
		return "", newError(KindMissing, "empty Authorization header", nil)
	}
	scheme, tok, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", newError(KindMissing, "Authorization scheme is not Bearer", nil)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", newError(KindMalformed, "empty bearer token", nil)
	}
	if strings.ContainsAny(tok, " \t") {
		return "", newError(KindMalformed, "bearer token contains whitespace", nil)
	}
	return tok, nil
}

// verify checks raw in full and returns the caller and the token's expiry.
func (a *Authenticator) verify(ctx context.Context, raw string) (Caller, time.Time, error) {
	var exp time.Time
	c, err := a.verifyClaims(ctx, raw, &exp)
	return c, exp, err
}

// verifyClaims checks raw in full; on success it sets *exp to the token's expiry.
func (a *Authenticator) verifyClaims(ctx context.Context, raw string, exp *time.Time) (Caller, error) {
	if raw == "" {
		return Caller{}, newError(KindMissing, "empty token", nil)
	}
	if len(raw) > maxTokenBytes {
		return Caller{}, newError(KindMalformed, fmt.Sprintf("token is larger than %d bytes", maxTokenBytes), nil)
	}
	tok, err := jwt.ParseSigned(raw, acceptedAlgs())
	if err != nil {
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			// Deliberately not wrapped: the error quotes the token's alg.
			return Caller{}, newError(KindSignature, "token signing algorithm is not accepted (want RS256 or ES256)", nil)
		}
		return Caller{}, newError(KindMalformed, "token is not a compact JWS", tokenCause(raw, err))
	}
	if len(tok.Headers) != 1 {
		return Caller{}, newError(KindMalformed, "token must have exactly one signature", nil)
	}
	hdr := tok.Headers[0]

	// The issuer selects the keys; nothing else is trusted before the
	// signature is verified.
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return Caller{}, newError(KindMalformed, "token payload is not a JSON claims set", tokenCause(raw, err))
	}
	v := a.verifierFor(unverified.Issuer)
	if v == nil {
		return Caller{}, newError(KindIssuer, "token issuer is not accepted", nil)
	}
	keys, err := v.keys.lookup(ctx, hdr.KeyID)
	if err != nil {
		return Caller{}, err
	}
	payload, err := verifySignature(raw, tok, hdr.Algorithm, keys)
	if err != nil {
		return Caller{}, err
	}

	var std jwt.Claims
	var claims claimSet
	if err := json.Unmarshal(payload, &std); err != nil {
		return Caller{}, newError(KindMalformed, "token payload is not a JSON claims set", tokenCause(raw, err))
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return Caller{}, newError(KindMalformed, "token payload is not a JSON claims set", tokenCause(raw, err))
	}
	if std.Expiry == nil {
		return Caller{}, newError(KindClaims, "token has no exp claim", nil)
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: v.issuer, Time: a.now()}, a.leeway)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return Caller{}, newError(KindExpired, "token has expired", nil)
	case errors.Is(err, jwt.ErrNotValidYet):
		return Caller{}, newError(KindNotYetValid, "token is not valid yet (nbf)", nil)
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Caller{}, newError(KindNotYetValid, "token is issued in the future (iat)", nil)
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Caller{}, newError(KindIssuer, "token issuer is not accepted", nil)
	default:
		return Caller{}, newError(KindClaims, "token claims are invalid", err) // a fixed jwt sentinel
	}
	if err := v.checkAudience(std, claims); err != nil {
		return Caller{}, err
	}
	*exp = std.Expiry.Time()
	return claims.caller(v.claims, v.issuer, v.method)
}

func (a *Authenticator) verifierFor(iss string) *issuerVerifier {
	switch {
	case iss == "":
		return nil
	case a.oidc != nil && iss == a.oidc.issuer:
		return a.oidc
	case a.dev != nil && iss == a.dev.issuer:
		return a.dev
	default:
		return nil
	}
}

// verifySignature verifies tok with the first of keys that fits alg and
// returns the verified payload.
func verifySignature(raw string, tok *jwt.JSONWebToken, alg string, keys []jose.JSONWebKey) ([]byte, error) {
	var lastErr error
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		var payload json.RawMessage
		err := tok.Claims(k.Key, &payload)
		if err == nil {
			return payload, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		return nil, newError(KindSignature, "no key of the issuer matches the token's algorithm", nil)
	}
	return nil, newError(KindSignature, "token signature does not verify", tokenCause(raw, lastErr))
}

// checkAudience accepts a token whose aud contains an accepted audience or,
// if it has no aud (a Cognito access token), whose client_id is accepted.
func (v *issuerVerifier) checkAudience(std jwt.Claims, claims claimSet) error {
	if len(std.Audience) > 0 {
		for _, want := range v.audiences {
			if std.Audience.Contains(want) {
				return nil
			}
		}
		return newError(KindAudience, "token audience is not accepted", nil)
	}
	use, _, err := claims.str("token_use")
	if err != nil || (use != "" && use != "access") {
		return newError(KindAudience, "token has no aud claim and is not an access token", nil)
	}
	clientID, ok, err := claims.str("client_id")
	if err != nil || !ok {
		return newError(KindAudience, "token has neither aud nor client_id", nil)
	}
	if !slices.Contains(v.audiences, clientID) {
		return newError(KindAudience, "token client_id is not accepted", nil)
	}
	return nil
}
