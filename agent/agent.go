// Package agent is bridge-agent: the service that runs inside a corporate
// network, dials out to the relays through the tunnel, and serves the
// relay's requests over tunnel streams. It never listens on the network;
// its only socket is the loopback operations server (/readyz, /metrics,
// /status).
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/sharepoint"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/pki/renew"
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
	// TLS names a fixed agent certificate, its key, and the root that
	// verifies relays. Use either tls or pki.
	TLS endpoint.TLSFiles `yaml:"tls"`
	// PKI is the enrolled identity (`bridge-agent enroll`), which renews
	// itself. Use either tls or pki.
	PKI PKIConfig `yaml:"pki"`
	// ServerName overrides the name checked in relay certificates. Default:
	// the host of each relay address.
	ServerName string `yaml:"server_name"`
	// Ops is the loopback operations server. Default 127.0.0.1:9464.
	Ops endpoint.OpsConfig `yaml:"ops"`
	// Log sets the log format and level.
	Log endpoint.LogConfig `yaml:"log"`
	// Tunnel tunes timings; the defaults suit most networks.
	Tunnel TunnelConfig `yaml:"tunnel"`
	// SharePoint is what the agent crawls. Without sites, no crawl runs.
	SharePoint SharePointConfig `yaml:"sharepoint"`
}

// PKIConfig is the pki section.
type PKIConfig struct {
	// StateDir holds agent.crt, agent.key and root.crt from `bridge-agent
	// enroll`. Setting it turns on renewal.
	StateDir string `yaml:"state_dir"`
	// CAURL is where renewals go. Default: the CA the agent enrolled with.
	CAURL string `yaml:"ca_url"`
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

// Paths lists the configuration's paths, for endpoint.LoadConfig.
func (c *Config) Paths() []*string {
	return append(append(c.TLS.Paths(), &c.PKI.StateDir, &c.Log.File), c.SharePoint.paths()...)
}

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
	tlsSet := c.TLS.Cert != "" || c.TLS.Key != "" || c.TLS.CA != ""
	switch {
	case c.PKI.StateDir != "" && tlsSet:
		errs = append(errs, errors.New("tls and pki are both set: use pki.state_dir (enrolled, renews itself) or tls (fixed files)"))
	case c.PKI.StateDir != "":
	case c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.CA == "":
		errs = append(errs, errors.New("pki.state_dir is required (run 'bridge-agent enroll' to fill it), or tls cert, key and ca"))
	}
	errs = append(errs, c.SharePoint.validate()...)
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
	certs   *renew.Renewer // nil with fixed tls files
	crawler *crawl.Crawler // nil without sharepoint sites
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
	reg := endpoint.NewRegistry()
	m, err := tunnel.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	var (
		cert    tls.Certificate
		tlsConf *tls.Config
		certs   *renew.Renewer
	)
	if cfg.PKI.StateDir != "" {
		rm, err := renew.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		certs, err = renew.New(renew.Config{Store: enroll.Store{Dir: cfg.PKI.StateDir, Name: "agent"}, CAURL: cfg.PKI.CAURL, Logger: log, Metrics: rm})
		if err != nil {
			return nil, err
		}
		cert = *certs.Certificate()
		tlsConf = &tls.Config{GetClientCertificate: certs.GetClientCertificate, RootCAs: certs.RootPool(), ServerName: cfg.ServerName}
	} else {
		var roots *x509.CertPool
		cert, roots, err = cfg.TLS.Load()
		if err != nil {
			return nil, err
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: cfg.ServerName}
	}
	id, err := tunnel.IdentityFromCertificate(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("agent certificate: %w", err)
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
		Relays:       cfg.Relays,
		Connections:  cfg.Connections,
		Protocol:     tunnel.Protocol(cfg.Protocol),
		TLS:          tlsConf,
		Proxy:        proxyFunc,
		ProxyAuth:    cfg.ProxyAuth,
		AgentVersion: version,
		Capabilities: []string{"http"},
		OnRefused: func(error) {
			if certs != nil {
				certs.Kick()
			}
		},
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
	a := &Agent{cfg: cfg, log: log, version: version, reg: reg, client: client, certs: certs, leafTLS: cert, id: id, start: time.Now()}
	if len(cfg.SharePoint.Sites) > 0 {
		cm, err := crawl.NewMetrics(reg)
		if err != nil {
			return nil, err
		}
		relay := &crawl.Relay{Client: &http.Client{Transport: client.HTTPTransport()}, BaseURL: "http://relay", Logger: log}
		if a.crawler, err = newCrawler(cfg, relay, version, getenv, cm, log.With("part", "crawl")); err != nil {
			return nil, err
		}
	}
	a.ops = &endpoint.Ops{
		Addr:     cfg.Ops.Listen,
		Pprof:    cfg.Ops.Pprof,
		Gatherer: reg,
		Ready:    a.ready,
		Status:   func() any { return a.Status() },
		Logger:   log,
	}
	return a, nil
}

// Identity is the agent identity from its certificate.
func (a *Agent) Identity() tunnel.Identity { return a.id }

// Crawler is the SharePoint crawler, or nil when no sites are configured.
func (a *Agent) Crawler() *crawl.Crawler { return a.crawler }

// Client is the agent's tunnel client, for calling the relay.
func (a *Agent) Client() *tunnelclient.Client { return a.client }

// OpsAddr is the bound operations address, once Run has started it.
func (a *Agent) OpsAddr() string { return a.ops.BoundAddr() }

func (a *Agent) ready() error {
	if a.certs != nil && a.certs.NeedsReenrollment() {
		return errors.New("re-enrollment needed: " + a.certs.Status().LastError)
	}
	if a.client.Ready() {
		return nil
	}
	return errors.New("no tunnel session to a relay is up")
}

// leaf is the current certificate.
func (a *Agent) leaf() *x509.Certificate {
	if a.certs != nil {
		return a.certs.Certificate().Leaf
	}
	return a.leafTLS.Leaf
}

// Status is what `bridge-agent status` and /status show.
type Status struct {
	Agent       string              `json:"agent"`
	Tenant      string              `json:"tenant"`
	Version     string              `json:"version"`
	Uptime      string              `json:"uptime"`
	Certificate string              `json:"certificate"`
	Renewal     *renew.Status       `json:"renewal,omitempty"`
	Crawl       []crawl.SiteStatus  `json:"crawl,omitempty"`
	Tunnel      tunnelclient.Status `json:"tunnel"`
}

// Status returns a snapshot of the agent.
func (a *Agent) Status() Status {
	st := Status{
		Agent:       a.id.Agent,
		Tenant:      a.id.Tenant,
		Version:     a.version,
		Uptime:      time.Since(a.start).Round(time.Second).String(),
		Certificate: endpoint.Expiry(a.leaf(), time.Now()),
		Tunnel:      a.client.Status(),
	}
	if a.crawler != nil {
		st.Crawl = a.crawler.Status()
	}
	if a.certs != nil {
		rs := a.certs.Status()
		st.Renewal = &rs
		if rs.State == renew.StateReenroll {
			st.Certificate += "; RE-ENROLLMENT NEEDED: get a new token and run 'bridge-agent enroll'"
		}
	}
	return st
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
	// GET /v1/crawl/status is the crawl's progress per site.
	mux.HandleFunc("GET /v1/crawl/status", func(w http.ResponseWriter, r *http.Request) {
		st := []crawl.SiteStatus{}
		if a.crawler != nil {
			st = a.crawler.Status()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"agent": a.id.Agent, "tenant": a.id.Tenant, "sites": st})
	})
	// GET /v1/sharepoint/file?site=S&web=W&path=P streams the current
	// content of a file of a crawled site (the relay's on-demand reads).
	mux.HandleFunc("GET /v1/sharepoint/file", a.serveFile)
	// GET /v1/diag/bytes?n=N streams N zero bytes (at most 1 GiB): the
	// relay measures throughput to the agent with it.
	mux.HandleFunc("GET /v1/diag/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "n: want a byte count from 0 to 1073741824", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 32<<10)
		for n > 0 {
			k := int(min(n, int64(len(buf))))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= int64(k)
		}
	})
	return mux
}

