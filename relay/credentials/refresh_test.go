package credentials_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/credentials/credentialstest"
)

// concurrent calls Credential from n goroutines at once (released
// together) spread over the managers, and returns the tokens and errors.
func concurrent(t testing.TB, n int, ms ...*credentials.Manager) ([]string, []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tokens, errs := make([]string, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			c, err := ms[i%len(ms)].Credential(ctx, ownerReq(tenantA, system))
			tokens[i], errs[i] = c.Token.Reveal(), err
		})
	}
	close(start)
	wg.Wait()
	return tokens, errs
}

// checkAllNew checks that every call got the same new, valid token.
func checkAllNew(t testing.TB, p *credentialstest.Provider, old string, tokens []string, errs []error) {
	t.Helper()
	for i := range tokens {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if tokens[i] != tokens[0] || tokens[i] == old || !p.Valid(tokens[i]) {
			t.Fatalf("call %d got a different, old or invalid token (new %v, old %v, valid %v)",
				i, tokens[i] != tokens[0], tokens[i] == old, p.Valid(tokens[i]))
		}
	}
}

// TestConcurrentCallersOneRequest: 1,000 callers of one process find the
// token expired at once; exactly one refresh request reaches the provider.
func TestConcurrentCallersOneRequest(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager()
	e.connect(m, tenantA, system, e.prov)
	old, _ := e.credential(m)
	e.clock.Advance(time.Hour + time.Minute) // expired
	before := e.prov.Requests()
	tokens, errs := concurrent(t, 1000, m)
	checkAllNew(t, e.prov, old.Token.Reveal(), tokens, errs)
	if got := e.prov.Requests() - before; got != 1 {
		t.Fatalf("1,000 concurrent callers made %d token requests, want 1", got)
	}
	t.Logf("1000 concurrent callers at expiry -> %d token request", e.prov.Requests()-before)
}

// TestProcessesShareOneRefresh: three Managers (three relay processes)
// share credentials.db; 600 callers spread over them find the token
// expired; exactly one refresh request is made. The provider rotates
// refresh tokens and retires them at once, so a second refresh with the
// same token would get invalid_grant.
func TestProcessesShareOneRefresh(t *testing.T) {
	e := newEnv(t, testOptions())
	ms := []*credentials.Manager{e.manager(), e.manager(), e.manager()}
	e.connect(ms[0], tenantA, system, e.prov)
	old, _ := e.credential(ms[1])
	for round := range 3 { // three expiries in a row
		e.clock.Advance(time.Hour + time.Minute)
		before := e.prov.Requests()
		tokens, errs := concurrent(t, 600, ms...)
		checkAllNew(t, e.prov, old.Token.Reveal(), tokens, errs)
		if got := e.prov.Requests() - before; got != 1 {
			t.Fatalf("round %d: 3 processes x 200 callers made %d token requests, want 1", round, got)
		}
		old.Token = connectors.Secret(tokens[0])
	}
	c := e.mustGet(ms[2], tenantA, system)
	if c.State != credentials.StateActive || c.LeaseOwner != "" {
		t.Fatalf("got %+v, want ACTIVE with no lease", c)
	}
	if len(e.hook.Bodies()) != 0 {
		t.Fatalf("got alerts %v, want none", e.hook.Bodies())
	}
}

var errCrash = errors.New("simulated crash between the token response and the commit")

