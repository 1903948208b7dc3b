package credentials_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
)

func TestConfigValidate(t *testing.T) {
	base := func() credentials.Config {
		return credentials.Config{Dir: t.TempDir(), MasterKey: newKey(),
			Providers: []credentials.Provider{{System: "asana", AuthURL: "https://app.asana.com/-/oauth_authorize",
				TokenURL: "https://app.asana.com/-/oauth_token", ClientID: "c"}}}
	}
	for _, tc := range []struct {
		name string
		mod  func(*credentials.Config)
		want []string // substrings of the error; nil: valid
	}{
		{"defaults", func(*credentials.Config) {}, nil},
		{"window exactly scan+max refresh", func(c *credentials.Config) {
			c.ScanInterval, c.MaxRefreshDuration, c.Window = 10*time.Minute, time.Minute, 11*time.Minute
		}, nil},
		{"seed schedule: every 45 min, tokens expiring within 15 min", func(c *credentials.Config) {
			c.ScanInterval, c.Window = 45*time.Minute, 15*time.Minute
		}, []string{"Window 15m0s is shorter than ScanInterval 45m0s + MaxRefreshDuration 1m0s = 46m0s", "expired for up to 31m0s", "1-hour token"}},
		{"window one second short", func(c *credentials.Config) {
			c.ScanInterval, c.MaxRefreshDuration, c.Window = 10*time.Minute, time.Minute, 11*time.Minute-time.Second
		}, []string{"expired for up to 1s"}},
		{"lease shorter than a refresh", func(c *credentials.Config) {
			c.MaxRefreshDuration, c.LeaseDuration = time.Minute, 30*time.Second
		}, []string{"LeaseDuration 30s is shorter than MaxRefreshDuration 1m0s"}},
		{"no dir", func(c *credentials.Config) { c.Dir = "" }, []string{"Dir is required"}},
		{"two master keys", func(c *credentials.Config) { c.MasterKeyFile = "/k" }, []string{"exactly one of MasterKey and MasterKeyFile"}},
		{"no master key", func(c *credentials.Config) { c.MasterKey = "" }, []string{"exactly one of MasterKey and MasterKeyFile"}},
		{"negative duration", func(c *credentials.Config) { c.RefreshAhead = -time.Second }, []string{"RefreshAhead is negative"}},
		{"provider without token URL", func(c *credentials.Config) { c.Providers[0].TokenURL = "" }, []string{"TokenURL", "not an absolute http(s) URL"}},
		{"provider without client", func(c *credentials.Config) { c.Providers[0].ClientID = "" }, []string{"ClientID is required"}},
		{"second provider for a system", func(c *credentials.Config) { c.Providers = append(c.Providers, c.Providers[0]) }, []string{"a second provider"}},
		{"system name with |", func(c *credentials.Config) { c.Providers[0].System = "a|b" }, []string{"'|'"}},
		{"bad alert URL", func(c *credentials.Config) { c.AlertURL = "hooks.slack.com/services/SECRETKEY" }, []string{"AlertURL"}},
		{"client credentials without secret", func(c *credentials.Config) {
			c.Services = []credentials.Service{{System: "adobe", Method: credentials.MethodClientCredentials, TokenURL: "https://ims.test/token", ClientID: "x"}}
		}, []string{"ClientID and ClientSecret"}},
		{"jwt bearer with a bad key", func(c *credentials.Config) {
			c.Services = []credentials.Service{{System: "salesforce", Method: credentials.MethodJWTBearer, TokenURL: "https://login.test/token",
				ClientID: "x", Subject: "u@x", PrivateKeyPEM: "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYDATA\n-----END PRIVATE KEY-----\n"}}
		}, []string{"PrivateKeyPEM"}},
		{"service with an unknown method", func(c *credentials.Config) {
			c.Services = []credentials.Service{{System: "quip", Method: credentials.MethodAPIKey}}
		}, []string{"SetAPIKey"}},
		{"sts without keys", func(c *credentials.Config) {
			c.Services = []credentials.Service{{System: "s3", Method: credentials.MethodSTSAssumeRole}}
		}, []string{"AccessKeyID and SecretAccessKey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if !errors.Is(err, credentials.ErrConfig) {
				t.Fatalf("got %v, want an error wrapping ErrConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			for _, secret := range []string{"SECRETKEY", "TOPSECRETKEYDATA"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes a secret", err)
				}
			}
		})
	}
}

// TestSeedScheduleRefused checks that New itself refuses the seed's cron.
func TestSeedScheduleRefused(t *testing.T) {
	e := newEnv(t, testOptions())
	cfg := e.config()
	cfg.ScanInterval, cfg.Window = 45*time.Minute, 15*time.Minute
	_, err := credentials.New(t.Context(), cfg)
	if !errors.Is(err, credentials.ErrConfig) || !strings.Contains(err.Error(), "scan more often") {
		t.Fatalf("got %v, want the 45/15 schedule refused with an explanation", err)
	}
}

func TestParseMasterKey(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	std := base64.StdEncoding.EncodeToString(raw)
	for _, tc := range []struct {
		name, in string
		want     string // error substring; "" means valid
	}{
		{"padded", std, ""},
		{"unpadded", strings.TrimRight(std, "="), ""},
		{"with newline", std + "\n", ""},
		{"empty", "", "it is empty"},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), "decodes to 16 bytes; want exactly 32"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(raw, 1)), "decodes to 33 bytes"},
		{"url alphabet", base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 32)), "not valid standard base64"},
		{"hex", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "decodes to 48 bytes"},
		{"not base64", "not base64 at all!", "not valid standard base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := credentials.ParseMasterKey(connectors.Secret(tc.in))
			if tc.want == "" {
				if err != nil || len(k) != 32 {
					t.Fatalf("got %d bytes, %v; want 32 bytes", len(k), err)
				}
				return
			}
			if !errors.Is(err, credentials.ErrMasterKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrMasterKey containing %q", err, tc.want)
			}
			if tc.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
				t.Fatalf("error %q quotes the key", err)
			}
		})
	}
}

// rsaKey returns a fresh RSA key and its PKCS #8 PEM.
func rsaKey(t testing.TB) (*rsa.PrivateKey, connectors.Secret) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return k, connectors.Secret(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}
