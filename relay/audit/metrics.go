package audit

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons, the label of bridge_audit_failures_total.
const (
	failInvalid  = "invalid"  // the record could not be accepted
	failClosed   = "closed"   // Append after Close
	failCanceled = "canceled" // ctx ended before the record was durable
	failIO       = "io"       // open, write or fsync failed
)

// metrics are the log's Prometheus collectors. A nil *metrics records
// nothing.
type metrics struct {
	records       prometheus.Counter
	appendSeconds prometheus.Histogram
	batchSize     prometheus.Histogram
	failures      *prometheus.CounterVec
}

// newMetrics creates the collectors and registers them with reg; nil reg
// means no metrics. Collectors already registered by an earlier Log on the
// same registry are reused, so a log can be reopened.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_audit_records_total", Help: "Audit records made durable.",
		}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bridge_audit_append_seconds",
			Help:    "Time from Append to the record being durable, for records that were.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bridge_audit_batch_size",
			Help:    "Records made durable by one write and fsync of a tenant's file.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 to 1024
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_audit_failures_total",
			Help: "Appends that returned an error, by reason (invalid, closed, canceled, io); the caller refused the action.",
		}, []string{"reason"}),
	}
	var err error
	if m.records, err = register(reg, m.records); err != nil {
		return nil, err
	}
	if m.appendSeconds, err = register(reg, m.appendSeconds); err != nil {
		return nil, err
	}
	if m.batchSize, err = register(reg, m.batchSize); err != nil {
		return nil, err
	}
	if m.failures, err = register(reg, m.failures); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the identical collector registered
// before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
		if old, ok := are.ExistingCollector.(C); ok {
			return old, nil
		}
	}
	return c, err
}

// committed counts n records made durable by one write and fsync.
func (m *metrics) committed(n int) {
	if m != nil {
		m.records.Add(float64(n))
		m.batchSize.Observe(float64(n))
	}
}

// appended observes the latency of one successful Append.
func (m *metrics) appended(took time.Duration) {
	if m != nil {
		m.appendSeconds.Observe(took.Seconds())
	}
}

func (m *metrics) failed(reason string) {
	if m != nil {
		m.failures.WithLabelValues(reason).Inc()
	}
}
