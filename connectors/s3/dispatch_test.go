package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/connectortest"
	"github.com/mcc-bridge/bridge/connectors/s3/s3test"
	"github.com/mcc-bridge/bridge/relay/audit"
	"github.com/mcc-bridge/bridge/relay/callerauth"
	"github.com/mcc-bridge/bridge/relay/dispatch"
	"github.com/mcc-bridge/bridge/relay/policy"
)

// fakeCreds is the credential vault: it hands out the relay's base keys.
type fakeCreds struct {
	mu   sync.Mutex
	reqs []connectors.CredentialRequest
}

func (f *fakeCreds) Credential(_ context.Context, req connectors.CredentialRequest) (connectors.Credential, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	return baseCred(), nil
}

// oneCaller authenticates every request as sarah of acme.
type oneCaller struct{}

func (oneCaller) Authenticate(context.Context, *http.Request) (callerauth.Caller, error) {
	return callerauth.Caller{UserID: "sarah", Email: "sarah@acme.example", Tenant: tenant, Roles: []string{"analyst"}, AuthMethod: "oidc"}, nil
}

// allowS3 permits every s3 operation.
type allowS3 struct{}

func (allowS3) Decide(_ context.Context, r policy.Request) policy.Decision {
	if r.TargetSystem == "s3" {
		return policy.Decision{Allow: true, Policies: []string{"allow-s3"}, Reason: "allowed by allow-s3"}
	}
	return policy.Decision{Reason: "default deny"}
}

