package callerauth

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzAuthenticate feeds arbitrary Authorization headers to a dev-mode
// Authenticator (no network): it must never panic, and must refuse with an
// *Error whose detail does not echo the input.
func FuzzAuthenticate(f *testing.F) {
	dev, err := LoadOrCreateDevIssuer(filepath.Join(f.TempDir(), "k.jwk"), devIss)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a, err := New(f.Context(), Config{}, Options{Dev: dev, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	tok, err := dev.Mint("acme", "ada", "", []string{"x"}, time.Hour, now)
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Bearer " + tok)
	f.Add("Bearer " + tok[:len(tok)-5])
	f.Add("Bearer eyJhbGciOiJub25lIn0.e30.")
	f.Add("Basic abc")
	f.Add("Bearer a.b.c.d.e")
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
		r.Header.Set("Authorization", header)
		c, err := a.Authenticate(t.Context(), r)
		if err == nil {
			if c.Tenant == "" || c.UserID == "" {
				t.Fatalf("accepted caller %+v without tenant or user", c)
			}
			return
		}
		e, ok := err.(*Error)
		if !ok || e.Kind == "" {
			t.Fatalf("got %T %v, want *Error with a kind", err, err)
		}
		if _, raw, _ := strings.Cut(strings.TrimSpace(header), " "); len(raw) >= 40 && strings.Contains(e.Detail, raw) {
			t.Fatalf("detail %q echoes the token", e.Detail)
		}
	})
}
