// Package verify is the relay's check of agent certificates beyond the
// chain that crypto/tls already verified: the clientAuth key usage, the
// issuing provisioner, exactly one spiffe://<tenant>/agent/<id> URI, the
// CA's certificate revocation list (polled, signature checked against the
// intermediate), and the relay's own deny list of identities.
//
// VerifyConnection runs in every handshake, resumed ones too, and Check
// re-runs the revocation checks for sessions that are already up.
package verify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"

	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/tunnel"
)

// Refusal reasons, as the bridge_tunnel_refusals_total metric labels them.
const (
	ReasonRevoked          = "revoked"
	ReasonDenied           = "denied"
	ReasonWrongEKU         = "wrong_eku"
	ReasonWrongProvisioner = "wrong_provisioner"
	ReasonBadIdentity      = "bad_identity"
	ReasonNoCertificate    = "no_certificate"
)

// Refusal is why an agent certificate was refused. Its message starts with
// a phrase per reason that tunnel.ClassifyRefusal recognises even after a
// transport has flattened the error to text.
type Refusal struct {
	Reason  string
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Config configures a Verifier. The zero value checks key usage and
// identity only.
type Config struct {
	// Provisioner is the provisioner that must have issued agent
	// certificates ("agents"). Empty skips the check.
	Provisioner string
	// CAURL is the step-ca whose CRL (CAURL/1.0/crl) is polled, and whose
	// intermediates (CAURL/1.0/intermediates.pem) must have signed it.
	// Empty disables CRL checks.
	CAURL string
	// CRLURL overrides where the CRL is fetched. Zero means CAURL/1.0/crl.
	CRLURL string
	// Root verifies the CA's TLS certificate and its intermediates.
	// Required with CAURL.
	Root *x509.Certificate
	// CRLRefresh is how often the CRL is fetched. Zero means 30s.
	CRLRefresh time.Duration
	// DenyList is the file that keeps denied identities across restarts.
	// Empty keeps them in memory only.
	DenyList string
	// Logger receives log lines. Nil means none.
	Logger *slog.Logger
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Denial is one denied identity.
type Denial struct {
	Tenant string    `json:"tenant"`
	Agent  string    `json:"agent"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Identity is the denied identity.
func (d Denial) Identity() tunnel.Identity { return tunnel.Identity{Tenant: d.Tenant, Agent: d.Agent} }

// CRLStatus describes the CRL in use.
type CRLStatus struct {
	URL        string    `json:"url,omitempty"`
	Number     string    `json:"number,omitempty"`
	ThisUpdate time.Time `json:"this_update,omitzero"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	Revoked    int       `json:"revoked"`
	FetchedAt  time.Time `json:"fetched_at,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// Verifier checks agent certificates. Create it with New; run Run for the
// CRL.
type Verifier struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client

	mu      sync.RWMutex
	revoked map[string]time.Time       // serial (decimal) -> revocation time; guarded by mu
	denied  map[tunnel.Identity]Denial // guarded by mu
	crl     CRLStatus                  // guarded by mu
	fetched chan struct{}              // closed after the first fetch attempt
	once    sync.Once
}

// New loads the deny list and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.CAURL != "" && cfg.Root == nil {
		return nil, errors.New("verify: a CA URL needs the root that verifies it")
	}
	if cfg.CRLRefresh <= 0 {
		cfg.CRLRefresh = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, log: cfg.Logger, revoked: map[string]time.Time{}, denied: map[tunnel.Identity]Denial{}, fetched: make(chan struct{})}
	if cfg.CAURL != "" {
		v.crl.URL = strings.TrimRight(cfg.CAURL, "/") + "/1.0/crl"
		if cfg.CRLURL != "" {
			v.crl.URL = cfg.CRLURL
		}
		v.client = &http.Client{Timeout: caclient.Timeout, Transport: caclient.TransportWith(cfg.Root, nil)}
	}
	if cfg.DenyList != "" {
		b, err := os.ReadFile(cfg.DenyList)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("deny list: %w", err)
		default:
			var list []Denial
			if err := json.Unmarshal(b, &list); err != nil {
				return nil, fmt.Errorf("deny list %s: %w", cfg.DenyList, err)
			}
			for _, d := range list {
				v.denied[d.Identity()] = d
			}
		}
	}
	return v, nil
}

// VerifyConnection is for tls.Config.VerifyConnection on the relay. The
// chain has been verified by crypto/tls already.
func (v *Verifier) VerifyConnection(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return &Refusal{Reason: ReasonNoCertificate, Message: "no client certificate"}
	}
	_, err := v.Check(cs.PeerCertificates[0])
	return err
}

// Check vets an agent's leaf certificate and returns its identity.
func (v *Verifier) Check(leaf *x509.Certificate) (tunnel.Identity, error) {
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return tunnel.Identity{}, &Refusal{Reason: ReasonWrongEKU, Message: "agent certificate lacks the clientAuth extended key usage"}
	}
	if v.cfg.Provisioner != "" {
		ext, ok := provisioner.GetProvisionerExtension(leaf)
		switch {
		case !ok:
			return tunnel.Identity{}, &Refusal{Reason: ReasonWrongProvisioner, Message: fmt.Sprintf("agent certificate issued by provisioner (none), want %q", v.cfg.Provisioner)}
		case ext.Name != v.cfg.Provisioner:
			return tunnel.Identity{}, &Refusal{Reason: ReasonWrongProvisioner, Message: fmt.Sprintf("agent certificate issued by provisioner %q, want %q", ext.Name, v.cfg.Provisioner)}
		}
	}
	id, err := tunnel.IdentityFromCertificate(leaf)
	if err != nil {
		return tunnel.Identity{}, &Refusal{Reason: ReasonBadIdentity, Message: "agent certificate has no usable identity: " + err.Error()}
	}
	v.mu.RLock()
	at, revoked := v.revoked[leaf.SerialNumber.String()]
	d, denied := v.denied[id]
	v.mu.RUnlock()
	if revoked {
		return id, &Refusal{Reason: ReasonRevoked, Message: fmt.Sprintf("agent certificate revoked: serial %s of %s, revoked at %s",
			leaf.SerialNumber, id, at.UTC().Format(time.RFC3339))}
	}
	if denied {
		return id, &Refusal{Reason: ReasonDenied, Message: fmt.Sprintf("agent identity denied: %s, since %s (%s)", id, d.At.UTC().Format(time.RFC3339), d.Reason)}
	}
	return id, nil
}

// Deny adds id to the deny list (and its file).
func (v *Verifier) Deny(id tunnel.Identity, reason string) error {
	if err := id.Validate(); err != nil {
		return err
	}
	v.mu.Lock()
	v.denied[id] = Denial{Tenant: id.Tenant, Agent: id.Agent, Reason: reason, At: v.cfg.Now().UTC()}
	err := v.saveLocked()
	v.mu.Unlock()
	if err == nil {
		v.log.Warn("agent identity denied", "peer", id.String(), "reason", reason)
	}
	return err
}

// Allow removes id from the deny list, so that a re-enrolled agent can
// connect again. It reports whether id was denied.
func (v *Verifier) Allow(id tunnel.Identity) (bool, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.denied[id]; !ok {
		return false, nil
	}
	delete(v.denied, id)
	v.log.Info("agent identity allowed again", "peer", id.String())
	return true, v.saveLocked()
}

// Denied lists the deny list, sorted.
func (v *Verifier) Denied() []Denial {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.deniedLocked()
}

// deniedLocked is the deny list sorted by identity; v.mu is held.
func (v *Verifier) deniedLocked() []Denial {
	list := make([]Denial, 0, len(v.denied))
	for _, d := range v.denied {
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b Denial) int { return strings.Compare(a.Tenant+"/"+a.Agent, b.Tenant+"/"+b.Agent) })
	return list
}

func (v *Verifier) saveLocked() error {
	if v.cfg.DenyList == "" {
		return nil
	}
	b, err := json.MarshalIndent(v.deniedLocked(), "", "  ")
	if err != nil {
		return err
	}
	if err := enroll.WriteFileAtomic(v.cfg.DenyList, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("deny list: %w", err)
	}
	return nil
}

// MarkRevoked records serials as revoked at once, before the CA's next CRL
// lists them.
func (v *Verifier) MarkRevoked(serials ...string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, s := range serials {
		if _, ok := v.revoked[s]; !ok {
			v.revoked[s] = v.cfg.Now()
		}
	}
}

// CRL describes the CRL in use.
func (v *Verifier) CRL() CRLStatus {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.crl
}

// Run fetches the CRL every CRLRefresh until ctx ends. Without a CA URL it
// just waits.
func (v *Verifier) Run(ctx context.Context) error {
	if v.client == nil {
		v.once.Do(func() { close(v.fetched) })
		<-ctx.Done()
		return nil
	}
	defer v.client.CloseIdleConnections()
	for {
		if err := v.RefreshCRL(ctx); err != nil && ctx.Err() == nil {
			v.log.Warn("CRL refresh failed; keeping the last one", "url", v.crl.URL, "err", err)
		}
		v.once.Do(func() { close(v.fetched) })
		t := time.NewTimer(v.cfg.CRLRefresh)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Fetched is closed after Run's first CRL fetch, whatever its outcome.
func (v *Verifier) Fetched() <-chan struct{} { return v.fetched }

// RefreshCRL fetches the CRL once, checks its signature against an
// intermediate that chains to the root, and replaces the revoked set.
func (v *Verifier) RefreshCRL(ctx context.Context) error {
	if v.client == nil {
		return errors.New("no CA URL configured")
	}
	err := v.refreshCRL(ctx)
	v.mu.Lock()
	if err != nil {
		v.crl.LastError = err.Error()
	} else {
		v.crl.LastError = ""
	}
	v.mu.Unlock()
	return err
}

func (v *Verifier) refreshCRL(ctx context.Context) error {
	der, err := v.get(ctx, v.crl.URL)
	if err != nil {
		return err
	}
	if block, _ := pem.Decode(der); block != nil {
		der = block.Bytes
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("parse CRL from %s: %w", v.crl.URL, err)
	}
	issuers, err := v.intermediates(ctx)
	if err != nil {
		return err
	}
	var sigErr error = errors.New("no intermediate of the CA issued it")
	signed := false
	for _, is := range issuers {
		if sigErr = crl.CheckSignatureFrom(is); sigErr == nil {
			signed = true
			break
		}
	}
	if !signed {
		return fmt.Errorf("CRL from %s: bad signature: %w", v.crl.URL, sigErr)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.crl.Number != "" && crl.Number != nil && !v.crl.ThisUpdate.IsZero() && crl.ThisUpdate.Before(v.crl.ThisUpdate) {
		return fmt.Errorf("CRL from %s is older (%s) than the one in use (%s)", v.crl.URL, crl.ThisUpdate, v.crl.ThisUpdate)
	}
	before := len(v.revoked)
	next := make(map[string]time.Time, len(crl.RevokedCertificateEntries))
	for _, e := range crl.RevokedCertificateEntries {
		next[e.SerialNumber.String()] = e.RevocationTime
	}
	// Keep serials marked by hand until the CRL has them, so that a
	// revocation made here is not forgotten by a CRL cached before it.
	for s, at := range v.revoked {
		if _, ok := next[s]; !ok && v.cfg.Now().Sub(at) < 24*time.Hour && !crl.ThisUpdate.After(at) {
			next[s] = at
		}
	}
	v.revoked = next
	v.crl.ThisUpdate, v.crl.NextUpdate, v.crl.Revoked, v.crl.FetchedAt = crl.ThisUpdate, crl.NextUpdate, len(crl.RevokedCertificateEntries), v.cfg.Now()
	if crl.Number != nil {
		v.crl.Number = crl.Number.String()
	}
	if len(next) != before {
		v.log.Info("CRL updated", "url", v.crl.URL, "revoked", len(crl.RevokedCertificateEntries), "this_update", crl.ThisUpdate)
	}
	return nil
}

func (v *Verifier) intermediates(ctx context.Context) ([]*x509.Certificate, error) {
	u := strings.TrimRight(v.cfg.CAURL, "/") + "/1.0/intermediates.pem"
	b, err := v.get(ctx, u)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(v.cfg.Root)
	var out []*x509.Certificate
	for len(b) > 0 {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			continue
		}
		out = append(out, c)
	}
	out = append(out, v.cfg.Root) // a CRL signed by the root itself is also fine
	return out, nil
}

func (v *Verifier) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, &caclient.UnreachableError{URL: u, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return b, nil
}
