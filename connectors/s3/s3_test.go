package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/s3"
	"github.com/mcc-bridge/bridge/connectors/s3/s3test"
)

// The relay's base credential and the tenant's role. The secret parts
// must never appear in an error.
const (
	baseAKID   = "AKIABASE0RELAY7EXAMPLE"
	baseSecret = "bAsE/sEcReT+9q7Zx1Wv3Ut5Sr7Qp9On1Ml3Kj5Hg7"
	baseToken  = "IQoJb3JpZ2luX2VjEBaseSessionTokenZq9x7f3e"
	roleARN    = "arn:aws:iam::111122223333:role/mcc-bridge-reports"
	externalID = "acme-7f3e1d-external"
	bucket     = "acme-reports"
	tenant     = "acme"
)

// tlog is a slog.Logger writing to t.Log and to logs.
func tlog(t *testing.T, logs *logBuf) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct {
	t    *testing.T
	logs *logBuf
}

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	w.logs.mu.Lock()
	w.logs.b.Write(p)
	w.logs.mu.Unlock()
	return len(p), nil
}

// logBuf keeps what was logged, to look for secrets in it.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

// env is a fake STS, an S3 server trusting it, and a connector.
type env struct {
	sts  *s3test.STS
	srv  *s3test.S3
	conn *s3.Connector
	logs *logBuf
}