// TestCrashBeforeCommit: a process dies after the provider answered the
// refresh and before the new tokens were committed. The connection is
// not lost and not EXPIRED when the provider still takes the old refresh
// token (non-rotating, or rotating with a reuse grace), whether the next
// attempt comes from another process (after the lease expires) or from
// the same one. With strict rotation (no grace) the new refresh token died
// with the process: the connection goes EXPIRED and the owner is alerted,
// never silently.
func TestCrashBeforeCommit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		opts      credentialstest.Options
		sameProc  bool
		wantState credentials.State
	}{
		{"non-rotating provider, next process", credentialstest.Options{}, false, credentials.StateActive},
		{"rotating with reuse grace, next process", credentialstest.Options{Rotate: true, ReuseGrace: 10 * time.Minute}, false, credentials.StateActive},
		{"rotating with reuse grace, same process", credentialstest.Options{Rotate: true, ReuseGrace: 10 * time.Minute}, true, credentials.StateActive},
		{"strict rotation: loss reported", credentialstest.Options{Rotate: true}, false, credentials.StateAlert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			m1 := e.manager()
			e.connect(m1, tenantA, system, e.prov)
			credentials.SetHooks(m1, nil, func(string, string) error { return errCrash })
			e.clock.Advance(time.Hour + time.Minute)
			if _, err := e.credential(m1); !errors.Is(err, errCrash) {
				t.Fatalf("got %v, want the simulated crash", err)
			}
			c := e.mustGet(m1, tenantA, system)
			if c.State != credentials.StateRefreshing || !c.HasRefreshToken {
				t.Fatalf("after the crash: got %s (refresh token %v), want REFRESHING with the old refresh token", c.State, c.HasRefreshToken)
			}
			next := m1
			if tc.sameProc {
				credentials.SetHooks(m1, nil, nil) // the restarted process
			} else {
				m1.Close()
				next = e.manager()
				// The dead process's lease stops others until it expires.
				if c := e.mustGet(next, tenantA, system); c.LeaseOwner != m1.Owner() || !c.LeaseUntil.After(e.clock.Now()) {
					t.Fatalf("got lease %s until %v, want m1's, in the future", c.LeaseOwner, c.LeaseUntil)
				}
				e.clock.Advance(2*5*time.Second + time.Second) // past LeaseDuration = 2 x MaxRefreshDuration
			}
			cred, err := e.credential(next)
			got := e.mustGet(next, tenantA, system)
			if got.State != tc.wantState {
				t.Fatalf("got state %s (%v), want %s", got.State, err, tc.wantState)
			}
			if tc.wantState == credentials.StateActive {
				if err != nil || !e.prov.Valid(cred.Token.Reveal()) {
					t.Fatalf("got %v, want a valid token after recovery", err)
				}
				if n := len(e.hook.Bodies()); n != 0 {
					t.Fatalf("got %d alerts, want none", n)
				}
			} else if !errors.Is(err, credentials.ErrReauthorize) || len(e.hook.Bodies()) != 1 {
				t.Fatalf("got %v and %d alerts, want ErrReauthorize and one alert", err, len(e.hook.Bodies()))
			}
		})
	}
}

// blocker lets a test hold a refresh at a hook.
type blocker struct {
	reached, release chan struct{}
	once             sync.Once
}

func newBlocker() *blocker {
	return &blocker{reached: make(chan struct{}), release: make(chan struct{})}
}

// hold blocks the first caller until release is closed.
func (b *blocker) hold() {
	first := false
	b.once.Do(func() { first = true })
	if first {
		close(b.reached)
		<-b.release
	}
}

func (b *blocker) wait(t testing.TB) {
	t.Helper()
	select {
	case <-b.reached:
	case <-time.After(10 * time.Second):
		t.Fatal("the refresh never reached the hook")
	}
}

type result struct {
	cred connectors.Credential
	err  error
}

