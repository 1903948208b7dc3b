package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/mcc-bridge/bridge/connectors"
	spconn "github.com/mcc-bridge/bridge/connectors/sharepoint"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dashboard"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
	"github.com/mcc-bridge/bridge/relay/webhooks"
	"github.com/mcc-bridge/bridge/tunnel"
)

// APIConfig is the api section: the platform's front door (the dispatcher).
type APIConfig struct {
	// Listen is the API's address, e.g. "127.0.0.1:8080". Empty (the
	// default) turns the API off.
	Listen string `yaml:"listen"`
	// TLS serves HTTPS with this certificate and key. Required unless
	// Listen is a loopback address.
	TLS struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
	} `yaml:"tls"`
	// Auth verifies callers' OIDC bearer tokens (Amazon Cognito or any
	// OIDC issuer). Required unless DevTokens is on.
	Auth callerauth.Config `yaml:"auth"`
	// DevTokens trusts tokens minted by 'bridge-relay dev-token' (a key in
	// the state directory). For a local trial only. Default off.
	DevTokens bool `yaml:"dev_tokens"`
	// Policies is the Cedar policy folder: one sub-folder per tenant, plus
	// _global. Default "policies".
	Policies string `yaml:"policies"`
	// Audit is the audit log's folder. Default "audit".
	Audit string `yaml:"audit"`
	// Timeout bounds one dispatch. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Rate and Burst limit each tenant's calls to each connector. Default 200/s, 400.
	Rate  float64 `yaml:"rate"`
	Burst int     `yaml:"burst"`
}

func (c *APIConfig) enabled() bool { return c.Listen != "" }

func (c *APIConfig) paths() []*string {
	return []*string{&c.TLS.Cert, &c.TLS.Key, &c.Policies, &c.Audit}
}

func (c *APIConfig) validate() []error {
	if !c.enabled() {
		return nil
	}
	var errs []error
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("api.listen: %w", err))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("api.tls: cert and key go together"))
	}
	if ip := net.ParseIP(host); c.TLS.Cert == "" && host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		errs = append(errs, fmt.Errorf("api.listen %s is not a loopback address: api.tls (cert and key) is required, since bearer tokens must not cross the network in clear", c.Listen))
	}
	if !c.DevTokens {
		if err := c.Auth.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("api.auth: %w (or set api.dev_tokens for a local trial)", err))
		}
	}
	return errs
}

// DevIssuerPath is where the dev-token key lives in the relay's state directory.
func (c Config) DevIssuerPath() string { return filepath.Join(c.PKI.StateDir, "dev-issuer.json") }

// DevIssuerName is the issuer of dev tokens.
const DevIssuerName = "https://relay.invalid/dev-issuer"

// apiParts is the dispatcher and what it is built of.
type apiParts struct {
	dispatcher *dispatch.Dispatcher
	policies   *policy.Engine
	audit      *audit.Log
	recorder   *dashboard.Recorder
	webhooks   *webhooks.Hub        // nil without webhook endpoints
	creds      *credentials.Manager // nil without credentials.dir
	server     *http.Server
	ln         net.Listener
	started    time.Time
}

