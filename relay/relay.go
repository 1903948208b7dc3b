// Package relay is bridge-relay: the service in the cloud VPC that accepts
// agent tunnels, serves what agents send over tunnel streams, and calls
// agents back through them. Its operations server (loopback by default)
// shows /readyz, /metrics, /status and the connected agents.
package relay

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/mcc-bridge/bridge/pki/renew"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/pki/verify"
	"github.com/mcc-bridge/bridge/relay/dashboard"
	"github.com/mcc-bridge/bridge/relay/ingest"
	"github.com/mcc-bridge/bridge/relay/store"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/endpoint"
	"github.com/mcc-bridge/bridge/tunnel/tunnelserver"
)

// Config is the relay's configuration file (relay.yaml). Relative paths are
// relative to the file's directory.
type Config struct {
	// Listen is where agents connect, on UDP (QUIC) and TCP. Default ":8443".
	Listen string `yaml:"listen"`
	// RelayID names this relay to agents and in logs. Default: the host name.
	RelayID string `yaml:"relay_id"`
	// TLS names a fixed relay certificate, its key, and the root that agent
	// certificates must chain to. Use either tls or pki.
	TLS endpoint.TLSFiles `yaml:"tls"`
	// PKI gets certificates from step-ca: an embedded CA or an external
	// one, with renewal, CRL checks and revocation. Use either tls or pki.
	PKI PKIConfig `yaml:"pki"`
	// QUIC and TCP switch the transports. Default both on.
	QUIC *bool `yaml:"quic"`
	TCP  *bool `yaml:"tcp"`
	// Ops is the operations server. Default 127.0.0.1:9465.
	Ops endpoint.OpsConfig `yaml:"ops"`
	// Log sets the log format and level.
	Log endpoint.LogConfig `yaml:"log"`
	// Tunnel tunes timings.
	Tunnel TunnelConfig `yaml:"tunnel"`
	// Store is where what agents crawl is kept.
	Store StoreConfig `yaml:"store"`
	// API is the platform's front door: the dispatcher.
	API APIConfig `yaml:"api"`
	// Connectors are the SaaS systems the dispatcher reaches.
	Connectors ConnectorsConfig `yaml:"connectors"`
	// Webhooks are the SaaS systems' inbound webhooks, on the API.
	Webhooks WebhooksConfig `yaml:"webhooks"`
	// Credentials is the encrypted credential manager of the connectors.
	Credentials CredentialsConfig `yaml:"credentials"`
}

// StoreConfig is the store section.
type StoreConfig struct {
	// Dir holds the embedded store: a SQLite database and content blobs.
	// Default "store".
	Dir string `yaml:"dir"`
}

// TunnelConfig tunes tunnel timings.
type TunnelConfig struct {
	// Heartbeat is the control-stream heartbeat interval. Default 500ms.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// DrainTimeout bounds the graceful drain at shutdown. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	on := true
	on2 := true
	return Config{
		Listen:   ":8443",
		QUIC:     &on,
		TCP:      &on2,
		Ops:      endpoint.OpsConfig{Listen: "127.0.0.1:9465"},
		Log:      endpoint.LogConfig{Level: "info", Format: "text"},
		Tunnel:   TunnelConfig{Heartbeat: 500 * time.Millisecond, DrainTimeout: 30 * time.Second},
		Store:    StoreConfig{Dir: "store"},
		Webhooks: WebhooksConfig{Dir: "webhooks"},
		API:      APIConfig{Policies: "policies", Audit: "audit", Timeout: 30 * time.Second, Rate: 200, Burst: 400},
		PKI: PKIConfig{
			CA:          EmbeddedCAConfig{Listen: "127.0.0.1:9000"},
			Provisioner: stepca.AgentProvisioner,
			CRLRefresh:  30 * time.Second,
			Sweep:       10 * time.Second,
			StateDir:    "state",
		},
	}
}

// LoadConfig reads path over the defaults and checks the result.
func LoadConfig(path string) (Config, error) {
	return endpoint.LoadConfig(path, DefaultConfig())
}

// Paths lists the configuration's paths, for endpoint.LoadConfig.
func (c *Config) Paths() []*string {
	p := append(append(c.TLS.Paths(), c.PKI.paths()...), &c.Store.Dir, &c.Log.File)
	p = append(append(p, c.API.paths()...), c.Connectors.paths()...)
	return append(append(p, c.Webhooks.paths()...), c.Credentials.paths()...)
}