// TestInvalidGrant separates a refresh token another process rotated
// (re-read the store, no EXPIRED, no alert) from a grant the provider
// revoked (EXPIRED, then ALERT with one alert carrying no secret).
func TestInvalidGrant(t *testing.T) {
	t.Run("rotated by another process", func(t *testing.T) {
		e := newEnv(t, testOptions()) // rotation, old tokens retired at once
		reg := prometheus.NewRegistry()
		met, _ := credentials.NewMetrics(reg)
		m1 := e.manager(func(c *credentials.Config) { c.Metrics = met })
		m2 := e.manager()
		e.connect(m1, tenantA, system, e.prov)
		b := newBlocker()
		credentials.SetHooks(m1, func(string, string) { b.hold() }, nil)
		e.clock.Advance(time.Hour + time.Minute)

		done := make(chan result, 1)
		go func() { c, err := e.credential(m1); done <- result{c, err} }()
		b.wait(t) // m1 holds the lease and is about to send the refresh token
		// m1 stalls past its lease; m2 takes over, rotates and commits.
		e.clock.Advance(10*time.Second + time.Second)
		c2, err := e.credential(m2)
		if err != nil {
			t.Fatalf("m2: %v", err)
		}
		close(b.release) // m1 now sends the retired refresh token: invalid_grant
		r1 := <-done
		if r1.err != nil || r1.cred.Token != c2.Token {
			t.Fatalf("m1: got %v (same token as m2: %v), want m2's token from the store", r1.err, r1.cred.Token == c2.Token)
		}
		c := e.mustGet(m1, tenantA, system)
		if c.State != credentials.StateActive || len(e.hook.Bodies()) != 0 {
			t.Fatalf("got state %s and %d alerts, want ACTIVE and none", c.State, len(e.hook.Bodies()))
		}
		if got := e.prov.Count("refresh_token"); got != 2 {
			t.Errorf("got %d refresh requests, want 2 (m2's, m1's refused one)", got)
		}
		if got := counter(t, reg, "bridge_credentials_refresh_total", "result", credentials.ResultSuperseded); got != 1 {
			t.Errorf("got superseded = %v, want 1", got)
		}
	})

	t.Run("revoked at the provider", func(t *testing.T) {
		e := newEnv(t, testOptions())
		m := e.manager()
		e.connect(m, tenantA, system, e.prov)
		e.prov.RevokeAll()
		e.clock.Advance(time.Hour + time.Minute)
		_, err := e.credential(m)
		if !errors.Is(err, connectors.ErrNoCredential) || !errors.Is(err, credentials.ErrReauthorize) {
			t.Fatalf("got %v, want ErrNoCredential and ErrReauthorize", err)
		}
		c := e.mustGet(m, tenantA, system)
		if c.State != credentials.StateAlert || c.HasRefreshToken || !strings.Contains(c.LastError, "invalid_grant") {
			t.Fatalf("got %+v, want ALERT, tokens deleted, last error invalid_grant", c)
		}
		checkAlert(t, e, 1)
		// Later calls and scans neither ask the provider nor alert again.
		before := e.prov.Requests()
		if _, err := e.credential(m); !errors.Is(err, credentials.ErrReauthorize) {
			t.Fatalf("second call: got %v, want ErrReauthorize", err)
		}
		if err := m.Scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		if e.prov.Requests() != before {
			t.Errorf("an ALERT connection reached the provider")
		}
		checkAlert(t, e, 1)
		// Authorizing again clears it.
		if c := e.connect(m, tenantA, system, e.prov); c.State != credentials.StateActive || c.LastError != "" {
			t.Fatalf("got %+v, want ACTIVE again", c)
		}
	})

	t.Run("alert retried by the scanner", func(t *testing.T) {
		e := newEnv(t, testOptions())
		m := e.manager()
		e.connect(m, tenantA, system, e.prov)
		e.prov.RevokeAll()
		e.hook.SetStatus(500)
		e.clock.Advance(time.Hour + time.Minute)
		e.credential(m)
		if c := e.mustGet(m, tenantA, system); c.State != credentials.StateExpired {
			t.Fatalf("webhook down: got %s, want EXPIRED", c.State)
		}
		e.hook.SetStatus(200)
		m.Scan(context.Background())
		if c := e.mustGet(m, tenantA, system); c.State != credentials.StateAlert {
			t.Fatalf("after the scan: got %s, want ALERT", c.State)
		}
		if got := len(e.hook.Bodies()); got != 2 {
			t.Fatalf("got %d alert POSTs, want 2 (refused, then sent)", got)
		}
	})
}

// checkAlert checks that n alerts arrived, each Slack-shaped and without
// a secret.
func checkAlert(t testing.TB, e *env, n int) {
	t.Helper()
	bodies := e.hook.Bodies()
	if len(bodies) != n {
		t.Fatalf("got %d alert POSTs, want %d", len(bodies), n)
	}
	for _, b := range bodies {
		var msg map[string]any
		if err := json.Unmarshal([]byte(b), &msg); err != nil || len(msg) != 1 || msg["text"] == "" {
			t.Fatalf("alert %q is not {\"text\": ...}", b)
		}
		if !strings.Contains(b, tenantA) || !strings.Contains(b, system) {
			t.Errorf("alert %q does not name the tenant and system", b)
		}
		for _, s := range append(e.prov.Secrets(), e.key.Reveal()) {
			if strings.Contains(b, s) {
				t.Fatalf("alert %q carries a secret", b)
			}
		}
	}
}

