package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/credentials"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// CredentialsConfig is the credentials section: the encrypted credential
// manager that gives connectors their tokens. It is on when Dir is set.
// Secrets come from files (or, for the master key, the environment
// variable BRIDGE_CREDENTIALS_MASTER_KEY), never from the configuration.
type CredentialsConfig struct {
	// Dir holds credentials.db (several relays may share it). Empty: off.
	Dir string `yaml:"dir"`
	// MasterKeyFile holds the master key (base64 of 32 bytes); without it
	// the relay reads BRIDGE_CREDENTIALS_MASTER_KEY.
	MasterKeyFile string `yaml:"master_key_file"`
	// MasterKey is set by bridge-relay from the environment; never from YAML.
	MasterKey connectors.Secret `yaml:"-"`
	// RedirectURL is the public URL of GET /v1/oauth/callback, registered
	// at every provider. Default: http://<api.listen>/v1/oauth/callback.
	RedirectURL string `yaml:"redirect_url"`
	// AlertURLFile holds a Slack incoming-webhook URL for alerts.
	AlertURLFile string `yaml:"alert_url_file"`
	// RefreshAhead, ScanInterval and Window: see relay/credentials.Config.
	// Defaults 5m, 10m, and ScanInterval + 1m + RefreshAhead.
	RefreshAhead time.Duration `yaml:"refresh_ahead"`
	ScanInterval time.Duration `yaml:"scan_interval"`
	Window       time.Duration `yaml:"window"`
	// Providers are the OAuth providers of integration-owner connections.
	Providers []ProviderConfig `yaml:"providers"`
	// Services are the relay's service-to-service identities.
	Services []ServiceConfig `yaml:"services"`
}

// ProviderConfig is one OAuth provider (one per system).
type ProviderConfig struct {
	System           string   `yaml:"system"`
	AuthURL          string   `yaml:"auth_url"`
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
	// AuthStyle is how the client authenticates at the token endpoint:
	// "header" (HTTP Basic) or "params" (in the form). Default header.
	AuthStyle string `yaml:"auth_style"`
}

// ServiceConfig is one service-to-service identity, for a system and a
// tenant (or every tenant when Tenant is empty).
type ServiceConfig struct {
	System string `yaml:"system"`
	Tenant string `yaml:"tenant"`
	// Method is client-credentials, jwt-bearer, sts-assume-role or mtls
	// (API keys are stored through the admin API).
	Method           string   `yaml:"method"`
	TokenURL         string   `yaml:"token_url"`
	ClientID         string   `yaml:"client_id"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
	AuthStyle        string   `yaml:"auth_style"`
	// Subject and Audience and PrivateKeyFile are the JWT bearer assertion's.
	Subject        string `yaml:"subject"`
	Audience       string `yaml:"audience"`
	PrivateKeyFile string `yaml:"private_key_file"`
	// CertificateFile (with PrivateKeyFile) is an mTLS client certificate,
	// e.g. the relay's own from step-ca (pki.state_dir/relay.crt and
	// relay.key), followed when renewed in place.
	CertificateFile string `yaml:"certificate_file"`
	// AccessKeyID and SecretAccessKeyFile are the relay's base AWS keys.
	AccessKeyID         string `yaml:"access_key_id"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
}

func (c *CredentialsConfig) enabled() bool { return c.Dir != "" }

func (c *CredentialsConfig) paths() []*string {
	out := []*string{&c.Dir, &c.MasterKeyFile, &c.AlertURLFile}
	for i := range c.Providers {
		out = append(out, &c.Providers[i].ClientSecretFile)
	}
	for i := range c.Services {
		out = append(out, &c.Services[i].ClientSecretFile, &c.Services[i].PrivateKeyFile, &c.Services[i].SecretAccessKeyFile, &c.Services[i].CertificateFile)
	}
	return out
}

func authStyle(s string) (oauth2.AuthStyle, error) {
	switch s {
	case "", "header":
		return oauth2.AuthStyleInHeader, nil
	case "params":
		return oauth2.AuthStyleInParams, nil
	}
	return 0, fmt.Errorf("auth_style %q: want header or params", s)
}

