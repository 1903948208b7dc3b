package callerauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// keySource yields the public keys of one issuer that may have signed a
// token with key id kid ("" when the token has none).
type keySource interface {
	// lookup returns the keys whose kid matches (all keys if kid is ""),
	// or an *Error of KindUnknownKey or KindUnavailable.
	lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error)
}

// staticKeys is a fixed key set (the dev issuer's).
type staticKeys []jose.JSONWebKey

func (s staticKeys) lookup(_ context.Context, kid string) ([]jose.JSONWebKey, error) {
	if keys := matchKID(s, kid); len(keys) > 0 {
		return keys, nil
	}
	return nil, newError(KindUnknownKey, "token signing key is not known to the issuer", nil)
}

func matchKID(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	var out []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// remoteKeys is an OIDC issuer's key set, fetched lazily from its JWKS URL
// (found by discovery unless configured) and cached.
//
// Fetches are serialized by sem and rate-limited: a kid missing from the
// cache causes a refetch at most once per minRefetch; a failed fetch is
// retried after a backoff growing from retryBackoffMin to retryBackoffMax;
// a key set older than maxAge is refetched on next use, and kept if that
// fails. Any goroutine may call lookup.
type remoteKeys struct {
	issuer     string
	jwksURL    string // configured; "" means discover
	client     *http.Client
	logger     *slog.Logger
	now        func() time.Time
	minRefetch time.Duration
	maxAge     time.Duration

	// sem is held (a value sent) by the goroutine fetching.
	sem chan struct{}

	mu sync.Mutex
	// Guarded by mu:
	discoveredURL string            // jwks_uri from discovery, once known
	keys          []jose.JSONWebKey // last key set fetched
	loaded        bool              // keys holds a fetched set
	fetchedAt     time.Time         // time of the last successful fetch
	failures      int               // consecutive failed fetches
	retryAt       time.Time         // no fetch before this after a failure
}

func newRemoteKeys(issuer, jwksURL string, client *http.Client, logger *slog.Logger, now func() time.Time) *remoteKeys {
	return &remoteKeys{
		issuer:     issuer,
		jwksURL:    jwksURL,
		client:     client,
		logger:     logger,
		now:        now,
		minRefetch: MinRefetchInterval,
		maxAge:     MaxKeyAge,
		sem:        make(chan struct{}, 1),
	}
}

func (s *remoteKeys) lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	s.mu.Lock()
	keys := matchKID(s.keys, kid)
	fresh := s.loaded && s.now().Sub(s.fetchedAt) < s.maxAge
	s.mu.Unlock()
	if len(keys) > 0 && fresh {
		return keys, nil
	}

	attempted, fetchErr := s.refresh(ctx, kid)

	s.mu.Lock()
	keys = matchKID(s.keys, kid)
	loaded := s.loaded
	s.mu.Unlock()
	switch {
	case len(keys) > 0:
		return keys, nil
	case !loaded:
		if fetchErr == nil {
			fetchErr = errors.New("no key set fetched yet; retrying after backoff")
		}
		return nil, newError(KindUnavailable, "the identity provider's signing keys are unavailable", fetchErr)
	case attempted && fetchErr != nil:
		return nil, newError(KindUnavailable, "the identity provider's signing keys could not be refreshed", fetchErr)
	default:
		return nil, newError(KindUnknownKey, "token signing key is not published by the issuer", nil)
	}
}

// shouldFetch reports whether a fetch is due for a lookup of kid.
func (s *remoteKeys) shouldFetch(kid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch {
	case s.failures > 0 && now.Before(s.retryAt):
		return false
	case !s.loaded:
		return true
	case len(matchKID(s.keys, kid)) == 0:
		return now.Sub(s.fetchedAt) >= s.minRefetch
	default:
		return now.Sub(s.fetchedAt) >= s.maxAge
	}
}

// refresh fetches the key set if one is due, reporting whether it tried and
// what failed.
func (s *remoteKeys) refresh(ctx context.Context, kid string) (attempted bool, err error) {
	if !s.shouldFetch(kid) {
		return false, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return false, fmt.Errorf("wait for key set fetch: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	// Another goroutine may have fetched while this one waited.
	if !s.shouldFetch(kid) {
		return false, nil
	}

	keys, err := s.fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up; that says nothing about the IdP.
			return true, err
		}
		s.failures++
		backoff := retryBackoffMax
		if s.failures < 16 {
			backoff = min(retryBackoffMin<<(s.failures-1), retryBackoffMax)
		}
		s.retryAt = now.Add(backoff)
		s.logger.Warn("callerauth: fetching identity provider keys failed",
			"issuer", s.issuer, "failures", s.failures, "retry_in", backoff, "err", err)
		return true, err
	}
	kids := make([]string, len(keys))
	for i, k := range keys {
		kids[i] = k.KeyID
	}
	s.logger.Info("callerauth: fetched identity provider keys", "issuer", s.issuer, "kids", kids)
	s.keys, s.loaded, s.fetchedAt, s.failures = keys, true, now, 0
	return true, nil
}

// fetch discovers the JWKS URL if needed and fetches the key set.
func (s *remoteKeys) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	u, err := s.keySetURL(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS %s: status %s", u, resp.Status)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch JWKS %s: document larger than %d bytes", u, maxJWKSBytes)
	}
	keys, err := parseJWKS(body, s.logger)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS %s: %w", u, err)
	}
	return keys, nil
}

// keySetURL returns the configured JWKS URL or discovers it with go-oidc
// (which also checks that the discovery document names our issuer).
func (s *remoteKeys) keySetURL(ctx context.Context) (string, error) {
	if s.jwksURL != "" {
		return s.jwksURL, nil
	}
	s.mu.Lock()
	u := s.discoveredURL
	s.mu.Unlock()
	if u != "" {
		return u, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.client), s.issuer)
	if err != nil {
		return "", fmt.Errorf("discover %s: %w", s.issuer, err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil {
		return "", fmt.Errorf("discover %s: decode metadata: %w", s.issuer, err)
	}
	if meta.JWKSURI == "" {
		return "", fmt.Errorf("discover %s: metadata has no jwks_uri", s.issuer)
	}
	if err := checkURL(meta.JWKSURI); err != nil {
		return "", fmt.Errorf("discover %s: jwks_uri: %w", s.issuer, err)
	}
	s.mu.Lock()
	s.discoveredURL = meta.JWKSURI
	s.mu.Unlock()
	return meta.JWKSURI, nil
}

// parseJWKS decodes a JWK Set, keeping the public signature keys usable
// with RS256 (RSA, at least 2048 bits) or ES256 (P-256) and skipping the
// others, as RFC 7517 section 5 asks.
func parseJWKS(body []byte, logger *slog.Logger) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode key set: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New("decode key set: no \"keys\" member")
	}
	var keys []jose.JSONWebKey
	for i, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(raw, &k); err != nil {
			logger.Debug("callerauth: skipping unusable JWK", "index", i, "err", err)
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub := k.Public()
		if !pub.Valid() || !usableKey(pub.Key) {
			logger.Debug("callerauth: skipping unsupported JWK", "index", i, "kid", k.KeyID)
			continue
		}
		keys = append(keys, pub)
	}
	return keys, nil
}

func usableKey(key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return k.Curve == elliptic.P256()
	default:
		return false
	}
}
