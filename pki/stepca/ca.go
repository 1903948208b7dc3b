package stepca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/ca"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql/database"
	"go.step.sm/crypto/pemutil"
)

// CA is a CA directory made by Init (or by `step ca init`), loaded.
type CA struct {
	layout   Layout
	cfg      *config.Config
	password []byte
	root     *x509.Certificate
}

// Load reads the CA in dir: config/ca.json, the root and the password.
func Load(dir string) (*CA, error) {
	l := Layout{Dir: dir}
	cfg, err := config.LoadConfiguration(l.Config())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no CA in %s (create one with 'bridge-relay ca init --dir %s'): %w", dir, dir, err)
		}
		return nil, fmt.Errorf("load CA %s: %w", dir, err)
	}
	pw, err := os.ReadFile(l.Password())
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", dir, err)
	}
	if len(cfg.Root) == 0 {
		return nil, fmt.Errorf("load CA %s: config names no root", dir)
	}
	roots, err := pemutil.ReadCertificateBundle(cfg.Root[0])
	if err != nil {
		return nil, fmt.Errorf("load CA %s: %w", dir, err)
	}
	return &CA{layout: l, cfg: cfg, password: []byte(strings.TrimSpace(string(pw))), root: roots[0]}, nil
}

// Layout names the CA's files.
func (c *CA) Layout() Layout { return c.layout }

// Root is the root certificate.
func (c *CA) Root() *x509.Certificate { return c.root }

// Fingerprint is the root's SHA-256 fingerprint.
func (c *CA) Fingerprint() string { return Fingerprint(c.root) }

// Address is where the CA's config says it listens.
func (c *CA) Address() string { return c.cfg.Address }

// URL is the CA's https URL: its first DNS name and the port of its address.
func (c *CA) URL() string { return caURL(c.cfg) }

func caURL(cfg *config.Config) string {
	host := cfg.DNSNames[0]
	_, port, err := net.SplitHostPort(cfg.Address)
	if err != nil || port == "" {
		port = "443"
	}
	return "https://" + net.JoinHostPort(host, port)
}

// Provisioner returns the JWK provisioner called name, for its key.
func (c *CA) provisioner(name string) (*provisioner.JWK, error) {
	for _, p := range c.cfg.AuthorityConfig.Provisioners {
		if jwk, ok := p.(*provisioner.JWK); ok && jwk.Name == name {
			return jwk, nil
		}
	}
	return nil, fmt.Errorf("the CA has no JWK provisioner %q", name)
}

// Minter makes tokens for the named provisioner of this CA, reading the
// provisioner key from the CA directory (no network).
func (c *CA) Minter(name string) (*Minter, error) {
	p, err := c.provisioner(name)
	if err != nil {
		return nil, err
	}
	return newMinter(p.Name, p.EncryptedKey, c.password, c.URL(), c.Fingerprint())
}

// Server is a CA serving HTTPS: the step-ca API under / and /1.0, including
// /1.0/sign, /1.0/renew, /1.0/revoke, /1.0/crl and /root/{sha}.
type Server struct {
	ca      *CA
	auth    *authority.Authority
	renewer *ca.TLSRenewer
	srv     *http.Server
	ln      net.Listener
	done    chan struct{}
	err     error

	stopOnce sync.Once
}

// Start starts the CA on ln (the address in its config when ln is nil) and
// serves until Close. The CA's own TLS certificate is issued by its
// intermediate and renews itself.
func (c *CA) Start(ln net.Listener, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	auth, err := authority.New(c.cfg, authority.WithPassword(c.password), authority.WithQuietInit())
	if err != nil {
		return nil, fmt.Errorf("start CA %s: %w", c.layout.Dir, err)
	}
	crt, err := auth.GetTLSCertificate()
	if err != nil {
		auth.Shutdown()
		return nil, fmt.Errorf("start CA: TLS certificate: %w", err)
	}
	renewer, err := ca.NewTLSRenewer(crt, auth.GetTLSCertificate)
	if err != nil {
		auth.Shutdown()
		return nil, fmt.Errorf("start CA: %w", err)
	}
	pool := x509.NewCertPool()
	for _, r := range auth.GetRootCertificates() {
		pool.AddCert(r)
	}
	for _, i := range auth.GetIntermediateCertificates() {
		pool.AddCert(i)
	}
	tlsConf := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: renewer.GetCertificateForCA,
		ClientAuth:     tls.VerifyClientCertIfGiven, // renewal authenticates with the old certificate
		ClientCAs:      pool,
	}
	mux := chi.NewRouter()
	api.Route(mux)
	mux.Route("/1.0", func(r chi.Router) { api.Route(r) })
	base := authority.NewContext(context.Background(), auth)
	if d := auth.GetDatabase(); d != nil {
		base = db.NewContext(base, d)
	}
	if ln == nil {
		ln, err = net.Listen("tcp", c.cfg.Address)
		if err != nil {
			auth.Shutdown()
			return nil, fmt.Errorf("start CA: %w", err)
		}
	}
	s := &Server{ca: c, auth: auth, renewer: renewer, ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	renewer.Run()
	go func() {
		defer close(s.done)
		err := s.srv.ServeTLS(ln, "", "")
		if !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			logger.Error("CA server stopped", "err", err)
		}
	}()
	logger.Info("CA started", "url", c.URL(), "listen", ln.Addr().String(), "root_fingerprint", c.Fingerprint())
	return s, nil
}

// Addr is the address the CA listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the CA's URL with the port it really listens on.
func (s *Server) URL() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return "https://" + net.JoinHostPort(s.ca.cfg.DNSNames[0], port)
}

// Minter makes tokens for the named provisioner, with this server's URL
// as their audience.
func (s *Server) Minter(name string) (*Minter, error) {
	m, err := s.ca.Minter(name)
	if err != nil {
		return nil, err
	}
	m.url = s.URL()
	return m, nil
}

// CA is the CA directory the server runs.
func (s *Server) CA() *CA { return s.ca }

// Authority is the running step-ca authority.
func (s *Server) Authority() *authority.Authority { return s.auth }

// Close stops serving and closes the database.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		err = s.srv.Shutdown(ctx)
		s.renewer.Stop()
		<-s.done
		err = errors.Join(err, s.auth.Shutdown())
	})
	return err
}

// IssuedTo returns the certificates this CA issued that are still valid
// and that match reports true for, read from the CA's database. Revocation
// uses it to find every serial an agent holds, renewals included.
func (s *Server) IssuedTo(match func(*x509.Certificate) bool) ([]*x509.Certificate, error) {
	lister, ok := s.auth.GetDatabase().(interface {
		List(bucket []byte) ([]*database.Entry, error)
	})
	if !ok {
		return nil, errors.New("the CA database cannot list certificates")
	}
	entries, err := lister.List([]byte("x509_certs"))
	if err != nil {
		return nil, fmt.Errorf("list issued certificates: %w", err)
	}
	now := time.Now()
	var out []*x509.Certificate
	for _, e := range entries {
		c, err := x509.ParseCertificate(e.Value)
		if err != nil || now.After(c.NotAfter) || !match(c) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}
