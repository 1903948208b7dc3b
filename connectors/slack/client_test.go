package slack

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"1.5", 0},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0},
		{"999999999999", time.Hour},
	} {
		if got := retryAfter(tc.in); got != tc.want {
			t.Errorf("retryAfter(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestStatusError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   connectors.Class
	}{
		{"ok", 200, `{"ok":true,"channels":[]}`, ""},
		{"ok with warning", 200, `{"ok":true,"warning":"missing_charset"}`, ""},
		{"token_expired", 200, `{"ok":false,"error":"token_expired"}`, connectors.ClassUnauthorized},
		{"invalid_auth", 200, `{"ok":false,"error":"invalid_auth"}`, connectors.ClassUnauthorized},
		{"token_revoked", 200, `{"ok":false,"error":"token_revoked"}`, connectors.ClassUnauthorized},
		{"channel_not_found", 200, `{"ok":false,"error":"channel_not_found"}`, connectors.ClassNotFound},
		{"ratelimited", 200, `{"ok":false,"error":"ratelimited"}`, connectors.ClassRateLimited},
		{"other code", 200, `{"ok":false,"error":"not_in_channel"}`, connectors.ClassInvalid},
		{"no code", 200, `{"ok":false}`, connectors.ClassInvalid},
		{"not JSON", 200, `<html>`, connectors.ClassUnavailable},
		{"429", 429, `{"ok":false,"error":"ratelimited"}`, connectors.ClassRateLimited},
		{"502 html", 502, `<html>bad gateway</html>`, connectors.ClassUnavailable},
		{"404 unknown method", 404, `{"ok":false,"error":"unknown_method"}`, connectors.ClassInvalid},
		{"410 plain", 410, `gone`, connectors.ClassInvalid},
		{"401 plain", 401, `nope`, connectors.ClassUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := statusError("m", &http.Response{StatusCode: tc.status, Header: http.Header{}}, []byte(tc.body))
			if got := connectors.ClassOf(err); got != tc.want || (tc.want == "") != (err == nil) {
				t.Errorf("got %v (class %q), want class %q", err, got, tc.want)
			}
		})
	}
}

// FuzzStatusError feeds Slack answers to the classifier: it never panics,
// and what it says is short and made of Slack's code alphabet.
func FuzzStatusError(f *testing.F) {
	for _, s := range []string{`{"ok":true}`, `{"ok":false,"error":"token_expired"}`, `{"ok":false,"error":"missing_scope","needed":"chat:write"}`,
		`{"ok":false,"error":"<script>\u0000` + strings.Repeat("x", 200) + `"}`, `null`, ``} {
		f.Add(200, s, "")
		f.Add(429, s, "17")
	}
	f.Fuzz(func(t *testing.T, status int, body, retry string) {
		h := http.Header{}
		h.Set("Retry-After", retry)
		err := statusError("m", &http.Response{StatusCode: status, Header: h}, []byte(body))
		if err == nil {
			return
		}
		ce, ok := err.(*connectors.Error)
		if !ok {
			t.Fatalf("%T, want *connectors.Error", err)
		}
		if len(ce.Detail) > 200 || strings.ContainsAny(ce.Detail, "<>\x00\"") || ce.RetryAfter < 0 || ce.RetryAfter > connectors.MaxRetryAfter {
			t.Errorf("unsafe error %q (retry %v)", ce.Detail, ce.RetryAfter)
		}
	})
}
