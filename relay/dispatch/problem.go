package dispatch

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Problem type URIs, one per cause: clients branch on these, never on
// Detail. The caller-authentication causes are ProblemBase plus the
// callerauth kind (missing-token, expired-token, wrong-issuer, ...).
const (
	// ProblemBase prefixes every problem type.
	ProblemBase = "https://mcc-bridge.dev/problems/"
	// ProblemInvalidJSON: the body is not one JSON object of the request's shape (400).
	ProblemInvalidJSON = ProblemBase + "invalid-json"
	// ProblemInvalidRequest: targetSystem or operation is missing or malformed (400).
	ProblemInvalidRequest = ProblemBase + "invalid-request"
	// ProblemBodyTooLarge: the body is larger than the dispatcher accepts (413).
	ProblemBodyTooLarge = ProblemBase + "body-too-large"
	// ProblemInvalidPayload: the payload fails the operation's schema;
	// pointer names the failing value (400).
	ProblemInvalidPayload = ProblemBase + "invalid-payload"
	// ProblemUnknownSystem: no connector has that id (404).
	ProblemUnknownSystem = ProblemBase + "unknown-system"
	// ProblemUnknownOperation: the connector has no such operation (404).
	ProblemUnknownOperation = ProblemBase + "unknown-operation"
	// ProblemDenied: policy denied the action; policies and reason name the rule (403).
	ProblemDenied = ProblemBase + "denied"
	// ProblemRateLimited: the tenant exceeded the relay's rate for the connector (429, Retry-After).
	ProblemRateLimited = ProblemBase + "rate-limited"
	// ProblemUpstreamRateLimited: the target system asked to slow down (429, Retry-After).
	ProblemUpstreamRateLimited = ProblemBase + "upstream-rate-limited"
	// ProblemConnectorUnavailable: the target system failed or could not be reached (502).
	ProblemConnectorUnavailable = ProblemBase + "connector-unavailable"
	// ProblemTimeout: the operation did not finish in time (504).
	ProblemTimeout = ProblemBase + "timeout"
	// ProblemAgentOffline: no agent of the tenant is connected to serve the request (503).
	ProblemAgentOffline = ProblemBase + "agent-offline"
	// ProblemNotFound: the record does not exist or the caller may not see it (404).
	ProblemNotFound = ProblemBase + "not-found"
	// ProblemUpstreamInvalid: the target system refused the request as invalid (422).
	ProblemUpstreamInvalid = ProblemBase + "upstream-invalid"
	// ProblemCredentialUnavailable: the tenant has no working credential for
	// the system; its integration owner must connect it (503).
	ProblemCredentialUnavailable = ProblemBase + "credential-unavailable"
	// ProblemAuditUnavailable: the audit record could not be made durable,
	// so the action was refused (503).
	ProblemAuditUnavailable = ProblemBase + "audit-unavailable"
	// ProblemBadConnectorResponse: the connector's result broke its own schema (502).
	ProblemBadConnectorResponse = ProblemBase + "bad-connector-response"
	// ProblemInternal: the relay failed (500).
	ProblemInternal = ProblemBase + "internal"
)

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// TraceID is the request's trace id.
	TraceID string `json:"traceId,omitempty"`
	// Pointer is, for ProblemInvalidPayload, the JSON pointer (RFC 6901)
	// of the failing value within the payload.
	Pointer string `json:"pointer,omitempty"`
	// Errors lists, for ProblemInvalidPayload, every failing value.
	Errors []FieldError `json:"errors,omitempty"`
	// Policies and Reason explain, for ProblemDenied, the decision.
	Policies []string `json:"policies,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	// RetryAfter is, for rate limits, the seconds to wait (also the Retry-After header).
	RetryAfter int `json:"retryAfter,omitempty"`
}

// FieldError is one failing value of a payload.
type FieldError struct {
	Pointer string `json:"pointer"`
	Detail  string `json:"detail"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

func problem(status int, typ, title, detail string) *Problem {
	return &Problem{Type: typ, Title: title, Status: status, Detail: detail}
}

// shortType is the problem type without ProblemBase, for audit records and metrics.
func (p *Problem) shortType() string {
	if len(p.Type) > len(ProblemBase) && p.Type[:len(ProblemBase)] == ProblemBase {
		return p.Type[len(ProblemBase):]
	}
	return p.Type
}

func retryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	if p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}
