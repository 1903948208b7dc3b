package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// maxBody caps a Slack answer read into memory.
const maxBody = 8 << 20

// envelope is the part of every Web API answer that says how it went.
type envelope struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	// Needed names the scope a missing_scope answer lacks.
	Needed string `json:"needed"`
}

// call calls a Web API method and returns the answer's body when it says
// {"ok": true}. body, when set, is sent as JSON; tok, when set, as the
// bearer token.
func (c *Connector) call(ctx context.Context, httpMethod, method string, query url.Values, body []byte, tok connectors.Secret) (json.RawMessage, error) {
	u := c.base + "/api/" + method
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, httpMethod, u, rd)
	if err != nil {
		return nil, fmt.Errorf("slack %s: %w", method, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		// Slack wants the charset, and the token in the header, for JSON bodies.
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, transportError(method, err)
	}
	if len(data) > maxBody {
		return nil, connectors.Errorf(connectors.ClassUnavailable, "Slack's answer to %s exceeds %d bytes", method, maxBody)
	}
	if err := statusError(method, resp, data); err != nil {
		if connectors.ClassOf(err) == connectors.ClassUnavailable {
			c.log.Warn("slack failed", "method", method, "status", resp.StatusCode)
		}
		return nil, err
	}
	return data, nil
}

// statusError classifies an answer: nil when it is HTTP 200 {"ok": true}.
func statusError(method string, resp *http.Response, data []byte) error {
	var env envelope
	jsonErr := json.Unmarshal(data, &env)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return &connectors.Error{Class: connectors.ClassRateLimited, RetryAfter: retryAfter(resp.Header.Get("Retry-After")),
			Detail: fmt.Sprintf("Slack rate-limited %s (HTTP 429)", method)}
	case resp.StatusCode >= 500:
		return connectors.Errorf(connectors.ClassUnavailable, "Slack answered %s with HTTP %d", method, resp.StatusCode)
	case resp.StatusCode != http.StatusOK && (jsonErr != nil || env.Error == ""):
		cls := connectors.ClassInvalid
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			cls = connectors.ClassUnauthorized
		case http.StatusNotFound:
			cls = connectors.ClassNotFound
		case http.StatusRequestTimeout:
			cls = connectors.ClassTimeout
		}
		return connectors.Errorf(cls, "Slack answered %s with HTTP %d", method, resp.StatusCode)
	case jsonErr != nil:
		return connectors.Errorf(connectors.ClassUnavailable, "Slack's answer to %s is not JSON", method)
	case env.OK:
		return nil
	}
	return codeError(method, env, resp.Header.Get("Retry-After"))
}

// codeError classifies an {"ok": false, "error": code} answer.
func codeError(method string, env envelope, retryAfterHeader string) error {
	code := safeCode(env.Error)
	e := &connectors.Error{Class: connectors.ClassInvalid, Detail: fmt.Sprintf("Slack refused %s: %s", method, code)}
	switch code {
	case "not_authed", "invalid_auth", "account_inactive", "token_expired", "token_revoked":
		e.Class = connectors.ClassUnauthorized
		e.Detail = fmt.Sprintf("Slack refused the bot token (%s); the integration owner must reconnect Slack", code)
	case "missing_scope":
		e.Class = connectors.ClassUnauthorized
		e.Detail = "the Slack app lacks a scope"
		if s := safeCode(env.Needed); env.Needed != "" {
			e.Detail += " (" + strings.ReplaceAll(s, "_", ":") + ")"
		}
		e.Detail += "; the integration owner must reinstall it"
	case "channel_not_found", "thread_not_found":
		e.Class = connectors.ClassNotFound
	case "ratelimited", "rate_limited":
		e.Class = connectors.ClassRateLimited
		e.RetryAfter = retryAfter(retryAfterHeader)
	case "internal_error", "fatal_error", "service_unavailable":
		e.Class = connectors.ClassUnavailable
	}
	return e
}

// safeCode keeps an error code from Slack printable and short: lower-case
// letters, digits and '_' (what Slack's codes are made of).
func safeCode(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "unknown_error"
	}
	return b.String()
}

// retryAfter is the delay of Slack's Retry-After (seconds); zero when
// absent or malformed, leaving the wait to the dispatcher's backoff.
func retryAfter(v string) time.Duration {
	d, _ := connectors.ParseRetryAfter(v, time.Now())
	return d
}

// transportError classifies a failure to get an answer.
func transportError(method string, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: "Slack did not answer " + method + " in time", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Slack could not be reached for " + method, Err: err}
}