// TestThroughDispatcher runs the connector behind a real dispatcher:
// POST /v1/dispatch with the vault's base keys, schema checks, retries
// and audit.
func TestThroughDispatcher(t *testing.T) {
	e := newEnv(t, nil)
	content := bytes.Repeat([]byte("dispatch me "), 10000)
	e.seed(t, "in/data.txt", content)
	for _, k := range []string{"in/a", "in/b", "in/c", "in/d", "in/e", "in/f", "in/g", "in/h", "in/i"} {
		e.seed(t, k, []byte(k))
	}

	dir := t.TempDir()
	lg, err := audit.Open(t.Context(), dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lg.Close() })
	creds := &fakeCreds{}
	d, err := dispatch.New(dispatch.Config{
		Connectors:  []connectors.Connector{e.conn},
		Auth:        oneCaller{},
		Policy:      allowS3{},
		Audit:       lg,
		Credentials: creds,
		Logger:      tlog(t, e.logs),
		Timeout:     5 * time.Second,
		Retry:       dispatch.RetryConfig{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)

	call := func(t *testing.T, op, payload string) (*http.Response, []byte) {
		t.Helper()
		body := `{"targetSystem":"s3","operation":"` + op + `","payload":` + payload + `}`
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/dispatch", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer x")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, s := range e.secrets() {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("response %s holds a secret", b)
			}
		}
		return resp, b
	}
	sum := sha256.Sum256(content)

	tests := []struct {
		name, op, payload string
		setup             func()
		status            int
		check             func(t *testing.T, resp *http.Response, body []byte)
	}{
		{name: "list over 3 pages", op: "list_objects", payload: `{"bucket":"acme-reports","prefix":"in/","limit":10}`, status: 200,
			check: func(t *testing.T, _ *http.Response, body []byte) {
				var out dispatch.Response
				json.Unmarshal(body, &out)
				var r struct{ Count int }
				json.Unmarshal(out.Result, &r)
				if r.Count != 10 || out.Meta.AuthPattern != "s2s" || out.Meta.Attempts != 1 {
					t.Errorf("got %s, want 10 objects, pattern s2s, 1 attempt", body)
				}
				pages := 0
				for _, r := range e.srv.Requests() {
					if r.Query.Get("list-type") == "2" && r.Query.Get("prefix") == "in/" {
						pages++
					}
				}
				if pages != 3 {
					t.Errorf("got %d ListObjectsV2 pages, want 3 (4+4+2)", pages)
				}
			}},
		{name: "get streams the object", op: "get_object", payload: `{"bucket":"acme-reports","key":"in/data.txt"}`, status: 200,
			check: func(t *testing.T, resp *http.Response, body []byte) {
				if got := sha256.Sum256(body); got != sum || resp.Header.Get("Content-Type") != "text/plain" ||
					resp.ContentLength != int64(len(content)) {
					t.Errorf("got %d bytes (%s, length %d), want the object's %d text/plain bytes",
						len(body), resp.Header.Get("Content-Type"), resp.ContentLength, len(content))
				}
			}},
		{name: "put writes", op: "put_object",
			payload: `{"bucket":"acme-reports","key":"out/r.json","content":"` + base64.StdEncoding.EncodeToString([]byte(`{"ok":true}`)) + `","content_type":"application/json"}`,
			status:  200, check: func(t *testing.T, _ *http.Response, body []byte) {
				if b, _, err := e.srv.Get(bucket, "out/r.json"); err != nil || string(b) != `{"ok":true}` {
					t.Errorf("stored %q (%v), want the content", b, err)
				}
			}},
		{name: "5xx is retried", op: "list_objects", payload: `{"bucket":"acme-reports","prefix":"in/a"}`, status: 200,
			setup: func() {
				e.srv.Inject(s3test.Fault{Status: 500, Code: "InternalError", Message: "We encountered an internal error. Please try again."})
			},
			check: func(t *testing.T, _ *http.Response, body []byte) {
				var out dispatch.Response
				json.Unmarshal(body, &out)
				if out.Meta.Attempts != 2 || !strings.Contains(string(out.Result), `"count":1`) {
					t.Errorf("got %s, want success on the 2nd attempt", body)
				}
			}},
		{name: "payload with an unknown field", op: "get_object", payload: `{"bucket":"acme-reports","key":"a","version":"1"}`, status: 400,
			check: problemType(dispatch.ProblemInvalidPayload)},
		{name: "payload with a malformed bucket", op: "list_objects", payload: `{"bucket":"Not_A_Bucket"}`, status: 400,
			check: problemType(dispatch.ProblemInvalidPayload)},
		{name: "payload with a control character in the key", op: "get_object", payload: `{"bucket":"acme-reports","key":"a\u0000b"}`, status: 400,
			check: problemType(dispatch.ProblemInvalidPayload)},
		{name: "bucket not allowed", op: "list_objects", payload: `{"bucket":"other-bucket"}`, status: 422,
			check: problemType(dispatch.ProblemUpstreamInvalid)},
		{name: "missing key", op: "get_object", payload: `{"bucket":"acme-reports","key":"in/nope"}`, status: 404,
			check: problemType(dispatch.ProblemNotFound)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			resp, body := call(t, tt.op, tt.payload)
			if resp.StatusCode != tt.status {
				t.Fatalf("got HTTP %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			tt.check(t, resp, body)
		})
	}

	if got := len(e.sts.Calls()); got != 1 {
		t.Errorf("got %d AssumeRole calls, want 1 for every dispatch", got)
	}
	for _, r := range creds.reqs {
		if r.System != "s3" || r.Tenant != tenant || r.Pattern != connectors.ServiceToService {
			t.Errorf("got credential request %+v, want s3/acme/s2s", r)
		}
	}
	recs, err := lg.Query(t.Context(), audit.Query{Tenant: tenant, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var sawPut bool
	for _, r := range recs {
		if r.Operation == "put_object" && r.Response.Success {
			sawPut = len(r.Response.IDs) == 1 && r.Response.IDs[0] == "s3://acme-reports/out/r.json" &&
				strings.Contains(r.AuthMethod, "s2s via sts-assume-role")
		}
	}
	if !sawPut {
		t.Errorf("no audit record of the put naming s3://acme-reports/out/r.json and sts-assume-role in %+v", recs)
	}
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() {
			b, _ := os.ReadFile(p)
			for _, s := range e.secrets() {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("audit file %s holds a secret", p)
				}
			}
		}
		return nil
	})
}

func problemType(want string) func(t *testing.T, _ *http.Response, body []byte) {
	return func(t *testing.T, _ *http.Response, body []byte) {
		t.Helper()
		var p dispatch.Problem
		if err := json.Unmarshal(body, &p); err != nil || p.Type != want {
			t.Errorf("got %s, want a problem of type %s", body, want)
		}
	}
}

// credsFunc is a credential vault handing out what its function gives.
type credsFunc func() connectors.Credential

func (f credsFunc) Credential(context.Context, connectors.CredentialRequest) (connectors.Credential, error) {
	return f(), nil
}

