package sharepoint_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// sleeps records the client's waits, instead of waiting unless real.
type sleeps struct {
	real bool // wait too: the client's health-score pauses end on the real clock

	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	if !s.real {
		return ctx.Err()
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// take returns the waits recorded since the last take.
func (s *sleeps) take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.d
	s.d = nil
	return d
}

// TestThrottling injects the emulator's faults and checks the waits the
// client chose: Retry-After honoured (capped at BackoffMax), otherwise
// exponential backoff from BackoffBase with jitter, capped; 429, 503 and
// 504 retried; a request that keeps failing is an error after MaxRetries.
func TestThrottling(t *testing.T) {
	const base, maxWait = time.Second, 16 * time.Second
	// backoff checks waits without Retry-After: attempt i waits between
	// half and all of min(base*2^i, maxWait).
	backoff := func(t *testing.T, waits []time.Duration) {
		t.Helper()
		for i, w := range waits {
			cp := min(base<<i, maxWait)
			if w < cp/2 || w > cp {
				t.Errorf("wait %d: got %v, want between %v and %v", i, w, cp/2, cp)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		call    string // site (GET) or changes (POST)
		fault   spemu.Fault
		retries int // Config.MaxRetries; 0 means 10
		wantErr string
		// check judges the waits
		check func(t *testing.T, waits []time.Duration)
		tries int // requests the emulator must have seen for the call's endpoint
	}{
		{name: "Retry-After in seconds on 503", call: "site", fault: spemu.Fault{Endpoint: spemu.EndpointWeb, Status: 503, RetryAfter: 7 * time.Second}, tries: 2,
			check: func(t *testing.T, w []time.Duration) { equalWaits(t, w, 7*time.Second) }},
		{name: "Retry-After in seconds on 429", call: "changes", fault: spemu.Fault{Endpoint: spemu.EndpointChanges, Status: 429, RetryAfter: 3 * time.Second, Count: 2}, tries: 3,
			check: func(t *testing.T, w []time.Duration) { equalWaits(t, w, 3*time.Second, 3*time.Second) }},
		{name: "Retry-After above the maximum waits the maximum", call: "site", fault: spemu.Fault{Endpoint: spemu.EndpointWeb, Status: 503, RetryAfter: 900 * time.Second}, tries: 2,
			check: func(t *testing.T, w []time.Duration) { equalWaits(t, w, maxWait) }},
		{name: "504 is retried with backoff", call: "site", fault: spemu.Fault{Endpoint: spemu.EndpointWeb, Status: 504}, tries: 2,
			check: func(t *testing.T, w []time.Duration) {
				if len(w) != 1 {
					t.Fatalf("got waits %v, want one", w)
				}
				backoff(t, w)
			}},
		{name: "backoff doubles up to the maximum, with jitter", call: "changes", fault: spemu.Fault{Endpoint: spemu.EndpointChanges, Status: 503, Count: 10}, tries: 11,
			check: func(t *testing.T, w []time.Duration) {
				if len(w) != 10 {
					t.Fatalf("got %d waits %v, want 10", len(w), w)
				}
				backoff(t, w)
				capped := w[4:] // attempts 4.. all have the 16 s cap
				same := 0
				for _, d := range capped[1:] {
					if d == capped[0] {
						same++
					}
				}
				if same == len(capped)-1 {
					t.Errorf("the %d waits at the cap are all %v: no jitter", len(capped), capped[0])
				}
			}},
		{name: "a request that keeps failing is an error", call: "site", fault: spemu.Fault{Endpoint: spemu.EndpointWeb, Status: 503, Count: 100}, retries: 4,
			wantErr: "keeps throttling (4 retries)", tries: 5,
			check: func(t *testing.T, w []time.Duration) {
				if len(w) != 4 {
					t.Fatalf("got %d waits %v, want 4", len(w), w)
				}
				backoff(t, w)
			}},
		{name: "a change log that keeps refusing is an error", call: "changes", fault: spemu.Fault{Endpoint: spemu.EndpointChanges, Status: 429, Count: 100}, retries: 3,
			wantErr: "keeps throttling (3 retries)", tries: 4,
			check: func(t *testing.T, w []time.Duration) {
				if len(w) != 3 {
					t.Fatalf("got %d waits %v, want 3", len(w), w)
				}
				backoff(t, w)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu, u := startEmu(t, spemu.Options{}, spemu.Spec{Seed: 61, SiteNames: []string{"mkt"}, ItemsPerList: 3, PlainNames: true})
			var sl sleeps
			c := newEmuClient(t, sharepoint.Config{SiteURL: u + "/sites/mkt", BackoffBase: base, BackoffMax: maxWait,
				MaxRetries: tc.retries, Sleep: sl.sleep})
			emu.InjectFault(tc.fault)
			var err error
			var changes int
			switch tc.call {
			case "site":
				var s sharepoint.Site
				s, err = c.Site(context.Background())
				if err == nil && s.ID == "" {
					t.Errorf("site read without its ID: %+v", s)
				}
			case "changes":
				err = c.Changes(context.Background(), "", func(p []sharepoint.Change) error { changes += len(p); return nil })
				if err == nil && changes == 0 {
					t.Error("the change log came back empty")
				}
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("got %v, want the retries to succeed", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
			tc.check(t, sl.take())
			st := emu.Stats()
			if n := st.Requests[tc.fault.Endpoint]; tc.call == "site" && n != int64(tc.tries) {
				t.Errorf("the emulator saw %d requests, want %d", n, tc.tries)
			}
			if n := st.Requests[tc.fault.Endpoint]; tc.call == "changes" && n != int64(tc.tries)+boolInt(err == nil) {
				t.Errorf("the emulator saw %d getchanges, want %d", n, int64(tc.tries)+boolInt(err == nil)) // +1: the empty last page
			}
			if _, retries := c.Stats().Snapshot(); retries != tc.tries-1 {
				t.Errorf("the client counted %d retries, want %d", retries, tc.tries-1)
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func equalWaits(t *testing.T, got []time.Duration, want ...time.Duration) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got waits %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("wait %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

// TestRetryAfterDate honours a Retry-After HTTP date, and falls back to
// backoff when the date has passed. The emulator sends only seconds, so a
// tiny server sends the date.
func TestRetryAfterDate(t *testing.T) {
	const base = 2 * time.Second
	for _, tc := range []struct {
		name   string
		offset time.Duration // date - now
	}{
		{"a date 40 s ahead", 40 * time.Second},
		{"a date past", -time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var date time.Time
			var mu sync.Mutex
			calls := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls == 1 {
					w.Header().Set("Retry-After", date.Format(http.TimeFormat))
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				io.WriteString(w, `{"d":{"Id":"{5A0E}","Url":"http://x/sites/mkt","ServerRelativeUrl":"/sites/mkt","CurrentChangeToken":{"StringValue":"1;1;5a0e;1;5"}}}`)
			}))
			t.Cleanup(srv.Close)
			var sl sleeps
			c := newEmuClient(t, sharepoint.Config{SiteURL: srv.URL + "/sites/mkt", BackoffBase: base, BackoffMax: 5 * time.Minute, Sleep: sl.sleep})
			date = time.Now().Add(tc.offset).Truncate(time.Second)
			before := time.Now()
			if _, err := c.Site(context.Background()); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			waits := sl.take()
			if len(waits) != 1 || calls != 2 {
				t.Fatalf("got waits %v over %d requests, want one wait between 2 requests", waits, calls)
			}
			lo, hi := date.Sub(after), date.Sub(before)
			if tc.offset < 0 {
				lo, hi = base/2, base // the backoff's first wait
			}
			if waits[0] < lo || waits[0] > hi {
				t.Errorf("got wait %v, want between %v and %v", waits[0], lo, hi)
			}
		})
	}
}

// TestHealthScoreSlowdown raises the emulator's X-SharePointHealthScore
// step by step: from the slowdown score (8) the client pauses before its
// next request, one BackoffBase per point above 7, and stops pausing once
// the score falls. The pauses are real (2.5 s in all): a pause lasts until
// a time on the real clock.
func TestHealthScoreSlowdown(t *testing.T) {
	const base = 250 * time.Millisecond
	emu, u := startEmu(t, spemu.Options{}, spemu.Spec{Seed: 62, SiteNames: []string{"mkt"}, ItemsPerList: 3, PlainNames: true})
	sl := sleeps{real: true}
	c := newEmuClient(t, sharepoint.Config{SiteURL: u + "/sites/mkt", BackoffBase: base, BackoffMax: time.Minute, Sleep: sl.sleep})
	for i, st := range []struct {
		score int           // the emulator's score for this request's response
		pause time.Duration // the pause before this request, from the last response's score
	}{
		{0, 0},
		{7, 0},
		{8, 0},
		{9, 1 * base},
		{10, 2 * base},
		{10, 3 * base},
		{3, 3 * base},
		{3, 0},
	} {
		emu.SetHealthScore(st.score)
		if _, err := c.Site(context.Background()); err != nil {
			t.Fatal(err)
		}
		waits := sl.take()
		switch {
		case st.pause == 0 && len(waits) != 0:
			t.Errorf("request %d: got waits %v, want none", i, waits)
		case st.pause > 0 && (len(waits) != 1 || waits[0] > st.pause || waits[0] < st.pause-100*time.Millisecond):
			t.Errorf("request %d: got waits %v, want one of about %v", i, waits, st.pause)
		}
	}
	if n := emu.Stats().Requests[spemu.EndpointWeb]; n != 8 {
		t.Errorf("the emulator served %d requests, want 8", n)
	}
}

// TestThrottledPageIsAnError throttles a list's pages from the second on:
// Items returns the error after its retries instead of ending the list
// early as if it were complete.
func TestThrottledPageIsAnError(t *testing.T) {
	emu, u := startEmu(t, spemu.Options{}, spemu.Spec{Seed: 63, SiteNames: []string{"mkt"}, ItemsPerList: 9, PlainNames: true})
	var sl sleeps
	c := newEmuClient(t, sharepoint.Config{SiteURL: u + "/sites/mkt", MaxRetries: 2, Sleep: sl.sleep})
	ctx := context.Background()
	webs, err := c.Webs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := c.Lists(ctx, webs[0])
	if err != nil || len(lists) == 0 {
		t.Fatalf("lists %v, %v", lists, err)
	}
	seen := 0
	err = c.Items(ctx, lists[0], 0, 3, func(sharepoint.Item) error {
		if seen++; seen == 3 {
			emu.InjectFault(spemu.Fault{Endpoint: spemu.EndpointItems, Status: 503, Count: 100})
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "keeps throttling") {
		t.Errorf("got error %v, want the throttling error", err)
	}
	if seen != 3 || len(sl.take()) != 2 {
		t.Errorf("read %d items, want the first page's 3, then 2 retries", seen)
	}
}
