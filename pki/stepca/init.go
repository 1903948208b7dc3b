// Package stepca runs a smallstep step-ca inside bridge-relay for dev and
// single-machine installs, and mints the tokens and revocations that an
// admin would otherwise make with the step CLI.
//
// The directory it creates has the layout of `step ca init` (config/ca.json,
// certs/, secrets/, db/), so the same directory also runs under the real
// step-ca binary, and the step CLI can make tokens against it.
package stepca

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/smallstep/certificates/authority/config"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/keyutil"
	"go.step.sm/crypto/pemutil"
)

// Provisioner names the CA's JWK provisioners.
const (
	// AgentProvisioner signs agent certificates: its template puts exactly
	// one URI SAN spiffe://<tenant>/agent/<id> in them, from the signed
	// token's user.tenant and subject.
	AgentProvisioner = "agents"
	// RelayProvisioner signs relay server certificates (DNS and IP SANs).
	RelayProvisioner = "relays"
)

// AgentTemplate is the X.509 template of the agents provisioner. The tenant
// comes from .Token.user (signed by the provisioner key), never from the
// unsigned .Insecure data; a token without it is refused.
const AgentTemplate = `{
  "subject": {"commonName": {{ toJson .Subject.CommonName }}},
  {{- if not .Token.user }}{{ fail "the token must carry user.tenant (step ca token ... --set tenant=TENANT)" }}{{ end }}
  {{- if not .Token.user.tenant }}{{ fail "the token must carry user.tenant (step ca token ... --set tenant=TENANT)" }}{{ end }}
  "uris": {{ toJson (list (printf "spiffe://%s/agent/%s" .Token.user.tenant .Subject.CommonName)) }},
  "keyUsage": ["digitalSignature"],
  "extKeyUsage": ["clientAuth"]
}`

// Layout names the files of a CA directory, as `step ca init` lays them out.
type Layout struct{ Dir string }

// Config is config/ca.json.
func (l Layout) Config() string { return filepath.Join(l.Dir, "config", "ca.json") }

// Root is certs/root_ca.crt.
func (l Layout) Root() string { return filepath.Join(l.Dir, "certs", "root_ca.crt") }

// Intermediate is certs/intermediate_ca.crt.
func (l Layout) Intermediate() string { return filepath.Join(l.Dir, "certs", "intermediate_ca.crt") }

// RootKey is secrets/root_ca_key, encrypted with the password.
func (l Layout) RootKey() string { return filepath.Join(l.Dir, "secrets", "root_ca_key") }

// IntermediateKey is secrets/intermediate_ca_key, encrypted with the password.
func (l Layout) IntermediateKey() string {
	return filepath.Join(l.Dir, "secrets", "intermediate_ca_key")
}

// Password is secrets/password: it decrypts the CA keys and the
// provisioner keys. Mode 0600.
func (l Layout) Password() string { return filepath.Join(l.Dir, "secrets", "password") }

// DB is the badger database directory.
func (l Layout) DB() string { return filepath.Join(l.Dir, "db") }

// InitOptions tunes Init. The zero value of every field means its default.
type InitOptions struct {
	// Name is the CA's name in its certificates. Zero means "MCC Bridge".
	Name string
	// DNSNames are the names and IPs the CA serves on. Zero means
	// localhost, 127.0.0.1 and ::1.
	DNSNames []string
	// Address is where the CA listens. Zero means 127.0.0.1:9000.
	Address string
	// AgentDuration is the default agent certificate lifetime. Zero means 24h.
	AgentDuration time.Duration
	// MaxDuration caps what a token may ask for. Zero means 72h (and at
	// least AgentDuration).
	MaxDuration time.Duration
	// MinDuration is the shortest certificate allowed. Zero means 5m (or
	// AgentDuration, if that is shorter).
	MinDuration time.Duration
	// Backdate is how far NotBefore is set in the past, for clock skew.
	// Zero means 1m.
	Backdate time.Duration
	// DisableRenewalAfterExpiry stops expired certificates from renewing
	// with an x5c token; they must re-enroll.
	DisableRenewalAfterExpiry bool
	// Password encrypts the keys. Zero means a random one.
	Password []byte
}

func (o *InitOptions) defaults() {
	if o.Name == "" {
		o.Name = "MCC Bridge"
	}
	if len(o.DNSNames) == 0 {
		o.DNSNames = []string{"localhost", "127.0.0.1", "::1"}
	}
	if o.Address == "" {
		o.Address = "127.0.0.1:9000"
	}
	if o.AgentDuration <= 0 {
		o.AgentDuration = 24 * time.Hour
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = 72 * time.Hour
	}
	o.MaxDuration = max(o.MaxDuration, o.AgentDuration)
	if o.MinDuration <= 0 {
		o.MinDuration = min(5*time.Minute, o.AgentDuration)
	}
	if o.Backdate <= 0 {
		o.Backdate = time.Minute
	}
}

// ErrExists is returned by Init when the directory already holds a CA.
var ErrExists = errors.New("a CA already exists there")

