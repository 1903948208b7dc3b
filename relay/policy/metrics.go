package policy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus collectors of the policy engine. A nil
// *Metrics records nothing.
type Metrics struct {
	decisions    *prometheus.CounterVec
	reloadErrors prometheus.Counter
}

// NewMetrics creates the policy collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_policy_decisions_total",
			Help: `Authorization decisions, by tenant ("_unknown" for tenants without policies) and effect (allow or deny).`,
		}, []string{"tenant", "effect"}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_policy_reload_errors_total",
			Help: "Policy folders or files that could not be read or parsed, counted once per change.",
		}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.reloadErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) decision(tenant string, allow bool) {
	if m == nil {
		return
	}
	effect := "deny"
	if allow {
		effect = "allow"
	}
	m.decisions.WithLabelValues(tenant, effect).Inc()
}

func (m *Metrics) reloadError() {
	if m != nil {
		m.reloadErrors.Inc()
	}
}
