// Package connectors is the contract between the relay's dispatcher and the
// systems it reaches: SharePoint through an agent, and the SaaS APIs. A
// connector describes its operations (with JSON Schemas for their payload
// and result, and whether each reads or writes, acts in a user's name or
// touches personal data) and executes them; the dispatcher does everything
// around that: authentication, policy, credentials, retries, rate limits
// and audit.
//
// Sub-packages hold the connectors themselves, one per system.
package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Connector reaches one target system. Implementations are safe for
// concurrent use.
type Connector interface {
	// ID is the target system's stable identifier in requests, e.g. "sharepoint".
	ID() string
	// Name is a human name, e.g. "SharePoint Server (through the agent)".
	Name() string
	// AuthMethod says how the connector authenticates to its system, e.g.
	// "mtls-tunnel", "oauth2", "api-key", "sts-assume-role".
	AuthMethod() string
	// Operations lists what the connector can do.
	Operations() []Operation
	// HealthCheck reports whether the system is reachable for tenant; nil
	// means healthy.
	HealthCheck(ctx context.Context, tenant string) error
	// Execute runs one operation. Errors that the caller may act on are
	// *Error values with a Class.
	Execute(ctx context.Context, op string, ec ExecContext) (Result, error)
}

// Access says whether an operation reads or writes.
type Access string

// The two kinds of access.
const (
	Read  Access = "read"
	Write Access = "write"
)

// AuthPattern is how the dispatcher gets credentials for an operation (the
// seed's decision tree, section 5.1).
type AuthPattern string

// The patterns.
const (
	// IntegrationOwner uses the tenant's one org-level OAuth connection to
	// the system, made by its integration owner: writes that need to be
	// attributed to a person.
	IntegrationOwner AuthPattern = "integration-owner"
	// ServiceToService uses the relay's own identity at the system (an API
	// key, OAuth client credentials, STS AssumeRole, or the agent's mTLS
	// tunnel): reads of aggregated data.
	ServiceToService AuthPattern = "s2s"
)

// Operation describes one operation of a connector.
type Operation struct {
	// Name is the operation's identifier in requests, e.g. "search_documents".
	Name string `json:"name"`
	// Description says what it does.
	Description string `json:"description"`
	// Access is Read or Write.
	Access Access `json:"access"`
	// Attributed is true when the action must be attributed to the calling
	// user at the target system.
	Attributed bool `json:"attributed"`
	// PII is true when the operation touches personal data.
	PII bool `json:"pii"`
	// Auth overrides the pattern ChooseAuth would pick; empty means ChooseAuth.
	Auth AuthPattern `json:"auth,omitempty"`
	// Payload and Result are JSON Schemas (draft 2020-12) of the request
	// payload and the result.
	Payload json.RawMessage `json:"payloadSchema"`
	Result  json.RawMessage `json:"resultSchema"`
	// Timeout bounds one execution; zero means the dispatcher's default.
	Timeout time.Duration `json:"-"`
	// Retry overrides the dispatcher's retry configuration, field by
	// field (zero fields keep the dispatcher's); nil keeps all of it.
	Retry *RetryConfig `json:"-"`
}

// RetryConfig says when a failed execution is tried again. The zero value
// of every field means its default (WithDefaults).
type RetryConfig struct {
	// MaxAttempts counts executions, the first included. Zero means 3.
	MaxAttempts int
	// BaseDelay and MaxDelay bound the full-jitter backoff between
	// attempts; a longer Retry-After from the system wins, as long as it
	// fits in the request's deadline. Zero means 200ms and 5s.
	BaseDelay, MaxDelay time.Duration
	// Retryable lists the error classes tried again. Nil means
	// rate-limited, unavailable and timeout. Writes are retried only when
	// rate limited (the system did not act on the request).
	Retryable []Class
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c RetryConfig) WithDefaults() RetryConfig {
	return c.Over(RetryConfig{
		MaxAttempts: 3, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second,
		Retryable: []Class{ClassRateLimited, ClassUnavailable, ClassTimeout},
	})
}

// Over returns c with its zero fields taken from base.
func (c RetryConfig) Over(base RetryConfig) RetryConfig {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = base.MaxAttempts
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = base.BaseDelay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = base.MaxDelay
	}
	if c.Retryable == nil {
		c.Retryable = base.Retryable
	}
	return c
}

// ChooseAuth picks the credential pattern for an operation: its Auth when
// set; integration-owner OAuth for writes and for anything attributed to a
// user; service-to-service for other reads (aggregated data).
func ChooseAuth(op Operation) AuthPattern {
	switch {
	case op.Auth != "":
		return op.Auth
	case op.Access == Write || op.Attributed:
		return IntegrationOwner
	default:
		return ServiceToService
	}
}