// Init creates a CA in dir: a root and an intermediate (P-256), the agents
// and relays JWK provisioners, a badger database and a CRL. It refuses a
// directory that already holds a CA (ErrExists), so it never overwrites keys.
func Init(dir string, opts InitOptions) (*CA, error) {
	opts.defaults()
	l := Layout{Dir: dir}
	if _, err := os.Stat(l.Config()); err == nil {
		return nil, fmt.Errorf("ca init %s: %w", dir, ErrExists)
	}
	for _, d := range []string{"config", "certs", "secrets", "db"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("ca init: %w", err)
		}
	}
	pw := opts.Password
	if len(pw) == 0 {
		b := make([]byte, 32)
		rand.Read(b)
		pw = []byte(base64.RawURLEncoding.EncodeToString(b))
	}
	if err := writeFile(l.Password(), pw, 0o600); err != nil {
		return nil, err
	}

	now := time.Now().Add(-time.Minute)
	rootKey, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return nil, err
	}
	root, err := makeCA(opts.Name+" Root CA", now, now.Add(10*365*24*time.Hour), 1, rootKey, nil, nil)
	if err != nil {
		return nil, err
	}
	interKey, err := keyutil.GenerateDefaultSigner()
	if err != nil {
		return nil, err
	}
	inter, err := makeCA(opts.Name+" Intermediate CA", now, now.Add(5*365*24*time.Hour), 0, interKey, root, rootKey)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		key  crypto.Signer
		cert *x509.Certificate
	}{{l.RootKey(), rootKey, nil}, {l.IntermediateKey(), interKey, nil}, {l.Root(), nil, root}, {l.Intermediate(), nil, inter}} {
		var block *pem.Block
		mode := os.FileMode(0o644)
		if f.key != nil {
			block, err = pemutil.Serialize(f.key, pemutil.WithPassword(pw))
			if err != nil {
				return nil, fmt.Errorf("ca init: encrypt key: %w", err)
			}
			mode = 0o600
		} else {
			block = &pem.Block{Type: "CERTIFICATE", Bytes: f.cert.Raw}
		}
		if err := writeFile(f.path, pem.EncodeToMemory(block), mode); err != nil {
			return nil, err
		}
	}

	claims := &provisioner.Claims{
		MinTLSDur:               &provisioner.Duration{Duration: opts.MinDuration},
		MaxTLSDur:               &provisioner.Duration{Duration: opts.MaxDuration},
		DefaultTLSDur:           &provisioner.Duration{Duration: opts.AgentDuration},
		AllowRenewalAfterExpiry: ptr(!opts.DisableRenewalAfterExpiry),
	}
	agents, err := newJWK(AgentProvisioner, pw, claims, AgentTemplate)
	if err != nil {
		return nil, err
	}
	relays, err := newJWK(RelayProvisioner, pw, claims, "")
	if err != nil {
		return nil, err
	}
	cfg := &config.Config{
		Root:             []string{l.Root()},
		FederatedRoots:   []string{},
		IntermediateCert: l.Intermediate(),
		IntermediateKey:  l.IntermediateKey(),
		Address:          opts.Address,
		DNSNames:         opts.DNSNames,
		DB:               &db.Config{Type: "badgerv2", DataSource: l.DB()},
		CRL: &config.CRLConfig{
			Enabled:          true,
			GenerateOnRevoke: true,
			CacheDuration:    &provisioner.Duration{Duration: 24 * time.Hour},
		},
		AuthorityConfig: &config.AuthConfig{
			Provisioners: provisioner.List{agents, relays},
			Backdate:     &provisioner.Duration{Duration: opts.Backdate},
			// Used tokens are remembered in the database, so a token made
			// before a restart stays single-use: an admin's token survives
			// a relay restart.
			DisableIssuedAtCheck: true,
		},
		TLS: &config.DefaultTLSOptions,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	if err := writeFile(l.Config(), append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return Load(dir)
}

func ptr[T any](v T) *T { return &v }

func newJWK(name string, pw []byte, claims *provisioner.Claims, template string) (*provisioner.JWK, error) {
	pub, enc, err := jose.GenerateDefaultKeyPair(pw)
	if err != nil {
		return nil, fmt.Errorf("ca init: provisioner %s: %w", name, err)
	}
	encKey, err := enc.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("ca init: provisioner %s: %w", name, err)
	}
	p := &provisioner.JWK{Type: "JWK", Name: name, Key: pub, EncryptedKey: encKey, Claims: claims}
	if template != "" {
		p.Options = &provisioner.Options{X509: &provisioner.X509Options{Template: template}}
	}
	return p, nil
}

func makeCA(cn string, notBefore, notAfter time.Time, maxPath int, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	ski := sha256.Sum256(spki)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPath,
		MaxPathLenZero:        maxPath == 0,
		SubjectKeyId:          ski[:20],
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("ca init: sign %s: %w", cn, err)
	}
	return x509.ParseCertificate(der)
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, b, mode); err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	return nil
}

// Fingerprint is the SHA-256 of a certificate's DER, in lowercase hex: the
// form `step certificate fingerprint` prints and --fingerprint takes.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
