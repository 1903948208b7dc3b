package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/pki/renew"
	"github.com/mcc-bridge/bridge/pki/stepca"
	"github.com/mcc-bridge/bridge/pki/verify"
	"github.com/mcc-bridge/bridge/tunnel"
)

// PKIConfig is the pki section: where agent certificates come from and how
// the relay checks them. Set ca.dir for a CA inside the relay (dev and
// single machine), or ca_url with root or fingerprint for an external
// step-ca.
type PKIConfig struct {
	// CA runs a step-ca inside the relay.
	CA EmbeddedCAConfig `yaml:"ca"`
	// CAURL is the external step-ca. Default with ca.dir: the embedded CA.
	CAURL string `yaml:"ca_url"`
	// Root is the root certificate file that agent certificates chain to.
	Root string `yaml:"root"`
	// Fingerprint pins the external CA's root by SHA-256 instead of a file.
	Fingerprint string `yaml:"fingerprint"`
	// CRLURL is where the CA's CRL is fetched. Default CAURL/1.0/crl.
	CRLURL string `yaml:"crl_url"`
	// Provisioner is the provisioner that must have issued agent
	// certificates. Default "agents".
	Provisioner string `yaml:"provisioner"`
	// CRLRefresh is how often the CA's CRL is fetched. Default 30s.
	CRLRefresh time.Duration `yaml:"crl_refresh"`
	// Sweep is how often live sessions are checked against the CRL and
	// deny list. Default 10s.
	Sweep time.Duration `yaml:"sweep"`
	// StateDir keeps the relay's own certificate (relay.crt, relay.key,
	// renewed in place) and the deny list (denied.json). Default "state".
	StateDir string `yaml:"state_dir"`
	// Names are the DNS names and IPs of the relay's own certificate, when
	// the relay gets it from the CA itself. Default localhost, 127.0.0.1,
	// ::1 and the host name.
	Names []string `yaml:"names"`
	// RevokePasswordFile holds the password of the agents provisioner of an
	// external CA, so that `bridge-relay agents revoke` can revoke at the CA.
	// Not needed with the embedded CA. Without it, revocation denies the
	// identity here and prints the serials to revoke with `step ca revoke`.
	RevokePasswordFile string `yaml:"revoke_password_file"`
}

// EmbeddedCAConfig is pki.ca.
type EmbeddedCAConfig struct {
	// Dir is the CA directory made by `bridge-relay ca init`.
	Dir string `yaml:"dir"`
	// Listen is where the CA serves HTTPS. Default 127.0.0.1:9000.
	Listen string `yaml:"listen"`
	// Init creates the CA in Dir on first start when it is missing.
	Init bool `yaml:"init"`
	// AgentCertDuration is the agent certificate lifetime for a CA that
	// Init creates. Default 24h.
	AgentCertDuration time.Duration `yaml:"agent_cert_duration"`
}

// Enabled reports whether the pki section is in use.
func (p PKIConfig) Enabled() bool { return p.CA.Dir != "" || p.CAURL != "" }

func (p *PKIConfig) paths() []*string {
	return []*string{&p.CA.Dir, &p.Root, &p.StateDir, &p.RevokePasswordFile}
}

func (p PKIConfig) validate() []error {
	var errs []error
	if !p.Enabled() {
		return nil
	}
	if p.CA.Dir == "" && p.Root == "" && p.Fingerprint == "" {
		errs = append(errs, errors.New("pki: an external CA (ca_url) needs root or fingerprint"))
	}
	if p.CAURL != "" && !strings.HasPrefix(p.CAURL, "https://") {
		errs = append(errs, fmt.Errorf("pki.ca_url %q: want https://host[:port]", p.CAURL))
	}
	if p.CRLRefresh < time.Second || p.Sweep < time.Second {
		errs = append(errs, errors.New("pki: crl_refresh and sweep must be at least 1s"))
	}
	return errs
}

// pkiParts are the relay's PKI pieces, when the pki section is in use.
type pkiParts struct {
	ca       *stepca.Server    // embedded CA, or nil
	caURL    string            // where agents enroll and renew
	root     *x509.Certificate // agent certificates chain to it
	verifier *verify.Verifier  // checks agent certificates
	renewer  *renew.Renewer    // the relay's own certificate
	minter   *stepca.Minter    // revokes at the CA; nil without a password
	conn     *caclient.Connection
}

