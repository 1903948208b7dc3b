package workfront

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

// maxBody caps a response body read from Workfront.
const maxBody = 32 << 20

// call sends one request to path (under the API path) with query q and,
// when body is not nil, a JSON body; it authenticates with ec.Credential,
// adds the user context when attributed, and returns the response's
// "data" member.
func (c *Connector) call(ctx context.Context, ec connectors.ExecContext, method, path string, q url.Values, body any, attributed bool) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("workfront: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("workfront: build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if attributed {
		// An API key acts as its API user, not as the integration owner
		// the action must be attributed through.
		if ec.Credential.Method == "api-key" {
			return nil, connectors.Errorf(connectors.ClassUnauthorized, "an attributed Workfront operation needs the integration owner's OAuth token, not an API key")
		}
		uc, err := userContext(ec.User)
		if err != nil {
			return nil, err
		}
		req.Header.Set(UserContextHeader, uc)
	}
	if err := c.authorize(req, ec.Credential); err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := c.statusError(resp, raw, ec.Credential.Token.Reveal())
		c.log.Warn("workfront request failed", "trace_id", ec.TraceID, "method", method, "path", path,
			"status", resp.StatusCode, "class", connectors.ClassOf(e))
		return nil, e
	}
	if len(raw) > maxBody {
		return nil, connectors.Errorf(connectors.ClassUnavailable, "Workfront's response exceeds %d bytes", maxBody)
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Data) == 0 {
		return nil, &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Workfront sent a response without data", Err: err}
	}
	return env.Data, nil
}

// authorize puts the credential where Workfront wants it. Token.Reveal
// is called here only, to set the header.
func (c *Connector) authorize(req *http.Request, cred connectors.Credential) error {
	if cred.Token == "" {
		return connectors.Errorf(connectors.ClassUnauthorized, "the %s credential for Workfront holds no token", cred.Pattern)
	}
	switch {
	case cred.Method == "api-key":
		req.Header.Set("apiKey", cred.Token.Reveal())
	case c.oauthHdr == OAuthBearer:
		req.Header.Set("Authorization", "Bearer "+cred.Token.Reveal())
	default:
		req.Header.Set("sessionID", cred.Token.Reveal())
	}
	return nil
}

// userContext is the X-MCC-User-Context value: the caller's id and e-mail,
// form-encoded (so no value can break the header).
func userContext(u connectors.User) (string, error) {
	if u.ID == "" {
		return "", connectors.Errorf(connectors.ClassInvalid, "an attributed Workfront operation needs the calling user")
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
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: "Workfront did not answer in time", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Workfront could not be reached", Err: err}
}

// wfError is Workfront's error body.
type wfError struct {
	Error struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

// statusError classifies a non-2xx answer. The vendor's message goes into
// Detail only bounded and with secret (the credential) scrubbed out.
func (c *Connector) statusError(resp *http.Response, raw []byte, secret string) error {
	var e wfError
	_ = json.Unmarshal(raw, &e)
	msg := safeMessage(e.Error.Message, secret)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	if e.Error.Class != "" {
		msg = shortClass(e.Error.Class) + ": " + msg
	}
	detail := fmt.Sprintf("Workfront answered %d: %s", resp.StatusCode, msg)
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		return &connectors.Error{Class: connectors.ClassRateLimited, Detail: detail, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case s == http.StatusUnauthorized || strings.HasSuffix(e.Error.Class, "AuthenticationException"):
		return &connectors.Error{Class: connectors.ClassUnauthorized, Detail: detail}
	case s == http.StatusNotFound:
		return &connectors.Error{Class: connectors.ClassNotFound, Detail: detail}
	case s >= 500:
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: detail, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case s >= 300 && s < 400:
		return &connectors.Error{Class: connectors.ClassUnavailable, Detail: fmt.Sprintf("Workfront answered with a redirect (%d), which is not followed", s)}
	}
	return &connectors.Error{Class: connectors.ClassInvalid, Detail: detail}
}

// shortClass keeps the last element of a Java class name.
func shortClass(c string) string {
	if i := strings.LastIndexByte(c, '.'); i >= 0 {
		return c[i+1:]
	}
	return c
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

// retryAfter is connectors.ParseRetryAfter's delay (zero when absent or malformed).
func retryAfter(v string, now time.Time) time.Duration {
	d, _ := connectors.ParseRetryAfter(v, now)
	return d
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
