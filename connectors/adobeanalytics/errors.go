package adobeanalytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/mcc-bridge/bridge/connectors"
)

// apiError is either of Adobe's error bodies: the API gateway's
// {"error_code", "message"} or the Analytics API's
// {"errorCode", "errorDescription", "errorId"}.
type apiError struct {
	GatewayCode string `json:"error_code"`
	Message     string `json:"message"`
	ErrorCode   string `json:"errorCode"`
	Description string `json:"errorDescription"`
	ErrorID     string `json:"errorId"`
}

// parseError reads an error body; ok is false when it is neither shape.
func parseError(body []byte) (code, msg string, ok bool) {
	var e apiError
	if json.Unmarshal(body, &e) != nil {
		return "", "", false
	}
	switch {
	case e.ErrorCode != "":
		return e.ErrorCode, e.Description, true
	case e.GatewayCode != "":
		return e.GatewayCode, e.Message, true
	}
	return "", "", false
}

// classify turns a non-2xx answer into a *connectors.Error; secrets are
// scrubbed from any message shown.
func (c *Connector) classify(ctx context.Context, resp *http.Response, body []byte, secrets ...string) error {
	code, msg, _ := parseError(body)
	code, msg = clean(code, secrets...), clean(msg, secrets...)
	detail := fmt.Sprintf("Adobe Analytics answered %d", resp.StatusCode)
	if code != "" {
		detail += " " + code
	}
	if msg != "" {
		detail += ": " + msg
	}
	st := resp.StatusCode
	switch {
	case st == http.StatusTooManyRequests || code == "429050":
		d, ok := connectors.ParseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())
		if !ok {
			d = c.cfg.RetryAfter
		}
		return &connectors.Error{Class: connectors.ClassRateLimited, Detail: detail, RetryAfter: d}
	case st == http.StatusUnauthorized, code == "403003": // 403003: the API key (client id) is invalid
		return connectors.Errorf(connectors.ClassUnauthorized, "Adobe refused the credential (%d %s)", st, code)
	case st == http.StatusNotFound:
		return connectors.Errorf(connectors.ClassNotFound, "%s", detail)
	case st >= 500:
		c.log.WarnContext(ctx, "adobe analytics failed", "status", st, "code", code)
		return connectors.Errorf(connectors.ClassUnavailable, "%s", detail)
	}
	return connectors.Errorf(connectors.ClassInvalid, "%s", detail)
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
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: "Adobe Analytics did not answer in time", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Adobe Analytics could not be reached", Err: err}
}

// clean makes a message from Adobe fit to show: secrets removed, control
// characters dropped, at most 300 bytes.
func clean(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
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
