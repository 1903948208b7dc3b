package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mcc-bridge/bridge/connectors"
)

// JWTBearerGrant is the RFC 7523 grant type.
const JWTBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// assertionLifetime is how long a JWT bearer assertion is valid:
// Salesforce wants exp within 3 minutes; a margin absorbs clock skew.
const assertionLifetime = 150 * time.Second

// svcToken is a cached service token.
type svcToken struct {
	cred  connectors.Credential
	until time.Time // reuse until then
}

// service returns the service for system and tenant, or for system and
// every tenant.
func (m *Manager) service(system, tenant string) *preparedService {
	if s := m.services[serviceKey(system, tenant)]; s != nil {
		return s
	}
	return m.services[serviceKey(system, "")]
}

// serviceCredential returns the relay's own credential at the system:
// cached tokens while they are far from expiry, one request at a time per
// tenant and system otherwise.
func (m *Manager) serviceCredential(ctx context.Context, req connectors.CredentialRequest, s *preparedService) (connectors.Credential, error) {
	if s.Method == MethodMTLS {
		c, err := s.cert.load()
		if err != nil {
			return connectors.Credential{}, fmt.Errorf("%w: %s: %w", connectors.ErrNoCredential, req.System, err)
		}
		return c, nil
	}
	if s.Method == MethodSTSAssumeRole {
		c := connectors.Credential{Pattern: connectors.ServiceToService, Method: string(MethodSTSAssumeRole), Subject: s.Subject,
			Values: map[string]connectors.Secret{"access_key_id": s.AccessKeyID, "secret_access_key": s.SecretAccessKey}}
		if s.Subject == "" {
			c.Subject = "relay"
		}
		if s.SessionToken != "" {
			c.Values["session_token"] = s.SessionToken
		}
		if s.RoleARN != "" {
			c.Values["role_arn"] = connectors.Secret(s.RoleARN)
			c.Subject = s.RoleARN
		}
		if s.ExternalID != "" {
			c.Values["external_id"] = connectors.Secret(s.ExternalID)
		}
		return c, nil
	}
	key := "s|" + req.Tenant + "|" + req.System
	m.svcMu.Lock()
	t, ok := m.svcTokens[key]
	m.svcMu.Unlock()
	if ok && m.now().Before(t.until) {
		return copyValues(t.cred), nil
	}
	ch := m.flights.DoChan(key, func() (any, error) {
		if !m.enter() {
			return nil, ErrClosed
		}
		defer m.inflight.Done()
		m.svcMu.Lock()
		t, ok := m.svcTokens[key]
		m.svcMu.Unlock()
		if ok && m.now().Before(t.until) {
			return t, nil
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.MaxRefreshDuration)
		defer cancel()
		t, err := m.fetchServiceToken(fctx, s)
		if err != nil {
			return nil, err
		}
		m.svcMu.Lock()
		m.svcTokens[key] = t
		m.svcMu.Unlock()
		return t, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return connectors.Credential{}, res.Err
		}
		return copyValues(res.Val.(svcToken).cred), nil
	case <-ctx.Done():
		return connectors.Credential{}, fmt.Errorf("service token for %s: %w", req.System, ctx.Err())
	}
}

// fetchServiceToken asks the token endpoint, retrying transient failures.
func (m *Manager) fetchServiceToken(ctx context.Context, s *preparedService) (svcToken, error) {
	var last error // the last answer, reported when time runs out mid-request
	for attempt := 0; ; attempt++ {
		t, err := m.fetchServiceTokenOnce(ctx, s)
		if err == nil {
			return t, nil
		}
		if ctx.Err() != nil && last != nil {
			return svcToken{}, m.serviceError(s, last)
		}
		if !transient(err) || ctx.Err() != nil {
			return svcToken{}, m.serviceError(s, err)
		}
		last = err
		d := m.retryDelay(attempt)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
			return svcToken{}, m.serviceError(s, err)
		}
		if sleep(ctx, d) != nil {
			return svcToken{}, m.serviceError(s, err)
		}
	}
}

