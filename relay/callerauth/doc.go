// Package callerauth authenticates callers of the relay's dispatch API.
//
// A caller presents an OpenID Connect bearer JWT ("Authorization: Bearer
// <jwt>") issued by the configured identity provider (Amazon Cognito or any
// OIDC-compliant IdP), or, in dev mode, by a local [DevIssuer]. The
// [Authenticator] verifies the token and returns the [Caller] it identifies;
// every refusal is an [*Error] whose [Kind] is a stable string the
// dispatcher uses as its problem type.
//
// Verification of one token:
//
//	Authorization header ──► "Bearer <jwt>"                 missing-token / malformed-token
//	        │
//	        ▼
//	parse JWS (go-jose), alg ∈ {RS256, ES256}              malformed-token / bad-signature
//	        │
//	        ▼
//	unverified "iss" selects the key source:                wrong-issuer
//	  Config.Issuer ──► remote JWKS (discovery, cache)
//	  DevIssuer     ──► the dev issuer's public key
//	        │
//	        ▼
//	key by "kid"; on a miss the JWKS is refetched          unknown-key / idp-unavailable
//	(at most once per MinRefetchInterval)
//	        │
//	        ▼
//	signature (go-jose) ──► exp/nbf/iat with leeway         bad-signature / expired-token /
//	        │                                               token-not-yet-valid
//	        ▼
//	"aud", or "client_id" for Cognito access tokens         wrong-audience
//	        │
//	        ▼
//	claims ──► Caller (user, tenant, roles)                 missing-claims
//
// The identity provider is contacted lazily: [New] never blocks on it, so a
// relay starts while the IdP is unreachable, and requests fail with
// idp-unavailable (retried with backoff) until the keys can be fetched.
//
// Error details never contain the token or any part of it, so they are safe
// to return to the caller and to log.
package callerauth