// startPKI starts the embedded CA (creating it if asked), gets the relay
// its own certificate from the CA when it has none, and builds the
// verifier and renewer.
func startPKI(ctx context.Context, cfg Config, r *Relay, reg prometheus.Registerer) (*pkiParts, error) {
	p := cfg.PKI
	parts := &pkiParts{caURL: p.CAURL}
	if p.CA.Dir != "" {
		c, err := stepca.Load(p.CA.Dir)
		if err != nil && p.CA.Init {
			if _, statErr := os.Stat(stepca.Layout{Dir: p.CA.Dir}.Config()); errors.Is(statErr, os.ErrNotExist) {
				c, err = stepca.Init(p.CA.Dir, stepca.InitOptions{Address: p.CA.Listen, AgentDuration: p.CA.AgentCertDuration, DNSNames: caNames(p.CA.Listen)})
				if err == nil {
					r.log.Info("created the embedded CA", "dir", p.CA.Dir, "root_fingerprint", c.Fingerprint())
				}
			}
		}
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", p.CA.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded CA: %w", err)
		}
		parts.ca, err = c.Start(ln, r.log.With("part", "ca"))
		if err != nil {
			return nil, err
		}
		if parts.caURL == "" {
			parts.caURL = parts.ca.URL()
		}
		parts.root = c.Root()
	}
	fail := func(err error) (*pkiParts, error) {
		parts.close()
		return nil, err
	}
	// The CA's root: the embedded CA's, a file, or fetched and checked
	// against the fingerprint (one connection either way).
	pin := caclient.Pin{Root: parts.root, Fingerprint: p.Fingerprint}
	if pin.Root == nil && p.Root != "" {
		root, err := caclient.ReadRoot(p.Root)
		if err != nil {
			return fail(fmt.Errorf("pki.root: %w", err))
		}
		pin.Root = root
	}
	conn, err := caclient.Dial(ctx, parts.caURL, pin)
	if err != nil {
		return fail(fmt.Errorf("pki: %w", err))
	}
	parts.conn, parts.root = conn, conn.Root

	// The relay's own certificate: from the state directory, or issued now.
	st := enroll.Store{Dir: p.StateDir, Name: "relay"}
	if !st.Exists() {
		if parts.ca == nil {
			return fail(fmt.Errorf("pki: no relay certificate in %s: issue one for this relay's names with "+
				"'step ca certificate' and import it, or use the embedded CA", p.StateDir))
		}
		m, err := parts.ca.Minter(stepca.RelayProvisioner)
		if err != nil {
			return fail(err)
		}
		names := p.Names
		if len(names) == 0 {
			names = defaultRelayNames()
		}
		tok, err := m.ServerToken(names, 0)
		if err != nil {
			return fail(err)
		}
		if _, err := enroll.Enroll(ctx, tok, st, enroll.Options{CAURL: parts.caURL, Fingerprint: caclient.Fingerprint(parts.root)}); err != nil {
			return fail(fmt.Errorf("issue the relay certificate: %w", err))
		}
		r.log.Info("issued the relay certificate from the embedded CA", "names", strings.Join(names, ","), "dir", p.StateDir)
	}
	rm, err := renew.NewMetrics(reg)
	if err != nil {
		return fail(err)
	}
	parts.renewer, err = renew.New(renew.Config{Store: st, CAURL: parts.caURL, Logger: r.log, Metrics: rm, Name: "relay"})
	if err != nil {
		return fail(err)
	}
	parts.verifier, err = verify.New(verify.Config{
		Provisioner: p.Provisioner,
		CAURL:       parts.caURL,
		CRLURL:      p.CRLURL,
		Root:        parts.root,
		CRLRefresh:  p.CRLRefresh,
		DenyList:    filepath.Join(p.StateDir, "denied.json"),
		Logger:      r.log,
	})
	if err != nil {
		return fail(err)
	}
	switch {
	case parts.ca != nil:
		parts.minter, err = parts.ca.Minter(stepca.AgentProvisioner)
	case p.RevokePasswordFile != "":
		var pw []byte
		pw, err = os.ReadFile(p.RevokePasswordFile)
		if err == nil {
			parts.minter, err = stepca.NewRemoteMinter(ctx, parts.caURL, caclient.Fingerprint(parts.root), p.Provisioner, []byte(strings.TrimSpace(string(pw))))
		}
	}
	if err != nil {
		return fail(fmt.Errorf("pki: revocation: %w", err))
	}
	return parts, nil
}

