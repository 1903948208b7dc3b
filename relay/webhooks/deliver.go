package webhooks

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"
)

// Delivery tuning.
const (
	// maxInFlight bounds the endpoints delivered to at once.
	maxInFlight = 16
	// deliveryTimeout bounds one Deliver call.
	deliveryTimeout = time.Minute
	// maxIdle bounds how long the loop sleeps without looking at the
	// queue, in case the clock jumped.
	maxIdle = time.Minute
	// storeRetry is how long the loop waits after a store failure.
	storeRetry = time.Second
	// pruneInterval is how often expired seen keys and old delivered
	// events are deleted; deliveredRetention is how long delivered events
	// are kept.
	pruneInterval      = 10 * time.Minute
	deliveredRetention = 7 * 24 * time.Hour
	// maxErrorLen bounds the stored text of a delivery error.
	maxErrorLen = 1024
)

// Backoff returns the delay after failed attempt number attempt (from 1):
// BaseBackoff doubled per earlier failure, at most MaxBackoff.
func Backoff(attempt int) time.Duration {
	d := BaseBackoff
	for i := 1; i < attempt && d < MaxBackoff; i++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// Run delivers queued events until ctx ends or the Hub is closed, then
// waits for deliveries in progress and returns nil (ErrClosed when the Hub
// was closed before, ErrRunning when another Run is active). Store
// failures are logged and retried; they do not end Run.
func (h *Hub) Run(ctx context.Context) error {
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return ErrClosed
	case h.running:
		h.mu.Unlock()
		return ErrRunning
	}
	h.running = true
	h.runs.Add(1)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.running = false
		h.mu.Unlock()
		h.runs.Done()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		select {
		case <-h.closing:
			cancel()
		case <-gctx.Done():
		}
		return nil
	})
	g.Go(func() error { return h.loop(gctx, g) })
	g.Wait()
	return nil
}

// loop is Run's scheduler: it starts a delivery for the head of every
// endpoint that is due and has a subscriber, one at a time per endpoint,
// and sleeps until the next is due or something changes. Only this
// goroutine touches inFlight.
func (h *Hub) loop(ctx context.Context, g *errgroup.Group) error {
	inFlight := make(map[endpointKey]bool)
	done := make(chan endpointKey, maxInFlight)
	nextPrune := h.cfg.Now()
	for {
		now := h.cfg.Now()
		if !now.Before(nextPrune) {
			if n, err := h.store.prune(ctx, now, now.Add(-deliveredRetention)); err != nil {
				if ctx.Err() == nil {
					h.log.Warn("webhook store prune failed", "err", err)
				}
			} else if n > 0 {
				h.log.Debug("webhook store pruned", "rows", n)
			}
			nextPrune = now.Add(pruneInterval)
		}
		wakeAt := now.Add(maxIdle)
		if nextPrune.Before(wakeAt) {
			wakeAt = nextPrune
		}
		heads, err := h.store.heads(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.log.Warn("webhook queue read failed; retrying", "err", err)
			wakeAt = now.Add(storeRetry)
		}
		for _, hd := range heads {
			if inFlight[hd.ep] || len(inFlight) >= maxInFlight {
				continue
			}
			sub := h.subscriber(hd.ep.system)
			if sub == nil {
				continue
			}
			if hd.nextAttemptAt.After(now) {
				if hd.nextAttemptAt.Before(wakeAt) {
					wakeAt = hd.nextAttemptAt
				}
				continue
			}
			inFlight[hd.ep] = true
			g.Go(func() error {
				h.deliver(ctx, sub, hd)
				done <- hd.ep // never blocks: len(done) >= len(inFlight)
				return nil
			})
		}
		t := time.NewTimer(wakeAt.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case ep := <-done:
			delete(inFlight, ep)
		case <-h.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliver makes one attempt at the head event and records its outcome.
func (h *Hub) deliver(ctx context.Context, sub Subscriber, hd head) {
	ev, state, err := h.store.event(ctx, hd.id)
	if err != nil || state != stateQueued {
		if err != nil && ctx.Err() == nil {
			h.log.Warn("webhook event not loaded; retrying", "id", hd.id, "err", err)
			t := time.NewTimer(storeRetry) // keep a failing store from spinning the loop
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		return
	}
	ev.Attempt++
	dctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	err = safeDeliver(dctx, sub, ev)
	cancel()
	if err != nil && ctx.Err() != nil {
		return // shutting down: not an attempt
	}
	// The outcome is recorded even if ctx ends now: a delivered event must
	// not be delivered again for want of a write.
	wctx := context.WithoutCancel(ctx)
	now := h.cfg.Now()
	log := h.log.With("system", ev.System, "tenant", ev.Tenant, "id", ev.ID, "attempt", ev.Attempt)
	switch {
	case err == nil:
		err = h.store.finish(wctx, ev.ID, ev.Attempt, stateDelivered, "", now, now)
		h.metrics.delivery(ev.System, deliveryDelivered)
		log.Debug("webhook event delivered")
	case ev.Attempt >= h.cfg.MaxAttempts || errors.Is(err, ErrPermanent):
		msg := truncate(err.Error())
		err = h.store.finish(wctx, ev.ID, ev.Attempt, stateDead, msg, now, now)
		h.metrics.delivery(ev.System, deliveryDead)
		log.Warn("webhook event dead; replay it once the subscriber is fixed", "err", msg)
	default:
		msg := truncate(err.Error())
		next := now.Add(Backoff(ev.Attempt))
		err = h.store.finish(wctx, ev.ID, ev.Attempt, stateQueued, msg, next, now)
		h.metrics.delivery(ev.System, deliveryRetry)
		log.Info("webhook delivery failed; will retry", "err", msg, "retryAt", next)
	}
	if err != nil {
		log.Error("webhook delivery outcome not recorded; the event will be delivered again", "err", err)
	}
}

// safeDeliver calls sub.Deliver, turning a panic into an error.
func safeDeliver(ctx context.Context, sub Subscriber, ev Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("subscriber panicked: %v", p)
		}
	}()
	return sub.Deliver(ctx, ev)
}

// truncate bounds s to about maxErrorLen bytes, on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	i := maxErrorLen
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}
