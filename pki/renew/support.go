package renew

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.step.sm/crypto/jose"
)

func algorithm(s crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := s.Public().(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		case 521:
			return jose.ES512, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T", s.Public())
}

// Metrics are the renewal figures, as bridge_pki_*.
type Metrics struct {
	expirySeconds *prometheus.GaugeVec
	renewals      *prometheus.CounterVec
	reenroll      *prometheus.GaugeVec
}

// NewMetrics registers the renewal metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		expirySeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_pki_certificate_expiry_timestamp_seconds",
			Help: "When the current certificate expires (Unix time).",
		}, []string{"certificate"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_pki_renewals_total",
			Help: "Certificate renewal attempts by result (ok, failed).",
		}, []string{"certificate", "result"}),
		reenroll: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bridge_pki_reenrollment_needed",
			Help: "1 when the certificate expired and the CA refuses to renew it: the machine needs a new enrollment token.",
		}, []string{"certificate"}),
	}
	for _, c := range []prometheus.Collector{m.expirySeconds, m.renewals, m.reenroll} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) expiry(name string, t time.Time) {
	if m == nil {
		return
	}
	m.expirySeconds.WithLabelValues(name).Set(float64(t.Unix()))
}

func (m *Metrics) result(name string, ok, reenroll bool) {
	if m == nil {
		return
	}
	res := "failed"
	if ok {
		res = "ok"
	}
	m.renewals.WithLabelValues(name, res).Inc()
	v := 0.0
	if reenroll {
		v = 1
	}
	m.reenroll.WithLabelValues(name).Set(v)
}