// newEnv starts the servers; stsExternalID is what the role's trust
// policy requires, edit changes the connector's config.
func newEnv(t *testing.T, edit func(*s3.Config)) *env {
	t.Helper()
	sts := s3test.NewSTS(s3test.STSConfig{
		Base:    s3test.Keys{AccessKeyID: baseAKID, SecretAccessKey: baseSecret, SessionToken: baseToken},
		RoleARN: roleARN, ExternalID: externalID,
	})
	t.Cleanup(sts.Close)
	srv, err := s3test.NewS3(s3test.S3Config{STS: sts, Buckets: []string{bucket, "other-bucket"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	e := &env{sts: sts, srv: srv, logs: &logBuf{}}
	cfg := s3.Config{
		Buckets: []string{bucket}, RoleARN: roleARN, ExternalID: externalID,
		Region: "eu-west-1", STSEndpoint: sts.URL, S3Endpoint: srv.URL,
		PageSize: 4, Logger: tlog(t, e.logs),
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := s3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c
	// Nothing logged, by the connector or a dispatcher, may hold a secret.
	t.Cleanup(func() {
		e.logs.mu.Lock()
		defer e.logs.mu.Unlock()
		for _, s := range e.secrets() {
			if strings.Contains(e.logs.b.String(), s) {
				t.Errorf("the log holds a secret")
			}
		}
	})
	return e
}

// baseCred is the credential the dispatcher hands the connector.
func baseCred() connectors.Credential {
	return connectors.Credential{
		Pattern: connectors.ServiceToService, Method: "sts-assume-role", Subject: "role " + roleARN,
		Values: map[string]connectors.Secret{
			"access_key_id": baseAKID, "secret_access_key": baseSecret, "session_token": baseToken,
		},
	}
}

func (e *env) exec(t *testing.T, op, payload string) (connectors.Result, error) {
	t.Helper()
	return e.execAs(t, tenant, baseCred(), op, payload)
}

func (e *env) execAs(t *testing.T, ten string, cred connectors.Credential, op, payload string) (connectors.Result, error) {
	t.Helper()
	// Not cancelled on return: a streamed body is read afterwards.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	res, err := e.conn.Execute(ctx, op, connectors.ExecContext{
		User: connectors.User{ID: "sarah"}, Tenant: ten, TraceID: "trace-1",
		Payload: json.RawMessage(payload), Credential: cred, Attempt: 1,
	})
	if err != nil {
		e.checkNoSecret(t, err)
	}
	return res, err
}

// secrets lists every secret value in play: the base credential's and
// every credential STS issued.
func (e *env) secrets() []string {
	out := []string{baseSecret, baseToken}
	for _, i := range e.sts.Issued() {
		out = append(out, i.SecretAccessKey, i.SessionToken)
	}
	return out
}

// checkNoSecret fails when err's text (or its Detail) holds any secret,
// or any 8-character piece of one.
func (e *env) checkNoSecret(t *testing.T, err error) {
	t.Helper()
	texts := []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
	var ce *connectors.Error
	if errors.As(err, &ce) {
		texts = append(texts, ce.Detail)
	}
	for _, s := range e.secrets() {
		for i := 0; i+8 <= len(s); i += 4 {
			for _, txt := range texts {
				if strings.Contains(txt, s[i:i+8]) {
					t.Errorf("error %q holds part of a secret", txt)
					return
				}
			}
		}
	}
}

func (e *env) seed(t *testing.T, key string, content []byte) {
	t.Helper()
	if err := e.srv.Put(bucket, key, "text/plain", content); err != nil {
		t.Fatal(err)
	}
}

func TestOperations(t *testing.T) {
	e := newEnv(t, nil)
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	e.seed(t, "reports/q1.csv", []byte("region,revenue\nemea,42\n"))
	e.seed(t, "reports/big.bin", big)
	e.seed(t, "other/x.txt", []byte("x"))
	bigSum := sha256.Sum256(big)
	put := []byte("hello, \x00binary\xff world")

	tests := []struct {
		name, op, payload string
		check             func(t *testing.T, res connectors.Result)
	}{
		{"list_objects under a prefix", "list_objects", `{"bucket":"acme-reports","prefix":"reports/"}`, func(t *testing.T, res connectors.Result) {
			var got struct {
				Count   int
				Objects []struct {
					Key  string
					Size int64
				}
				Truncated bool
			}
			json.Unmarshal(res.Data, &got)
			if got.Count != 2 || got.Objects[0].Key != "reports/big.bin" || got.Objects[0].Size != int64(len(big)) || got.Truncated {
				t.Errorf("got %s, want reports/big.bin and reports/q1.csv, not truncated", res.Data)
			}
			if want := "s3://acme-reports/reports/q1.csv"; len(res.IDs) != 2 || res.IDs[1] != want {
				t.Errorf("got IDs %v, want [.. %s]", res.IDs, want)
			}
		}},
		{"get_object streams the content", "get_object", `{"bucket":"acme-reports","key":"reports/big.bin"}`, func(t *testing.T, res connectors.Result) {
			if res.Body == nil {
				t.Fatal("got no body")
			}
			defer res.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := h.Sum(nil); !bytes.Equal(got, bigSum[:]) || n != int64(len(big)) {
				t.Errorf("got %d bytes with SHA-256 %x, want %d bytes with %x", n, got, len(big), bigSum)
			}
			if res.Size != int64(len(big)) || res.ContentType != "text/plain" || res.Data != nil {
				t.Errorf("got size %d type %q data %s, want %d text/plain and no data", res.Size, res.ContentType, res.Data, len(big))
			}
		}},
		{"put_object writes the object", "put_object",
			`{"bucket":"acme-reports","key":"uploads/hello.bin","content":"` + base64.StdEncoding.EncodeToString(put) + `","content_type":"application/x-test; charset=binary"}`,
			func(t *testing.T, res connectors.Result) {
				var got struct {
					Size   int
					SHA256 string
					ETag   string
				}
				json.Unmarshal(res.Data, &got)
				sum := sha256.Sum256(put)
				if got.Size != len(put) || got.SHA256 != fmt.Sprintf("%x", sum) || got.ETag == "" {
					t.Errorf("got %s, want size %d, sha256 %x and an etag", res.Data, len(put), sum)
				}
				stored, ct, err := e.srv.Get(bucket, "uploads/hello.bin")
				if err != nil || !bytes.Equal(stored, put) || ct != "application/x-test; charset=binary" {
					t.Errorf("stored %q (%q, %v), want %q as application/x-test", stored, ct, err, put)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.exec(t, tt.op, tt.payload)
			if err != nil {
				t.Fatalf("got error %v, want success", err)
			}
			tt.check(t, res)
		})
	}
}

// TestKeyEncoding writes, lists and reads keys whose characters SigV4
// and path-style URLs encode (the fake S3 verifies every signature).
func TestKeyEncoding(t *testing.T) {
	e := newEnv(t, nil)
	keys := []string{"odd/a b.txt", "odd/ü-ñ-日本.txt", "odd/plus+eq=amp&.txt", "odd/pct%20 literal", "odd/tilde~star*(1)!", "odd/a//b", "odd/semi;colon:at@,"}
	for _, k := range keys {
		t.Run(k, func(t *testing.T) {
			kj, _ := json.Marshal(k)
			content := base64.StdEncoding.EncodeToString([]byte("content of " + k))
			if _, err := e.exec(t, "put_object", `{"bucket":"acme-reports","key":`+string(kj)+`,"content":"`+content+`"}`); err != nil {
				t.Fatalf("put: got %v, want success", err)
			}
			res, err := e.exec(t, "get_object", `{"bucket":"acme-reports","key":`+string(kj)+`}`)
			if err != nil {
				t.Fatalf("get: got %v, want success", err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(b) != "content of "+k {
				t.Errorf("got %q, want %q", b, "content of "+k)
			}
		})
	}
	res, err := e.exec(t, "list_objects", `{"bucket":"acme-reports","prefix":"odd/"}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Data), fmt.Sprintf(`"count":%d`, len(keys))) {
		t.Errorf("got %s, want all %d keys", res.Data, len(keys))
	}
}

// TestSignedWithAssumedRole checks the whole credential chain: STS is
// called once, signed with the base key, with the role and external id;
// every S3 request is signed with the assumed-role key and carries its
// session token.
func TestSignedWithAssumedRole(t *testing.T) {
	e := newEnv(t, nil)
	e.seed(t, "a.txt", []byte("a"))
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op, payload := "list_objects", `{"bucket":"acme-reports"}`
			if i%2 == 1 {
				op, payload = "get_object", `{"bucket":"acme-reports","key":"a.txt"}`
			}
			res, err := e.exec(t, op, payload)
			if res.Body != nil {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
	}

	calls := e.sts.Calls()
	if len(calls) != 1 {
		t.Fatalf("got %d AssumeRole calls for %d operations, want 1", len(calls), n)
	}
	c := calls[0]
	want := s3test.AssumeRoleCall{
		AccessKeyID: baseAKID, SecurityToken: baseToken, SignatureValid: true,
		Action: "AssumeRole", Version: "2011-06-15", RoleARN: roleARN, RoleSessionName: "mcc-bridge-acme",
		ExternalID: externalID, DurationSeconds: 3600,
	}
	if c != want {
		t.Errorf("got AssumeRole call %+v, want %+v", c, want)
	}
	issued := e.sts.Issued()
	if len(issued) != 1 {
		t.Fatalf("got %d issued credentials, want 1", len(issued))
	}
	reqs := e.srv.Requests()
	if len(reqs) != n {
		t.Errorf("got %d S3 requests, want %d", len(reqs), n)
	}
	for _, r := range reqs {
		if r.AccessKeyID != issued[0].AccessKeyID || r.SecurityToken != issued[0].SessionToken || r.ErrorCode != "" {
			t.Fatalf("S3 request %s %s signed by %q (error %q), want the assumed-role key %q with its session token",
				r.Method, r.Key, r.AccessKeyID, r.ErrorCode, issued[0].AccessKeyID)
		}
	}

	// Another tenant gets its own session; a rotated base key replaces the old one.
	other := baseCred()
	if _, err := e.execAs(t, "globex", other, "list_objects", `{"bucket":"acme-reports"}`); err != nil {
		t.Fatal(err)
	}
	if got := len(e.sts.Calls()); got != 2 {
		t.Errorf("after a second tenant: got %d AssumeRole calls, want 2", got)
	}
	if got := e.sts.Calls()[1].RoleSessionName; got != "mcc-bridge-globex" {
		t.Errorf("got session name %q, want mcc-bridge-globex", got)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t, nil) // 4 keys a page
	var keys []string
	for i := range 22 {
		k := fmt.Sprintf("logs/2026/%02d.json", i)
		keys = append(keys, k)
		e.seed(t, k, []byte(k))
	}
	e.seed(t, "zzz-outside-prefix", []byte("x"))

	type page struct {
		Objects   []struct{ Key string }
		Count     int
		Truncated bool
		NextToken string `json:"next_continuation_token"`
	}
	tests := []struct {
		name        string
		limit       int
		wantKeys    []string
		wantTrunc   bool
		wantPages   int
		resumeAfter bool // list the rest with the token
	}{
		{"all of them over 6 pages", 100, keys, false, 6, false},
		{"limit on a page boundary", 12, keys[:12], true, 3, true},
		{"limit inside a page", 10, keys[:10], true, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.srv.Requests())
			res, err := e.exec(t, "list_objects", fmt.Sprintf(`{"bucket":"acme-reports","prefix":"logs/","limit":%d}`, tt.limit))
			if err != nil {
				t.Fatal(err)
			}
			var p page
			if err := json.Unmarshal(res.Data, &p); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range p.Objects {
				got = append(got, o.Key)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantKeys, ",") || p.Count != len(tt.wantKeys) || p.Truncated != tt.wantTrunc {
				t.Fatalf("got %d keys %v truncated %v, want %d keys truncated %v", p.Count, got, p.Truncated, len(tt.wantKeys), tt.wantTrunc)
			}
			reqs := e.srv.Requests()[before:]
			if len(reqs) != tt.wantPages {
				t.Errorf("got %d ListObjectsV2 requests, want %d", len(reqs), tt.wantPages)
			}
			for i, r := range reqs {
				if r.Query.Get("list-type") != "2" || r.Query.Get("prefix") != "logs/" || (i > 0) != r.Query.Has("continuation-token") {
					t.Errorf("request %d: query %v, want ListObjectsV2 with the prefix, and a continuation token after the first", i, r.Query)
				}
			}
			if !tt.resumeAfter {
				return
			}
			if p.NextToken == "" {
				t.Fatal("got no next_continuation_token on a truncated listing")
			}
			res, err = e.exec(t, "list_objects", fmt.Sprintf(`{"bucket":"acme-reports","prefix":"logs/","continuation_token":%q}`, p.NextToken))
			if err != nil {
				t.Fatal(err)
			}
			var rest page
			json.Unmarshal(res.Data, &rest)
			if rest.Count != len(keys)-tt.limit || rest.Objects[0].Key != keys[tt.limit] || rest.Truncated {
				t.Errorf("resumed: got %d keys from %v, want %d from %s", rest.Count, rest.Objects[:1], len(keys)-tt.limit, keys[tt.limit])
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*s3.Config)
		setup   func(t *testing.T, e *env)
		cred    func() connectors.Credential
		op      string
		payload string
		class   connectors.Class
		retry   time.Duration
		noCalls bool // refused before anything is sent
	}{
		{name: "missing key", op: "get_object", payload: `{"bucket":"acme-reports","key":"nope.txt"}`, class: connectors.ClassNotFound},
		{name: "bucket not allowed", op: "get_object", payload: `{"bucket":"other-bucket","key":"a.txt"}`, class: connectors.ClassInvalid, noCalls: true},
		{name: "bucket not allowed for put", op: "put_object", payload: `{"bucket":"other-bucket","key":"a.txt","content":"YQ=="}`, class: connectors.ClassInvalid, noCalls: true},
		{name: "dot-dot key", op: "get_object", payload: `{"bucket":"acme-reports","key":"a/../../other-bucket/a.txt"}`, class: connectors.ClassInvalid, noCalls: true},
		{name: "content not base64", op: "put_object", payload: `{"bucket":"acme-reports","key":"a.txt","content":"!!"}`, class: connectors.ClassInvalid, noCalls: true},
		{name: "content too large", edit: func(c *s3.Config) { c.MaxPutBytes = 4 }, op: "put_object",
			payload: `{"bucket":"acme-reports","key":"a.txt","content":"` + base64.StdEncoding.EncodeToString([]byte("12345")) + `"}`, class: connectors.ClassInvalid, noCalls: true},
		{name: "wrong external id", edit: func(c *s3.Config) { c.ExternalID = "someone-elses-id" },
			op: "list_objects", payload: `{"bucket":"acme-reports"}`, class: connectors.ClassUnauthorized},
		{name: "base credential refused by STS", cred: func() connectors.Credential {
			c := baseCred()
			c.Values["secret_access_key"] = "wrong/secret/AbCdEfGhIjKlMnOpQrStUvWxYz0123"
			return c
		}, op: "list_objects", payload: `{"bucket":"acme-reports"}`, class: connectors.ClassUnauthorized},
		{name: "no base credential", cred: func() connectors.Credential { return connectors.Credential{Method: "sts-assume-role"} },
			op: "list_objects", payload: `{"bucket":"acme-reports"}`, class: connectors.ClassUnauthorized, noCalls: true},
		{name: "S3 SlowDown with Retry-After", setup: func(t *testing.T, e *env) {
			e.srv.Inject(s3test.Fault{Status: 503, Code: "SlowDown", Message: "Please reduce your request rate.", RetryAfter: "3"})
		}, op: "list_objects", payload: `{"bucket":"acme-reports"}`, class: connectors.ClassRateLimited, retry: 3 * time.Second},
		{name: "S3 SlowDown without Retry-After", setup: func(t *testing.T, e *env) {
			e.srv.Inject(s3test.Fault{Status: 503, Code: "SlowDown", Message: "Please reduce your request rate."})
		}, op: "put_object", payload: `{"bucket":"acme-reports","key":"a.txt","content":"YQ=="}`, class: connectors.ClassRateLimited},
		{name: "S3 InternalError", setup: func(t *testing.T, e *env) {
			e.srv.Inject(s3test.Fault{Status: 500, Code: "InternalError", Message: "We encountered an internal error. Please try again."})
		}, op: "get_object", payload: `{"bucket":"acme-reports","key":"a.txt"}`, class: connectors.ClassUnavailable},
		{name: "S3 AccessDenied by the role's policy", setup: func(t *testing.T, e *env) {
			e.srv.Inject(s3test.Fault{Status: 403, Code: "AccessDenied", Message: "Access Denied"})
		}, op: "get_object", payload: `{"bucket":"acme-reports","key":"a.txt"}`, class: connectors.ClassInvalid},
		{name: "STS Throttling", setup: func(t *testing.T, e *env) {
			e.sts.Inject(s3test.Fault{Status: 400, Code: "Throttling", Message: "Rate exceeded", RetryAfter: "2"})
		}, op: "list_objects", payload: `{"bucket":"acme-reports"}`, class: connectors.ClassRateLimited, retry: 2 * time.Second},
		{name: "STS unavailable", setup: func(t *testing.T, e *env) {
			e.sts.Inject(s3test.Fault{Status: 503, Code: "ServiceUnavailable", Message: "Service is unavailable."})
		}, op: "list_objects", payload: `{"bucket":"acme-reports"}`, class: connectors.ClassUnavailable},
		{name: "S3 too slow", setup: func(t *testing.T, e *env) {
			e.srv.Inject(s3test.Fault{Delay: 10 * time.Second})
		}, op: "list_objects", payload: `{"bucket":"acme-reports","prefix":"slow"}`, class: connectors.ClassTimeout},
		{name: "S3 unreachable", setup: func(t *testing.T, e *env) { e.srv.Close() },
			op: "list_objects", payload: `{"bucket":"acme-reports"}`, class: connectors.ClassUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.edit)
			e.seed(t, "a.txt", []byte("a"))
			if tt.setup != nil {
				tt.setup(t, e)
			}
			cred := baseCred()
			if tt.cred != nil {
				cred = tt.cred()
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			_, err := e.conn.Execute(ctx, tt.op, connectors.ExecContext{Tenant: tenant, Payload: json.RawMessage(tt.payload), Credential: cred})
			if err == nil {
				t.Fatal("got success, want an error")
			}
			e.checkNoSecret(t, err)
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Class != tt.class || ce.RetryAfter != tt.retry {
				t.Fatalf("got %v (%T), want class %s with RetryAfter %v", err, err, tt.class, tt.retry)
			}
			if tt.noCalls && (len(e.sts.Calls()) != 0 || len(e.srv.Requests()) != 0) {
				t.Errorf("got %d STS and %d S3 requests, want none", len(e.sts.Calls()), len(e.srv.Requests()))
			}
		})
	}
}

// TestExpiredSession: when S3 refuses the cached assumed-role keys
// (expired early, revoked), the connector assumes the role again and runs
// the operation once more; a second refusal is returned as
// ClassUnauthorized naming S3's code, with no third attempt.
func TestExpiredSession(t *testing.T) {
	e := newEnv(t, nil)
	e.seed(t, "a.txt", []byte("a"))
	list := `{"bucket":"acme-reports"}`
	if _, err := e.exec(t, "list_objects", list); err != nil {
		t.Fatal(err)
	}
	e.sts.RevokeAll()
	before := len(e.srv.Requests())
	if _, err := e.exec(t, "list_objects", list); err != nil {
		t.Fatalf("with the session revoked: got %v, want success with a new session", err)
	}
	reqs := e.srv.Requests()[before:]
	if len(reqs) != 2 || reqs[0].ErrorCode != "ExpiredToken" || reqs[1].ErrorCode != "" {
		t.Errorf("S3 got %+v, want the refused request and one retry", reqs)
	}
	if reqs[0].AccessKeyID == reqs[1].AccessKeyID {
		t.Errorf("the retry used the refused keys %s again", reqs[1].AccessKeyID)
	}
	if got := len(e.sts.Calls()); got != 2 {
		t.Errorf("got %d AssumeRole calls, want 2 (one before, one after the expiry)", got)
	}

	// Refused twice: the error reaches the caller.
	e.srv.Inject(s3test.Fault{Status: 400, Code: "ExpiredToken", Message: "The provided token has expired."},
		s3test.Fault{Status: 400, Code: "ExpiredToken", Message: "The provided token has expired."})
	before = len(e.srv.Requests())
	_, err := e.exec(t, "list_objects", list)
	if got := connectors.ClassOf(err); got != connectors.ClassUnauthorized {
		t.Fatalf("got %v, want class unauthorized", err)
	}
	if !strings.Contains(err.Error(), "ExpiredToken") {
		t.Errorf("got %q, want it to name ExpiredToken", err)
	}
	if got := len(e.srv.Requests()) - before; got != 2 {
		t.Errorf("S3 got %d requests, want 2 (no retry after the second refusal)", got)
	}
	if got := len(e.sts.Calls()); got != 3 {
		t.Errorf("got %d AssumeRole calls, want 3 (the retry's)", got)
	}
	if _, err := e.exec(t, "list_objects", list); err != nil {
		t.Fatalf("after the refusals: got %v, want success", err)
	}
	if got := len(e.sts.Calls()); got != 4 {
		t.Errorf("got %d AssumeRole calls, want 4 (the keys refused last were dropped)", got)
	}
}

// TestSessionCacheBounded: with room for two sessions, a third tenant
// evicts the least recently used one, which must assume the role again.
func TestSessionCacheBounded(t *testing.T) {
	e := newEnv(t, func(c *s3.Config) { c.MaxClients = 2 })
	list := `{"bucket":"acme-reports"}`
	for _, step := range []struct {
		tenant    string
		wantCalls int
	}{
		{"t1", 1}, {"t2", 2}, {"t1", 2}, {"t3", 3}, {"t1", 3}, {"t2", 4},
	} {
		if _, err := e.execAs(t, step.tenant, baseCred(), "list_objects", list); err != nil {
			t.Fatal(err)
		}
		if got := len(e.sts.Calls()); got != step.wantCalls {
			t.Fatalf("after tenant %s: got %d AssumeRole calls, want %d", step.tenant, got, step.wantCalls)
		}
	}
}

func TestHealthCheck(t *testing.T) {
	t.Run("reachable without a session", func(t *testing.T) {
		e := newEnv(t, nil)
		if err := e.conn.HealthCheck(t.Context(), tenant); err != nil {
			t.Errorf("got %v, want healthy", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		e := newEnv(t, nil)
		e.srv.Close()
		if err := e.conn.HealthCheck(t.Context(), tenant); connectors.ClassOf(err) != connectors.ClassUnavailable {
			t.Errorf("got %v, want unavailable", err)
		}
	})
	t.Run("HeadBucket with the tenant's session", func(t *testing.T) {
		e := newEnv(t, nil)
		if _, err := e.exec(t, "list_objects", `{"bucket":"acme-reports"}`); err != nil {
			t.Fatal(err)
		}
		before := len(e.srv.Requests())
		if err := e.conn.HealthCheck(t.Context(), tenant); err != nil {
			t.Fatalf("got %v, want healthy", err)
		}
		reqs := e.srv.Requests()[before:]
		if len(reqs) != 1 || reqs[0].Method != http.MethodHead || reqs[0].Bucket != bucket {
			t.Errorf("got requests %+v, want one HEAD /%s", reqs, bucket)
		}
		e.srv.Inject(s3test.Fault{Status: 503, Code: "ServiceUnavailable"})
		if err := e.conn.HealthCheck(t.Context(), tenant); connectors.ClassOf(err) != connectors.ClassUnavailable {
			t.Errorf("got %v, want unavailable", err)
		}
	})
	t.Run("Config.Health", func(t *testing.T) {
		sentinel := errors.New("down for maintenance")
		e := newEnv(t, func(c *s3.Config) { c.Health = func(context.Context, string) error { return sentinel } })
		if err := e.conn.HealthCheck(t.Context(), tenant); !errors.Is(err, sentinel) {
			t.Errorf("got %v, want the Health func's error", err)
		}
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := func() s3.Config {
		return s3.Config{Buckets: []string{bucket}, RoleARN: roleARN, ExternalID: externalID}
	}
	tests := []struct {
		name string
		edit func(*s3.Config)
	}{
		{"no bucket", func(c *s3.Config) { c.Buckets = nil }},
		{"bad bucket", func(c *s3.Config) { c.Buckets = []string{"Bad_Bucket"} }},
		{"bad role", func(c *s3.Config) { c.RoleARN = "arn:aws:iam::1:user/x" }},
		{"no external id", func(c *s3.Config) { c.ExternalID = "" }},
		{"external id with a space", func(c *s3.Config) { c.ExternalID = "a b" }},
		{"bad endpoint", func(c *s3.Config) { c.S3Endpoint = "ftp://x" }},
		{"short session", func(c *s3.Config) { c.SessionDuration = time.Minute }},
		{"big page", func(c *s3.Config) { c.PageSize = 1001 }},
		{"big put", func(c *s3.Config) { c.MaxPutBytes = 9 << 20 }},
	}
	if _, err := s3.New(good()); err != nil {
		t.Fatalf("good config: got %v, want success", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.edit(&cfg)
			if _, err := s3.New(cfg); err == nil {
				t.Error("got success, want an error")
			}
		})
	}
}
