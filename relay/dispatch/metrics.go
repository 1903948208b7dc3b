package dispatch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts dispatches. A nil *Metrics records nothing.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  *prometheus.CounterVec
}

// NewMetrics registers the dispatcher's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_dispatch_requests_total",
			Help: "Dispatch requests by target system, operation and outcome (ok or the problem type).",
		}, []string{"system", "operation", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bridge_dispatch_duration_seconds",
			Help:    "Time from request to response, by target system.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{"system"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_dispatch_retries_total",
			Help: "Connector executions tried again, by target system and error class.",
		}, []string{"system", "class"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(system, op, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	if system == "" {
		system = "none"
	}
	if op == "" {
		op = "none"
	}
	m.requests.WithLabelValues(system, op, outcome).Inc()
	m.duration.WithLabelValues(system).Observe(d.Seconds())
}

func (m *Metrics) retry(system, class string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(system, class).Inc()
}