// User is the caller on whose behalf an operation runs.
type User struct {
	ID    string
	Email string
	Roles []string
}

// ExecContext is what an execution knows about its request.
type ExecContext struct {
	// User and Tenant come from the caller's verified token; the tenant is
	// never taken from the payload.
	User   User
	Tenant string
	// TraceID ties logs and audit records of the request together.
	TraceID string
	// Payload is the request payload, already valid against the
	// operation's payload schema.
	Payload json.RawMessage
	// Credential is what the dispatcher got for the operation's pattern.
	Credential Credential
	// Timeout is the time left for this attempt (also ctx's deadline).
	Timeout time.Duration
	// Attempt counts executions of this request, from 1.
	Attempt int
	// Retry is how the dispatcher retries this operation (for connectors
	// that page or stream and want to retry inside one execution alike).
	Retry RetryConfig
}

// Result is what an operation returns.
type Result struct {
	// Data is the result, JSON valid against the operation's result schema.
	Data json.RawMessage
	// IDs name the records the operation read or changed, for the audit record.
	IDs []string
	// Body, when set, is streamed to the caller instead of Data (file
	// content), with ContentType and Size (-1 when unknown). The
	// dispatcher closes it.
	Body        io.ReadCloser
	ContentType string
	Size        int64
}

// Credential is a credential for one system and tenant. Its secret parts
// never print.
type Credential struct {
	// Pattern is the pattern it was chosen for.
	Pattern AuthPattern
	// Method names the mechanism, e.g. "oauth2", "api-key", "mtls-tunnel".
	Method string
	// Token is the bearer token or key; empty for mechanisms without one.
	Token Secret
	// Values holds the other parts of multi-part credentials, e.g. AWS
	// "access_key_id", "secret_access_key" and "session_token", or an API
	// key's "header" name. Nil when there are none.
	Values map[string]Secret
	// Expires is when Token stops working; zero means unknown or never.
	Expires time.Time
	// Subject is who the credential acts as (the integration owner, or a
	// service principal), for the audit record.
	Subject string
}

// Secret holds a sensitive string. String, GoString, Format (every verb),
// LogValue, MarshalJSON and MarshalText all give "[redacted]"; only Reveal
// gives the value. Two holes follow from Secret being a string type: fmt
// cannot call methods on unexported struct fields, so a Secret in an
// unexported field prints as a plain string (keep Secrets in exported
// fields); and encoding/json writes map keys of string kind as they are
// (never key a map by Secret).
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret value. Call it only where the value is sent,
// never to log or store it.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" whatever the verb and flags.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue returns "[redacted]" for log/slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "[redacted]".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// CredentialRequest asks for a credential.
type CredentialRequest struct {
	Tenant  string
	System  string
	Pattern AuthPattern
	// UserID is the caller, for systems that hold per-user grants.
	UserID string
}

// Credentials gets credentials for a system and tenant (the credential vault
// implements it).
type Credentials interface {
	Credential(ctx context.Context, req CredentialRequest) (Credential, error)
}

// ErrNoCredential is returned (wrapped) when a tenant has no credential for
// the system and pattern: the integration owner must connect it first.
var ErrNoCredential = errors.New("no credential for this system and tenant")

// Class sorts connector errors for the dispatcher: it decides retries and
// the problem type the caller sees.
type Class string

// The classes.
const (
	// ClassRateLimited: the system asked to slow down (429); RetryAfter says how long.
	ClassRateLimited Class = "rate-limited"
	// ClassUnavailable: the system failed or could not be reached (5xx, connection refused).
	ClassUnavailable Class = "unavailable"
	// ClassTimeout: the system did not answer in time.
	ClassTimeout Class = "timeout"
	// ClassAgentOffline: the tenant has no agent connected that can serve the request.
	ClassAgentOffline Class = "agent-offline"
	// ClassNotFound: the record does not exist (or the caller may not see it).
	ClassNotFound Class = "not-found"
	// ClassInvalid: the system refused the request as invalid (4xx other than auth and 429).
	ClassInvalid Class = "invalid"
	// ClassUnauthorized: the system refused the credential.
	ClassUnauthorized Class = "unauthorized"
)

// Error is a classified connector error. Detail is safe to show to the
// caller: it never holds a secret.
type Error struct {
	Class      Class
	Detail     string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Class, e.Detail, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Class, e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of class c.
func Errorf(c Class, format string, args ...any) *Error {
	return &Error{Class: c, Detail: fmt.Sprintf(format, args...)}
}

// ClassOf returns err's class, or "" when it is not an *Error.
func ClassOf(err error) Class {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e.Class
	}
	return ""
}