// startAPI builds the dispatcher: the caller authenticator, the policy
// engine, the audit log and the connectors.
func (r *Relay) startAPI(ctx context.Context, cfg Config, reg *prometheus.Registry, log *slog.Logger) (*apiParts, error) {
	a := &apiParts{started: time.Now(), recorder: dashboard.NewRecorder(time.Now)}
	opts := callerauth.Options{Logger: log.With("part", "callerauth")}
	if cfg.API.DevTokens {
		dev, err := callerauth.LoadOrCreateDevIssuer(cfg.DevIssuerPath(), DevIssuerName)
		if err != nil {
			return nil, fmt.Errorf("api.dev_tokens: %w", err)
		}
		opts.Dev = dev // callerauth warns that it is on
	}
	auth, err := callerauth.New(ctx, cfg.API.Auth, opts)
	if err != nil {
		return nil, fmt.Errorf("api.auth: %w", err)
	}
	pm, err := policy.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.API.Policies, 0o700); err != nil {
		return nil, fmt.Errorf("api.policies: %w", err)
	}
	if a.policies, err = policy.Load(ctx, policy.Config{Dir: cfg.API.Policies, Metrics: pm}, log.With("part", "policy")); err != nil {
		return nil, err
	}
	if a.audit, err = audit.Open(ctx, cfg.API.Audit, audit.Options{Logger: log.With("part", "audit"), Registerer: reg}); err != nil {
		return nil, fmt.Errorf("api.audit: %w", err)
	}
	sp, err := spconn.New(spconn.Config{Store: r.store, Agents: tunnelAgents{r}, Logger: log.With("part", "sharepoint")})
	if err != nil {
		a.audit.Close()
		return nil, err
	}
	saas, err := cfg.Connectors.build(log)
	if err != nil {
		a.audit.Close()
		return nil, err
	}
	var creds connectors.Credentials // nil: only connectors that need none
	if cfg.Credentials.enabled() {
		if a.creds, err = openCredentials(ctx, cfg.Credentials, reg, log); err != nil {
			a.audit.Close()
			return nil, err
		}
		creds = a.creds
	}
	dm, err := dispatch.NewMetrics(reg)
	if err != nil {
		a.audit.Close()
		return nil, err
	}
	a.dispatcher, err = dispatch.New(dispatch.Config{
		Connectors:  append([]connectors.Connector{sp}, saas...),
		Auth:        auth,
		Policy:      a.policies,
		Audit:       a.audit,
		Credentials: creds,
		Logger:      log.With("part", "dispatch"),
		Metrics:     dm,
		Observe:     a.recorder.Observe,
		Timeout:     cfg.API.Timeout,
		Rate:        rateLimit(cfg.API.Rate),
		Burst:       cfg.API.Burst,
	})
	if err != nil {
		a.close()
		return nil, err
	}
	mux := http.NewServeMux()
	a.dispatcher.Register(mux)
	if a.creds != nil {
		redirect := cfg.API.CredentialsRedirect(cfg.Credentials)
		h, err := credentials.NewHandler(a.creds, credentials.HandlerConfig{
			Authorize: credentialsAdmin(auth, a.policies), Subject: callerSubject(auth), RedirectURL: redirect, Logger: log.With("part", "credentials"),
		})
		if err != nil {
			a.close()
			return nil, fmt.Errorf("credentials: %w", err)
		}
		audited := auditedAdmin(h, auth, a.audit, log.With("part", "credentials"))
		for _, p := range []string{"/v1/connections", "/v1/connections/", "/v1/oauth/callback"} {
			mux.Handle(p, audited)
		}
	}
	if cfg.Webhooks.enabled() {
		if a.webhooks, err = openWebhooks(ctx, cfg.Webhooks, reg, log); err != nil {
			a.audit.Close()
			return nil, err
		}
		mux.Handle("POST /webhooks/", a.webhooks.Handler())
	}
	a.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.API.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.API.TLS.Cert, cfg.API.TLS.Key)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("api.tls: %w", err)
		}
		a.server.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return a, nil
}

func (a *apiParts) close() {
	if a == nil {
		return
	}
	if a.webhooks != nil {
		a.webhooks.Close()
	}
	if a.creds != nil {
		a.creds.Close()
	}
	if a.audit != nil {
		a.audit.Close()
	}
}

// listen binds the API's socket.
func (a *apiParts) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("api.listen: %w", err)
	}
	if a.server.TLSConfig != nil {
		ln = tls.NewListener(ln, a.server.TLSConfig)
	}
	a.ln = ln
	return nil
}

// run serves the API until ctx ends, then shuts it down gracefully.
func (a *apiParts) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- a.server.Serve(a.ln) }()
	go a.policies.Run(ctx)
	if a.webhooks != nil {
		go a.webhooks.Run(ctx)
	}
	if a.creds != nil {
		go a.creds.Run(ctx)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	a.server.Shutdown(sctx)
	return nil
}

// APIAddr is the bound API address, or "" when the API is off or not bound yet.
func (r *Relay) APIAddr() string {
	if r.api == nil || r.api.ln == nil {
		return ""
	}
	return r.api.ln.Addr().String()
}

// Dispatcher is the relay's dispatcher, or nil when the API is off.
func (r *Relay) Dispatcher() *dispatch.Dispatcher {
	if r.api == nil {
		return nil
	}
	return r.api.dispatcher
}

// tunnelAgents reaches agents through the relay's tunnel server, for connectors.
type tunnelAgents struct{ r *Relay }

// Connected lists the tenant's connected agents.
func (t tunnelAgents) Connected(tenant string) []string {
	var out []string
	for _, a := range t.r.server.Agents() {
		if a.Tenant == tenant {
			out = append(out, a.Agent)
		}
	}
	return out
}

// Do sends req to the agent through its tunnel. It has no timeout of its
// own (content may stream for long); ctx bounds it.
func (t tunnelAgents) Do(ctx context.Context, tenant, agent string, req *http.Request) (*http.Response, error) {
	id := tunnel.Identity{Tenant: tenant, Agent: agent}
	req = req.Clone(ctx)
	req.URL.Scheme, req.URL.Host, req.Host = "http", id.Host(), id.Host()
	return t.r.streams.Do(req)
}

func rateLimit(perSecond float64) rate.Limit { return rate.Limit(perSecond) }

// CredentialsRedirect is the OAuth callback URL: credentials.redirect_url,
// or the API's own address.
func (c APIConfig) CredentialsRedirect(cc CredentialsConfig) string {
	if cc.RedirectURL != "" {
		return cc.RedirectURL
	}
	scheme := "http"
	if c.TLS.Cert != "" {
		scheme = "https"
	}
	return scheme + "://" + c.Listen + "/v1/oauth/callback"
}
