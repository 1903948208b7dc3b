package connectors

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps a Retry-After a system asks for: longer waits are
// reported as this.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After value (RFC 9110 section 10.2.3):
// delay seconds or an HTTP date, relative to now. ok is false when v is
// empty or malformed; a date in the past is a zero delay. The delay is at
// most MaxRetryAfter.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}
