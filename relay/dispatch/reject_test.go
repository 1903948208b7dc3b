package dispatch_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/relay/dispatch"
)

// oauthFake is the fake connector with a credential of its own.
type oauthFake struct{ *fakeConnector }

func (oauthFake) AuthMethod() string { return "oauth2" }

// rotatingStore hands out "tok-N"; Reject of the current token moves to
// the next one unless stuck.
type rotatingStore struct {
	mu       sync.Mutex
	gen      int
	stuck    bool
	rejected []string
}

func (s *rotatingStore) Credential(context.Context, connectors.CredentialRequest) (connectors.Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return connectors.Credential{Method: "oauth2", Token: connectors.Secret("tok-" + string(rune('0'+s.gen)))}, nil
}

func (s *rotatingStore) Reject(_ context.Context, _ connectors.CredentialRequest, c connectors.Credential) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, c.Token.Reveal())
	if !s.stuck && c.Token.Reveal() == "tok-"+string(rune('0'+s.gen)) {
		s.gen++
	}
	return nil
}

// TestRefusedCredentialRetriedOnce: a 401 for a credential before its
// expiry drops it at the store and the call runs once more with the fresh
// one, a write too (a refusal did nothing); when the store has nothing
// fresher, the caller gets credential-unavailable after one call.
func TestRefusedCredentialRetriedOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		op        string
		stuck     bool
		wantCode  int
		wantCalls int
	}{
		{"read", "echo", false, http.StatusOK, 2},
		{"write", "create", false, http.StatusOK, 2},
		{"nothing fresher", "echo", true, http.StatusServiceUnavailable, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &rotatingStore{stuck: tc.stuck}
			var conn *fakeConnector
			h := newHarness(t, func(c *dispatch.Config) {
				conn = c.Connectors[0].(*fakeConnector)
				c.Connectors = []connectors.Connector{oauthFake{conn}}
				c.Credentials = store
			})
			for _, op := range []string{"echo", "create"} {
				next := conn.run[op]
				conn.run[op] = func(ctx context.Context, n int, ec connectors.ExecContext) (connectors.Result, error) {
					if ec.Credential.Token.Reveal() == "tok-0" {
						return connectors.Result{}, connectors.Errorf(connectors.ClassUnauthorized, "HTTP 401: token revoked")
					}
					return next(ctx, n, ec)
				}
			}
			body := `{"targetSystem":"fake","operation":"` + tc.op + `","payload":{"text":"hi"}}`
			resp, b := h.call(t, "sarah", body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantCode, b)
			}
			if got := conn.count(tc.op); got != tc.wantCalls {
				t.Errorf("%d calls, want %d", got, tc.wantCalls)
			}
			if len(store.rejected) != 1 || store.rejected[0] != "tok-0" {
				t.Errorf("rejected %v, want [tok-0]", store.rejected)
			}
			if tc.stuck && !strings.Contains(string(b), "credential-unavailable") {
				t.Errorf("body %s", b)
			}
			if strings.Contains(string(b), "tok-") {
				t.Error("a token reached the caller")
			}
		})
	}
}