// TestThroughDispatcherFailures: how S3's and STS's failures reach the
// caller through a real dispatcher, and how many requests they cost.
func TestThroughDispatcherFailures(t *testing.T) {
	list := `{"bucket":"acme-reports","prefix":"a"}`
	put := `{"bucket":"acme-reports","key":"out/x.txt","content":"eA=="}`
	slowDown := func(ra string) s3test.Fault {
		return s3test.Fault{Status: 503, Code: "SlowDown", Message: "Please reduce your request rate.", RetryAfter: ra}
	}
	tests := []struct {
		name, op, payload string
		cred              func() connectors.Credential
		setup             func(e *env)
		wantStatus        int
		wantType          string  // for failures
		wantRA            float64 // for rate limits
		wantAttempts      int     // for successes
		wantWait          time.Duration
		wantSTS, wantS3   int // requests
	}{
		{name: "SlowDown with a short Retry-After is waited for, then success", op: "list_objects", payload: list,
			setup:      func(e *env) { e.srv.Inject(slowDown("1")) },
			wantStatus: 200, wantAttempts: 2, wantWait: time.Second, wantSTS: 1, wantS3: 2},
		{name: "SlowDown with a Retry-After past the deadline reaches the caller", op: "list_objects", payload: list,
			setup:      func(e *env) { e.srv.Inject(slowDown("120")) },
			wantStatus: 429, wantType: dispatch.ProblemUpstreamRateLimited, wantRA: 120, wantSTS: 1, wantS3: 1},
		{name: "SlowDown on a write is retried (S3 did not act on it)", op: "put_object", payload: put,
			setup:      func(e *env) { e.srv.Inject(slowDown("")) },
			wantStatus: 200, wantAttempts: 2, wantSTS: 1, wantS3: 2},
		{name: "InternalError on a write is not retried", op: "put_object", payload: put,
			setup: func(e *env) {
				e.srv.Inject(s3test.Fault{Status: 500, Code: "InternalError", Message: "We encountered an internal error. Please try again."})
			},
			wantStatus: 502, wantType: dispatch.ProblemConnectorUnavailable, wantSTS: 1, wantS3: 1},
		{name: "STS unavailable on a read is retried", op: "list_objects", payload: list,
			setup: func(e *env) {
				e.sts.Inject(s3test.Fault{Status: 503, Code: "ServiceUnavailable", Message: "Service is unavailable."})
			},
			wantStatus: 200, wantAttempts: 2, wantSTS: 2, wantS3: 1},
		{name: "the relay's base keys refused by STS: S3 is never called", op: "list_objects", payload: list,
			cred: func() connectors.Credential {
				c := baseCred()
				c.Values["secret_access_key"] = "wrong/secret/AbCdEfGhIjKlMnOpQrStUvWxYz0123"
				return c
			},
			wantStatus: 503, wantType: dispatch.ProblemCredentialUnavailable, wantSTS: 1, wantS3: 0},
		{name: "AccessDenied by the role's policy is the caller's refusal, not a credential problem", op: "get_object", payload: `{"bucket":"acme-reports","key":"a.txt"}`,
			setup:      func(e *env) { e.srv.Inject(s3test.Fault{Status: 403, Code: "AccessDenied", Message: "Access Denied"}) },
			wantStatus: 422, wantType: dispatch.ProblemUpstreamInvalid, wantSTS: 1, wantS3: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.seed(t, "a.txt", []byte("a"))
			cred := baseCred
			if tt.cred != nil {
				cred = tt.cred
			}
			h := connectortest.Start(t, e.conn, connectortest.Options{Credentials: credsFunc(cred), Logger: tlog(t, e.logs)})
			if tt.setup != nil {
				tt.setup(e)
			}
			start := time.Now()
			status, body := h.Dispatch(t, `{"targetSystem":"s3","operation":"`+tt.op+`","payload":`+tt.payload+`}`)
			for _, s := range e.secrets() {
				if bytes.Contains(body, []byte(s)) {
					t.Fatalf("response %s holds a secret", body)
				}
			}
			if status != tt.wantStatus {
				t.Fatalf("got HTTP %d %s, want %d", status, body, tt.wantStatus)
			}
			if tt.wantType != "" {
				var p dispatch.Problem
				if err := json.Unmarshal(body, &p); err != nil || p.Type != tt.wantType || p.RetryAfter != int(tt.wantRA) {
					t.Errorf("got %s, want a %s problem with retryAfter %v", body, tt.wantType, tt.wantRA)
				}
			} else {
				var out dispatch.Response
				json.Unmarshal(body, &out)
				if out.Meta.Attempts != tt.wantAttempts || time.Since(start) < tt.wantWait {
					t.Errorf("got %d attempts after %v, want %d after at least %v", out.Meta.Attempts, time.Since(start), tt.wantAttempts, tt.wantWait)
				}
			}
			if got := len(e.sts.Calls()); got != tt.wantSTS {
				t.Errorf("got %d AssumeRole calls, want %d", got, tt.wantSTS)
			}
			if got := len(e.srv.Requests()); got != tt.wantS3 {
				t.Errorf("got %d S3 requests, want %d", got, tt.wantS3)
			}
		})
	}
}

