package dashboard

import "time"

// Snapshot is what the page shows. The relay builds one per request.
type Snapshot struct {
	// Relay names this relay; Version is its build version.
	Relay   string `json:"relay"`
	Version string `json:"version"`
	// Uptime is how long the relay has run. JSON carries nanoseconds.
	Uptime time.Duration `json:"uptime_ns"`
	// Now is when the snapshot was taken; remaining times and ages are
	// computed from it. Zero means the handler's time.Now.
	Now time.Time `json:"now"`
	// Systems is usually [Recorder.Systems] at Now.
	Systems []SystemStats `json:"systems"`
	// Credentials lists certificates and tokens, in the order shown.
	Credentials []Credential `json:"credentials"`
	// Agents lists the connected agents, in the order shown.
	Agents []Agent `json:"agents"`
}

// Credential kinds.
const (
	KindCertificate = "certificate"
	KindOAuth       = "oauth"
)

// Credential states.
const (
	StateOK                 = "ok"
	StateExpiring           = "expiring"
	StateExpired            = "expired"
	StateReenrollmentNeeded = "re-enrollment needed"
)

// Credential is one certificate or token the relay depends on.
type Credential struct {
	// Name is what the page shows, e.g. "relay certificate",
	// "agent acme/agent-01 certificate" or "workfront OAuth (acme)".
	Name string `json:"name"`
	// Kind is KindCertificate or KindOAuth.
	Kind string `json:"kind"`
	// Tenant is the tenant the credential belongs to; empty for the
	// relay's own.
	Tenant string `json:"tenant,omitempty"`
	// ExpiresAt is when it expires; zero means unknown.
	ExpiresAt time.Time `json:"expires_at"`
	// State is StateOK, StateExpiring, StateExpired or
	// StateReenrollmentNeeded, as judged by the code that renews it.
	// Empty means the page derives StateExpired or StateOK from ExpiresAt.
	State string `json:"state"`
}

// Agent is one connected agent.
type Agent struct {
	Tenant string `json:"tenant"`
	Agent  string `json:"agent"`
	// Transport is "quic" or "tcp".
	Transport string `json:"transport"`
	// Sessions counts the agent's open tunnel sessions.
	Sessions int `json:"sessions"`
	// ConnectedSince is when its first current session was established.
	ConnectedSince time.Time `json:"connected_since"`
	// Crawl describes the crawl state as the page shows it, e.g.
	// "incremental, 4,292 docs, last change 12 s ago".
	Crawl string `json:"crawl"`
}
