package crawl

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPipeline checks the full crawl's delivery pipeline: deliveries run
// deliveriesInFlight at once, their follow-ups (the checkpoint moves) run
// in order even when later deliveries finish first, and after a failure no
// later follow-up runs and do and wait report the error.
func TestPipeline(t *testing.T) {
	boom := errors.New("relay refused the batch")
	for _, tc := range []struct {
		name     string
		failAt   int // the delivery that fails; -1 none
		wantThen []int
	}{
		{"in order, out-of-order acknowledgements", -1, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"a failure stops the follow-ups", 3, []int{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPipeline()
			var (
				mu             sync.Mutex
				then           []int
				inFlight, most atomic.Int32
			)
			var doErr error
			for i := range 8 {
				deliver := func() error {
					n := inFlight.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					defer inFlight.Add(-1)
					// Even deliveries take longer: odd ones finish first.
					time.Sleep(time.Duration(5*((i+1)%2)+1) * time.Millisecond)
					if i == tc.failAt {
						return boom
					}
					return nil
				}
				if i == 4 {
					deliver = nil // a follow-up with nothing to deliver (a list done)
				}
				err := p.do(deliver, func() error {
					mu.Lock()
					defer mu.Unlock()
					then = append(then, i)
					return nil
				})
				if err != nil {
					doErr = err
					break
				}
			}
			err := p.wait()
			if tc.failAt >= 0 {
				if !errors.Is(err, boom) {
					t.Errorf("wait: got %v, want the delivery's error", err)
				}
				if doErr != nil && !errors.Is(doErr, boom) {
					t.Errorf("do: got %v, want the delivery's error or nil", doErr)
				}
			} else if err != nil || doErr != nil {
				t.Errorf("got do %v, wait %v; want no error", doErr, err)
			}
			if !slices.Equal(then, tc.wantThen) {
				t.Errorf("follow-ups ran for %v, want %v", then, tc.wantThen)
			}
			if m := most.Load(); m > deliveriesInFlight || (tc.failAt < 0 && m < 2) {
				t.Errorf("%d deliveries at once, want 2 to %d", m, deliveriesInFlight)
			}
			if err2 := p.wait(); !errors.Is(err2, err) && err2 != err {
				t.Errorf("a second wait: got %v, want %v", err2, err)
			}
		})
	}
}
