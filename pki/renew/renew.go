// Package renew keeps a step-ca certificate fresh: it renews at about two
// thirds of the lifetime (with jitter), backs off on failure, writes the new
// chain atomically, and hands it to live TLS configurations through
// GetCertificate and GetClientCertificate, so established tunnels keep their
// streams and new handshakes use the new certificate.
package renew

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/cli-utils/token"
	"go.step.sm/crypto/jose"

	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/mcc-bridge/bridge/pki/enroll"
	"github.com/mcc-bridge/bridge/tunnel/backoff"
)

// State is where a Renewer stands.
type State string

// The states a Renewer reports.
const (
	// StateValid: the certificate is valid and renewal is scheduled.
	StateValid State = "valid"
	// StateRetrying: the last renewal failed; it is retried with backoff.
	StateRetrying State = "retrying"
	// StateReenroll: the certificate expired (or was refused for good) and
	// the CA will not renew it; the machine needs a new enrollment token.
	// The renewer keeps trying in case the CA changes its mind.
	StateReenroll State = "reenroll_needed"
	// StateManual: there is no CA to renew with; replace the files by hand.
	StateManual State = "manual"
)

// Config configures a Renewer. Store is required.
type Config struct {
	// Store holds the certificate, key and root.
	Store enroll.Store
	// CAURL is where renewals go. Zero means the URL recorded at enrollment;
	// when neither is known the renewer only reports expiry (StateManual).
	CAURL string
	// RenewAt is the fraction of the lifetime after which to renew. Zero
	// means 2/3.
	RenewAt float64
	// Backoff paces retries after a failure. Zero fields mean 5s growing to
	// 5 minutes.
	Backoff backoff.Policy
	// Logger receives the renewer's log lines. Nil means none.
	Logger *slog.Logger
	// Metrics records expiry, renewals and the re-enrollment flag. Nil means none.
	Metrics *Metrics
	// Name labels metrics and logs: "agent" or "relay". Zero means Store.Name.
	Name string
	// OnRenew is called after each renewal with the new certificate.
	OnRenew func(*tls.Certificate)
}

// Status is a snapshot for status pages.
type Status struct {
	State       State     `json:"state"`
	Subject     string    `json:"subject"`
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	NextRenewal time.Time `json:"next_renewal,omitzero"`
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	CAURL       string    `json:"ca_url,omitempty"`
}

// Renewer holds the current certificate and renews it. Create it with New,
// then Run it.
type Renewer struct {
	cfg  Config
	log  *slog.Logger
	root *x509.Certificate
	cert atomic.Pointer[tls.Certificate]
	kick chan struct{}

	mu     sync.Mutex
	status Status // guarded by mu
}

// New loads the certificate from cfg.Store.
func New(cfg Config) (*Renewer, error) {
	cert, root, err := cfg.Store.Load()
	if err != nil {
		return nil, err
	}
	if cfg.CAURL == "" {
		meta, err := cfg.Store.LoadMeta()
		if err != nil {
			return nil, err
		}
		cfg.CAURL = meta.CAURL
	}
	if cfg.RenewAt <= 0 || cfg.RenewAt >= 1 {
		cfg.RenewAt = 2.0 / 3
	}
	if cfg.Backoff.Base <= 0 {
		cfg.Backoff.Base = 5 * time.Second
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = 5 * time.Minute
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Store.Name
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Renewer{cfg: cfg, log: cfg.Logger.With("certificate", cfg.Name), root: root, kick: make(chan struct{}, 1)}
	r.cert.Store(cert)
	r.status = Status{State: StateValid, CAURL: cfg.CAURL}
	if cfg.CAURL == "" {
		r.status.State = StateManual
	}
	r.describe(cert.Leaf)
	return r, nil
}

func (r *Renewer) describe(leaf *x509.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Subject = leaf.Subject.CommonName
	r.status.Serial = leaf.SerialNumber.String()
	r.status.NotAfter = leaf.NotAfter
	r.cfg.Metrics.expiry(r.cfg.Name, leaf.NotAfter)
}

// Certificate is the current certificate, with Leaf set.
func (r *Renewer) Certificate() *tls.Certificate { return r.cert.Load() }

// Root is the pinned root.
func (r *Renewer) Root() *x509.Certificate { return r.root }

// RootPool is a pool holding only the root.
func (r *Renewer) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.root)
	return p
}

