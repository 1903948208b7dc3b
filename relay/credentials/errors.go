package credentials

import "errors"

// Sentinel errors, compared with errors.Is. Errors that mean "no usable
// credential" also wrap connectors.ErrNoCredential.
var (
	// ErrConfig wraps every refusal of a Config, Provider, Service or
	// HandlerConfig.
	ErrConfig = errors.New("invalid credentials configuration")
	// ErrMasterKey wraps every refusal of a master key that is not the
	// base64 encoding of exactly 32 bytes.
	ErrMasterKey = errors.New("invalid master key")
	// ErrWrongMasterKey is returned when the master key does not open
	// credentials.db: it was sealed with another key.
	ErrWrongMasterKey = errors.New("the master key does not open credentials.db (it was sealed with another key)")
	// ErrInvalid wraps every refusal of an argument: a malformed tenant or
	// system name, an empty key, a bad redirect URL.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound is returned by Get and Revoke when the tenant has no
	// connection to the system.
	ErrNotFound = errors.New("connection not found")
	// ErrUnknownSystem is returned when no Provider (integration-owner
	// OAuth) is configured for the system.
	ErrUnknownSystem = errors.New("no OAuth provider configured for this system")
	// ErrInvalidState is returned by CompleteAuthorization for a state it
	// never issued or that was already used (states are single-use).
	ErrInvalidState = errors.New("unknown or already used authorization state")
	// ErrStateExpired is returned by CompleteAuthorization for a state
	// older than Config.StateTTL.
	ErrStateExpired = errors.New("authorization state expired; start the authorization again")
	// ErrExchange is returned when the provider refuses the authorization
	// code.
	ErrExchange = errors.New("the provider refused the authorization code")
	// ErrReauthorize is wrapped (with connectors.ErrNoCredential) when the
	// provider refused the connection's refresh token: its integration
	// owner must authorize it again.
	ErrReauthorize = errors.New("the integration owner must authorize the connection again")
	// ErrRefreshFailed is wrapped when a token could not be refreshed or
	// fetched for a reason that may pass (the provider failed or could not
	// be reached) and the current token has expired.
	ErrRefreshFailed = errors.New("token refresh failed")
	// ErrForbidden may be wrapped by a HandlerConfig.Authorize hook to
	// answer 403 instead of 401.
	ErrForbidden = errors.New("forbidden")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("credential manager closed")
)