// serveFile streams a file of a crawled site. Status codes: 404 when the
// file is not served (site not configured, path outside it or excluded)
// or does not exist, 502 when SharePoint fails.
func (a *Agent) serveFile(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	site, web, p := q.Get("site"), q.Get("web"), q.Get("path")
	if a.crawler == nil {
		http.Error(w, "this agent crawls no SharePoint site", http.StatusNotFound)
		return
	}
	if site == "" || web == "" || p == "" {
		http.Error(w, "site, web and path are required", http.StatusBadRequest)
		return
	}
	body, err := a.crawler.OpenFile(r.Context(), site, web, p)
	switch {
	case errors.Is(err, crawl.ErrNotServed):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case sharepoint.IsNotFound(err):
		http.Error(w, "the file does not exist in SharePoint", http.StatusNotFound)
		return
	case err != nil:
		a.log.Warn("on-demand file read failed", "site", site, "err", err)
		http.Error(w, "SharePoint failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer body.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := io.Copy(w, body); err != nil {
		a.log.Warn("on-demand file read cut", "site", site, "err", err)
	}
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
		"certificate", endpoint.Expiry(a.leaf(), time.Now()))
	parts := endpoint.Parts{
		Name: "agent", Ops: a.ops, Tunnel: a.client.Run, Streams: a.client.Listener(), Handler: a.Handler(), Logger: a.log,
	}
	if a.certs != nil {
		parts.Background = append(parts.Background, a.certs.Run)
	}
	if a.crawler != nil {
		parts.Background = append(parts.Background, a.crawler.Run)
	}
	err := endpoint.Run(ctx, parts)
	a.log.Info("bridge-agent stopped")
	return err
}
