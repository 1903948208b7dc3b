package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/credentials"
)

// TestNoPlaintextAtRest stores every kind of secret (tokens from an
// authorization and a rotation, an API key, a pending authorization's
// state), then greps the database files' bytes (with the WAL while open,
// and after close) and the logs for each of them.
func TestNoPlaintextAtRest(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager()
	ctx := context.Background()
	e.connect(m, tenantA, system, e.prov)
	e.clock.Advance(58 * time.Minute)
	if _, err := e.credential(m); err != nil { // refreshes: a second pair
		t.Fatal(err)
	}
	apiKey := "quip-api-key-5f2b9c0d7e1a4b3c"
	if _, err := m.SetAPIKey(ctx, tenantA, "quip", credentials.APIKey{Key: connectors.Secret(apiKey)}); err != nil {
		t.Fatal(err)
	}
	authURL, err := m.StartAuthorization(ctx, "globex", system, redirect) // a pending verifier
	if err != nil {
		t.Fatal(err)
	}
	state := e.prov.Authorize(t, authURL).Get("state")
	secrets := append(e.prov.Secrets(), apiKey, e.key.Reveal(), state)
	if len(secrets) < 7 {
		t.Fatalf("got %d secrets, want at least 7 (client secret, 2 access tokens, 2 refresh tokens, API key, master key)", len(secrets))
	}
	open := grepFiles(t, e.dir, secrets) // with the WAL, while open
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	closed := grepFiles(t, e.dir, secrets)
	if fi, err := os.Stat(filepath.Join(e.dir, credentials.DBFile)); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials.db mode: got %v, want 0600", fi.Mode().Perm())
	}
	logs := e.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the logs hold a secret (%.6s...)", s)
		}
	}
	t.Logf("%d secrets, none in the database files (%d bytes open, %d closed) nor the logs", len(secrets), open, closed)
}

// grepFiles checks that no credentials.db* file under dir holds any of
// secrets, and returns the bytes read.
func grepFiles(t *testing.T, dir string, secrets []string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, credentials.DBFile+"*"))
	total := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds a secret in plaintext (%.6s...)", filepath.Base(f), s)
			}
		}
	}
	if total == 0 {
		t.Fatal("no database bytes read")
	}
	return total
}

// TestWrongMasterKey opens a store sealed with one key with another.
func TestWrongMasterKey(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager()
	e.connect(m, tenantA, system, e.prov)
	m.Close()

	cfg := e.config()
	cfg.MasterKey = newKey()
	_, err := credentials.New(context.Background(), cfg)
	if !errors.Is(err, credentials.ErrWrongMasterKey) {
		t.Fatalf("got %v, want ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), "master key does not open credentials.db") {
		t.Errorf("got %q, want a clear message", err)
	}

	// The right key, from a file, opens it and the token is there.
	kf := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(kf, []byte(e.key.Reveal()+"\n"), 0o600)
	cfg = e.config()
	cfg.MasterKey, cfg.MasterKeyFile = "", kf
	m2, err := credentials.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New with the key file: %v", err)
	}
	defer m2.Close()
	c, err := e.credential(m2)
	if err != nil || !e.prov.Valid(c.Token.Reveal()) {
		t.Fatalf("got %v, valid %v; want the stored token", err, e.prov.Valid(c.Token.Reveal()))
	}

	// A malformed key file is refused before the store is touched.
	os.WriteFile(kf, []byte("c2hvcnQ=\n"), 0o600)
	if _, err := credentials.New(context.Background(), cfg); !errors.Is(err, credentials.ErrMasterKey) {
		t.Fatalf("got %v, want ErrMasterKey", err)
	}
}

// TestSealedValueBoundToRow moves a sealed token to another tenant's row:
// the AAD (tenant|system|field) makes it fail to open.
func TestSealedValueBoundToRow(t *testing.T) {
	e := newEnv(t, testOptions())
	m := e.manager()
	e.connect(m, tenantA, system, e.prov)
	e.connect(m, "globex", system, e.prov)
	m.Close()
	db := openRaw(t, e.dir)
	if _, err := db.Exec(`UPDATE connections SET access_token = (SELECT access_token FROM connections WHERE tenant = ?) WHERE tenant = ?`, tenantA, "globex"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	m = e.manager()
	_, err := m.Credential(context.Background(), ownerReq("globex", system))
	if err == nil || !strings.Contains(err.Error(), "does not open") {
		t.Fatalf("got %v, want the moved token refused", err)
	}
}
