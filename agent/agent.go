// Package agent is bridge-agent: the service that runs inside a corporate
// network, dials out to the relays through the tunnel, and serves the
// relay's requests over tunnel streams. It never listens on the network;
// its only socket is the loopback operations server (/readyz, /metrics,
// /status).
package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/backoff"
	"github.com/mcc-bridge/bridge/tunnel/endpoint"
	"github.com/mcc-bridge/bridge/tunnel/proxy"
	"github.com/mcc-bridge/bridge/tunnel/tunnelclient"
)

// Config is the agent's configuration file (agent.yaml). Relative paths are
// relative to the file's directory.
type Config struct {
	// Relays are the relay addresses, "host:port". Required.
	Relays []string `yaml:"relays"`
	// Connections is how many tunnel sessions to hold. Default 2.
	Connections int `yaml:"connections"`
	// Protocol is auto (QUIC, falling back to TCP), quic or tcp. Default auto.
	Protocol string `yaml:"protocol"`
	// Proxy is the HTTP CONNECT proxy for the TCP transport: a URL, "direct"
	// for none, or empty to follow HTTPS_PROXY and NO_PROXY. Default empty.
	Proxy string `yaml:"proxy"`
	// ProxyAuth is basic or ntlm. Default basic.
	ProxyAuth string `yaml:"proxy_auth"`
	// TLS names the agent certificate, its key, and the root that verifies relays.
	TLS endpoint.TLSFiles `yaml:"tls"`
	// ServerName overrides the name checked in relay certificates. Default:
	// the host of each relay address.
	ServerName string `yaml:"server_name"`
	// Ops is the loopback operations server. Default 127.0.0.1:9464.
	Ops endpoint.OpsConfig `yaml:"ops"`
	// Log sets the log format and level.
	Log endpoint.LogConfig `yaml:"log"`
	// Tunnel tunes timings; the defaults suit most networks.
	Tunnel TunnelConfig `yaml:"tunnel"`
}

// TunnelConfig tunes tunnel timings.
type TunnelConfig struct {
	// Heartbeat is the control-stream heartbeat interval. Default 500ms.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// FallbackDelay is how long QUIC gets before TCP is tried. Default 3s.
	FallbackDelay time.Duration `yaml:"fallback_delay"`
	// ReprobeInterval is how often to try QUIC again after a fallback. Default 5m.
	ReprobeInterval time.Duration `yaml:"reprobe_interval"`
	// DrainTimeout bounds the graceful drain at shutdown. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// BackoffMax caps the reconnect delay. Default 60s.
	BackoffMax time.Duration `yaml:"backoff_max"`
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{
		Connections: 2,
		Protocol:    string(tunnel.ProtocolAuto),
		ProxyAuth:   "basic",
		Ops:         endpoint.OpsConfig{Listen: "127.0.0.1:9464"},
		Log:         endpoint.LogConfig{Level: "info", Format: "text"},
		Tunnel: TunnelConfig{
			Heartbeat:       500 * time.Millisecond,
			FallbackDelay:   3 * time.Second,
			ReprobeInterval: 5 * time.Minute,
			DrainTimeout:    30 * time.Second,
			BackoffMax:      60 * time.Second,
		},
	}
}

// LoadConfig reads path over the defaults and checks the result.
func LoadConfig(path string) (Config, error) {
	return endpoint.LoadConfig(path, DefaultConfig())
}

// TLSFiles is the TLS section, for endpoint.LoadConfig.
func (c *Config) TLSFiles() *endpoint.TLSFiles { return &c.TLS }

// Validate checks the configuration for mistakes an admin can fix.
func (c Config) Validate() error {
	var errs []error
	if len(c.Relays) == 0 {
		errs = append(errs, errors.New("relays: at least one relay address (host:port) is required"))
	}
	if _, err := tunnel.ParseProtocol(c.Protocol); err != nil {
		errs = append(errs, fmt.Errorf("protocol: %w", err))
	}
	if c.Connections < 1 || c.Connections > 16 {
		errs = append(errs, fmt.Errorf("connections: %d is out of range 1..16", c.Connections))
	}
	switch c.ProxyAuth {
	case "", "basic", "ntlm":
	default:
		errs = append(errs, fmt.Errorf("proxy_auth: %q, want basic or ntlm", c.ProxyAuth))
	}
	if c.Proxy != "" && c.Proxy != "direct" {
		if _, err := proxy.ParseURL(c.Proxy); err != nil {
			errs = append(errs, fmt.Errorf("proxy: %w", err))
		}
	}
	if c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.CA == "" {
		errs = append(errs, errors.New("tls: cert, key and ca are required (enroll the agent to get them)"))
	}
	return errors.Join(errs...)
}

// Agent is a running bridge-agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	version string
	reg     *prometheus.Registry
	client  *tunnelclient.Client
	ops     *endpoint.Ops
	leafTLS tls.Certificate
	id      tunnel.Identity
	start   time.Time

	listening bool // set by Listen, before Run
}