func (p *pkiParts) close() {
	if p == nil {
		return
	}
	if p.conn != nil {
		p.conn.Transport.CloseIdleConnections()
	}
	if p.ca != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.ca.Close(ctx)
	}
}

// tlsConfig is the tunnel TLS configuration: the renewing relay
// certificate, the agent root and the verifier.
func (p *pkiParts) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.root)
	return &tls.Config{
		GetCertificate:   p.renewer.GetCertificate,
		ClientCAs:        pool,
		VerifyConnection: p.verifier.VerifyConnection,
	}
}

// loopbackNames are the names every relay and embedded CA certificate has.
func loopbackNames() []string { return []string{"localhost", "127.0.0.1", "::1"} }

func caNames(listen string) []string {
	names := loopbackNames()
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" && !slices.Contains(names, host) && host != "0.0.0.0" && host != "::" {
		names = append([]string{host}, names...)
	}
	return names
}

func defaultRelayNames() []string {
	names := loopbackNames()
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		names = append(names, h)
	}
	return names
}

// RevokeResult is what revoking an agent did.
type RevokeResult struct {
	Agent          string   `json:"agent"`
	Denied         bool     `json:"denied"`
	RevokedSerials []string `json:"revoked_serials"`
	// PendingSerials could not be revoked at the CA from here: revoke them
	// with `step ca revoke SERIAL`.
	PendingSerials []string `json:"pending_serials,omitempty"`
	ClosedSessions int      `json:"closed_sessions"`
	Errors         []string `json:"errors,omitempty"`
}

// Revoke denies the agent identity here, revokes every certificate it is
// known to hold at the CA (live sessions, and the embedded CA's records),
// and closes its sessions.
func (r *Relay) Revoke(ctx context.Context, id tunnel.Identity, reason string) (RevokeResult, error) {
	res := RevokeResult{Agent: id.String()}
	if r.pki == nil {
		return res, errors.New("revocation needs the pki section in the relay configuration")
	}
	if err := id.Validate(); err != nil {
		return res, err
	}
	if reason == "" {
		reason = "revoked by an administrator"
	}
	if err := r.pki.verifier.Deny(id, reason); err != nil {
		return res, err
	}
	res.Denied = true
	serials := map[string]bool{}
	for _, s := range r.server.PeerSerials(id) {
		serials[s] = true
	}
	if r.pki.ca != nil {
		certs, err := r.pki.ca.IssuedTo(func(c *x509.Certificate) bool {
			got, err := tunnel.IdentityFromCertificate(c)
			return err == nil && got == id
		})
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
		for _, c := range certs {
			serials[c.SerialNumber.String()] = true
		}
	}
	for _, s := range slices.Sorted(maps.Keys(serials)) {
		if r.pki.minter == nil {
			res.PendingSerials = append(res.PendingSerials, s)
			continue
		}
		if err := r.pki.minter.Revoke(ctx, r.pki.conn.Client, s, reason); err != nil {
			res.Errors = append(res.Errors, err.Error())
			res.PendingSerials = append(res.PendingSerials, s)
			continue
		}
		res.RevokedSerials = append(res.RevokedSerials, s)
	}
	r.pki.verifier.MarkRevoked(res.RevokedSerials...)
	res.ClosedSessions = r.server.Revalidate(r.checkLive)
	r.log.Warn("agent revoked", "peer", id.String(), "revoked_serials", strings.Join(res.RevokedSerials, ","),
		"pending_serials", strings.Join(res.PendingSerials, ","), "closed_sessions", res.ClosedSessions)
	return res, nil
}

// checkLive re-checks a live session's certificate: revocation and the
// deny list (not expiry: renewal does not re-handshake live sessions).
func (r *Relay) checkLive(_ tunnel.Identity, leaf *x509.Certificate) error {
	_, err := r.pki.verifier.Check(leaf)
	return err
}

// sweep re-checks live sessions every pki.sweep until ctx ends.
func (r *Relay) sweep(ctx context.Context) error {
	t := time.NewTicker(r.cfg.PKI.Sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.server.Revalidate(r.checkLive)
		}
	}
}
