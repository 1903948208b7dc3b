// Package backoff computes reconnect delays: exponential growth with full
// jitter (a uniformly random delay between zero and the current cap), as
// described in "Exponential Backoff And Jitter" (AWS Architecture Blog), so a
// fleet of agents that lost the same relay does not reconnect in lockstep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is a backoff policy. The zero value of every field means its default.
type Policy struct {
	// Base is the cap of the first delay. Zero means 1s.
	Base time.Duration
	// Max is the largest cap. Zero means 60s.
	Max time.Duration
	// ResetAfter is how long a connection must stay up for the next failure
	// to start again from Base. Zero means 60s.
	ResetAfter time.Duration
	// Rand returns a number in [0, 1). Nil means math/rand/v2.
	Rand func() float64
}

func (p Policy) base() time.Duration {
	if p.Base <= 0 {
		return time.Second
	}
	return p.Base
}

func (p Policy) max() time.Duration {
	if p.Max <= 0 {
		return 60 * time.Second
	}
	return p.Max
}

// ResetAfterOrDefault is ResetAfter with its default applied.
func (p Policy) ResetAfterOrDefault() time.Duration {
	if p.ResetAfter <= 0 {
		return 60 * time.Second
	}
	return p.ResetAfter
}

// Cap is the largest delay after attempt failures (attempt counts from 1):
// Base doubled attempt-1 times, at most Max.
func (p Policy) Cap(attempt int) time.Duration {
	c := p.base()
	for i := 1; i < attempt && c < p.max(); i++ {
		c *= 2
	}
	return min(c, p.max())
}

// Delay is the full-jitter delay after attempt failures: uniform in [0, Cap(attempt)).
func (p Policy) Delay(attempt int) time.Duration {
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(r() * float64(p.Cap(attempt)))
}
