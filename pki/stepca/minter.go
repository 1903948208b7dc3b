package stepca

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/smallstep/certificates/api"

	"github.com/mcc-bridge/bridge/pki/caclient"
	"github.com/smallstep/certificates/ca"
	"github.com/smallstep/cli-utils/token"
	"go.step.sm/crypto/jose"
)

// Minter makes one-time tokens signed by one JWK provisioner: the same
// tokens `step ca token` makes. It holds the decrypted provisioner key;
// String never shows it.
type Minter struct {
	name        string
	key         *jose.JSONWebKey
	url         string
	fingerprint string
}

func newMinter(name, encryptedKey string, password []byte, caURL, fingerprint string) (*Minter, error) {
	if encryptedKey == "" {
		return nil, fmt.Errorf("provisioner %s has no encrypted key to sign tokens with", name)
	}
	key, err := jose.ParseKey([]byte(encryptedKey), jose.WithPassword(password))
	if err != nil {
		return nil, fmt.Errorf("provisioner %s: decrypt its key (wrong password?): %w", name, err)
	}
	return &Minter{name: name, key: key, url: caURL, fingerprint: fingerprint}, nil
}

// NewRemoteMinter makes a Minter for provisioner name of the CA at caURL,
// whose root is pinned by fingerprint: it fetches the provisioner's
// encrypted key from the CA, as the step CLI does, and decrypts it with
// password.
func NewRemoteMinter(ctx context.Context, caURL, fingerprint, name string, password []byte) (*Minter, error) {
	conn, err := caclient.Dial(ctx, caURL, caclient.Pin{Fingerprint: fingerprint})
	if err != nil {
		return nil, err
	}
	client := conn.Client
	cursor := ""
	for {
		resp, err := client.ProvisionersWithContext(ctx, ca.WithProvisionerCursor(cursor), ca.WithProvisionerLimit(100))
		if err != nil {
			return nil, fmt.Errorf("list provisioners of %s: %w", caURL, err)
		}
		for _, p := range resp.Provisioners {
			if p.GetName() != name {
				continue
			}
			_, enc, ok := p.GetEncryptedKey()
			if !ok {
				return nil, fmt.Errorf("provisioner %s of %s is not a JWK provisioner with a key", name, caURL)
			}
			return newMinter(name, enc, password, caURL, fingerprint)
		}
		if resp.NextCursor == "" {
			return nil, fmt.Errorf("the CA at %s has no provisioner %q", caURL, name)
		}
		cursor = resp.NextCursor
	}
}

// String names the provisioner, never its key.
func (m *Minter) String() string { return "provisioner " + m.name + " of " + m.url }

// URL is the CA the tokens are for.
func (m *Minter) URL() string { return m.url }

// Provisioner is the provisioner's name.
func (m *Minter) Provisioner() string { return m.name }

// DefaultTokenTTL is how long enrollment tokens last: 5 minutes, as step's.
const DefaultTokenTTL = 5 * time.Minute

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// AgentToken makes a one-time enrollment token for agent of tenant: subject
// agent, user.tenant tenant, audience the CA's sign endpoint, the root
// fingerprint in sha. Zero ttl means DefaultTokenTTL.
func (m *Minter) AgentToken(tenant, agent string, ttl time.Duration) (string, error) {
	if !nameRE.MatchString(tenant) {
		return "", fmt.Errorf("tenant %q: use lower-case letters, digits, '.', '_' and '-', up to 64", tenant)
	}
	if !nameRE.MatchString(agent) {
		return "", fmt.Errorf("agent %q: use lower-case letters, digits, '.', '_' and '-', up to 64", agent)
	}
	return m.signToken(agent, "/1.0/sign", ttl, token.WithSANS([]string{agent}), token.WithSHA(m.fingerprint),
		token.WithClaim("user", map[string]any{"tenant": tenant}))
}

// ServerToken makes a token for a server certificate with the given DNS
// names and IPs; the first is the subject.
func (m *Minter) ServerToken(names []string, ttl time.Duration) (string, error) {
	if len(names) == 0 {
		return "", errors.New("server token: at least one name is required")
	}
	return m.signToken(names[0], "/1.0/sign", ttl, token.WithSANS(names), token.WithSHA(m.fingerprint))
}

// RevokeToken makes a token that revokes the certificate with serial (decimal).
func (m *Minter) RevokeToken(serial string) (string, error) {
	return m.signToken(serial, "/1.0/revoke", 0)
}

func (m *Minter) signToken(subject, path string, ttl time.Duration, opts ...token.Options) (string, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	jti := make([]byte, 16)
	rand.Read(jti)
	now := time.Now()
	all := append([]token.Options{
		token.WithSubject(subject),
		token.WithIssuer(m.name),
		token.WithAudience(m.url + path),
		token.WithValidity(now, now.Add(ttl)),
		token.WithIssuedAt(now),
		token.WithJWTID(hex.EncodeToString(jti)),
		token.WithKid(m.key.KeyID),
	}, opts...)
	claims, err := token.NewClaims(all...)
	if err != nil {
		return "", fmt.Errorf("make token: %w", err)
	}
	tok, err := claims.Sign(jose.SignatureAlgorithm(m.key.Algorithm), m.key.Key)
	if err != nil {
		return "", fmt.Errorf("sign token with %s: %w", m, err)
	}
	return tok, nil
}

// Revoke revokes the certificate with serial at the CA (passive
// revocation: it can no longer renew, and it is listed in the CRL).
// A certificate that is already revoked is not an error.
func (m *Minter) Revoke(ctx context.Context, client *ca.Client, serial, reason string) error {
	tok, err := m.RevokeToken(serial)
	if err != nil {
		return err
	}
	_, err = client.RevokeWithContext(ctx, &api.RevokeRequest{Serial: serial, OTT: tok, Passive: true, Reason: reason}, nil)
	if err != nil {
		var se interface{ StatusCode() int }
		if errors.As(err, &se) && se.StatusCode() == http.StatusBadRequest && alreadyRevoked(err) {
			return nil
		}
		return fmt.Errorf("revoke serial %s at %s: %w", serial, m.url, err)
	}
	return nil
}

func alreadyRevoked(err error) bool {
	return err != nil && strings.Contains(err.Error(), "already revoked")
}
