package callerauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeIdP is an OIDC provider serving discovery and a JWKS over TLS on
// loopback, with hooks to rotate keys and inject faults.
type fakeIdP struct {
	srv *httptest.Server

	discoveryHits atomic.Int64
	jwksHits      atomic.Int64

	mu     sync.Mutex
	keys   []jose.JSONWebKey // public keys served
	status int               // if non-zero, every response has this status
}

func newFakeIdP(t *testing.T, keys ...jose.JSONWebKey) *fakeIdP {
	t.Helper()
	idp := &fakeIdP{}
	idp.setKeys(keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		idp.discoveryHits.Add(1)
		if idp.fault(w) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                idp.issuer(),
			"jwks_uri":                              idp.issuer() + "/.well-known/jwks.json",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		idp.jwksHits.Add(1)
		if idp.fault(w) {
			return
		}
		idp.mu.Lock()
		set := jose.JSONWebKeySet{Keys: idp.keys}
		idp.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})
	idp.srv = httptest.NewTLSServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *fakeIdP) issuer() string { return idp.srv.URL }

// setKeys replaces the published key set (key rotation).
func (idp *fakeIdP) setKeys(keys ...jose.JSONWebKey) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.keys = nil
	for _, k := range keys {
		idp.keys = append(idp.keys, k.Public())
	}
}

// setStatus makes every response fail with status (0 restores service).
func (idp *fakeIdP) setStatus(status int) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.status = status
}

func (idp *fakeIdP) fault(w http.ResponseWriter) bool {
	idp.mu.Lock()
	status := idp.status
	idp.mu.Unlock()
	if status != 0 {
		http.Error(w, "injected fault", status)
		return true
	}
	return false
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testLogger writes to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func rsaKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}
}

func ecKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
}

// mint signs claims with key (a private JWK whose KeyID is the kid header).
func mint(t *testing.T, key jose.JSONWebKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func request(h http.Header) *http.Request {
	r := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/v1/dispatch", nil)
	for k, v := range h {
		r.Header[k] = v
	}
	return r
}
