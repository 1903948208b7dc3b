package callerauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DevAudience is the aud of every token minted by a DevIssuer.
const DevAudience = "mcc-bridge-dev"

// DevIssuer is a local token issuer for dev mode: an ES256 key kept in a
// file (mode 0600) so tokens survive restarts. Its methods may be called
// from any goroutine. It redacts itself when printed or logged.
type DevIssuer struct {
	issuer string
	key    *ecdsa.PrivateKey
	kid    string
	jwks   []byte
}

// LoadOrCreateDevIssuer loads the dev issuer's key from path, creating the
// key (and path's directory, mode 0700) if the file does not exist. The
// file holds a private JWK and must not be readable by group or others.
// issuer is the iss of the minted tokens, e.g.
// "https://relay.dev.local/dev-issuer".
func LoadOrCreateDevIssuer(path string, issuer string) (*DevIssuer, error) {
	if u, err := url.Parse(issuer); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("callerauth: dev issuer %q is not an absolute URL", issuer)
	}
	key, err := loadDevKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createDevKey(path)
	}
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("callerauth: dev issuer key thumbprint: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, fmt.Errorf("callerauth: dev issuer JWKS: %w", err)
	}
	return &DevIssuer{issuer: issuer, key: key, kid: pub.KeyID, jwks: jwks}, nil
}

func loadDevKey(path string) (*ecdsa.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("callerauth: open dev issuer key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("callerauth: stat dev issuer key: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("callerauth: dev issuer key %s has mode %v; want 0600", path, fi.Mode().Perm())
	}
	var jwk jose.JSONWebKey
	if err := json.NewDecoder(f).Decode(&jwk); err != nil {
		return nil, fmt.Errorf("callerauth: decode dev issuer key %s: %w", path, err)
	}
	key, ok := jwk.Key.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("callerauth: dev issuer key %s is not a P-256 private key", path)
	}
	return key, nil
}

// createDevKey writes a new key to a temporary file and links it into
// place, so a concurrent creator never sees a partial file and never
// replaces a key already in use.
func createDevKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("callerauth: generate dev issuer key: %w", err)
	}
	data, err := json.Marshal(jose.JSONWebKey{Key: key, Algorithm: string(jose.ES256), Use: "sig"})
	if err != nil {
		return nil, fmt.Errorf("callerauth: encode dev issuer key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("callerauth: create dev issuer key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".dev-issuer-key-*")
	if err != nil {
		return nil, fmt.Errorf("callerauth: create dev issuer key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return nil, fmt.Errorf("callerauth: chmod dev issuer key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("callerauth: write dev issuer key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("callerauth: sync dev issuer key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("callerauth: close dev issuer key: %w", err)
	}
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
		return key, nil
	case errors.Is(err, fs.ErrExist):
		// Another process created it first: use theirs.
		return loadDevKey(path)
	default:
		// No hard links on this file system: fall back to rename.
		if err := os.Rename(tmp.Name(), path); err != nil {
			return nil, fmt.Errorf("callerauth: install dev issuer key: %w", err)
		}
		return key, nil
	}
}

// Issuer returns the iss of the tokens d mints.
func (d *DevIssuer) Issuer() string { return d.issuer }

// KeyID returns the kid of the tokens d mints (the key's RFC 7638 thumbprint).
func (d *DevIssuer) KeyID() string { return d.kid }

// JWKS returns d's public key as a JSON Web Key Set document.
func (d *DevIssuer) JWKS() []byte { return append([]byte(nil), d.jwks...) }

func (d *DevIssuer) publicKey() jose.JSONWebKey {
	return jose.JSONWebKey{Key: &d.key.PublicKey, KeyID: d.kid, Algorithm: string(jose.ES256), Use: "sig"}
}

// devClaims are the claims of a dev token beyond the registered ones.
type devClaims struct {
	Email  string   `json:"email,omitempty"`
	Tenant string   `json:"custom:tenant"`
	Groups []string `json:"cognito:groups,omitempty"`
}

// Mint returns a token for user of tenant with the given roles (as
// cognito:groups), issued at now and valid for ttl. The token carries
// sub, email, custom:tenant, cognito:groups, iss, aud (DevAudience), iat,
// exp and a kid header.
func (d *DevIssuer) Mint(tenant, user, email string, roles []string, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case !ValidTenant(tenant):
		return "", fmt.Errorf("callerauth: mint: tenant %q is not a valid tenant id", tenant)
	case user == "":
		return "", errors.New("callerauth: mint: user is empty")
	case ttl <= 0:
		return "", fmt.Errorf("callerauth: mint: ttl %v is not positive", ttl)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: d.key, KeyID: d.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("callerauth: mint: signer: %w", err)
	}
	tok, err := jwt.Signed(signer).
		Claims(jwt.Claims{
			Issuer:   d.issuer,
			Subject:  user,
			Audience: jwt.Audience{DevAudience},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(ttl)),
		}).
		Claims(devClaims{Email: email, Tenant: tenant, Groups: roles}).
		Serialize()
	if err != nil {
		return "", fmt.Errorf("callerauth: mint: sign: %w", err)
	}
	return tok, nil
}

// String describes d without its key.
func (d *DevIssuer) String() string {
	return fmt.Sprintf("DevIssuer(%s, kid=%s, key=[redacted])", d.issuer, d.kid)
}

// LogValue describes d without its key.
func (d *DevIssuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("issuer", d.issuer), slog.String("kid", d.kid), slog.String("key", "[redacted]"))
}
