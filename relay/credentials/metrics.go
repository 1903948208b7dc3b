package credentials

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Refresh results, the result label of bridge_credentials_refresh_total.
const (
	// ResultOK: new tokens were committed.
	ResultOK = "ok"
	// ResultError: the provider failed or could not be reached (after retries).
	ResultError = "error"
	// ResultInvalidGrant: the provider refused the refresh token; the
	// connection expired.
	ResultInvalidGrant = "invalid_grant"
	// ResultSuperseded: the provider refused the refresh token because
	// another process had rotated it; the store had the new one.
	ResultSuperseded = "superseded"
	// ResultFenced: the lease was lost before the commit (another process
	// took it over); nothing was written.
	ResultFenced = "fenced"
	// ResultAborted: the refresh stopped between the token response and
	// the commit (context ended, store failed).
	ResultAborted = "aborted"
)

// Metrics counts refreshes, token requests and connections. A nil
// *Metrics records nothing.
type Metrics struct {
	refreshes   *prometheus.CounterVec
	requests    *prometheus.CounterVec
	connections *prometheus.GaugeVec
}

// NewMetrics registers the credential manager's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_credentials_refresh_total",
			Help: "Refreshes of integration-owner tokens, by system and result (ok, error, invalid_grant, superseded, fenced, aborted).",
		}, []string{"system", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_credentials_token_requests_total",
			Help: "Requests sent to token endpoints, by system and grant type.",
		}, []string{"system", "grant"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_credentials_connections",
			Help: "Connections in credentials.db by state (all tenants), as last counted.",
		}, []string{"state"}),
	}
	for _, c := range []prometheus.Collector{m.refreshes, m.requests, m.connections} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) refresh(system, result string) {
	if m != nil {
		m.refreshes.WithLabelValues(system, result).Inc()
	}
}

func (m *Metrics) tokenRequest(system, grant string) {
	if m != nil {
		m.requests.WithLabelValues(system, grant).Inc()
	}
}

func (m *Metrics) setConnections(counts map[State]int) {
	if m == nil {
		return
	}
	for _, s := range []State{StateInitial, StateActive, StateRefreshing, StateExpired, StateAlert, StateRevoked} {
		m.connections.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
}