// TestFencedRefresh: a refresh whose lease expired mid-flight is fenced
// out by the version check. Its tokens are dropped when another process
// stored newer ones, and kept when nobody did (they are then the only
// working ones: the provider retired the refresh token they replace).
func TestFencedRefresh(t *testing.T) {
	t.Run("newer tokens stored: stale write rejected", func(t *testing.T) {
		e := newEnv(t, credentialstest.Options{Rotate: true, ReuseGrace: time.Hour})
		m1, m2 := e.manager(), e.manager()
		e.connect(m1, tenantA, system, e.prov)
		b := newBlocker()
		credentials.SetHooks(m1, nil, func(string, string) error { b.hold(); return nil })
		e.clock.Advance(time.Hour + time.Minute)
		done := make(chan result, 1)
		go func() { c, err := e.credential(m1); done <- result{c, err} }()
		b.wait(t) // m1 has new tokens in hand, not committed
		e.clock.Advance(11 * time.Second)
		c2, err := e.credential(m2) // takes over and commits its own
		if err != nil {
			t.Fatal(err)
		}
		close(b.release)
		r1 := <-done
		if r1.err != nil || r1.cred.Token != c2.Token {
			t.Fatalf("m1: got %v (m2's token: %v), want m2's token", r1.err, r1.cred.Token == c2.Token)
		}
		c3, _ := e.credential(m1)
		if c3.Token != c2.Token || e.mustGet(m1, tenantA, system).State != credentials.StateActive {
			t.Fatalf("the stale refresh overwrote the newer tokens")
		}
	})
	t.Run("no newer tokens: fenced tokens kept", func(t *testing.T) {
		e := newEnv(t, testOptions()) // strict rotation
		m1, m2 := e.manager(), e.manager()
		e.connect(m1, tenantA, system, e.prov)
		b1, b2 := newBlocker(), newBlocker()
		credentials.SetHooks(m1, nil, func(string, string) error { b1.hold(); return nil })
		credentials.SetHooks(m2, func(string, string) { b2.hold() }, nil)
		e.clock.Advance(time.Hour + time.Minute)
		done1, done2 := make(chan result, 1), make(chan result, 1)
		go func() { c, err := e.credential(m1); done1 <- result{c, err} }()
		b1.wait(t) // m1 rotated the refresh token at the provider
		e.clock.Advance(11 * time.Second)
		go func() { c, err := e.credential(m2); done2 <- result{c, err} }()
		b2.wait(t) // m2 took the lease over, about to send the retired token
		close(b1.release)
		r1 := <-done1 // fenced; kept its tokens
		close(b2.release)
		r2 := <-done2 // invalid_grant, but the row changed: reads m1's tokens
		if r1.err != nil || r2.err != nil || r1.cred.Token != r2.cred.Token || !e.prov.Valid(r1.cred.Token.Reveal()) {
			t.Fatalf("got m1 %v, m2 %v (same token %v); want both with m1's valid token", r1.err, r2.err, r1.cred.Token == r2.cred.Token)
		}
		if c := e.mustGet(m1, tenantA, system); c.State != credentials.StateActive || len(e.hook.Bodies()) != 0 {
			t.Fatalf("got %s and %d alerts, want ACTIVE and none", c.State, len(e.hook.Bodies()))
		}
		// The kept refresh token works.
		e.clock.Advance(time.Hour + time.Minute)
		if _, err := e.credential(m2); err != nil {
			t.Fatalf("next refresh: %v", err)
		}
	})
}

