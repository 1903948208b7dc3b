package quip

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

var testNow = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func TestRateLimitWait(t *testing.T) {
	c := &Connector{now: func() time.Time { return testNow }}
	sec := func(d time.Duration) string { return itoa(testNow.Add(d).Unix()) }
	for _, tc := range []struct {
		name string
		h    map[string]string
		want time.Duration
	}{
		{"nothing", nil, 0},
		{"retry-after seconds", map[string]string{"Retry-After": "12"}, 12 * time.Second},
		{"retry-after date", map[string]string{"Retry-After": testNow.Add(time.Minute).Format(http.TimeFormat)}, time.Minute},
		{"retry-after date in the past", map[string]string{"Retry-After": testNow.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"retry-after wins", map[string]string{"Retry-After": "3", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": sec(time.Minute)}, 3 * time.Second},
		{"user spent", map[string]string{"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": sec(25 * time.Second)}, 25 * time.Second},
		{"company spent", map[string]string{"X-Ratelimit-Remaining": "4", "X-Ratelimit-Reset": sec(10 * time.Second),
			"X-Company-RateLimit-Remaining": "0", "X-Company-RateLimit-Reset": sec(50 * time.Second)}, 50 * time.Second},
		{"both spent, later wins", map[string]string{"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": sec(70 * time.Second),
			"X-Company-RateLimit-Remaining": "0", "X-Company-RateLimit-Reset": sec(50 * time.Second)}, 70 * time.Second},
		{"none spent: the user's reset", map[string]string{"X-Ratelimit-Remaining": "3", "X-Ratelimit-Reset": sec(15 * time.Second)}, 15 * time.Second},
		{"fractional reset", map[string]string{"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": itoa(testNow.Unix()+5) + ".5"}, 5500 * time.Millisecond},
		{"reset in the past", map[string]string{"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": sec(-time.Minute)}, 0},
		{"reset far away", map[string]string{"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": sec(48 * time.Hour)}, time.Hour},
		{"garbage", map[string]string{"Retry-After": "soon", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "NaN"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.h {
				h.Set(k, v)
			}
			if got := c.rateLimitWait(h); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCleanDetail(t *testing.T) {
	for _, tc := range []struct{ in, tok, want string }{
		{"Thread does not exist", "tok-123", "Thread does not exist"},
		{"token tok-123 is bad", "tok-123", "token [redacted] is bad"},
		{"line\nbreak\x00", "", "line break"},
		{strings.Repeat("a", 300), "", strings.Repeat("a", 200) + "..."},
	} {
		if got := cleanDetail(tc.in, connectors.Secret(tc.tok)); got != tc.want {
			t.Errorf("cleanDetail(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzStatusError feeds Quip error answers to the classifier: it never
// panics, waits within bounds, and never repeats the token.
func FuzzStatusError(f *testing.F) {
	const tok = "SECRETtoken42"
	c := &Connector{now: func() time.Time { return testNow }}
	f.Add(503, `{"error_code":503,"error":"Over Rate Limit","error_description":"slow down"}`, "0", "1796378430", "")
	f.Add(429, ``, "", "", "7")
	f.Add(400, `{"error_description":"bad SECRETtoken42"}`, "", "", "")
	f.Add(401, `null`, "x", "-1", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Fuzz(func(t *testing.T, status int, body, remaining, reset, retry string) {
		h := http.Header{}
		h.Set("X-Ratelimit-Remaining", remaining)
		h.Set("X-Ratelimit-Reset", reset)
		h.Set("Retry-After", retry)
		err := c.statusError(status, h, []byte(body), tok)
		ce, ok := err.(*connectors.Error)
		if !ok {
			t.Fatalf("%T, want *connectors.Error", err)
		}
		if strings.Contains(ce.Error(), tok) || ce.RetryAfter < 0 || ce.RetryAfter > connectors.MaxRetryAfter || len(ce.Detail) > 300 {
			t.Errorf("unsafe error %q (retry %v)", ce.Error(), ce.RetryAfter)
		}
	})
}
