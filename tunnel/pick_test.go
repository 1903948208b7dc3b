package tunnel

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func testLink(name string, healthy, draining bool, active int64) *Link {
	now := time.Unix(1000, 0)
	l := &Link{
		cfg:      LinkConfig{StaleAfter: time.Second, Now: func() time.Time { return now }},
		done:     make(chan struct{}),
		goAwayCh: make(chan struct{}),
		active:   active,
	}
	l.welcome.Session = name
	if healthy {
		l.lastRecv.Store(now.UnixNano())
	} else {
		l.lastRecv.Store(now.Add(-time.Minute).UnixNano())
	}
	l.sentGoAway.Store(draining)
	return l
}

func TestPick(t *testing.T) {
	closed := testLink("closed", true, false, 0)
	close(closed.done)
	for _, tc := range []struct {
		name  string
		links []*Link
		start int
		want  string
	}{
		{"none", nil, 0, ""},
		{"only draining", []*Link{testLink("d", true, true, 0)}, 0, ""},
		{"only closed", []*Link{closed}, 0, ""},
		{"healthy over stale", []*Link{testLink("stale", false, false, 0), testLink("ok", true, false, 9)}, 0, "ok"},
		{"stale when nothing else", []*Link{testLink("d", true, true, 0), testLink("stale", false, false, 0)}, 0, "stale"},
		{"fewest streams", []*Link{testLink("busy", true, false, 5), testLink("idle", true, false, 1)}, 0, "idle"},
		{"tie goes to start", []*Link{testLink("a", true, false, 0), testLink("b", true, false, 0)}, 1, "b"},
		{"tie wraps", []*Link{testLink("a", true, false, 0), testLink("b", true, false, 0)}, 2, "a"},
		{"draining skipped", []*Link{testLink("d", true, true, 0), testLink("b", true, false, 3)}, 0, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Pick(tc.links, tc.start)
			name := ""
			if got != nil {
				name = got.welcome.Session
			}
			if name != tc.want {
				t.Errorf("Pick chose %q, want %q", name, tc.want)
			}
		})
	}
}

type flakyRT struct {
	fails  int
	calls  int
	bodies []string
}

func (f *flakyRT) RoundTrip(req *http.Request) (*http.Response, error) {
	f.calls++
	if req.Body != nil {
		b, _ := io.ReadAll(req.Body)
		f.bodies = append(f.bodies, string(b))
	}
	if f.calls <= f.fails {
		return nil, errors.New("stream reset")
	}
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

func TestRetryIdempotent(t *testing.T) {
	for _, tc := range []struct {
		name      string
		method    string
		body      string
		key       string
		fails     int
		wantCalls int
		wantErr   bool
	}{
		{"get retried", "GET", "", "", 1, 2, false},
		{"get gives up after three tries", "GET", "", "", 5, 3, true},
		{"post not retried", "POST", "x", "", 1, 1, true},
		{"post with idempotency key retried with its body", "POST", "payload", "k1", 2, 3, false},
		{"success not repeated", "GET", "", "", 0, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &flakyRT{fails: tc.fails}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, "http://relay/x", body)
			if tc.key != "" {
				req.Header.Set("Idempotency-Key", tc.key)
			}
			_, err := RetryIdempotent(rt).RoundTrip(req)
			if (err != nil) != tc.wantErr {
				t.Errorf("error %v, want error: %v", err, tc.wantErr)
			}
			if rt.calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", rt.calls, tc.wantCalls)
			}
			for i, b := range rt.bodies {
				if b != tc.body {
					t.Errorf("attempt %d sent body %q, want %q", i+1, b, tc.body)
				}
			}
		})
	}
}
