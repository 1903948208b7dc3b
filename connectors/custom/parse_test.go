package custom

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"30", 30 * time.Second, true},
		{" 7 ", 7 * time.Second, true},
		{"99999999999999999999999", time.Hour, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"Monday, 04-Dec-26 10:00:10 GMT", 10 * time.Second, true}, // RFC 850
		{"soon", 0, false},
	} {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q): got %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestExtract(t *testing.T) {
	doc := json.RawMessage(`{"data":{"items":[{"id":1},{"id":"b"}],"0":"zero"},"n":null}`)
	for _, tc := range []struct {
		path, want string
		ok         bool
	}{
		{"data.items.1.id", `"b"`, true},
		{"data.items.0", `{"id":1}`, true},
		{"data.0", `"zero"`, true},
		{"n", `null`, true},
		{"data.items.2", "", false},
		{"data.items.-1", "", false},
		{"data.items.01", "", false},
		{"data.items.x", "", false},
		{"missing", "", false},
		{"n.x", "", false},
	} {
		got, err := extract(doc, tc.path)
		if (err == nil) != tc.ok || (tc.ok && string(got) != tc.want) {
			t.Errorf("extract(%q): got %s, %v; want %s (ok %v)", tc.path, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseRetryAfter: any header gives a wait within [0, 1h].
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "30", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999", "-1", "1e9"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter || (!ok && d != 0) {
			t.Errorf("parseRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}

// FuzzExtract: any answer and path are handled without panicking.
func FuzzExtract(f *testing.F) {
	f.Add(`{"a":[1,{"b":2}]}`, "a.1.b")
	f.Add(`[[[]]]`, "0.0.0")
	f.Add(`"x"`, "a")
	f.Fuzz(func(t *testing.T, doc, path string) {
		if v, err := extract(json.RawMessage(doc), path); err == nil && json.Valid([]byte(doc)) && !json.Valid(v) {
			t.Errorf("extract(%q, %q) = %q, not JSON", doc, path, v)
		}
	})
}
