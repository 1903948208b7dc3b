// Package enroll gets an agent (or relay) its first certificate from a
// step-ca with a one-time token, or takes files made by `step ca
// certificate`, and keeps key, chain and root in a state directory.
package enroll

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.step.sm/crypto/pemutil"

	"github.com/mcc-bridge/bridge/pki/caclient"
)

// Store is a state directory holding one identity: <name>.crt (leaf and
// intermediates), <name>.key (mode 0600), root.crt and <name>.json (where it
// came from). Every write is atomic: a crash leaves the old or the new file.
type Store struct {
	Dir  string
	Name string // "agent" or "relay"
}

// CertPath is the chain file.
func (s Store) CertPath() string { return filepath.Join(s.Dir, s.Name+".crt") }

// KeyPath is the private key file.
func (s Store) KeyPath() string { return filepath.Join(s.Dir, s.Name+".key") }

// RootPath is the pinned root.
func (s Store) RootPath() string { return filepath.Join(s.Dir, "root.crt") }

// MetaPath is the enrollment record.
func (s Store) MetaPath() string { return filepath.Join(s.Dir, s.Name+".json") }

// Meta records where the identity came from.
type Meta struct {
	// CAURL is the CA that signed it; renewal goes there. Empty for files
	// imported by hand, which then renew only if a CA URL is configured.
	CAURL string `json:"ca_url,omitempty"`
	// Fingerprint is the root's SHA-256.
	Fingerprint string `json:"fingerprint"`
	// EnrolledAt is when the identity was first stored.
	EnrolledAt time.Time `json:"enrolled_at"`
	// RenewedAt is the last renewal.
	RenewedAt time.Time `json:"renewed_at,omitzero"`
	// UsedTokens are the ids (jti) of the tokens used here, so that a
	// reused token gets a clear error before it reaches the CA.
	UsedTokens []string `json:"used_tokens,omitempty"`
}

// ErrNotEnrolled is returned when the state directory holds no identity.
var ErrNotEnrolled = errors.New("not enrolled")

// Exists reports whether the store holds a certificate and key.
func (s Store) Exists() bool {
	_, err1 := os.Stat(s.CertPath())
	_, err2 := os.Stat(s.KeyPath())
	return err1 == nil && err2 == nil
}

// Load reads the key pair (with Leaf set) and the root.
func (s Store) Load() (*tls.Certificate, *x509.Certificate, error) {
	if !s.Exists() {
		return nil, nil, fmt.Errorf("%w: %s has no %s.crt and %s.key (run enroll first)", ErrNotEnrolled, s.Dir, s.Name, s.Name)
	}
	cert, err := tls.LoadX509KeyPair(s.CertPath(), s.KeyPath())
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", s.CertPath(), err)
	}
	root, err := caclient.ReadRoot(s.RootPath())
	if err != nil {
		return nil, nil, err
	}
	return &cert, root, nil
}

// LoadMeta reads the enrollment record; a missing one is empty.
func (s Store) LoadMeta() (Meta, error) {
	var m Meta
	b, err := os.ReadFile(s.MetaPath())
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", s.MetaPath(), err)
	}
	return m, nil
}

// SaveMeta writes the enrollment record.
func (s Store) SaveMeta(m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.MetaPath(), append(b, '\n'), 0o600)
}

// SaveKey writes the private key, mode 0600.
func (s Store) SaveKey(key crypto.PrivateKey) error {
	block, err := pemutil.Serialize(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	return WriteFileAtomic(s.KeyPath(), pem.EncodeToMemory(block), 0o600)
}

// SaveChain writes the leaf and intermediates.
func (s Store) SaveChain(chain []*x509.Certificate) error {
	var b []byte
	for _, c := range chain {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return WriteFileAtomic(s.CertPath(), b, 0o644)
}

// SaveRoot writes the pinned root.
func (s Store) SaveRoot(root *x509.Certificate) error {
	return WriteFileAtomic(s.RootPath(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644)
}

// WriteFileAtomic writes b to a temporary file beside path, syncs it and
// renames it over path.
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