// GetCertificate is for tls.Config on a server.
func (r *Renewer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// GetClientCertificate is for tls.Config on a client.
func (r *Renewer) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// Status returns a snapshot.
func (r *Renewer) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// NeedsReenrollment reports whether the certificate can no longer be renewed.
func (r *Renewer) NeedsReenrollment() bool { return r.Status().State == StateReenroll }

// KickInterval is the least time between renewals that Kick asks for, so
// that a relay refusing the certificate for a reason renewal cannot fix does
// not make the agent renew in a loop.
const KickInterval = 10 * time.Minute

// Kick asks Run to renew now rather than at the scheduled time, for
// instance because a relay refused the certificate (revoked?): the CA's
// answer then tells whether the machine must re-enroll. Run honours it at
// most once per KickInterval.
func (r *Renewer) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// renewTime is when leaf is due for renewal: RenewAt of its lifetime,
// brought forward by up to a twentieth of the lifetime at random so that a
// fleet enrolled together does not renew together. Never earlier than half
// way from obtained to expiry: a short certificate whose NotBefore is
// backdated would otherwise be due the moment it arrives.
func (r *Renewer) renewTime(leaf *x509.Certificate, obtained time.Time) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	at := leaf.NotBefore.Add(time.Duration(float64(life) * r.cfg.RenewAt))
	at = at.Add(-time.Duration(rand.Float64() * float64(life) / 20))
	if floor := obtained.Add(leaf.NotAfter.Sub(obtained) / 2); at.Before(floor) && obtained.Before(leaf.NotAfter) {
		at = floor
	}
	return at
}

// Run renews the certificate until ctx ends. It returns nil then.
func (r *Renewer) Run(ctx context.Context) error {
	if r.cfg.CAURL == "" {
		r.log.Warn("no CA URL: the certificate will not renew; replace it before it expires",
			"not_after", r.cert.Load().Leaf.NotAfter)
		<-ctx.Done()
		return nil
	}
	attempt := 0
	obtained := time.Now()
	var lastKick time.Time
	for {
		leaf := r.cert.Load().Leaf
		wait := time.Until(r.renewTime(leaf, obtained))
		if attempt > 0 {
			wait = r.cfg.Backoff.Delay(attempt)
		}
		r.mu.Lock()
		r.status.NextRenewal = time.Now().Add(max(wait, 0)).Round(time.Second)
		r.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-r.kick:
				t.Stop()
				if !lastKick.IsZero() && time.Since(lastKick) < KickInterval {
					continue
				}
				lastKick = time.Now()
				r.log.Info("checking the certificate with the CA: a relay refused it")
			case <-t.C:
			}
		}
		err := r.RenewNow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			attempt = 0
			obtained = time.Now()
			continue
		}
		attempt++
	}
}

// ErrReenroll marks a renewal the CA refuses for good: the machine needs a
// new enrollment token.
var ErrReenroll = errors.New("re-enrollment needed")

// RenewNow renews once: over mTLS with the current certificate while it is
// valid, or with an x5c token signed by its key once it has expired (which
// the CA allows only with allowRenewalAfterExpiry).
func (r *Renewer) RenewNow(ctx context.Context) error {
	cur := r.cert.Load()
	expired := time.Now().After(cur.Leaf.NotAfter)
	conn, err := caclient.Dial(ctx, r.cfg.CAURL, caclient.Pin{Root: r.root})
	if err == nil {
		defer conn.Transport.CloseIdleConnections()
		var next *tls.Certificate
		next, err = r.renew(ctx, conn, cur, expired)
		if err == nil {
			return r.install(cur, next)
		}
	}
	state := StateRetrying
	switch {
	case expired && refused(err):
		err = fmt.Errorf("%w: the certificate expired at %s and the CA at %s will not renew it (%v); "+
			"get a new token and run 'bridge-agent enroll'", ErrReenroll, cur.Leaf.NotAfter.UTC().Format(time.RFC3339), r.cfg.CAURL, err)
		state = StateReenroll
	case refused(err):
		err = fmt.Errorf("%w: the CA at %s refuses to renew certificate %s: it was revoked or its provisioner "+
			"no longer renews (%v); get a new token and run 'bridge-agent enroll'", ErrReenroll, r.cfg.CAURL, cur.Leaf.SerialNumber, err)
		state = StateReenroll
	}
	r.mu.Lock()
	r.status.State = state
	r.status.LastError = err.Error()
	r.mu.Unlock()
	r.cfg.Metrics.result(r.cfg.Name, false, state == StateReenroll)
	if state == StateReenroll {
		r.log.Error("certificate renewal refused: re-enrollment needed", "err", err)
	} else {
		r.log.Warn("certificate renewal failed; will retry", "err", err, "not_after", cur.Leaf.NotAfter)
	}
	return err
}

