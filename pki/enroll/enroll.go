package enroll

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/smallstep/certificates/api"
	"github.com/smallstep/certificates/ca"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/pemutil"

	"github.com/mcc-bridge/bridge/pki/caclient"
)

// Options tunes Enroll.
type Options struct {
	// CAURL overrides the CA URL in the token's audience. It must name the
	// same host.
	CAURL string
	// Fingerprint pins the CA's root (SHA-256). Zero means the fingerprint
	// the token carries (its sha claim); when both are given they must agree.
	Fingerprint string
	// Check vets the issued certificate before it is stored, e.g. that it
	// carries an agent identity. Nil accepts any.
	Check func(*x509.Certificate) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// TokenError is a token refused before or by the CA, with the reason in words.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "enrollment token refused: " + e.Reason }

// tokenClaims are the parts of a step-ca token that enrollment reads before
// the CA verifies it.
type tokenClaims struct {
	jose.Claims
	SHA  string         `json:"sha"`
	SANs []string       `json:"sans"`
	User map[string]any `json:"user"`
}

func parseToken(tok string) (*tokenClaims, error) {
	tok = strings.TrimSpace(tok)
	jwt, err := jose.ParseSigned(tok)
	if err != nil {
		return nil, &TokenError{Reason: "it is not a step-ca token (a JWT): " + err.Error()}
	}
	var c tokenClaims
	if err := jwt.UnsafeClaimsWithoutVerification(&c); err != nil {
		return nil, &TokenError{Reason: "its claims do not parse: " + err.Error()}
	}
	return &c, nil
}

// Enroll exchanges a one-time token for a certificate: it makes a P-256 key
// that never leaves this machine, pins the CA's root (from opts or from the
// token) before sending anything secret, has the CA sign a CSR, and stores
// key, chain and root in st. It returns the leaf.
func Enroll(ctx context.Context, tok string, st Store, opts Options) (*x509.Certificate, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	tok = strings.TrimSpace(tok)
	claims, err := parseToken(tok)
	if err != nil {
		return nil, err
	}
	if claims.Expiry != nil && now().After(claims.Expiry.Time()) {
		return nil, &TokenError{Reason: fmt.Sprintf("it expired at %s, %s ago (tokens last 5 minutes: make a new one)",
			claims.Expiry.Time().UTC().Format(time.RFC3339), now().Sub(claims.Expiry.Time()).Round(time.Second))}
	}
	if len(claims.Audience) == 0 {
		return nil, &TokenError{Reason: "it names no CA (no aud claim)"}
	}
	aud, err := url.Parse(claims.Audience[0])
	if err != nil || aud.Host == "" {
		return nil, &TokenError{Reason: fmt.Sprintf("its audience %q is not a CA URL", claims.Audience[0])}
	}
	caURL := (&url.URL{Scheme: aud.Scheme, Host: aud.Host}).String()
	if opts.CAURL != "" {
		u, err := url.Parse(opts.CAURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("--ca-url %q: want https://host[:port]", opts.CAURL)
		}
		if !strings.EqualFold(u.Hostname(), aud.Hostname()) {
			return nil, &TokenError{Reason: fmt.Sprintf("it was made for the CA at %s, not %s (token for another CA)", caURL, opts.CAURL)}
		}
		caURL = strings.TrimRight(opts.CAURL, "/")
	}
	fp := caclient.NormalizeFingerprint(opts.Fingerprint)
	tokFP := caclient.NormalizeFingerprint(claims.SHA)
	switch {
	case fp == "" && tokFP == "":
		return nil, errors.New("no root fingerprint: the token carries none, so pass --fingerprint (step certificate fingerprint root_ca.crt)")
	case fp == "":
		fp = tokFP
	case tokFP != "" && tokFP != fp:
		return nil, &TokenError{Reason: fmt.Sprintf("it was made by a CA whose root is %s, but --fingerprint pins %s (token for another CA)", tokFP, fp)}
	}
	meta, err := st.LoadMeta()
	if err != nil {
		return nil, err
	}
	if claims.ID != "" && slices.Contains(meta.UsedTokens, claims.ID) {
		return nil, &TokenError{Reason: "it was already used on this machine (tokens are single-use: make a new one)"}
	}

	conn, err := caclient.Dial(ctx, caURL, caclient.Pin{Fingerprint: fp})
	if err != nil {
		return nil, err
	}
	defer conn.Transport.CloseIdleConnections()
	req, key, err := ca.CreateSignRequest(tok)
	if err != nil {
		return nil, &TokenError{Reason: err.Error()}
	}
	resp, err := conn.Client.SignWithContext(ctx, req)
	if err != nil {
		return nil, describeSignError(caURL, err)
	}
	certs := Chain(resp)
	if len(certs) == 0 {
		return nil, fmt.Errorf("the CA at %s returned no certificate", caURL)
	}
	leaf := certs[0]
	if err := VerifyChain(leaf, certs[1:], conn.Root, now()); err != nil {
		return nil, fmt.Errorf("the certificate from %s does not chain to the pinned root: %w", caURL, err)
	}
	if opts.Check != nil {
		if err := opts.Check(leaf); err != nil {
			return nil, fmt.Errorf("the certificate from %s: %w", caURL, err)
		}
	}
	if err := st.SaveKey(key); err != nil {
		return nil, err
	}
	if err := st.SaveChain(certs); err != nil {
		return nil, err
	}
	if err := st.SaveRoot(conn.Root); err != nil {
		return nil, err
	}
	meta.CAURL, meta.Fingerprint, meta.EnrolledAt, meta.RenewedAt = caURL, fp, now().UTC(), time.Time{}
	if claims.ID != "" {
		meta.UsedTokens = append(meta.UsedTokens, claims.ID)
		if n := len(meta.UsedTokens); n > 50 {
			meta.UsedTokens = meta.UsedTokens[n-50:]
		}
	}
	if err := st.SaveMeta(meta); err != nil {
		return nil, err
	}
	return leaf, nil
}

func describeSignError(caURL string, err error) error {
	var unreachable *caclient.UnreachableError
	if errors.As(err, &unreachable) {
		return err
	}
	var se interface{ StatusCode() int }
	if errors.As(err, &se) {
		switch se.StatusCode() {
		case http.StatusUnauthorized, http.StatusForbidden:
			return &TokenError{Reason: fmt.Sprintf("the CA at %s did not accept it: it was already used, it expired, "+
				"or it was made by a provisioner or a CA this CA does not know (CA said: %v)", caURL, err)}
		case http.StatusBadRequest:
			return fmt.Errorf("the CA at %s refused the request: %w", caURL, err)
		}
		return fmt.Errorf("sign at %s: %w", caURL, err)
	}
	return &caclient.UnreachableError{URL: caURL, Err: err}
}

// VerifyChain checks that leaf, with the intermediates inter, chains to
// root at now (any key usage).
func VerifyChain(leaf *x509.Certificate, inter []*x509.Certificate, root *x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(root)
	pool := x509.NewCertPool()
	for _, c := range inter {
		pool.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// Import takes a certificate, key and root made by hand (`step ca
// certificate`), checks that they belong together, and stores them in st.
// caURL, when set, is where renewals go.
func Import(certFile, keyFile, rootFile, caURL string, st Store, check func(*x509.Certificate) error) (*x509.Certificate, error) {
	certs, err := pemutil.ReadCertificateBundle(certFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", certFile, err)
	}
	key, err := pemutil.Read(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w (an encrypted key must be decrypted first: step crypto change-pass)", keyFile, err)
	}
	root, err := caclient.ReadRoot(rootFile)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	if !publicKeyMatches(leaf, key) {
		return nil, fmt.Errorf("%s is not the key of the certificate in %s", keyFile, certFile)
	}
	// A bundle may end with the root; keep only leaf and intermediates.
	chain := slices.DeleteFunc(slices.Clone(certs), func(c *x509.Certificate) bool { return c.Equal(root) })
	if err := VerifyChain(leaf, chain[1:], root, time.Now()); err != nil {
		return nil, fmt.Errorf("%s does not chain to the root in %s: %w", certFile, rootFile, err)
	}
	if check != nil {
		if err := check(leaf); err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
	}
	if err := st.SaveKey(key); err != nil {
		return nil, err
	}
	if err := st.SaveChain(chain); err != nil {
		return nil, err
	}
	if err := st.SaveRoot(root); err != nil {
		return nil, err
	}
	meta, _ := st.LoadMeta()
	meta.CAURL, meta.Fingerprint, meta.EnrolledAt = caURL, caclient.Fingerprint(root), time.Now().UTC()
	if err := st.SaveMeta(meta); err != nil {
		return nil, err
	}
	return leaf, nil
}

func publicKeyMatches(c *x509.Certificate, key crypto.PrivateKey) bool {
	s, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	p, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && p.Equal(c.PublicKey)
}

// Chain is the leaf and intermediates of a sign or renew response.
func Chain(resp *api.SignResponse) []*x509.Certificate {
	chain := resp.CertChainPEM
	if len(chain) == 0 {
		chain = []api.Certificate{resp.ServerPEM, resp.CaPEM}
	}
	certs := make([]*x509.Certificate, 0, len(chain))
	for _, c := range chain {
		if c.Certificate != nil {
			certs = append(certs, c.Certificate)
		}
	}
	return certs
}