// TestExpiredSessionThroughDispatcher: S3 refusing the cached
// assumed-role keys costs the caller nothing (the connector assumes the
// role again and retries once); refusing the new keys too reaches the
// caller as credential-unavailable (ClassUnauthorized), without further
// retries by the dispatcher.
func TestExpiredSessionThroughDispatcher(t *testing.T) {
	e := newEnv(t, nil)
	e.seed(t, "a.txt", []byte("a"))
	h := connectortest.Start(t, e.conn, connectortest.Options{Credentials: credsFunc(baseCred), Logger: tlog(t, e.logs)})
	list := `{"targetSystem":"s3","operation":"list_objects","payload":{"bucket":"acme-reports"}}`
	if status, body := h.Dispatch(t, list); status != 200 {
		t.Fatalf("first list: %d %s", status, body)
	}
	e.sts.RevokeAll()
	before := len(e.srv.Requests())
	if status, body := h.Dispatch(t, list); status != 200 {
		t.Errorf("with the session revoked: %d %s, want 200 with a new session", status, body)
	}
	if got := len(e.srv.Requests()) - before; got != 2 {
		t.Errorf("S3 got %d requests, want 2 (the refused one and the retry)", got)
	}
	if got := len(e.sts.Calls()); got != 2 {
		t.Errorf("got %d AssumeRole calls, want 2 (one before, one after the revocation)", got)
	}

	expired := s3test.Fault{Status: 400, Code: "ExpiredToken", Message: "The provided token has expired."}
	e.srv.Inject(expired, expired)
	before = len(e.srv.Requests())
	status, _, out := h.DispatchJSON(t, list)
	if status != 503 || out["type"] != dispatch.ProblemCredentialUnavailable {
		t.Errorf("refused twice: got %d %v, want 503 %s", status, out["type"], dispatch.ProblemCredentialUnavailable)
	}
	if got := len(e.srv.Requests()) - before; got != 2 {
		t.Errorf("S3 got %d requests, want 2", got)
	}
	if status, body := h.Dispatch(t, list); status != 200 {
		t.Errorf("the next list: %d %s, want 200 with a new session", status, body)
	}
}

// TestRevokedConnection: when the credential manager has no usable
// credential for the tenant's S3 connection, the dispatch is refused as
// credential-unavailable before STS or S3 is called.
func TestRevokedConnection(t *testing.T) {
	e := newEnv(t, nil)
	vault := connectortest.RevokedConnection(t, "s3")
	h := connectortest.Start(t, e.conn, connectortest.Options{Credentials: vault, Logger: tlog(t, e.logs)})
	for _, tc := range []struct{ name, op, payload string }{
		{"a list", "list_objects", `{"bucket":"acme-reports"}`},
		{"a put", "put_object", `{"bucket":"acme-reports","key":"k","content":"eA=="}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, out := h.DispatchJSON(t, `{"targetSystem":"s3","operation":"`+tc.op+`","payload":`+tc.payload+`}`)
			if status != 503 || out["type"] != dispatch.ProblemCredentialUnavailable {
				t.Errorf("got %d %v, want 503 %s", status, out["type"], dispatch.ProblemCredentialUnavailable)
			}
			if errs := vault.Errors(); len(errs) == 0 || !errors.Is(errs[len(errs)-1], connectors.ErrNoCredential) {
				t.Errorf("the manager answered %v, want an error wrapping %q", errs, connectors.ErrNoCredential)
			}
		})
	}
	if len(e.sts.Calls()) != 0 || len(e.srv.Requests()) != 0 {
		t.Errorf("got %d STS and %d S3 requests, want none", len(e.sts.Calls()), len(e.srv.Requests()))
	}
}