// Validate checks the configuration for mistakes an admin can fix.
func (c Config) Validate() error {
	var errs []error
	tlsSet := c.TLS.Cert != "" || c.TLS.Key != "" || c.TLS.CA != ""
	switch {
	case c.PKI.Enabled() && tlsSet:
		errs = append(errs, errors.New("tls and pki are both set: use pki (certificates from step-ca) or tls (fixed files), not both"))
	case c.PKI.Enabled():
		errs = append(errs, c.PKI.validate()...)
	case c.TLS.Cert == "" || c.TLS.Key == "" || c.TLS.CA == "":
		errs = append(errs, errors.New("tls: cert, key and ca are required (or a pki section)"))
	}
	errs = append(errs, c.API.validate()...)
	if c.Webhooks.enabled() && !c.API.enabled() {
		errs = append(errs, errors.New("webhooks need the api: set api.listen"))
	}
	if c.Credentials.enabled() && !c.API.enabled() {
		errs = append(errs, errors.New("credentials need the api: set api.listen"))
	}
	if c.QUIC != nil && c.TCP != nil && !*c.QUIC && !*c.TCP {
		errs = append(errs, errors.New("quic and tcp are both off: agents could not connect"))
	}
	return errors.Join(errs...)
}

// Relay is a running bridge-relay.
type Relay struct {
	cfg     Config
	log     *slog.Logger
	server  *tunnelserver.Server
	ops     *endpoint.Ops
	agents  *http.Client
	id      string
	pki     *pkiParts // nil with fixed tls files
	store   *store.Embedded
	ingest  *ingest.Handler
	api     *apiParts    // nil when api.listen is off
	streams *http.Client // to agents through tunnels, without a timeout of its own

	listening bool // set by Listen, before Run
	version   string
	started   time.Time
}

// New builds a relay from cfg.
func New(cfg Config, log *slog.Logger, version string) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reg := endpoint.NewRegistry()
	m, err := tunnel.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, log: log, id: cfg.RelayID, version: version, started: time.Now()}
	var tlsConf *tls.Config
	if cfg.PKI.Enabled() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r.pki, err = startPKI(ctx, cfg, r, reg)
		cancel()
		if err != nil {
			return nil, err
		}
		tlsConf = r.pki.tlsConfig()
	} else {
		cert, roots, err := cfg.TLS.Load()
		if err != nil {
			return nil, err
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: roots}
	}
	if r.store, err = store.Open(context.Background(), cfg.Store.Dir, store.Config{Logger: log.With("part", "store")}); err != nil {
		r.pki.close()
		return nil, fmt.Errorf("store: %w", err)
	}
	im, err := ingest.NewMetrics(reg)
	if err != nil {
		r.Close()
		return nil, err
	}
	if r.ingest, err = ingest.New(r.store, log.With("part", "ingest"), ingest.Config{Metrics: im}); err != nil {
		r.Close()
		return nil, err
	}
	srv, err := tunnelserver.New(tunnelserver.Config{
		Addr:         cfg.Listen,
		TLS:          tlsConf,
		DisableQUIC:  cfg.QUIC != nil && !*cfg.QUIC,
		DisableTCP:   cfg.TCP != nil && !*cfg.TCP,
		RelayID:      cfg.RelayID,
		Version:      version,
		DrainTimeout: cfg.Tunnel.DrainTimeout,
		Link:         tunnel.LinkConfig{HeartbeatInterval: cfg.Tunnel.Heartbeat},
		Logger:       log,
		Metrics:      m,
	})
	if err != nil {
		r.Close()
		return nil, err
	}
	r.server = srv
	r.agents = &http.Client{Transport: srv.HTTPTransport(), Timeout: 30 * time.Second}
	r.streams = &http.Client{Transport: srv.HTTPTransport()}
	if cfg.API.enabled() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r.api, err = r.startAPI(ctx, cfg, reg, log)
		cancel()
		if err != nil {
			r.Close()
			return nil, err
		}
	}
	r.ops = &endpoint.Ops{
		Addr:     cfg.Ops.Listen,
		Pprof:    cfg.Ops.Pprof,
		Gatherer: reg,
		Ready:    func() error { return nil },
		Extra:    r.opsRoutes,
		Logger:   log,
	}
	return r, nil
}

// Server is the relay's tunnel server.
func (r *Relay) Server() *tunnelserver.Server { return r.server }

