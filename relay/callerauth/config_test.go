package callerauth

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC", Audiences: []string{"app"}}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" means valid
	}{
		{name: "minimal", cfg: ok},
		{name: "zero (dev only)", cfg: Config{}},
		{name: "loopback http", cfg: Config{Issuer: "http://127.0.0.1:8080/realms/x", Audiences: []string{"a"}}},
		{name: "localhost http", cfg: Config{Issuer: "http://localhost:8080", Audiences: []string{"a"}}},
		{name: "remote http", cfg: Config{Issuer: "http://idp.example.com", Audiences: []string{"a"}}, wantErr: "loopback"},
		{name: "relative issuer", cfg: Config{Issuer: "idp.example.com", Audiences: []string{"a"}}, wantErr: "absolute"},
		{name: "no audiences", cfg: Config{Issuer: ok.Issuer}, wantErr: "at least one"},
		{name: "empty audience", cfg: Config{Issuer: ok.Issuer, Audiences: []string{""}}, wantErr: "audiences[0]"},
		{name: "audiences without issuer", cfg: Config{Audiences: []string{"a"}}, wantErr: "issuer is required"},
		{name: "bad jwks url", cfg: Config{Issuer: ok.Issuer, Audiences: []string{"a"}, JWKSURL: "ftp://x/keys"}, wantErr: "jwks_url"},
		{name: "negative leeway", cfg: Config{Issuer: ok.Issuer, Audiences: []string{"a"}, Leeway: -time.Second}, wantErr: "leeway"},
		{name: "huge leeway", cfg: Config{Issuer: ok.Issuer, Audiences: []string{"a"}, Leeway: time.Hour}, wantErr: "leeway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want valid", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := New(t.Context(), Config{}, Options{}); err == nil {
		t.Error("New with no issuer and no dev mode: got nil error, want one")
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
issuer: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC
audiences: [app-1, app-2]
jwks_url: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json
claims:
  user_id: username
  email: mail
  tenant: custom:org
  tenant_name: custom:org_name
  roles: groups
leeway: 30s
`
	var cfg Config
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Issuer:    "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
		Audiences: []string{"app-1", "app-2"},
		JWKSURL:   "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC/.well-known/jwks.json",
		Claims:    ClaimMap{UserID: "username", Email: "mail", Tenant: "custom:org", TenantName: "custom:org_name", Roles: "groups"},
		Leeway:    30 * time.Second,
	}
	if cfg.Issuer != want.Issuer || !slices.Equal(cfg.Audiences, want.Audiences) || cfg.JWKSURL != want.JWKSURL ||
		cfg.Claims != want.Claims || cfg.Leeway != want.Leeway {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("got %v, want valid", err)
	}
}

func TestKindHTTPStatus(t *testing.T) {
	tests := []struct {
		kind Kind
		want int
	}{
		{KindMissing, http.StatusUnauthorized},
		{KindExpired, http.StatusUnauthorized},
		{KindSignature, http.StatusUnauthorized},
		{KindClaims, http.StatusForbidden},
		{KindUnavailable, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		if got := tt.kind.HTTPStatus(); got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.kind, got, tt.want)
		}
	}
}

func TestValidTenant(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"acme", true},
		{"a", true},
		{"0day-co-op-1", true},
		{"0day.co_op-1", false}, // not a DNS label: agent identities could not carry it
		{"acme-", false},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-acme", false},
		{".acme", false},
		{"Acme", false},
		{"ac me", false},
		{"acme/../x", false},
		{"acme\n", false},
	}
	for _, tt := range tests {
		if got := ValidTenant(tt.in); got != tt.want {
			t.Errorf("ValidTenant(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}