// openCredentials builds the credential manager from c.
func openCredentials(ctx context.Context, c CredentialsConfig, reg prometheus.Registerer, log *slog.Logger) (*credentials.Manager, error) {
	m, err := credentials.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	cfg := credentials.Config{Dir: c.Dir, MasterKey: c.MasterKey, MasterKeyFile: c.MasterKeyFile,
		RefreshAhead: c.RefreshAhead, ScanInterval: c.ScanInterval, Window: c.Window,
		Logger: log.With("part", "credentials"), Metrics: m}
	if c.MasterKeyFile != "" {
		cfg.MasterKey = ""
	}
	var errs []error
	if cfg.AlertURL, err = readSecret(c.AlertURLFile); err != nil {
		errs = append(errs, fmt.Errorf("credentials.alert_url_file: %w", err))
	}
	for i, p := range c.Providers {
		secret, err := readSecret(p.ClientSecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("credentials.providers[%d].client_secret_file: %w", i, err))
		}
		style, err := authStyle(p.AuthStyle)
		if err != nil {
			errs = append(errs, fmt.Errorf("credentials.providers[%d]: %w", i, err))
		}
		cfg.Providers = append(cfg.Providers, credentials.Provider{System: p.System, AuthURL: p.AuthURL, TokenURL: p.TokenURL,
			ClientID: p.ClientID, ClientSecret: secret, Scopes: p.Scopes, AuthStyle: style})
	}
	for i, s := range c.Services {
		var sv credentials.Service
		var err1, err2, err3, err4 error
		sv.ClientSecret, err1 = readSecret(s.ClientSecretFile)
		if credentials.Method(s.Method) == credentials.MethodMTLS {
			sv.CertificateFile, sv.KeyFile = s.CertificateFile, s.PrivateKeyFile
		} else {
			sv.PrivateKeyPEM, err2 = readSecret(s.PrivateKeyFile)
		}
		sv.SecretAccessKey, err3 = readSecret(s.SecretAccessKeyFile)
		sv.AuthStyle, err4 = authStyle(s.AuthStyle)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			errs = append(errs, fmt.Errorf("credentials.services[%d]: %w", i, err))
		}
		sv.System, sv.Tenant, sv.Method, sv.TokenURL, sv.ClientID = s.System, s.Tenant, credentials.Method(s.Method), s.TokenURL, s.ClientID
		sv.Scopes, sv.Subject, sv.Audience = s.Scopes, s.Subject, s.Audience
		sv.AccessKeyID = connectors.Secret(s.AccessKeyID)
		cfg.Services = append(cfg.Services, sv)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	mgr, err := credentials.New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	return mgr, nil
}

// CredentialsSystem and CredentialsManage are what policies see for the
// credential admin API (/v1/connections...): permit them to the
// integration owners and admins who may connect, inspect and revoke their
// tenant's connections.
const (
	CredentialsSystem = "credentials"
	CredentialsManage = "manage"
)

// credentialsAdmin authorizes the credential admin API: a verified caller
// whose policy permits credentials/manage; its tenant is the caller's.
func credentialsAdmin(auth dispatch.Authenticator, pol dispatch.Decider) func(r *http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		c, err := auth.Authenticate(r.Context(), r)
		if err != nil {
			return "", err
		}
		d := pol.Decide(r.Context(), policy.Request{Tenant: c.Tenant, UserID: c.UserID, Email: c.Email, Roles: c.Roles,
			TargetSystem: CredentialsSystem, Operation: CredentialsManage, Access: string(connectors.Write), PII: false})
		if !d.Allow {
			return "", fmt.Errorf("%w: %s", credentials.ErrForbidden, d.Reason)
		}
		return c.Tenant, nil
	}
}

// callerSubject names the caller of an admin request, for the connection's record.
func callerSubject(auth dispatch.Authenticator) func(r *http.Request) string {
	return func(r *http.Request) string {
		c, err := auth.Authenticate(r.Context(), r)
		if err != nil {
			return ""
		}
		return c.UserID
	}
}

// auditedAdmin records every request to the credential admin API in the
// caller's tenant's audit log (the OAuth callback, which carries no caller,
// under dispatch.AnonymousTenant), after it is answered.
func auditedAdmin(h http.Handler, auth dispatch.Authenticator, lg dispatch.AuditLog, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		trace, _ := dispatch.TraceID(r)
		w.Header().Set("X-Trace-Id", trace)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		rec := audit.Record{
			Timestamp: start.UTC(), TraceID: trace, EventType: "credentials." + adminAction(r),
			TargetSystem: CredentialsSystem, Operation: adminSystem(r.URL.Path),
			Tenant:   audit.Tenant{ID: dispatch.AnonymousTenant},
			Request:  audit.Redact(map[string]string{"method": r.Method, "path": r.URL.Path}),
			Response: audit.Response{Success: sw.status < 400, LatencyMs: float64(time.Since(start).Microseconds()) / 1000},
		}
		if sw.status >= 400 {
			rec.Response.Error = http.StatusText(sw.status)
		}
		if c, err := auth.Authenticate(r.Context(), r); err == nil {
			rec.User = audit.User{ID: c.UserID, Email: c.Email, Roles: c.Roles}
			rec.Tenant = audit.Tenant{ID: c.Tenant, Name: c.TenantName}
			rec.AuthMethod = c.AuthMethod
		}
		if _, err := lg.Append(context.WithoutCancel(r.Context()), rec); err != nil {
			log.Error("audit record of a credential admin request not stored", "trace_id", trace, "err", err)
		}
	})
}

// adminAction names a credential admin request: authorize, callback,
// list, get or revoke.
func adminAction(r *http.Request) string {
	switch {
	case strings.HasSuffix(r.URL.Path, "/authorize"):
		return "authorize"
	case strings.HasPrefix(r.URL.Path, "/v1/oauth/callback"):
		return "callback"
	case r.Method == http.MethodDelete:
		return "revoke"
	case r.URL.Path == "/v1/connections" || r.URL.Path == "/v1/connections/":
		return "list"
	}
	return "get"
}

// adminSystem is the system a credential admin path names, or "".
func adminSystem(p string) string {
	rest, ok := strings.CutPrefix(p, "/v1/connections/")
	if !ok {
		return ""
	}
	sys, _, _ := strings.Cut(rest, "/")
	return sys
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