// OpsAddr is the bound operations address, once Run has started it.
func (r *Relay) OpsAddr() string { return r.ops.BoundAddr() }

// Status is what /status shows.
type Status struct {
	Relay  string                     `json:"relay"`
	Agents []tunnelserver.AgentStatus `json:"agents"`
	PKI    *PKIStatus                 `json:"pki,omitempty"`
	// Store counts what connected agents' tenants have delivered.
	Store map[string]store.Stats `json:"store,omitempty"`
}

// PKIStatus is the certificate side of /status.
type PKIStatus struct {
	CAURL           string           `json:"ca_url"`
	Embedded        bool             `json:"embedded_ca"`
	RootFingerprint string           `json:"root_fingerprint"`
	Certificate     renew.Status     `json:"certificate"`
	CRL             verify.CRLStatus `json:"crl"`
	Denied          []verify.Denial  `json:"denied"`
}

// Status returns a snapshot of the relay.
func (r *Relay) Status() Status {
	st := Status{Relay: r.id, Agents: r.server.Agents()}
	for _, a := range st.Agents {
		if _, done := st.Store[a.Tenant]; done {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if s, err := r.store.Stats(ctx, a.Tenant); err == nil {
			if st.Store == nil {
				st.Store = map[string]store.Stats{}
			}
			st.Store[a.Tenant] = s
		}
		cancel()
	}
	if r.pki != nil {
		st.PKI = &PKIStatus{
			CAURL:           r.pki.caURL,
			Embedded:        r.pki.ca != nil,
			RootFingerprint: caclient.Fingerprint(r.pki.root),
			Certificate:     r.pki.renewer.Status(),
			CRL:             r.pki.verifier.CRL(),
			Denied:          r.pki.verifier.Denied(),
		}
	}
	return st
}

// EmbeddedCA is the CA running inside the relay, or nil.
func (r *Relay) EmbeddedCA() *stepca.Server {
	if r.pki == nil {
		return nil
	}
	return r.pki.ca
}

// CAURL is the URL of the CA agents enroll with, when the pki section is in use.
func (r *Relay) CAURL() string {
	if r.pki == nil {
		return ""
	}
	return r.pki.caURL
}

// opsRoutes adds the operator's view of agents to the ops server:
// GET /v1/agents/{tenant}/{agent}/ping calls the agent through the tunnel.
func (r *Relay) opsRoutes(mux *http.ServeMux) {
	r.pkiRoutes(mux)
	mux.HandleFunc("GET /status", r.serveStatus(dashboard.Handler(r.dashboardSnapshot)))
	mux.HandleFunc("GET /v1/agents", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.server.Agents())
	})
	mux.HandleFunc("GET /v1/agents/{tenant}/{agent}/ping", func(w http.ResponseWriter, req *http.Request) {
		id := tunnel.Identity{Tenant: req.PathValue("tenant"), Agent: req.PathValue("agent")}
		if err := id.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		start := time.Now()
		body, err := r.CallAgent(req.Context(), id, "/v1/ping")
		if err != nil {
			status := http.StatusBadGateway
			if errors.Is(err, tunnel.ErrNoLink) {
				status = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"agent": json.RawMessage(body), "round_trip_ms": float64(time.Since(start).Microseconds()) / 1000,
		})
	})
}

