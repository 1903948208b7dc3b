package asana

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// maxBody caps a response body read from Asana.
const maxBody = 32 << 20

// envelope is Asana's response wrapper.
type envelope struct {
	Data     json.RawMessage `json:"data"`
	NextPage *struct {
		Offset string `json:"offset"`
	} `json:"next_page"`
}

// call sends one request to path (under the API path) with query q and,
// when data is not nil, the body {"data": data}; it authenticates with
// ec.Credential, adds the user context when attributed, and returns the
// response envelope.
func (c *Connector) call(ctx context.Context, ec connectors.ExecContext, method, path string, q url.Values, data any, attributed bool) (envelope, error) {
	var rd io.Reader
	if data != nil {
		b, err := json.Marshal(map[string]any{"data": data})
		if err != nil {
			return envelope{}, fmt.Errorf("asana: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return envelope{}, fmt.Errorf("asana: build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if data != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if attributed {
		uc, err := userContext(ec.User)
		if err != nil {
			return envelope{}, err
		}
		req.Header.Set(UserContextHeader, uc)
	}
	if ec.Credential.Token == "" {
		return envelope{}, connectors.Errorf(connectors.ClassUnauthorized, "the %s credential for Asana holds no token", ec.Credential.Pattern)
	}
	req.Header.Set("Authorization", "Bearer "+ec.Credential.Token.Reveal())
	resp, err := c.hc.Do(req)
	if err != nil {
		return envelope{}, transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return envelope{}, transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := statusError(resp, raw, ec.Credential.Token.Reveal())
		c.log.Warn("asana request failed", "trace_id", ec.TraceID, "method", method, "path", path,
			"status", resp.StatusCode, "class", connectors.ClassOf(e))
		return envelope{}, e
	}
	if len(raw) > maxBody {
		return envelope{}, connectors.Errorf(connectors.ClassUnavailable, "Asana's response exceeds %d bytes", maxBody)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Data) == 0 {
		return envelope{}, &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Asana sent a response without data", Err: err}
	}
	return env, nil
}

// userContext is the X-MCC-User-Context value: the caller's id and e-mail,
// form-encoded (so no value can break the header).
func userContext(u connectors.User) (string, error) {
	if u.ID == "" {
		return "", connectors.Errorf(connectors.ClassInvalid, "an attributed Asana operation needs the calling user")
	}
	v := url.Values{"id": {u.ID}}
	if u.Email != "" {
		v.Set("email", u.Email)
	}
	return v.Encode(), nil
}

// transportError classifies a failure to get a response.
func transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: "Asana did not answer in time", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Asana could not be reached", Err: err}
}

// asanaErrors is Asana's error body.
type asanaErrors struct {
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// errorMessage is the first message of an error body, made safe.
func errorMessage(raw []byte, secret string) string {
	var e asanaErrors
	if json.Unmarshal(raw, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return safeMessage(e.Errors[0].Message, secret)
}

// statusError classifies a non-2xx answer. The vendor's message goes into
// Detail only bounded and with no part of secret in it.
func statusError(resp *http.Response, raw []byte, secret string) error {
	msg := errorMessage(raw, secret)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	detail := fmt.Sprintf("Asana answered %d: %s", resp.StatusCode, msg)
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		return &connectors.Error{Class: connectors.ClassRateLimited, Detail: detail, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case s == http.StatusUnauthorized:
		return &connectors.Error{Class: connectors.ClassUnauthorized, Detail: detail}
	case s == http.StatusNotFound:
		return &connectors.Error{Class: connectors.ClassNotFound, Detail: detail}
	case s >= 500:
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: detail, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case s >= 300 && s < 400:
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: fmt.Sprintf("Asana answered with a redirect (%d), which is not followed", s)}
	}
	return &connectors.Error{Class: connectors.ClassInvalid, Detail: detail}
}

// safeMessage bounds a vendor message to one printable line of 200 bytes.
// A message holding the secret, or any 8-byte run of it, is dropped whole.
func safeMessage(msg, secret string) string {
	if leaks(msg, secret) {
		return ""
	}
	msg = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(msg))
	if len(msg) > 200 {
		msg = strings.ToValidUTF8(msg[:200], "") + "…"
	}
	return msg
}

// leaks reports whether msg holds secret or an 8-byte run of it.
func leaks(msg, secret string) bool {
	const run = 8
	switch {
	case secret == "":
		return false
	case len(secret) <= run:
		return strings.Contains(msg, secret)
	}
	for i := 0; i+run <= len(secret); i++ {
		if strings.Contains(msg, secret[i:i+run]) {
			return true
		}
	}
	return false
}

// retryAfter is connectors.ParseRetryAfter's delay (zero when absent or malformed).
func retryAfter(v string, now time.Time) time.Duration {
	d, _ := connectors.ParseRetryAfter(v, now)
	return d
}
