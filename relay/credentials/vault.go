package credentials

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/mcc-bridge/bridge/connectors"
)

// Envelope encryption. Each tenant has a random 256-bit data key, stored
// wrapped (AES-256-GCM) by the master key; each secret is sealed with its
// tenant's data key, with AAD "tenant|system|field", so that a sealed value
// copied to another row, tenant or field does not open. Sealed values are
// version byte 1 | 12-byte random nonce | ciphertext and tag.

const (
	sealVersion = 1
	keyLen      = 32
	// masterCheckPlain is sealed with the master key in the meta table, so
	// that a wrong master key is refused at Open, not at first use.
	masterCheckPlain = "mcc-bridge credentials master key check"
	masterCheckAAD   = "meta|master-check"
	dataKeyAADPrefix = "data-key|"
)

// Secret field names in AADs.
const (
	fieldAccess   = "access_token"
	fieldRefresh  = "refresh_token"
	fieldAPIKey   = "api_key"
	fieldVerifier = "pkce_verifier"
)

// ParseMasterKey decodes a master key: standard base64 (padded or not) of
// exactly 32 bytes, surrounding white space ignored. Anything else is
// refused with an error wrapping ErrMasterKey that never quotes the value.
func ParseMasterKey(s connectors.Secret) ([]byte, error) {
	v := strings.TrimSpace(s.Reveal())
	if v == "" {
		return nil, fmt.Errorf("%w: it is empty; want the base64 encoding of 32 random bytes (e.g. `openssl rand -base64 32`)", ErrMasterKey)
	}
	var k []byte
	var err error
	if strings.HasSuffix(v, "=") {
		k, err = base64.StdEncoding.Strict().DecodeString(v)
	} else {
		k, err = base64.RawStdEncoding.Strict().DecodeString(v)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: it is not valid standard base64 (%d characters); want the base64 encoding of 32 random bytes", ErrMasterKey, len(v))
	}
	if len(k) != keyLen {
		return nil, fmt.Errorf("%w: it decodes to %d bytes; want exactly 32 (AES-256)", ErrMasterKey, len(k))
	}
	return k, nil
}

// readMasterKey reads the key from cfg.MasterKey or cfg.MasterKeyFile.
func readMasterKey(cfg Config) ([]byte, error) {
	if cfg.MasterKeyFile == "" {
		k, err := ParseMasterKey(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("master key: %w", err)
		}
		return k, nil
	}
	b, err := os.ReadFile(cfg.MasterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	k, err := ParseMasterKey(connectors.Secret(b))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", cfg.MasterKeyFile, err)
	}
	return k, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func seal(a cipher.AEAD, plain []byte, aad string) ([]byte, error) {
	out := make([]byte, 1+a.NonceSize(), 1+a.NonceSize()+len(plain)+a.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return a.Seal(out, out[1:], plain, []byte(aad)), nil
}

var errOpen = errors.New("sealed value does not open (wrong key, or it was moved or tampered with)")

func open(a cipher.AEAD, sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < 1+a.NonceSize()+a.Overhead() || sealed[0] != sealVersion {
		return nil, errOpen
	}
	n := 1 + a.NonceSize()
	p, err := a.Open(nil, sealed[1:n], sealed[n:], []byte(aad))
	if err != nil {
		return nil, errOpen
	}
	return p, nil
}

func aad(tenant, system, field string) string { return tenant + "|" + system + "|" + field }

// vault seals and opens secrets with per-tenant data keys.
type vault struct {
	master cipher.AEAD
	db     *sql.DB
	now    func() int64

	mu   sync.Mutex
	keys map[string]cipher.AEAD // tenant -> data key; guarded by mu
}

func newVault(ctx context.Context, db *sql.DB, masterKey []byte, now func() int64) (*vault, error) {
	m, err := newGCM(masterKey)
	if err != nil {
		return nil, err
	}
	v := &vault{master: m, db: db, now: now, keys: map[string]cipher.AEAD{}}
	if err := v.checkMaster(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// checkMaster verifies the master key against the meta table's check
// value, writing one when the database has none.
func (v *vault) checkMaster(ctx context.Context) error {
	sealed, err := seal(v.master, []byte(masterCheckPlain), masterCheckAAD)
	if err != nil {
		return err
	}
	if _, err := v.db.ExecContext(ctx, `INSERT OR IGNORE INTO meta(key, value) VALUES ('master_check', ?)`, sealed); err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	var stored []byte
	if err := v.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'master_check'`).Scan(&stored); err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	if p, err := open(v.master, stored, masterCheckAAD); err != nil || string(p) != masterCheckPlain {
		return ErrWrongMasterKey
	}
	return nil
}

// dataKey returns the tenant's data key, creating it on first use (two
// processes creating it at once agree on the one stored first).
func (v *vault) dataKey(ctx context.Context, tenant string) (cipher.AEAD, error) {
	v.mu.Lock()
	a, ok := v.keys[tenant]
	v.mu.Unlock()
	if ok {
		return a, nil
	}
	var wrapped []byte
	err := v.db.QueryRowContext(ctx, `SELECT wrapped FROM data_keys WHERE tenant = ?`, tenant).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		k := make([]byte, keyLen)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("data key of tenant %s: %w", tenant, err)
		}
		w, serr := seal(v.master, k, dataKeyAADPrefix+tenant)
		if serr != nil {
			return nil, serr
		}
		if _, err := v.db.ExecContext(ctx, `INSERT OR IGNORE INTO data_keys(tenant, wrapped, created_at) VALUES (?, ?, ?)`, tenant, w, v.now()); err != nil {
			return nil, fmt.Errorf("data key of tenant %s: %w", tenant, err)
		}
		err = v.db.QueryRowContext(ctx, `SELECT wrapped FROM data_keys WHERE tenant = ?`, tenant).Scan(&wrapped)
	}
	if err != nil {
		return nil, fmt.Errorf("data key of tenant %s: %w", tenant, err)
	}
	k, err := open(v.master, wrapped, dataKeyAADPrefix+tenant)
	if err != nil {
		return nil, fmt.Errorf("data key of tenant %s: %w: %w", tenant, ErrWrongMasterKey, err)
	}
	a, err = newGCM(k)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	v.keys[tenant] = a
	v.mu.Unlock()
	return a, nil
}

// seal seals plain for (tenant, system, field). An empty plain seals to nil.
func (v *vault) seal(ctx context.Context, tenant, system, field string, plain connectors.Secret) ([]byte, error) {
	if plain == "" {
		return nil, nil
	}
	a, err := v.dataKey(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return seal(a, []byte(plain.Reveal()), aad(tenant, system, field))
}

// open opens what seal sealed. Nil opens to "".
func (v *vault) open(ctx context.Context, tenant, system, field string, sealed []byte) (connectors.Secret, error) {
	if sealed == nil {
		return "", nil
	}
	a, err := v.dataKey(ctx, tenant)
	if err != nil {
		return "", err
	}
	p, err := open(a, sealed, aad(tenant, system, field))
	if err != nil {
		return "", fmt.Errorf("%s of tenant %s, system %s: %w", field, tenant, system, err)
	}
	return connectors.Secret(p), nil
}
