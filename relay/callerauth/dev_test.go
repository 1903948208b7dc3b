package callerauth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const devIss = "https://relay.dev.local/dev-issuer"

func TestDevIssuerPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dev-issuer.jwk")
	d1, err := LoadOrCreateDevIssuer(path, devIss)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("got key file mode %v, want 0600", got)
		}
	}
	now := time.Now()
	tok, err := d1.Mint("acme", "ada", "ada@example.com", []string{"admins"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}

	d2, err := LoadOrCreateDevIssuer(path, devIss)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if d1.KeyID() != d2.KeyID() || string(d1.JWKS()) != string(d2.JWKS()) {
		t.Errorf("got kid %q after reload, want %q (same key)", d2.KeyID(), d1.KeyID())
	}
	a, err := New(t.Context(), Config{}, Options{Dev: d2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AuthenticateToken(t.Context(), tok); err != nil {
		t.Errorf("token minted before reload: got %v, want accepted", err)
	}

	// JWKS holds exactly the public key.
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(d2.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].KeyID != d2.KeyID() {
		t.Errorf("got JWKS %s, want one public key with kid %s", d2.JWKS(), d2.KeyID())
	}
	if strings.Contains(string(d2.JWKS()), `"d"`) {
		t.Errorf("JWKS %s contains a private key", d2.JWKS())
	}
	if s := fmt.Sprintf("%v %+v", d2, d2); strings.Contains(s, "big") || !strings.Contains(s, "[redacted]") {
		t.Errorf("got %q printing the dev issuer, want it redacted", s)
	}
}

func TestDevIssuerLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := filepath.Join(dir, "good.jwk")
	if _, err := LoadOrCreateDevIssuer(good, devIss); err != nil {
		t.Fatal(err)
	}
	goodData, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		issuer  string
		wantErr string
		unix    bool
	}{
		{name: "group-readable key refused", path: write("open.jwk", string(goodData), 0o644), issuer: devIss, wantErr: "want 0600", unix: true},
		{name: "garbage key file", path: write("garbage.jwk", "not json", 0o600), issuer: devIss, wantErr: "decode"},
		{name: "public key only", path: write("pub.jwk", pubOnly(t, goodData), 0o600), issuer: devIss, wantErr: "not a P-256 private key"},
		{name: "relative issuer", path: good, issuer: "dev-issuer", wantErr: "not an absolute URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unix && runtime.GOOS == "windows" {
				t.Skip("file modes are not enforced on windows")
			}
			_, err := LoadOrCreateDevIssuer(tt.path, tt.issuer)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func pubOnly(t *testing.T, privJWK []byte) string {
	t.Helper()
	var k jose.JSONWebKey
	if err := json.Unmarshal(privJWK, &k); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDevTokens(t *testing.T) {
	dir := t.TempDir()
	dev, err := LoadOrCreateDevIssuer(filepath.Join(dir, "a.jwk"), devIss)
	if err != nil {
		t.Fatal(err)
	}
	// Same issuer string, different key: a forged dev token.
	other, err := LoadOrCreateDevIssuer(filepath.Join(dir, "b.jwk"), devIss)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Config{}, Options{Dev: dev})
	pureDev, err := New(t.Context(), Config{}, Options{Dev: dev, Now: e.clock.Now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	noDev := newEnv(t, Config{}, Options{})
	now := e.clock.Now()
	mintDev := func(d *DevIssuer, ttl time.Duration, at time.Time) string {
		tok, err := d.Mint("acme", "dev-user", "dev@example.com", []string{"admins", "ops"}, ttl, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mintDev(dev, time.Hour, now)
	wantDev := Caller{UserID: "dev-user", Email: "dev@example.com", Tenant: "acme", TenantName: "acme",
		Roles: []string{"admins", "ops"}, Issuer: devIss, AuthMethod: MethodDev}

	tests := []struct {
		name string
		auth *Authenticator
		tok  string
		want Kind
	}{
		{name: "accepted with Dev set", auth: e.auth, tok: good},
		{name: "accepted in pure dev mode", auth: pureDev, tok: good},
		{name: "refused without Dev", auth: noDev.auth, tok: good, want: KindIssuer},
		{name: "expired dev token", auth: e.auth, tok: mintDev(dev, time.Minute, now.Add(-time.Hour)), want: KindExpired},
		{name: "other key same issuer", auth: e.auth, tok: mintDev(other, time.Hour, now), want: KindUnknownKey},
		{name: "OIDC token still accepted with Dev set", auth: e.auth, tok: mint(t, e.rsa1, idClaims(e.idp.issuer(), now))},
		{name: "OIDC token refused in pure dev mode", auth: pureDev, tok: mint(t, e.rsa1, idClaims(e.idp.issuer(), now)), want: KindIssuer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.auth.AuthenticateToken(t.Context(), tt.tok)
			if got := KindOf(err); got != tt.want {
				t.Fatalf("got kind %q (err %v), want %q", got, err, tt.want)
			}
			if err != nil {
				assertNoLeak(t, err, tt.tok)
				return
			}
			if c.AuthMethod == MethodDev && !callerEqual(c, wantDev) {
				t.Errorf("got caller %+v, want %+v", c, wantDev)
			}
		})
	}
}

func TestDevMintClaims(t *testing.T) {
	dev, err := LoadOrCreateDevIssuer(filepath.Join(t.TempDir(), "k.jwk"), devIss)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tok, err := dev.Mint("acme", "ada", "ada@example.com", []string{"admins"}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if got := jws.Signatures[0].Header.KeyID; got != dev.KeyID() {
		t.Errorf("got kid %q, want %q", got, dev.KeyID())
	}
	var claims map[string]any
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"iss": devIss, "sub": "ada", "aud": DevAudience, "email": "ada@example.com",
		"custom:tenant": "acme", "cognito:groups": []any{"admins"},
		"iat": float64(now.Unix()), "exp": float64(now.Add(time.Hour).Unix()),
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if !slices.Equal(keys(claims), keys(want)) {
		t.Errorf("got claims %v, want %v", keys(claims), keys(want))
	}
	for k, v := range want {
		if fmt.Sprint(claims[k]) != fmt.Sprint(v) {
			t.Errorf("claim %s: got %v, want %v", k, claims[k], v)
		}
	}

	bad := []struct {
		name   string
		tenant string
		user   string
		ttl    time.Duration
	}{
		{name: "bad tenant", tenant: "Not/Safe", user: "ada", ttl: time.Hour},
		{name: "empty user", tenant: "acme", ttl: time.Hour},
		{name: "zero ttl", tenant: "acme", user: "ada"},
	}
	for _, tt := range bad {
		if _, err := dev.Mint(tt.tenant, tt.user, "", nil, tt.ttl, now); err == nil {
			t.Errorf("%s: got nil error, want one", tt.name)
		}
	}
}

func TestNewRejectsDevIssuerEqualToOIDCIssuer(t *testing.T) {
	dev, err := LoadOrCreateDevIssuer(filepath.Join(t.TempDir(), "k.jwk"), "https://idp.example.com")
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(t.Context(), Config{Issuer: "https://idp.example.com", Audiences: []string{"x"}}, Options{Dev: dev})
	if err == nil {
		t.Fatal("got nil error, want one")
	}
}
