package ingest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors of the ingest endpoints. A nil
// *Metrics records nothing.
type Metrics struct {
	upserted     *prometheus.CounterVec
	deleted      *prometheus.CounterVec
	blobs        *prometheus.CounterVec
	blobBytes    *prometheus.CounterVec
	batchSeconds *prometheus.HistogramVec
	problems     *prometheus.CounterVec
}

// NewMetrics creates the ingest collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		upserted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_ingest_documents_upserted_total", Help: "Documents created or replaced by applied batches, by tenant.",
		}, []string{"tenant"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_ingest_documents_deleted_total",
			Help: "Documents deleted, by tenant and cause (batch: deletes and delete_prefixes; generation: orphans after a full crawl, counted again when a finish is retried).",
		}, []string{"tenant", "cause"}),
		blobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_ingest_blobs_total", Help: "Blob uploads accepted, by tenant and result (created or existed).",
		}, []string{"tenant", "result"}),
		blobBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_ingest_blob_bytes_total", Help: "Bytes of newly stored blobs, by tenant.",
		}, []string{"tenant"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bridge_ingest_batch_duration_seconds",
			Help:    "Time to decode, validate and durably apply a batch, by outcome (applied, duplicate, refused, failed).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_ingest_problems_total", Help: "Ingest requests answered with a problem, by endpoint (blobs, batches, generations) and problem type.",
		}, []string{"endpoint", "problem"}),
	}
	for _, c := range []prometheus.Collector{m.upserted, m.deleted, m.blobs, m.blobBytes, m.batchSeconds, m.problems} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) blobStored(tenant string, created bool, size int64) {
	if m == nil {
		return
	}
	if created {
		m.blobs.WithLabelValues(tenant, "created").Inc()
		m.blobBytes.WithLabelValues(tenant).Add(float64(size))
	} else {
		m.blobs.WithLabelValues(tenant, "existed").Inc()
	}
}

func (m *Metrics) batch(tenant, outcome string, upserted, deleted int, took time.Duration) {
	if m == nil {
		return
	}
	m.batchSeconds.WithLabelValues(outcome).Observe(took.Seconds())
	if outcome == "applied" {
		m.upserted.WithLabelValues(tenant).Add(float64(upserted))
		m.deleted.WithLabelValues(tenant, "batch").Add(float64(deleted))
	}
}

func (m *Metrics) orphansDeleted(tenant string, n int) {
	if m != nil {
		m.deleted.WithLabelValues(tenant, "generation").Add(float64(n))
	}
}

func (m *Metrics) problem(endpoint, typ string) {
	if m != nil {
		m.problems.WithLabelValues(endpoint, typ[len(problemBase):]).Inc()
	}
}
