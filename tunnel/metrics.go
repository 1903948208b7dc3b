package tunnel

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors of one tunnel endpoint. A nil
// *Metrics records nothing.
type Metrics struct {
	connections *prometheus.GaugeVec
	connects    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	rtt         *prometheus.HistogramVec
	streams     *prometheus.GaugeVec
	opened      *prometheus.CounterVec
	bytes       *prometheus.CounterVec
	goaways     *prometheus.CounterVec
	fallbacks   prometheus.Counter
	reconnects  prometheus.Counter
	refusals    *prometheus.CounterVec
}

// NewMetrics creates the tunnel collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_tunnel_connections", Help: "Tunnel sessions currently up, by transport.",
		}, []string{"transport"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_tunnel_connects_total", Help: "Tunnel sessions established, by transport.",
		}, []string{"transport"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_tunnel_connect_failures_total", Help: "Tunnel session attempts that failed, by transport.",
		}, []string{"transport"}),
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bridge_tunnel_rtt_seconds", Help: "Round-trip time of control-stream heartbeats.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"transport"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_tunnel_streams", Help: "Streams currently open, by transport.",
		}, []string{"transport"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_tunnel_streams_total", Help: "Streams opened, by transport and by who opened them (local or peer).",
		}, []string{"transport", "opener"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_tunnel_bytes_total", Help: "Stream payload bytes, by transport and direction (rx or tx).",
		}, []string{"transport", "direction"}),
		goaways: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_tunnel_goaways_total", Help: "GOAWAY frames, by direction (sent or received).",
		}, []string{"direction"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_tunnel_fallbacks_total", Help: "Times the agent fell back from QUIC to TCP.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bridge_tunnel_reconnects_total", Help: "Times the agent dialed again after losing a session.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_tunnel_refusals_total",
			Help: "Agent connections and sessions the relay refused or closed, by reason (another_ca, expired, not_yet_valid, " +
				"revoked, denied, wrong_eku, wrong_provisioner, bad_identity, no_certificate, protocol, timeout, other).",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.connections, m.connects, m.failures, m.rtt, m.streams, m.opened, m.bytes, m.goaways, m.fallbacks, m.reconnects, m.refusals} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ConnectFailed counts one failed session attempt over t.
func (m *Metrics) ConnectFailed(t Transport) {
	if m != nil {
		m.failures.WithLabelValues(string(t)).Inc()
	}
}

// Refused counts one agent connection or session refused for reason.
func (m *Metrics) Refused(reason string) {
	if m != nil {
		m.refusals.WithLabelValues(reason).Inc()
	}
}

// FellBack counts one fallback from QUIC to TCP.
func (m *Metrics) FellBack() {
	if m != nil {
		m.fallbacks.Inc()
	}
}

// Reconnected counts one reconnect after a lost session.
func (m *Metrics) Reconnected() {
	if m != nil {
		m.reconnects.Inc()
	}
}

// linkMetrics are the collectors of one Link, curried with its transport so
// the hot path does no label lookups.
type linkMetrics struct {
	connections, streams    prometheus.Gauge
	rtt                     prometheus.Observer
	openedLocal, openedPeer prometheus.Counter
	rx, tx                  prometheus.Counter
	goawaySent, goawayRecvd prometheus.Counter
}

func (m *Metrics) forLink(t Transport) *linkMetrics {
	if m == nil {
		return nil
	}
	l := string(t)
	return &linkMetrics{
		connections: m.connections.WithLabelValues(l),
		streams:     m.streams.WithLabelValues(l),
		rtt:         m.rtt.WithLabelValues(l),
		openedLocal: m.opened.WithLabelValues(l, "local"),
		openedPeer:  m.opened.WithLabelValues(l, "peer"),
		rx:          m.bytes.WithLabelValues(l, "rx"),
		tx:          m.bytes.WithLabelValues(l, "tx"),
		goawaySent:  m.goaways.WithLabelValues("sent"),
		goawayRecvd: m.goaways.WithLabelValues("received"),
	}
}

func (m *Metrics) connected(t Transport) {
	if m != nil {
		m.connects.WithLabelValues(string(t)).Inc()
	}
}
