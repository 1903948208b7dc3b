package webhooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 8 * time.Second},
		{8, 128 * time.Second}, {9, 256 * time.Second}, {10, 5 * time.Minute}, {1000, 5 * time.Minute},
		{0, time.Second},
	}
	for _, tc := range tests {
		if got := Backoff(tc.attempt); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

// recorder is a Subscriber that records every attempt and fails the
// events fail says to.
type recorder struct {
	mu       sync.Mutex
	attempts []attempt            // guarded by mu
	fail     func(ev Event) error // guarded by mu
}

type attempt struct {
	id, n  int64
	tenant string
	at     time.Time
}

func (r *recorder) Deliver(ctx context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, attempt{id: ev.ID, n: int64(ev.Attempt), tenant: ev.Tenant, at: time.Now()})
	if r.fail != nil {
		return r.fail(ev)
	}
	return nil
}

func (r *recorder) setFail(f func(Event) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = f
}

// of returns the attempts at event id.
func (r *recorder) of(id int64) []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	var as []attempt
	for _, a := range r.attempts {
		if a.id == id {
			as = append(as, a)
		}
	}
	return as
}

// TestRetryDeadReplay runs in a synctest bubble, whose fake clock is both
// Config.Now (time.Now) and Run's timers: a failing subscriber is retried
// after 1, 2 and 4 s, the event dies after MaxAttempts, later events of
// the same endpoint wait for it while other endpoints do not, and a
// replay delivers it.
func TestRetryDeadReplay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eps := []Endpoint{
			{System: "github", Tenant: "t1", Scheme: SchemeHMAC, Secret: hmacSecret},
			{System: "github", Tenant: "t2", Scheme: SchemeHMAC, Secret: hmacSecret},
		}
		th := openHub(t, Config{Endpoints: eps, MaxAttempts: 4})
		accept := func(tenant, body string) int64 {
			t.Helper()
			w := th.do(post("/webhooks/github/"+tenant, body, "X-Signature", "sha256="+hexMAC(hmacSecret, body)))
			if w.Code != 200 {
				t.Fatalf("accept: got %d %s", w.Code, w.Body)
			}
			var id int64
			if err := th.store.db.QueryRow("SELECT max(id) FROM events").Scan(&id); err != nil {
				t.Fatal(err)
			}
			return id
		}
		a := accept("t1", `{"n":"a"}`)
		b := accept("t1", `{"n":"b"}`)
		c := accept("t2", `{"n":"c"}`)

		rec := &recorder{}
		rec.setFail(func(ev Event) error {
			if ev.ID == a {
				return errors.New("subscriber down: 502")
			}
			return nil
		})
		th.Subscribe("github", rec)
		ctx, cancel := context.WithCancel(t.Context())
		runErr := make(chan error, 1)
		start := time.Now()
		go func() { runErr <- th.Run(ctx) }()

		synctest.Wait()
		if got := len(rec.of(c)); got != 1 {
			t.Fatalf("t2's event: got %d attempts at once, want 1 (endpoints do not wait for each other)", got)
		}
		if got := len(rec.of(b)); got != 0 {
			t.Fatalf("t1's second event: got %d attempts while the first is failing, want 0 (in order)", got)
		}

		time.Sleep(time.Minute) // far past 1+2+4 s
		synctest.Wait()
		as := rec.of(a)
		if len(as) != 4 {
			t.Fatalf("got %d attempts at the failing event, want MaxAttempts = 4", len(as))
		}
		for i, want := range []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second} {
			if got := as[i].at.Sub(start); got != want {
				t.Errorf("attempt %d at +%v, want +%v", i+1, got, want)
			}
			if as[i].n != int64(i+1) {
				t.Errorf("attempt %d carried Attempt %d", i+1, as[i].n)
			}
		}
		bs := rec.of(b)
		if len(bs) != 1 || bs[0].at.Sub(start) != 7*time.Second {
			t.Fatalf("t1's second event: got attempts %+v, want one at +7s, once the first was dead", bs)
		}

		dls, err := th.DeadLetters(t.Context(), Filter{System: "github"})
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) != 1 || dls[0].Event.ID != a || dls[0].Event.Attempt != 4 || dls[0].LastError != "subscriber down: 502" ||
			string(dls[0].Event.Body) != `{"n":"a"}` || !dls[0].DiedAt.Equal(start.Add(7*time.Second)) {
			t.Fatalf("got dead letters %+v, want event %d after 4 attempts at +7s", dls, a)
		}
		if dls, _ := th.DeadLetters(t.Context(), Filter{Tenant: "t2"}); len(dls) != 0 {
			t.Errorf("got %d dead letters for t2, want 0", len(dls))
		}
		if got := counterValue(t, th.reg, "bridge_webhook_deliveries_total", map[string]string{"system": "github", "result": "retry"}); got != 3 {
			t.Errorf("got %v retries counted, want 3", got)
		}
		if got := counterValue(t, th.reg, "bridge_webhook_deliveries_total", map[string]string{"system": "github", "result": "dead"}); got != 1 {
			t.Errorf("got %v deaths counted, want 1", got)
		}

		// Runbook 10.2: fix the subscriber, replay the dead letters.
		rec.setFail(nil)
		if _, err := th.Replay(t.Context(), Selection{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Replay of nothing named: got %v, want ErrInvalid", err)
		}
		if n, err := th.Replay(t.Context(), Selection{System: "github", Tenant: "t2"}); err != nil || n != 0 {
			t.Errorf("Replay of t2: got %d, %v, want 0 events", n, err)
		}
		n, err := th.Replay(t.Context(), Selection{IDs: []int64{a}})
		if err != nil || n != 1 {
			t.Fatalf("Replay: got %d, %v, want 1", n, err)
		}
		synctest.Wait()
		as = rec.of(a)
		if len(as) != 5 || as[4].n != 1 {
			t.Fatalf("got %d attempts after replay (last numbered %d), want a 5th, numbered 1 afresh", len(as), as[len(as)-1].n)
		}
		if got := th.countEvents(t, stateDelivered); got != 3 {
			t.Errorf("got %d delivered events, want 3", got)
		}
		if dls, _ := th.DeadLetters(t.Context(), Filter{}); len(dls) != 0 {
			t.Errorf("got %d dead letters after replay, want 0", len(dls))
		}

		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := th.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestPermanentAndPanic: an error wrapping ErrPermanent, and a panicking
// subscriber, each end as they should, without taking Run down.
func TestPermanentAndPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := openHub(t, Config{Endpoints: []Endpoint{
			{System: "github", Tenant: "t1", Scheme: SchemeHMAC, Secret: hmacSecret},
			{System: "github", Tenant: "t2", Scheme: SchemeHMAC, Secret: hmacSecret},
		}})
		for _, tenant := range []string{"t1", "t2"} {
			body := fmt.Sprintf(`{"tenant":%q}`, tenant)
			if w := th.do(post("/webhooks/github/"+tenant, body, "X-Signature", "sha256="+hexMAC(hmacSecret, body))); w.Code != 200 {
				t.Fatalf("accept: got %d", w.Code)
			}
		}
		var mu sync.Mutex
		calls := map[string]int{}
		th.Subscribe("github", SubscriberFunc(func(ctx context.Context, ev Event) error {
			mu.Lock()
			calls[ev.Tenant]++
			mu.Unlock()
			if ev.Tenant == "t1" {
				return Permanent(errors.New("410 gone"))
			}
			panic("subscriber bug")
		}))
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- th.Run(ctx) }()
		synctest.Wait() // Run is running
		if err := th.Run(ctx); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run: got %v, want ErrRunning", err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		mu.Lock()
		if calls["t1"] != 1 || calls["t2"] != DefaultMaxAttempts {
			t.Errorf("got calls %v, want t1 once (permanent) and t2 %d times", calls, DefaultMaxAttempts)
		}
		mu.Unlock()
		dls, err := th.DeadLetters(t.Context(), Filter{})
		if err != nil || len(dls) != 2 {
			t.Fatalf("got %d dead letters, %v; want 2", len(dls), err)
		}
		if dls[1].LastError != "subscriber panicked: subscriber bug" {
			t.Errorf("got last error %q, want the panic", dls[1].LastError)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		th.Close()
	})
}

// TestCloseStopsRun: Close ends a running Run and waits for it.
func TestCloseStopsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := openHub(t, Config{})
		done := make(chan error, 1)
		go func() { done <- th.Run(context.Background()) }()
		synctest.Wait()
		if err := th.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		default:
			t.Fatal("Run still running after Close returned")
		}
	})
}