// serviceError classifies a failed service-token request: refusals (4xx
// with an OAuth error) mean there is no usable credential; others may pass.
func (m *Manager) serviceError(s *preparedService, err error) error {
	desc := describeTokenError(err)
	m.log.Error("service token request failed", "system", s.System, "method", s.Method, "err", desc)
	if transient(err) || errors.Is(err, context.DeadlineExceeded) {
		return &connectors.Error{Class: connectors.ClassUnavailable,
			Detail: fmt.Sprintf("the %s token endpoint failed: %s", s.System, desc), Err: ErrRefreshFailed}
	}
	return fmt.Errorf("service token for %s (%s) refused: %s: %w", s.System, s.Method, desc, connectors.ErrNoCredential)
}

func (m *Manager) fetchServiceTokenOnce(ctx context.Context, s *preparedService) (svcToken, error) {
	var tok *oauth2.Token
	var err error
	switch s.Method {
	case MethodClientCredentials:
		m.met.tokenRequest(s.System, "client_credentials")
		cc := clientcredentials.Config{ClientID: s.ClientID, ClientSecret: s.ClientSecret.Reveal(), TokenURL: s.TokenURL,
			Scopes: s.Scopes, AuthStyle: s.AuthStyle}
		tok, err = cc.Token(context.WithValue(ctx, oauth2.HTTPClient, m.tokenHTTP))
	case MethodJWTBearer:
		m.met.tokenRequest(s.System, "jwt_bearer")
		tok, err = m.jwtBearer(ctx, s)
	default:
		return svcToken{}, fmt.Errorf("service %s: method %s fetches no token", s.System, s.Method)
	}
	if err != nil {
		return svcToken{}, err
	}
	now := m.now()
	ttl := s.TokenTTL
	if life := lifetime(tok); life > 0 {
		ttl = life
	}
	margin := min(m.cfg.TokenMargin, ttl/2)
	c := connectors.Credential{Pattern: connectors.ServiceToService, Method: string(s.Method),
		Token: connectors.Secret(tok.AccessToken), Expires: now.Add(ttl), Subject: s.Subject,
		Values: map[string]connectors.Secret{"client_id": connectors.Secret(s.ClientID)}}
	if v, _ := tok.Extra("instance_url").(string); v != "" {
		c.Values["instance_url"] = connectors.Secret(v)
	}
	return svcToken{cred: c, until: now.Add(ttl - margin)}, nil
}

// jwtBearer sends an RS256 assertion {iss: client id, sub: subject, aud:
// audience, exp: now + 150s} with grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer.
func (m *Manager) jwtBearer(ctx context.Context, s *preparedService) (*oauth2.Token, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("jwt bearer signer: %w", err)
	}
	now := m.now()
	assertion, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: s.ClientID, Subject: s.Subject, Audience: jwt.Audience{s.Audience},
		Expiry: jwt.NewNumericDate(now.Add(assertionLifetime)), IssuedAt: jwt.NewNumericDate(now),
	}).Serialize()
	if err != nil {
		return nil, fmt.Errorf("jwt bearer assertion: %w", err)
	}
	form := url.Values{"grant_type": {JWTBearerGrant}, "assertion": {assertion}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := m.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &url.Error{Op: "read", URL: s.TokenURL, Err: err}
	}
	var tj struct {
		AccessToken string      `json:"access_token"`
		TokenType   string      `json:"token_type"`
		ExpiresIn   json.Number `json:"expires_in"`
		InstanceURL string      `json:"instance_url"`
		Scope       string      `json:"scope"`
		Error       string      `json:"error"`
	}
	jerr := json.Unmarshal(body, &tj)
	if resp.StatusCode/100 != 2 || tj.Error != "" || jerr != nil || tj.AccessToken == "" {
		return nil, &oauth2.RetrieveError{Response: resp, ErrorCode: tj.Error}
	}
	tok := &oauth2.Token{AccessToken: tj.AccessToken, TokenType: tj.TokenType}
	if n, err := tj.ExpiresIn.Int64(); err == nil {
		tok.ExpiresIn = n
	}
	return tok.WithExtra(map[string]any{"instance_url": tj.InstanceURL, "scope": tj.Scope}), nil
}