// TestTransientFailures: 503s are retried within a refresh; a refresh
// that fails while the token still works hands out the current token and
// backs off; one that fails after expiry reports a passing failure (not
// "no credential"); recovery clears the failure count.
func TestTransientFailures(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager(func(c *credentials.Config) { c.MaxRefreshDuration = time.Second })
	e.connect(m, tenantA, system, e.prov)
	old, _ := e.credential(m)

	e.clock.Advance(57 * time.Minute) // due (RefreshAhead 5 min), still valid
	e.prov.FailNext(1, 503)
	before := e.prov.Requests()
	c, err := e.credential(m)
	if err != nil || c.Token == old.Token || e.prov.Requests()-before != 2 {
		t.Fatalf("one 503 then success: got %v, new token %v, %d requests; want a new token after 2 requests",
			err, c.Token != old.Token, e.prov.Requests()-before)
	}
	old = c

	e.clock.Advance(57 * time.Minute)
	e.prov.FailNext(1000, 503)
	c, err = e.credential(m)
	if err != nil || c.Token != old.Token {
		t.Fatalf("provider down, token valid: got %v (same token %v), want the current token", err, c.Token == old.Token)
	}
	v := e.mustGet(m, tenantA, system)
	if v.Failures != 1 || !strings.Contains(v.LastError, "temporarily_unavailable") || !v.NextAttempt.After(e.clock.Now()) || v.State != credentials.StateActive {
		t.Fatalf("got %+v, want ACTIVE, 1 failure, last error temporarily_unavailable, a next attempt", v)
	}
	before = e.prov.Requests()
	if _, err := e.credential(m); err != nil || e.prov.Requests() != before {
		t.Fatalf("backing off: got %v and %d requests, want the current token and none", err, e.prov.Requests()-before)
	}

	e.clock.Advance(4 * time.Minute) // expired
	_, err = e.credential(m)
	if !errors.Is(err, credentials.ErrRefreshFailed) || errors.Is(err, connectors.ErrNoCredential) ||
		connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Fatalf("provider down, token expired: got %v, want an unavailable ErrRefreshFailed", err)
	}
	if v := e.mustGet(m, tenantA, system); v.State != credentials.StateActive || v.Failures != 2 {
		t.Fatalf("got %s with %d failures, want ACTIVE with 2", v.State, v.Failures)
	}

	e.prov.FailNext(0, 0)
	if c, err = e.credential(m); err != nil || !e.prov.Valid(c.Token.Reveal()) {
		t.Fatalf("after recovery: %v", err)
	}
	if v := e.mustGet(m, tenantA, system); v.Failures != 0 || v.LastError != "" {
		t.Fatalf("got %+v, want failures cleared", v)
	}
}

// TestRefreshTokenOmitted: a provider that sends no refresh_token in
// refresh responses; the old one is kept and keeps working.
func TestRefreshTokenOmitted(t *testing.T) {
	e := newEnv(t, credentialstest.Options{OmitRefreshToken: true})
	m := e.manager()
	e.connect(m, tenantA, system, e.prov)
	for i := range 3 {
		e.clock.Advance(time.Hour + time.Minute)
		c, err := e.credential(m)
		if err != nil || !e.prov.Valid(c.Token.Reveal()) {
			t.Fatalf("refresh %d: %v", i, err)
		}
		if v := e.mustGet(m, tenantA, system); !v.HasRefreshToken {
			t.Fatalf("refresh %d dropped the refresh token", i)
		}
	}
}

