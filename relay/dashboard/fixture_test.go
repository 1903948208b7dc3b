package dashboard_test

import (
	"time"

	"github.com/mcc-bridge/bridge/relay/dashboard"
)

// fixtureNow is the moment every fixture is taken at.
var fixtureNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// Hostile strings that must reach the page as text. Each one sets
// window.__xss if a browser ever runs it.
const (
	hostileTenant = `<script>window.__xss=1</script>`
	hostileAgent  = `<img src=x onerror="window.__xss=2">`
	hostileCrawl  = `</td></tr><script>window.__xss=3</script>`
	hostileCred   = `"><svg onload="window.__xss=4">`
)

// hourly builds 24 buckets with f(i) for hour i, oldest first, and their sums.
func hourly(f func(i int) dashboard.Bucket) (h [dashboard.Hours]dashboard.Bucket, calls, errors int64) {
	for i := range h {
		h[i] = f(i)
		calls += h[i].Calls
		errors += h[i].Errors
	}
	return h, calls, errors
}

// system builds a SystemStats whose 24 h totals agree with its buckets.
func system(name, status string, calls1h int64, p50, p95 time.Duration, uptime float64, f func(i int) dashboard.Bucket) dashboard.SystemStats {
	h, calls, errors := hourly(f)
	return dashboard.SystemStats{
		System: name, Status: status, Calls1h: calls1h,
		Calls24h: calls, Errors24h: errors, ErrorRate24h: float64(errors) / float64(calls),
		Hourly: h, P50: p50, P95: p95, Uptime24h: uptime,
	}
}

// fixture is the Snapshot the handler and browser tests show: three systems
// (up, degraded, down), four credentials in every state, a normal agent and
// one whose every field is hostile.
func fixture() dashboard.Snapshot {
	now := fixtureNow
	return dashboard.Snapshot{
		Relay:   "relay-eu-1",
		Version: "v1.4.2",
		Uptime:  50*time.Hour + 10*time.Minute,
		Now:     now,
		Systems: []dashboard.SystemStats{
			system("sharepoint", dashboard.StatusUp, 4292, 120*time.Millisecond, 480*time.Millisecond, 1,
				func(i int) dashboard.Bucket { return dashboard.Bucket{Calls: 4000 + int64(i), Errors: int64(i % 2)} }),
			system("workfront", dashboard.StatusDegraded, 310, 850*time.Microsecond, 1250*time.Millisecond, 1,
				func(i int) dashboard.Bucket {
					if i == 20 {
						return dashboard.Bucket{Calls: 300, Errors: 40}
					}
					return dashboard.Bucket{Calls: 300, Errors: 3}
				}),
			system("slack", dashboard.StatusDown, 100, 95*time.Millisecond, 2*time.Second, 23.0/24,
				func(i int) dashboard.Bucket {
					if i == dashboard.Hours-1 {
						return dashboard.Bucket{Calls: 100, Errors: 70}
					}
					return dashboard.Bucket{Calls: 100}
				}),
		},
		Credentials: []dashboard.Credential{
			{Name: "relay certificate", Kind: dashboard.KindCertificate, ExpiresAt: now.Add(29*24*time.Hour + 4*time.Hour), State: dashboard.StateOK},
			{Name: "agent acme/agent-01 certificate", Kind: dashboard.KindCertificate, Tenant: "acme", ExpiresAt: now.Add(3*time.Hour + 12*time.Minute), State: dashboard.StateExpiring},
			{Name: "workfront OAuth (acme)", Kind: dashboard.KindOAuth, Tenant: "acme", ExpiresAt: now.Add(-2 * time.Hour), State: dashboard.StateExpired},
			{Name: "agent globex/agent-07 certificate", Kind: dashboard.KindCertificate, Tenant: "globex", ExpiresAt: now.Add(-26 * time.Hour), State: dashboard.StateReenrollmentNeeded},
			{Name: hostileCred, Kind: dashboard.KindOAuth, Tenant: hostileTenant, ExpiresAt: now.Add(time.Hour)},
		},
		Agents: []dashboard.Agent{
			{Tenant: "acme", Agent: "agent-01", Transport: "quic", Sessions: 3, ConnectedSince: now.Add(-2*time.Hour - 4*time.Minute), Crawl: "incremental, 4,292 docs, last change 12 s ago"},
			{Tenant: hostileTenant, Agent: hostileAgent, Transport: "tcp", Sessions: 1, ConnectedSince: now.Add(-45 * time.Second), Crawl: hostileCrawl},
		},
	}
}