// pkiRoutes are the ops routes for agent certificates:
//
//	POST /v1/agents/{tenant}/{agent}/token   one-time enrollment token (embedded CA)
//	POST /v1/agents/{tenant}/{agent}/revoke  deny, revoke at the CA, close sessions
//	POST /v1/agents/{tenant}/{agent}/allow   lift a denial (before re-enrolling)
//	GET  /v1/denied                          the deny list
func (r *Relay) pkiRoutes(mux *http.ServeMux) {
	ident := func(w http.ResponseWriter, req *http.Request) (tunnel.Identity, bool) {
		id := tunnel.Identity{Tenant: req.PathValue("tenant"), Agent: req.PathValue("agent")}
		if err := id.Validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return id, false
		}
		if r.pki == nil {
			http.Error(w, "the relay has no pki section: certificates are fixed files", http.StatusConflict)
			return id, false
		}
		return id, true
	}
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /v1/agents/{tenant}/{agent}/token", func(w http.ResponseWriter, req *http.Request) {
		id, ok := ident(w, req)
		if !ok {
			return
		}
		if r.pki.ca == nil {
			http.Error(w, "tokens come from the external CA: step ca token "+id.Agent+" --provisioner "+r.cfg.PKI.Provisioner+" --set tenant="+id.Tenant, http.StatusConflict)
			return
		}
		m, err := r.pki.ca.Minter(stepca.AgentProvisioner)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ttl, _ := time.ParseDuration(req.URL.Query().Get("ttl"))
		tok, err := m.AgentToken(id.Tenant, id.Agent, ttl)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.log.Info("enrollment token issued", "peer", id.String(), "ttl", max(ttl, stepca.DefaultTokenTTL).String())
		writeJSON(w, map[string]string{"token": tok, "ca_url": r.pki.caURL, "fingerprint": caclient.Fingerprint(r.pki.root)})
	})
	mux.HandleFunc("POST /v1/agents/{tenant}/{agent}/revoke", func(w http.ResponseWriter, req *http.Request) {
		id, ok := ident(w, req)
		if !ok {
			return
		}
		res, err := r.Revoke(req.Context(), id, req.URL.Query().Get("reason"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, res)
	})
	mux.HandleFunc("POST /v1/agents/{tenant}/{agent}/allow", func(w http.ResponseWriter, req *http.Request) {
		id, ok := ident(w, req)
		if !ok {
			return
		}
		was, err := r.pki.verifier.Allow(id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, map[string]any{"agent": id.String(), "was_denied": was})
	})
	mux.HandleFunc("GET /v1/denied", func(w http.ResponseWriter, req *http.Request) {
		if r.pki == nil {
			writeJSON(w, []verify.Denial{})
			return
		}
		writeJSON(w, r.pki.verifier.Denied())
	})
}

// CallAgent makes a GET request to the agent id through the tunnel and
// returns the body of a 200 response.
func (r *Relay) CallAgent(ctx context.Context, id tunnel.Identity, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+id.Host()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.agents.Do(req)
	if err != nil {
		return nil, fmt.Errorf("call agent %s: %w", id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("call agent %s: %w", id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("call agent %s: %s", id, resp.Status)
	}
	return body, nil
}

// Handler serves what agents send through the tunnel. Every request carries
// the agent's verified identity in its context (tunnel.PeerFromContext).
func (r *Relay) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tunnel/ping", func(w http.ResponseWriter, req *http.Request) {
		peer, _ := tunnel.PeerFromContext(req.Context())
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"relay": r.id, "peer": peer.String(), "time": time.Now().UTC()})
	})
	r.ingest.Register(mux)
	return mux
}

// Close releases what New started (the embedded CA) when Run is not
// called; Run does it itself.
func (r *Relay) Close() {
	r.api.close()
	r.pki.close()
	if r.store != nil {
		r.store.Close()
	}
}

// Store is the relay's document store.
func (r *Relay) Store() store.Store { return r.store }

// Listen binds the agent and ops sockets, so that their addresses are known
// before Run.
func (r *Relay) Listen() error {
	if err := r.server.Listen(); err != nil {
		return err
	}
	if err := r.ops.Listen(); err != nil {
		return err
	}
	if r.api != nil {
		if err := r.api.listen(r.cfg.API.Listen); err != nil {
			return err
		}
	}
	r.listening = true
	return nil
}

// Run runs the relay until ctx ends, then drains agent sessions and returns.
// It calls Listen if that was not done.
func (r *Relay) Run(ctx context.Context) error {
	if !r.listening {
		if err := r.Listen(); err != nil {
			return err
		}
	}
	r.log.Info("bridge-relay starting", "agents_tcp", r.server.TCPAddr(), "agents_udp", r.server.UDPAddr(), "ops", "http://"+r.ops.BoundAddr())
	parts := endpoint.Parts{
		Name: "relay", Ops: r.ops, Tunnel: r.server.Run, Streams: r.server.Listener(), Handler: r.Handler(), Logger: r.log,
	}
	if r.pki != nil {
		parts.Background = append(parts.Background, r.pki.renewer.Run, r.pki.verifier.Run, r.sweep)
	}
	if r.api != nil {
		r.log.Info("dispatch API listening", "addr", r.APIAddr(), "tls", r.api.server.TLSConfig != nil)
		parts.Background = append(parts.Background, r.api.run)
	}
	err := endpoint.Run(ctx, parts)
	r.Close()
	r.log.Info("bridge-relay stopped")
	return err
}
