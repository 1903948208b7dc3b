package webhooks

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome is what became of one webhook request: the outcome label of
// bridge_webhook_requests_total.
type Outcome string

// The outcomes.
const (
	// OutcomeAccepted: verified, new, committed to the queue (200).
	OutcomeAccepted Outcome = "accepted"
	// OutcomeReplayed: verified, but seen in the last ReplayWindow (200, not queued).
	OutcomeReplayed Outcome = "replayed"
	// OutcomeChallenge: a verified Slack url_verification, answered with its challenge (200).
	OutcomeChallenge Outcome = "challenge"
	// OutcomeHandshake: an Asana X-Hook-Secret handshake, stored and echoed (200).
	OutcomeHandshake Outcome = "handshake"
	// OutcomeHeartbeat: a verified Asana heartbeat without events (200, not queued).
	OutcomeHeartbeat Outcome = "heartbeat"
	// OutcomeMissing: a required header is absent or does not parse (401).
	OutcomeMissing Outcome = "missing"
	// OutcomeForged: the signature or token is wrong (401).
	OutcomeForged Outcome = "forged"
	// OutcomeTampered: the signature was accepted before, for another body
	// or timestamp: a captured request, altered (401).
	OutcomeTampered Outcome = "tampered"
	// OutcomeStale: the signature is right but its timestamp is outside the window (401).
	OutcomeStale Outcome = "stale"
	// OutcomeNoHandshake: an Asana event for an endpoint that has no hook secret yet (401).
	OutcomeNoHandshake Outcome = "no_handshake"
	// OutcomeHandshakeRefused: an Asana handshake with a new secret for an
	// endpoint that has one; ResetHookSecret first (401).
	OutcomeHandshakeRefused Outcome = "handshake_refused"
	// OutcomeTooLarge: the body exceeds MaxBodyBytes (413).
	OutcomeTooLarge Outcome = "too_large"
	// OutcomeUnknownEndpoint: no endpoint is configured for the path (404),
	// counted under system "unknown".
	OutcomeUnknownEndpoint Outcome = "unknown_endpoint"
	// OutcomeError: the body could not be read or the store failed (400 or 503).
	OutcomeError Outcome = "error"
)

// Delivery results, the result label of bridge_webhook_deliveries_total.
const (
	deliveryDelivered = "delivered"
	deliveryRetry     = "retry"
	deliveryDead      = "dead"
)

// metrics are the Hub's collectors. A nil *metrics records nothing.
type metrics struct {
	requests   *prometheus.CounterVec
	deliveries *prometheus.CounterVec
}

// newMetrics creates the collectors and registers them with reg; nil reg
// means no metrics. Collectors registered by an earlier Hub on the same
// registry are reused, so a Hub can be reopened.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_webhook_requests_total",
			Help: "Inbound webhook requests by system and outcome (accepted, replayed, forged, tampered, stale, missing, ...).",
		}, []string{"system", "outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_webhook_deliveries_total",
			Help: "Delivery attempts of queued webhook events by system and result (delivered, retry, dead).",
		}, []string{"system", "result"}),
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.deliveries, err = register(reg, m.deliveries); err != nil {
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

func (m *metrics) request(system string, o Outcome) {
	if m != nil {
		m.requests.WithLabelValues(system, string(o)).Inc()
	}
}

func (m *metrics) delivery(system, result string) {
	if m != nil {
		m.deliveries.WithLabelValues(system, result).Inc()
	}
}
