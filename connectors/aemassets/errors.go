package aemassets

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

// parseMessage finds a message in one of AEM's JSON error bodies: the
// Sling POST servlet's {"status.message", "error": {"message"}}, the
// Assets API's {"properties": {"status.message"}}, QueryBuilder's
// {"success": false, "errorMessage"}. HTML error pages give "".
func parseMessage(body []byte) string {
	var b struct {
		StatusMessage string `json:"status.message"`
		ErrorMessage  string `json:"errorMessage"`
		Error         struct {
			Message string `json:"message"`
		} `json:"error"`
		Properties struct {
			StatusMessage string `json:"status.message"`
			Message       string `json:"message"`
		} `json:"properties"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	for _, m := range []string{b.Error.Message, b.ErrorMessage, b.Properties.Message, b.Properties.StatusMessage, b.StatusMessage} {
		if m != "" {
			return m
		}
	}
	return ""
}

// classify turns a non-2xx answer of who (AEM, or the binary storage)
// into a *connectors.Error; secrets are scrubbed from any message shown.
func (c *Connector) classify(ctx context.Context, who string, resp *http.Response, body []byte, secrets ...string) error {
	msg := clean(parseMessage(body), secrets...)
	detail := fmt.Sprintf("%s answered %d", who, resp.StatusCode)
	if msg != "" {
		detail += ": " + msg
	}
	switch st := resp.StatusCode; {
	case st == http.StatusTooManyRequests:
		d, ok := connectors.ParseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now())
		if !ok {
			d = c.cfg.RetryAfter
		}
		return &connectors.Error{Class: connectors.ClassRateLimited, Detail: detail, RetryAfter: d}
	case st == http.StatusUnauthorized:
		return connectors.Errorf(connectors.ClassUnauthorized, "%s refused the access token (401)", who)
	case st == http.StatusNotFound:
		return connectors.Errorf(connectors.ClassNotFound, "%s", detail)
	case st >= 500:
		c.log.WarnContext(ctx, "aem assets failed", "who", who, "status", st)
		return connectors.Errorf(connectors.ClassUnavailable, "%s", detail)
	}
	return connectors.Errorf(connectors.ClassInvalid, "%s", detail)
}

// transportError classifies a failure to get an answer from who. The URL
// of a *url.Error is dropped (pre-signed upload URIs carry signatures):
// only the cause is kept.
func transportError(ctx context.Context, who string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: who + " did not answer in time", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: who + " could not be reached", Err: err}
}

// clean makes a message from AEM fit to show: secrets removed, control
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
