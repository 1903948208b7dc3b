package connectors_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"  ", 0, false},
		{"7", 7 * time.Second, true},
		{" 0 ", 0, true},
		{"-3", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999", connectors.MaxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), connectors.MaxRetryAfter, true},
	} {
		d, ok := connectors.ParseRetryAfter(tc.in, now)
		if d != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, d, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseRetryAfter: any header gives a wait within [0, MaxRetryAfter].
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "30", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := connectors.ParseRetryAfter(s, now)
		if d < 0 || d > connectors.MaxRetryAfter || (!ok && d != 0) {
			t.Errorf("ParseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}

func TestParseBaseURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		{"https://api.example.com/", "https://api.example.com"},
		{" https://api.example.com/v1 ", "https://api.example.com/v1"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://localhost:9", "http://localhost:9"},
		{"http://[::1]:9", "http://[::1]:9"},
		{"http://api.example.com", ""},
		{"ftp://api.example.com", ""},
		{"https://user:pw@api.example.com", ""},
		{"https://api.example.com/?q=1", ""},
		{"https://api.example.com/#x", ""},
		{"/relative", ""},
		{"::", ""},
	} {
		u, err := connectors.ParseBaseURL(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("ParseBaseURL(%q) = %v, want an error", tc.in, u)
		case tc.want != "" && (err != nil || u.String() != tc.want):
			t.Errorf("ParseBaseURL(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}