// New builds an agent from cfg. getenv reads HTTPS_PROXY and NO_PROXY when
// cfg.Proxy is empty.
func New(cfg Config, log *slog.Logger, version string, getenv func(string) string) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cert, roots, err := cfg.TLS.Load()
	if err != nil {
		return nil, err
	}
	id, err := tunnel.IdentityFromCertificate(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("agent certificate %s: %w", cfg.TLS.Cert, err)
	}
	reg := endpoint.NewRegistry()
	m, err := tunnel.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	var proxyFunc func(string) (*url.URL, error)
	switch cfg.Proxy {
	case "direct":
	case "":
		proxyFunc = proxy.FromEnvironment(getenv)
	default:
		u, err := proxy.ParseURL(cfg.Proxy)
		if err != nil {
			return nil, err
		}
		proxyFunc = func(string) (*url.URL, error) { return u, nil }
	}
	client, err := tunnelclient.New(tunnelclient.Config{
		Relays:          cfg.Relays,
		Connections:     cfg.Connections,
		Protocol:        tunnel.Protocol(cfg.Protocol),
		TLS:             &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: cfg.ServerName},
		Proxy:           proxyFunc,
		ProxyAuth:       cfg.ProxyAuth,
		AgentVersion:    version,
		Capabilities:    []string{"http"},
		FallbackDelay:   cfg.Tunnel.FallbackDelay,
		ReprobeInterval: cfg.Tunnel.ReprobeInterval,
		DrainTimeout:    cfg.Tunnel.DrainTimeout,
		Backoff:         backoff.Policy{Max: cfg.Tunnel.BackoffMax},
		Link:            tunnel.LinkConfig{HeartbeatInterval: cfg.Tunnel.Heartbeat},
		Logger:          log,
		Metrics:         m,
	})
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: log, version: version, reg: reg, client: client, leafTLS: cert, id: id, start: time.Now()}
	a.ops = &endpoint.Ops{
		Addr:     cfg.Ops.Listen,
		Gatherer: reg,
		Ready:    a.ready,
		Status:   func() any { return a.Status() },
		Logger:   log,
	}
	return a, nil
}

// Identity is the agent identity from its certificate.
func (a *Agent) Identity() tunnel.Identity { return a.id }

// Client is the agent's tunnel client, for calling the relay.
func (a *Agent) Client() *tunnelclient.Client { return a.client }

// OpsAddr is the bound operations address, once Run has started it.
func (a *Agent) OpsAddr() string { return a.ops.BoundAddr() }

func (a *Agent) ready() error {
	if a.client.Ready() {
		return nil
	}
	return errors.New("no tunnel session to a relay is up")
}

// Status is what `bridge-agent status` and /status show.
type Status struct {
	Agent       string              `json:"agent"`
	Tenant      string              `json:"tenant"`
	Version     string              `json:"version"`
	Uptime      string              `json:"uptime"`
	Certificate string              `json:"certificate"`
	Tunnel      tunnelclient.Status `json:"tunnel"`
}

// Status returns a snapshot of the agent.
func (a *Agent) Status() Status {
	return Status{
		Agent:       a.id.Agent,
		Tenant:      a.id.Tenant,
		Version:     a.version,
		Uptime:      time.Since(a.start).Round(time.Second).String(),
		Certificate: endpoint.Expiry(a.leafTLS.Leaf, time.Now()),
		Tunnel:      a.client.Status(),
	}
}

// Handler serves the requests relays send through the tunnel.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"agent": a.id.Agent, "tenant": a.id.Tenant, "version": a.version, "time": time.Now().UTC(),
		})
	})
	return mux
}

// Listen binds the loopback ops socket, so that its address is known before
// Run. The agent listens on nothing else.
func (a *Agent) Listen() error {
	if err := a.ops.Listen(); err != nil {
		return err
	}
	a.listening = true
	return nil
}

// Run runs the agent until ctx ends, then drains the tunnel and returns. It
// calls Listen if that was not done.
func (a *Agent) Run(ctx context.Context) error {
	if !a.listening {
		if err := a.Listen(); err != nil {
			return err
		}
	}
	a.log.Info("bridge-agent starting", "agent", a.id.Agent, "tenant", a.id.Tenant, "version", a.version,
		"relays", strings.Join(a.cfg.Relays, ","), "protocol", a.cfg.Protocol, "ops", "http://"+a.ops.BoundAddr(),
		"certificate", endpoint.Expiry(a.leafTLS.Leaf, time.Now()))
	err := endpoint.Run(ctx, endpoint.Parts{
		Name: "agent", Ops: a.ops, Tunnel: a.client.Run, Streams: a.client.Listener(), Handler: a.Handler(), Logger: a.log,
	})
	a.log.Info("bridge-agent stopped")
	return err
}
