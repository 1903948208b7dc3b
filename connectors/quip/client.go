package quip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mcc-bridge/bridge/connectors"
)

// maxBody caps a Quip answer read into memory (documents come as HTML).
const maxBody = 32 << 20

// apiError is Quip's error body.
type apiError struct {
	Code        int    `json:"error_code"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// call sends a request to {base}/1/{path} with the bearer token and
// returns the body of a 200 answer. form, when set, is the POST body.
func (c *Connector) call(ctx context.Context, method, path string, form url.Values, tok connectors.Secret) ([]byte, error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/1/"+path, rd)
	if err != nil {
		return nil, fmt.Errorf("quip %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, transportError(path, err)
	}
	if len(data) > maxBody {
		return nil, connectors.Errorf(connectors.ClassUnavailable, "Quip's answer exceeds %d bytes", maxBody)
	}
	if resp.StatusCode == http.StatusOK {
		return data, nil
	}
	err = c.statusError(resp.StatusCode, resp.Header, data, tok)
	if cls := connectors.ClassOf(err); cls == connectors.ClassUnavailable || cls == connectors.ClassRateLimited {
		c.log.Warn("quip failed", "path", strings.SplitN(path, "/", 2)[0], "status", resp.StatusCode, "class", cls,
			"user_remaining", resp.Header.Get("X-Ratelimit-Remaining"), "company_remaining", resp.Header.Get("X-Company-RateLimit-Remaining"))
	}
	return nil, err
}

// statusError classifies a non-200 answer.
func (c *Connector) statusError(status int, h http.Header, data []byte, tok connectors.Secret) error {
	var ae apiError
	json.Unmarshal(data, &ae)
	desc := cleanDetail(ae.Description, tok)
	if desc == "" {
		desc = cleanDetail(ae.Error, tok)
	}
	overLimit := spent(h, "X-Ratelimit") || spent(h, "X-Company-RateLimit") ||
		strings.Contains(strings.ToLower(ae.Error+" "+ae.Description), "rate limit")
	switch {
	case status == http.StatusTooManyRequests || (status == http.StatusServiceUnavailable && overLimit):
		return &connectors.Error{Class: connectors.ClassRateLimited, RetryAfter: c.rateLimitWait(h),
			Detail: fmt.Sprintf("Quip's rate limit is spent (HTTP %d)", status)}
	case status >= 500:
		return connectors.Errorf(connectors.ClassUnavailable, "Quip answered HTTP %d", status)
	case status == http.StatusUnauthorized:
		return connectors.Errorf(connectors.ClassUnauthorized, "Quip refused the token (%s); the integration owner must reconnect Quip", orDefault(desc, "HTTP 401"))
	case status == http.StatusNotFound:
		return connectors.Errorf(connectors.ClassNotFound, "Quip: %s", orDefault(desc, "not found"))
	case status == http.StatusRequestTimeout:
		return connectors.Errorf(connectors.ClassTimeout, "Quip timed the request out (HTTP 408)")
	}
	return connectors.Errorf(connectors.ClassInvalid, "Quip refused the request (HTTP %d): %s", status, orDefault(desc, "no description"))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// spent reports whether the bucket named by prefix ("X-Ratelimit" or
// "X-Company-RateLimit") says nothing remains.
func spent(h http.Header, prefix string) bool {
	v := strings.TrimSpace(h.Get(prefix + "-Remaining"))
	n, err := strconv.ParseFloat(v, 64)
	return v != "" && err == nil && n <= 0
}

// rateLimitWait is how long Quip asks to wait: Retry-After (seconds or an
// HTTP date) when present, else the time until the spent buckets' Reset
// (the later), else until the user bucket's Reset; zero when nothing says.
func (c *Connector) rateLimitWait(h http.Header) time.Duration {
	now := c.now()
	if d, ok := connectors.ParseRetryAfter(h.Get("Retry-After"), now); ok {
		return clamp(d)
	}
	var wait time.Duration
	found := false
	for _, p := range []string{"X-Ratelimit", "X-Company-RateLimit"} {
		if !spent(h, p) {
			continue
		}
		if t, ok := epoch(h.Get(p + "-Reset")); ok {
			wait, found = max(wait, t.Sub(now)), true
		}
	}
	if !found {
		if t, ok := epoch(h.Get("X-Ratelimit-Reset")); ok {
			wait = t.Sub(now)
		}
	}
	return clamp(wait)
}

func clamp(d time.Duration) time.Duration {
	return min(max(d, 0), connectors.MaxRetryAfter)
}

// epoch parses a UTC epoch second (fractions allowed).
func epoch(v string) (time.Time, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// cleanDetail makes a message from Quip safe to show: printable, one
// line, at most 200 characters, with the token (should Quip echo it)
// struck out.
func cleanDetail(s string, tok connectors.Secret) string {
	if t := tok.Reveal(); len(t) >= 4 {
		s = strings.ReplaceAll(s, t, "[redacted]")
	}
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 200 {
			b.WriteString("...")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte(' ')
		}
	}
	return strings.TrimSpace(b.String())
}

// transportError classifies a failure to get an answer.
func transportError(path string, err error) error {
	what := strings.SplitN(path, "/", 2)[0]
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &connectors.Error{Class: connectors.ClassTimeout, Detail: "Quip did not answer in time (" + what + ")", Err: err}
	}
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Quip could not be reached (" + what + ")", Err: err}
}