// TestSevenDays runs seven simulated days of three systems whose tokens
// live 1 h, 12 h and 24 h, with the scanner every 10 minutes and callers
// at random moments and just before each scan: no caller ever gets an
// expired token, and the scanner alone keeps them fresh (no caller waits
// for a refresh).
func TestSevenDays(t *testing.T) {
	e := newEnv(t, testOptions())
	lifetimes := map[string]time.Duration{"asana": time.Hour, "slack": 12 * time.Hour, "adobe": 24 * time.Hour}
	provs := map[string]*credentialstest.Provider{}
	var cfgProviders []credentials.Provider
	for sys, ttl := range lifetimes {
		provs[sys] = credentialstest.NewProvider(t, credentialstest.Options{Rotate: true, TTL: ttl, Now: e.clock.Now})
		cfgProviders = append(cfgProviders, e.provider(sys, provs[sys]))
	}
	const scan = 10 * time.Minute
	m := e.manager(func(c *credentials.Config) {
		c.Providers = cfgProviders
		c.ScanInterval, c.MaxRefreshDuration, c.Window = scan, time.Minute, 20*time.Minute
	})
	for sys, p := range provs {
		e.connect(m, tenantA, sys, p)
	}
	ctx := context.Background()
	end := t0.Add(7 * 24 * time.Hour)
	var calls, onDemand, scanned int
	requests := func() (n int) {
		for _, p := range provs {
			n += p.Requests()
		}
		return n
	}
	check := func(at time.Time) {
		e.clock.Set(at)
		for sys, p := range provs {
			before := requests()
			c, err := m.Credential(ctx, ownerReq(tenantA, sys))
			onDemand += requests() - before
			calls++
			if err != nil {
				t.Fatalf("%v: %s: %v", at, sys, err)
			}
			if !c.Expires.After(at) || !p.Valid(c.Token.Reveal()) {
				t.Fatalf("%v: %s: a caller got an expired token (expires %v)", at, sys, c.Expires)
			}
		}
	}
	start := requests()
	i := 0
	for now := t0; now.Before(end); now = now.Add(scan) {
		e.clock.Set(now)
		before := requests()
		if err := m.Scan(ctx); err != nil {
			t.Fatal(err)
		}
		scanned += requests() - before
		// One caller at a pseudo-random moment, one just before the next scan.
		check(now.Add(time.Duration(i*7919%600) * time.Second))
		check(now.Add(scan - time.Millisecond))
		i++
	}
	if onDemand != 0 {
		t.Errorf("callers triggered %d refreshes, want 0: the scanner should have refreshed every token ahead", onDemand)
	}
	perSystem := map[string]int{}
	for sys, p := range provs {
		perSystem[sys] = p.Count("refresh_token")
		want := int(7 * 24 * time.Hour / (lifetimes[sys] - 20*time.Minute)) // refreshed when 20 min are left
		if got := perSystem[sys]; got < want-1 || got > want+1 {
			t.Errorf("%s (%v tokens): got %d refreshes in 7 days, want about %d", sys, lifetimes[sys], got, want)
		}
	}
	t.Logf("7 days, %d scans, %d Credential calls: %d refreshes by the scanner (%v), %d on demand, 0 expired tokens seen",
		i, calls, requests()-start, perSystem, onDemand)
}

// TestRun: the background scanner refreshes a token about to expire with
// no caller asking, and returns when its context ends.
func TestRun(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager(func(c *credentials.Config) {
		c.ScanInterval, c.MaxRefreshDuration, c.Window = 20*time.Millisecond, time.Second, 45*time.Minute
	})
	e.connect(m, tenantA, system, e.prov)
	e.clock.Advance(30 * time.Minute) // within Window, not within RefreshAhead
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.prov.Count("refresh_token") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := e.prov.Count("refresh_token"); got != 1 {
		t.Fatalf("got %d refreshes by Run, want 1", got)
	}
	if v := e.mustGet(m, tenantA, system); !v.Expires.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("got expiry %v, want an hour from now", v.Expires)
	}
}

// TestMetrics checks the three metric families.
func TestMetrics(t *testing.T) {
	e := newEnv(t, testOptions())
	reg := prometheus.NewRegistry()
	met, err := credentials.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m := e.manager(func(c *credentials.Config) { c.Metrics = met })
	e.connect(m, tenantA, system, e.prov)
	e.clock.Advance(time.Hour + time.Minute)
	if _, err := e.credential(m); err != nil {
		t.Fatal(err)
	}
	m.Scan(context.Background())
	for _, tc := range []struct {
		family, label, value string
		want                 float64
	}{
		{"bridge_credentials_refresh_total", "result", "ok", 1},
		{"bridge_credentials_token_requests_total", "grant", "refresh_token", 1},
		{"bridge_credentials_token_requests_total", "grant", "authorization_code", 1},
		{"bridge_credentials_connections", "state", "ACTIVE", 1},
		{"bridge_credentials_connections", "state", "EXPIRED", 0},
	} {
		if got := counter(t, reg, tc.family, tc.label, tc.value); got != tc.want {
			t.Errorf("%s{%s=%q}: got %v, want %v", tc.family, tc.label, tc.value, got, tc.want)
		}
	}
}

