package callerauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Kind classifies why a request was not authenticated. Its values are
// stable: the dispatcher appends them to its problem-type base URI.
type Kind string

// The kinds of authentication failure.
const (
	// KindMissing: the request carries no bearer token (no Authorization
	// header, or a scheme other than Bearer).
	KindMissing Kind = "missing-token"
	// KindMalformed: the bearer token is not a well-formed compact JWS/JWT.
	KindMalformed Kind = "malformed-token"
	// KindExpired: the token's exp is in the past, beyond the leeway.
	KindExpired Kind = "expired-token"
	// KindNotYetValid: the token's nbf or iat is in the future, beyond the leeway.
	KindNotYetValid Kind = "token-not-yet-valid"
	// KindIssuer: the token's iss is not an accepted issuer.
	KindIssuer Kind = "wrong-issuer"
	// KindAudience: neither aud nor (for access tokens) client_id is an
	// accepted audience.
	KindAudience Kind = "wrong-audience"
	// KindSignature: the signature does not verify, or its algorithm is not
	// accepted (none, HS*, ...).
	KindSignature Kind = "bad-signature"
	// KindUnknownKey: the token's kid is not in the issuer's key set, even
	// after a refetch.
	KindUnknownKey Kind = "unknown-key"
	// KindClaims: a required claim (exp, user id, tenant) is missing or invalid.
	KindClaims Kind = "missing-claims"
	// KindUnavailable: the identity provider's keys could not be fetched.
	KindUnavailable Kind = "idp-unavailable"
)

// HTTPStatus returns the HTTP status a server should answer with for k:
// 503 for [KindUnavailable], 403 for [KindClaims] (the token is authentic
// but does not identify a tenant), 401 for every other kind.
func (k Kind) HTTPStatus() int {
	switch k {
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindClaims:
		return http.StatusForbidden
	default:
		return http.StatusUnauthorized
	}
}

// Error is the error returned when a request is not authenticated.
//
// Detail is safe to show to the caller: it never contains the token or any
// part of it. Err, the underlying cause, is for logs; it does not contain the
// token either.
type Error struct {
	// Kind classifies the failure.
	Kind Kind
	// Detail is a human-readable explanation, safe to return to the caller.
	Detail string
	// Err is the underlying cause, or nil.
	Err error
}

// Error returns "callerauth: <kind>: <detail>[: <cause>]".
func (e *Error) Error() string {
	s := "callerauth: " + string(e.Kind)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first [*Error] in err's chain, or "" if
// there is none.
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return ""
}

func newError(kind Kind, detail string, err error) *Error {
	return &Error{Kind: kind, Detail: detail, Err: err}
}

// tokenCause describes why a token failed to parse without quoting it:
// errors from go-jose and encoding/json may echo header or payload values,
// so only their position and shape are kept.
func tokenCause(raw string, err error) error {
	if err == nil {
		return nil
	}
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
		b64    base64.CorruptInputError
	)
	switch {
	case strings.Count(raw, ".") != 2:
		return errors.New("not three dot-separated parts")
	case errors.As(err, &syntax):
		return fmt.Errorf("invalid JSON at offset %d", syntax.Offset)
	case errors.As(err, &typ):
		return fmt.Errorf("JSON value of the wrong type for %q", typ.Field)
	case errors.As(err, &b64):
		return fmt.Errorf("invalid base64url at byte %d", int64(b64))
	case errors.Is(err, jose.ErrCryptoFailure), errors.Is(err, jose.ErrUnsupportedKeyType),
		errors.Is(err, jose.ErrUnsupportedAlgorithm), errors.Is(err, jose.ErrInvalidKeySize),
		errors.Is(err, jose.ErrUnsupportedCriticalHeader), errors.Is(err, jose.ErrUnprotectedNonce):
		return err // fixed texts
	default:
		return errors.New("header or payload does not decode")
	}
}
