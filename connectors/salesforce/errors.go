package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mcc-bridge/bridge/connectors"
)

// apiError is one element of Salesforce's error array.
type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

// parseErrors reads Salesforce's error body: an array of apiError, or
// (from the OAuth endpoints) {"error", "error_description"}.
func parseErrors(body []byte) []apiError {
	var list []apiError
	if json.Unmarshal(body, &list) == nil && len(list) > 0 {
		return list
	}
	var one struct {
		apiError
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &one) == nil {
		switch {
		case one.ErrorCode != "":
			return []apiError{one.apiError}
		case one.Error != "":
			return []apiError{{ErrorCode: one.Error, Message: one.Description}}
		}
	}
	return nil
}

// classify turns a non-2xx answer into a *connectors.Error. Salesforce's
// errorCode decides where it is known, else the status; secret is
// scrubbed from any message shown.
func (c *Connector) classify(ctx context.Context, resp *http.Response, body []byte, secret string) error {
	errs := parseErrors(body)
	code, msg := "", ""
	if len(errs) > 0 {
		code, msg = errs[0].ErrorCode, errs[0].Message
		if len(errs[0].Fields) > 0 {
			msg += " (fields: " + strings.Join(errs[0].Fields, ", ") + ")"
		}
	}
	msg = clean(msg, secret)
	code = clean(code, secret)
	what := fmt.Sprintf("Salesforce answered %d", resp.StatusCode)
	if code != "" {
		what += " " + code
	}
	if msg != "" {
		what += ": " + msg
	}
	cls := classOf(resp.StatusCode, code)
	e := &connectors.Error{Class: cls, Detail: what}
	switch cls {
	case connectors.ClassUnauthorized:
		e.Detail = fmt.Sprintf("Salesforce refused the access token (%d %s)", resp.StatusCode, code)
	case connectors.ClassRateLimited:
		d, ok := connectors.ParseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())
		switch {
		case ok:
		case strings.Contains(strings.ToLower(msg), "concurrent"):
			d = 5 * time.Second
		default:
			d = c.cfg.LimitRetryAfter
		}
		e.RetryAfter = d
	case connectors.ClassUnavailable:
		c.log.WarnContext(ctx, "salesforce failed", "status", resp.StatusCode, "code", code)
	}
	return e
}

// classOf maps an errorCode (first) or a status to a class.
func classOf(status int, code string) connectors.Class {
	switch code {
	case "INVALID_SESSION_ID", "INVALID_AUTH_HEADER", "invalid_grant", "invalid_token":
		return connectors.ClassUnauthorized
	case "REQUEST_LIMIT_EXCEEDED", "TXN_SECURITY_NO_ACCESS_LIMIT":
		return connectors.ClassRateLimited
	case "NOT_FOUND", "ENTITY_IS_DELETED":
		return connectors.ClassNotFound
	case "QUERY_TIMEOUT":
		return connectors.ClassTimeout
	case "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION":
		return connectors.ClassUnavailable
	}
	switch {
	case status == http.StatusUnauthorized:
		return connectors.ClassUnauthorized
	case status == http.StatusTooManyRequests:
		return connectors.ClassRateLimited
	case status == http.StatusNotFound:
		return connectors.ClassNotFound
	case status >= 500:
		return connectors.ClassUnavailable
	}
	return connectors.ClassInvalid
}

// transportError classifies a failure to get an answer. The URL of a
// *url.Error is dropped: only the cause is kept.
func transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: "Salesforce did not answer in time", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Salesforce could not be reached", Err: err}
}

// parseLimitInfo reads "api-usage=used/limit" from a Sforce-Limit-Info
// header such as "api-usage=18/5000; per-app-api-usage=17/250(appName=x)".
func parseLimitInfo(h string) (used, limit int, ok bool) {
	for _, part := range strings.FieldsFunc(h, func(r rune) bool { return r == ';' || r == ',' }) {
		v, found := strings.CutPrefix(strings.TrimSpace(part), "api-usage=")
		if !found {
			continue
		}
		u, l, found := strings.Cut(v, "/")
		if !found {
			return 0, 0, false
		}
		n, err1 := strconv.Atoi(strings.TrimSpace(u))
		m, err2 := strconv.Atoi(strings.TrimSpace(l))
		if err1 != nil || err2 != nil || n < 0 || m <= 0 {
			return 0, 0, false
		}
		return n, m, true
	}
	return 0, 0, false
}

// clean makes a message from Salesforce fit to show: secret removed,
// control characters dropped, at most 300 bytes.
func clean(msg, secret string) string {
	if secret != "" {
		msg = strings.ReplaceAll(msg, secret, "[redacted]")
	}
	msg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, msg)
	msg = strings.TrimSpace(msg)
	if len(msg) > 300 {
		msg = strings.ToValidUTF8(msg[:300], "") + "..."
	}
	return msg
}