// counter sums the family's samples whose label has value.
func counter(t testing.TB, reg *prometheus.Registry, family, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if c := mt.GetCounter(); c != nil {
						sum += c.GetValue()
					}
					if g := mt.GetGauge(); g != nil {
						sum += g.GetValue()
					}
				}
			}
		}
	}
	return sum
}

// TestSlackDialect: Slack's token endpoint answers failures with HTTP 200
// and "ok": false. A refresh works; a revoked grant reads as invalid_grant
// (EXPIRED, one alert) rather than a malformed success retried forever;
// "the other process rotated it" is still told apart.
func TestSlackDialect(t *testing.T) {
	o := testOptions()
	o.Slack = true
	e := newEnv(t, o)
	m1, m2 := e.manager(), e.manager()
	e.connect(m1, tenantA, system, e.prov)
	e.clock.Advance(time.Hour + time.Minute)
	c1, err := e.credential(m1)
	if err != nil || !e.prov.Valid(c1.Token.Reveal()) {
		t.Fatalf("refresh with ok:true: %v", err)
	}
	// m2 read nothing yet; its refresh of the same connection finds m1's.
	if c2, err := e.credential(m2); err != nil || c2.Token != c1.Token {
		t.Fatalf("m2: %v", err)
	}
	e.prov.RevokeAll()
	e.clock.Advance(time.Hour + time.Minute)
	_, err = e.credential(m1)
	if !errors.Is(err, credentials.ErrReauthorize) {
		t.Fatalf("revoked grant: got %v, want ErrReauthorize", err)
	}
	if c := e.mustGet(m1, tenantA, system); c.State != credentials.StateAlert && c.State != credentials.StateExpired {
		t.Errorf("state %s, want EXPIRED or ALERT", c.State)
	}
	if n := len(e.hook.Bodies()); n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
	if got := e.prov.Count("refresh_token"); got != 2 {
		t.Errorf("%d refresh requests, want 2: the refused one is not retried", got)
	}
}

// TestReject: a credential the system refused before its expiry is
// dropped: an owner's access token is refreshed once (also when several
// callers reject it), a stale rejection changes nothing, and a cached
// service token is fetched anew.
func TestReject(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testOptions())
	m := e.manager(func(c *credentials.Config) {
		c.Services = []credentials.Service{{System: "adobeanalytics", Method: credentials.MethodClientCredentials,
			TokenURL: e.prov.TokenURL, ClientID: e.prov.ClientID(), ClientSecret: connectors.Secret(e.prov.ClientSecret())}}
	})
	e.connect(m, tenantA, system, e.prov)
	c1, err := e.credential(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // three dispatches saw the same 401
		if err := m.Reject(ctx, ownerReq(tenantA, system), c1); err != nil {
			t.Fatal(err)
		}
	}
	c2, err := e.credential(m)
	if err != nil || c2.Token == c1.Token || !e.prov.Valid(c2.Token.Reveal()) {
		t.Fatalf("after a rejection: %v, new token %v", err, c2.Token != c1.Token)
	}
	if got := e.prov.Count("refresh_token"); got != 1 {
		t.Errorf("%d refreshes, want 1", got)
	}
	// A late rejection of the old token does not throw away the new one.
	if err := m.Reject(ctx, ownerReq(tenantA, system), c1); err != nil {
		t.Fatal(err)
	}
	if c3, err := e.credential(m); err != nil || c3.Token != c2.Token || e.prov.Count("refresh_token") != 1 {
		t.Errorf("a stale rejection refreshed again: %v", err)
	}
	if c := e.mustGet(m, tenantA, system); c.State != credentials.StateActive {
		t.Errorf("state %s, want ACTIVE", c.State)
	}

	s1, err := m.Credential(ctx, s2sReq(tenantA, "adobeanalytics"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reject(ctx, s2sReq(tenantA, "adobeanalytics"), s1); err != nil {
		t.Fatal(err)
	}
	s2, err := m.Credential(ctx, s2sReq(tenantA, "adobeanalytics"))
	if err != nil || s2.Token == s1.Token || e.prov.Count("client_credentials") != 2 {
		t.Errorf("a rejected service token: %v, new %v, %d requests", err, s2.Token != s1.Token, e.prov.Count("client_credentials"))
	}
}
