package s3

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCheckKey(t *testing.T) {
	tests := []struct {
		name, key string
		empty, ok bool
	}{
		{"plain", "reports/q1.csv", false, true},
		{"unicode and spaces", "dir/ü ñ 日本.txt", false, true},
		{"dots inside names", "a/.hidden/b..c/...", false, true},
		{"empty key", "", false, false},
		{"empty prefix", "", true, true},
		{"leading slash", "/etc/passwd", false, false},
		{"dot segment", "a/./b", false, false},
		{"dot-dot segment", "a/../b", false, false},
		{"trailing dot-dot", "a/..", false, false},
		{"control character", "a\nb", false, false},
		{"DEL", "a\x7fb", false, false},
		{"not UTF-8", "a\xffb", false, false},
		{"1024 bytes", strings.Repeat("k", 1024), false, true},
		{"1025 bytes", strings.Repeat("k", 1025), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkKey("key", tt.key, tt.empty)
			if (err == nil) != tt.ok {
				t.Errorf("checkKey(%q) = %v, want ok %v", tt.key, err, tt.ok)
			}
		})
	}
}

// FuzzCheckKey: whatever checkKey accepts is a key S3 takes and that no
// path-style URL can resolve elsewhere.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a/./b", "/x", "\x00", "ü", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if checkKey("key", k, false) != nil {
			return
		}
		if k == "" || len(k) > 1024 || !utf8.ValidString(k) || k[0] == '/' ||
			strings.ContainsAny(k, "\x00\r\n\x7f") || k == ".." || strings.HasPrefix(k, "../") ||
			strings.Contains(k, "/../") || strings.HasSuffix(k, "/..") || strings.Contains(k, "/./") {
			t.Errorf("checkKey accepted %q", k)
		}
	})
}

func TestSessionName(t *testing.T) {
	tests := []struct{ tenant, want string }{
		{"acme", "mcc-bridge-acme"},
		{"acme corp/eu", "mcc-bridge-acme-corp-eu"},
		{"a.b_c@d=e,f+g", "mcc-bridge-a.b_c@d=e,f+g"},
		{strings.Repeat("x", 80), "mcc-bridge-" + strings.Repeat("x", 53)},
	}
	for _, tt := range tests {
		if got := sessionName(tt.tenant); got != tt.want {
			t.Errorf("sessionName(%q) = %q, want %q", tt.tenant, got, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, v string
		want    time.Duration
	}{
		{"none", "", 0},
		{"seconds", "7", 7 * time.Second},
		{"HTTP date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"past date", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
		{"negative", "-3", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.v != "" {
				h.Set("Retry-After", tt.v)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