func (r *Renewer) renew(ctx context.Context, conn *caclient.Connection, cur *tls.Certificate, expired bool) (*tls.Certificate, error) {
	var (
		resp *api.SignResponse
		err  error
	)
	if !expired {
		tr := caclient.TransportWith(r.root, func() *tls.Certificate { return cur })
		defer tr.CloseIdleConnections()
		resp, err = conn.Client.RenewWithContext(ctx, tr)
	} else {
		tok, terr := renewToken(conn.URL, cur)
		if terr != nil {
			return nil, terr
		}
		resp, err = conn.Client.RenewWithTokenAndContext(ctx, tok)
	}
	if err != nil {
		return nil, fmt.Errorf("renew at %s: %w", conn.URL, err)
	}
	chain := enroll.Chain(resp)
	if len(chain) == 0 {
		return nil, fmt.Errorf("renew at %s: no certificate in the response", conn.URL)
	}
	leaf := chain[0]
	if pk, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(cur.Leaf.PublicKey) {
		return nil, fmt.Errorf("renew at %s: the new certificate has another key", conn.URL)
	}
	if err := enroll.VerifyChain(leaf, chain[1:], r.root, time.Now()); err != nil {
		return nil, fmt.Errorf("renew at %s: the new certificate does not chain to the pinned root: %w", conn.URL, err)
	}
	next := &tls.Certificate{PrivateKey: cur.PrivateKey, Leaf: leaf}
	for _, c := range chain {
		next.Certificate = append(next.Certificate, c.Raw)
	}
	if err := r.cfg.Store.SaveChain(chain); err != nil {
		return nil, fmt.Errorf("save renewed certificate: %w", err)
	}
	return next, nil
}

func (r *Renewer) install(old, next *tls.Certificate) error {
	r.cert.Store(next)
	r.describe(next.Leaf)
	now := time.Now()
	r.mu.Lock()
	r.status.State = StateValid
	r.status.LastError = ""
	r.status.LastRenewal = now
	r.mu.Unlock()
	if meta, err := r.cfg.Store.LoadMeta(); err == nil {
		meta.RenewedAt = now.UTC()
		if err := r.cfg.Store.SaveMeta(meta); err != nil {
			r.log.Warn("record renewal", "err", err)
		}
	}
	r.cfg.Metrics.result(r.cfg.Name, true, false)
	r.log.Info("certificate renewed", "serial", next.Leaf.SerialNumber.String(), "previous_serial", old.Leaf.SerialNumber.String(),
		"not_after", next.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if r.cfg.OnRenew != nil {
		r.cfg.OnRenew(next)
	}
	return nil
}

// refused reports whether the CA said no (401/403), as opposed to not
// answering.
func refused(err error) bool {
	var se interface{ StatusCode() int }
	if errors.As(err, &se) {
		return se.StatusCode() == http.StatusUnauthorized || se.StatusCode() == http.StatusForbidden
	}
	return false
}

// renewToken is the x5c token that renews an expired certificate: signed
// by its key, carrying its chain in the x5cInsecure header, as `step ca
// renew` makes it.
func renewToken(caURL string, cur *tls.Certificate) (string, error) {
	chain := make([]string, len(cur.Certificate))
	for i, der := range cur.Certificate {
		chain[i] = base64.StdEncoding.EncodeToString(der)
	}
	jti := make([]byte, 16)
	for i := range jti {
		jti[i] = byte(rand.Uint32())
	}
	now := time.Now()
	claims, err := token.NewClaims(
		token.WithSubject(cur.Leaf.Subject.CommonName),
		token.WithIssuer("step-ca-client/1.0"),
		token.WithAudience(caURL+"/1.0/renew"),
		token.WithValidity(now, now.Add(5*time.Minute)),
		token.WithIssuedAt(now),
		token.WithJWTID(hex.EncodeToString(jti)),
	)
	if err != nil {
		return "", err
	}
	claims.SetHeader(jose.X5cInsecureKey, chain)
	signer, ok := cur.PrivateKey.(crypto.Signer)
	if !ok {
		return "", fmt.Errorf("the key (%T) cannot sign", cur.PrivateKey)
	}
	alg, err := algorithm(signer)
	if err != nil {
		return "", err
	}
	return claims.Sign(alg, cur.PrivateKey)
}
