package crawl

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the crawl's Prometheus collectors (bridge_crawl_*). A nil
// *Metrics records nothing.
type Metrics struct {
	items, bytesTotal, failures *prometheus.CounterVec
	deliveredTotal              *prometheus.CounterVec
	phaseGauge                  *prometheus.GaugeVec
	lastChange                  *prometheus.GaugeVec
}

// NewMetrics registers the crawl metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		items:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_crawl_items_total", Help: "Items read from SharePoint, by site."}, []string{"site"}),
		bytesTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_crawl_bytes_total", Help: "File content bytes read from SharePoint, by site."}, []string{"site"}),
		failures:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_crawl_failures_total", Help: "Crawl passes that failed, by site."}, []string{"site"}),
		deliveredTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bridge_crawl_delivered_total",
			Help: "Documents acknowledged by the relay, by site and operation (upsert, delete)."}, []string{"site", "op"}),
		phaseGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_crawl_full_crawl_running", Help: "1 while a full crawl of the site runs."}, []string{"site"}),
		lastChange: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bridge_crawl_last_change_timestamp_seconds",
			Help: "Time of the last SharePoint change delivered, by site (Unix time)."}, []string{"site"}),
	}
	for _, c := range []prometheus.Collector{m.items, m.bytesTotal, m.failures, m.deliveredTotal, m.phaseGauge, m.lastChange} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) item(site string) {
	if m != nil {
		m.items.WithLabelValues(site).Inc()
	}
}

func (m *Metrics) bytes(site string, n int64) {
	if m != nil {
		m.bytesTotal.WithLabelValues(site).Add(float64(n))
	}
}

func (m *Metrics) failed(site string) {
	if m != nil {
		m.failures.WithLabelValues(site).Inc()
	}
}

func (m *Metrics) delivered(site string, upserts, deletes int) {
	if m != nil {
		m.deliveredTotal.WithLabelValues(site, "upsert").Add(float64(upserts))
		m.deliveredTotal.WithLabelValues(site, "delete").Add(float64(deletes))
	}
}

func (m *Metrics) phase(site, phase string) {
	if m != nil {
		v := 0.0
		if phase == PhaseFull {
			v = 1
		}
		m.phaseGauge.WithLabelValues(site).Set(v)
	}
}

func (m *Metrics) changed(site string, unix float64) {
	if m != nil {
		m.lastChange.WithLabelValues(site).Set(unix)
	}
}
