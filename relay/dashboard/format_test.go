package dashboard

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFormatCount(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"}, {7, "7"}, {999, "999"}, {1000, "1,000"}, {4292, "4,292"},
		{98765, "98,765"}, {1234567, "1,234,567"}, {-4292, "-4,292"},
	}
	for _, tt := range tests {
		if got := formatCount(tt.in); got != tt.want {
			t.Errorf("formatCount(%d): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatPercent(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0%"}, {1, "100%"}, {0.0004, "<0.1%"}, {0.9996, ">99.9%"},
		{0.05, "5%"}, {0.123, "12.3%"}, {23.0 / 24, "95.8%"}, {1.0 / 3, "33.3%"},
	}
	for _, tt := range tests {
		if got := formatPercent(tt.in); got != tt.want {
			t.Errorf("formatPercent(%v): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatLatency(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "—"}, {850 * time.Microsecond, "850 µs"}, {4200 * time.Microsecond, "4.2 ms"},
		{120 * time.Millisecond, "120 ms"}, {1250 * time.Millisecond, "1.25 s"}, {14 * time.Second, "14.0 s"},
	}
	for _, tt := range tests {
		if got := formatLatency(tt.in); got != tt.want {
			t.Errorf("formatLatency(%v): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatSpan(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0 s"}, {45 * time.Second, "45 s"}, {4*time.Minute + 10*time.Second, "4 m 10 s"},
		{3*time.Hour + 12*time.Minute + 59*time.Second, "3 h 12 m"}, {2 * time.Hour, "2 h"},
		{29*24*time.Hour + 4*time.Hour, "29 d 4 h"}, {-26 * time.Hour, "1 d 2 h"},
	}
	for _, tt := range tests {
		if got := formatSpan(tt.in); got != tt.want {
			t.Errorf("formatSpan(%v): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatRemaining(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		expires time.Time
		want    string
	}{
		{"unknown", time.Time{}, "—"},
		{"ahead", now.Add(3*time.Hour + 12*time.Minute), "3 h 12 m"},
		{"now", now, "expired 0 s ago"},
		{"past", now.Add(-2 * time.Hour), "expired 2 h ago"},
	}
	for _, tt := range tests {
		if got := formatRemaining(tt.expires, now); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSparkline(t *testing.T) {
	tests := []struct {
		name      string
		hourly    func(i int) Bucket
		wantPeak  float64
		wantFirst string // first point
		wantLast  string // last point
	}{
		{"no traffic is a flat line at the bottom", func(int) Bucket { return Bucket{} }, 0, "0,23.0", "115,23.0"},
		{"the peak reaches the top", func(i int) Bucket {
			if i == 23 {
				return Bucket{Calls: 10, Errors: 5}
			}
			return Bucket{Calls: 10}
		}, 0.5, "0,23.0", "115,1.0"},
		{"half the peak is halfway", func(i int) Bucket {
			if i == 0 {
				return Bucket{Calls: 4, Errors: 1}
			}
			return Bucket{Calls: 2, Errors: 1}
		}, 0.5, "0,12.0", "115,1.0"},
		{"stray errors stay low", func(i int) Bucket {
			if i == 23 {
				return Bucket{Calls: 100, Errors: 1}
			}
			return Bucket{Calls: 100}
		}, 0.01, "0,23.0", "115,18.6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h [Hours]Bucket
			for i := range h {
				h[i] = tt.hourly(i)
			}
			points, peak := sparkline(h)
			fields := strings.Fields(points)
			if len(fields) != Hours {
				t.Fatalf("got %d points, want %d: %q", len(fields), Hours, points)
			}
			if peak != tt.wantPeak || fields[0] != tt.wantFirst || fields[Hours-1] != tt.wantLast {
				t.Errorf("got peak %v, points %s..%s; want %v, %s..%s", peak, fields[0], fields[Hours-1], tt.wantPeak, tt.wantFirst, tt.wantLast)
			}
		})
	}
}

func TestBarWidth(t *testing.T) {
	tests := []struct {
		n, full int64
		want    string
	}{
		{0, 0, "0"}, {0, 10, "0"}, {10, 10, "100.0"}, {5, 10, "50.0"}, {1, 100000, "1.0"},
	}
	for _, tt := range tests {
		if got := barWidth(tt.n, tt.full); got != tt.want {
			t.Errorf("barWidth(%d, %d): got %q, want %q", tt.n, tt.full, got, tt.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name, target, accept string
		want                 string
		wantErr              bool
	}{
		{name: "browser navigation", target: "/", accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", want: formatHTML},
		{name: "json", target: "/", accept: "application/json", want: formatJSON},
		{name: "no accept", target: "/", want: formatJSON},
		{name: "anything", target: "/", accept: "*/*", want: formatJSON},
		{name: "curl-like json preference", target: "/", accept: "application/json, text/html;q=0.5", want: formatJSON},
		{name: "html refused", target: "/", accept: "text/html;q=0", want: formatJSON},
		{name: "query beats accept", target: "/?format=json", accept: "text/html", want: formatJSON},
		{name: "html by query", target: "/?format=html", accept: "application/json", want: formatHTML},
		{name: "fragment", target: "/?format=fragment", want: formatFragment},
		{name: "unknown format", target: "/?format=xml", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.target, nil)
			if tt.accept != "" {
				r.Header.Set("Accept", tt.accept)
			}
			got, err := negotiate(r)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
