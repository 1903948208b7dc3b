package backoff

import (
	"testing"
	"time"
)

func TestCap(t *testing.T) {
	p := Policy{}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second},
		{7, 60 * time.Second}, {50, 60 * time.Second},
	}
	for _, tc := range tests {
		if got := p.Cap(tc.attempt); got != tc.want {
			t.Errorf("Cap(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestDelayFullJitter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       float64
		attempt int
		want    time.Duration
	}{
		{"zero draw", 0, 3, 0},
		{"half draw", 0.5, 3, 2 * time.Second},
		{"top draw capped", 0.999999, 40, time.Duration(0.999999 * float64(60*time.Second))},
		{"custom base", 0.5, 1, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Policy{Rand: func() float64 { return tc.r }}
			if tc.name == "custom base" {
				p.Base = 100 * time.Millisecond
			}
			if got := p.Delay(tc.attempt); got != tc.want {
				t.Errorf("Delay(%d) with draw %v = %v, want %v", tc.attempt, tc.r, got, tc.want)
			}
		})
	}
}

func TestDelaySpread(t *testing.T) {
	// Real randomness: delays must fall inside [0, cap) and not all be equal.
	p := Policy{}
	seen := map[time.Duration]bool{}
	for range 100 {
		d := p.Delay(4)
		if d < 0 || d >= 8*time.Second {
			t.Fatalf("Delay(4) = %v, want within [0, 8s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 delays gave only %d distinct values, want jitter", len(seen))
	}
}

func TestResetAfter(t *testing.T) {
	if got := (Policy{}).ResetAfterOrDefault(); got != time.Minute {
		t.Errorf("default ResetAfter = %v, want 1m", got)
	}
	if got := (Policy{ResetAfter: time.Second}).ResetAfterOrDefault(); got != time.Second {
		t.Errorf("ResetAfter = %v, want 1s", got)
	}
}
