package callerauth

import (
	"sync"
	"time"
)

// VerifiedTTL is the longest a verified token is remembered: a key removed
// from the issuer's key set stops accepting its tokens within it.
const VerifiedTTL = time.Minute

// maxVerified bounds the cache of verified tokens.
const maxVerified = 10000

// verifiedCache remembers tokens whose signature and claims verified, by
// the SHA-256 of the token, until a time no later than their exp. The zero
// value is ready.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[32]byte]verifiedToken // guarded by mu
}

type verifiedToken struct {
	c     Caller
	until time.Time
}

// get returns the caller of a remembered token still valid at now.
func (v *verifiedCache) get(key [32]byte, now time.Time) (Caller, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.m[key]
	if !ok {
		return Caller{}, false
	}
	if !now.Before(e.until) {
		delete(v.m, key)
		return Caller{}, false
	}
	c := e.c
	c.Roles = append([]string(nil), e.c.Roles...) // callers may not share the slice
	return c, true
}

// put remembers a verified token until until. When the cache is full,
// expired entries go first, then an arbitrary half.
func (v *verifiedCache) put(key [32]byte, c Caller, until, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[[32]byte]verifiedToken)
	}
	if len(v.m) >= maxVerified {
		for k, e := range v.m {
			if !now.Before(e.until) {
				delete(v.m, k)
			}
		}
		for k := range v.m {
			if len(v.m) < maxVerified/2 {
				break
			}
			delete(v.m, k)
		}
	}
	c.Roles = append([]string(nil), c.Roles...)
	v.m[key] = verifiedToken{c: c, until: until}
}
