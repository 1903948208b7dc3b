package salesforce_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/salesforce"
	"github.com/mcc-bridge/bridge/connectors/salesforce/salesforcefake"
)

// token is the access token the tests use: no error or log may hold it,
// nor a part of it.
const token = "00DTEST0000001!AQ4AQSecretTokenValue.4f9a2c77e1b0"

// logBuffer collects log output for all goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// assertNoSecret fails when s holds the token or a telling part of it.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, part := range []string{token, token[:16], token[len(token)-16:], "SecretTokenValue"} {
		if strings.Contains(s, part) {
			t.Errorf("%s holds (part of) the token: %s", what, s)
			return
		}
	}
}

type env struct {
	c    *salesforce.Connector
	fake *salesforcefake.Server
	logs *logBuffer
}

func setup(t *testing.T, opts salesforcefake.Options, edit func(*salesforce.Config)) *env {
	t.Helper()
	opts.Tokens = append(opts.Tokens, token)
	fake := salesforcefake.New(opts)
	t.Cleanup(fake.Close)
	logs := &logBuffer{}
	cfg := salesforce.Config{BaseURL: fake.URL, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if edit != nil {
		edit(&cfg)
	}
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { assertNoSecret(t, "the log", logs.String()) })
	return &env{c: c, fake: fake, logs: logs}
}

func cred() connectors.Credential {
	return connectors.Credential{Pattern: connectors.ServiceToService, Method: "oauth2-jwt-bearer", Token: token, Subject: "integration@acme.example"}
}

func (e *env) exec(t *testing.T, op string, payload any, cr connectors.Credential) (connectors.Result, error) {
	t.Helper()
	p, _ := json.Marshal(payload)
	res, err := e.c.Execute(t.Context(), op, connectors.ExecContext{Tenant: "acme", TraceID: "trace-1", Payload: p, Credential: cr, Attempt: 1})
	if err != nil {
		assertNoSecret(t, "the error", err.Error())
		var ce *connectors.Error
		if errors.As(err, &ce) {
			assertNoSecret(t, "the error detail", ce.Detail)
		}
	}
	return res, err
}

func accounts(n int) []map[string]any {
	var out []map[string]any
	for i := range n {
		out = append(out, map[string]any{"Name": "Account " + string(rune('A'+i)), "Industry": "Energy"})
	}
	return out
}

func TestQueryFollowsNextRecordsURL(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     int
		wantCount int
		wantDone  bool
		wantReqs  int
	}{
		{"limit inside the third page", 5, 5, false, 3},
		{"all four pages", 100, 7, true, 4},
		{"exactly the first page", 2, 2, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, salesforcefake.Options{PageSize: 2}, nil)
			ids := e.fake.Add("Account", accounts(7)...)
			res, err := e.exec(t, "query", map[string]any{"soql": "SELECT Id, Name FROM Account ORDER BY Name", "limit": tc.limit}, cred())
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				TotalSize, Count int
				Done             bool
				Records          []map[string]any
			}
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if out.TotalSize != 7 || out.Count != tc.wantCount || len(out.Records) != tc.wantCount || out.Done != tc.wantDone {
				t.Errorf("got totalSize %d count %d records %d done %v, want 7 %d %d %v", out.TotalSize, out.Count, len(out.Records), out.Done, tc.wantCount, tc.wantCount, tc.wantDone)
			}
			if len(res.IDs) != tc.wantCount || res.IDs[0] != "Account/"+ids[0] {
				t.Errorf("audit ids %v, want %d starting Account/%s", res.IDs, tc.wantCount, ids[0])
			}
			if out.Records[0]["Name"] != "Account A" || out.Records[0]["attributes"] == nil {
				t.Errorf("first record %v", out.Records[0])
			}
			reqs := e.fake.Requests()
			if len(reqs) != tc.wantReqs {
				t.Fatalf("%d requests, want %d", len(reqs), tc.wantReqs)
			}
			for i, r := range reqs {
				if r.Header.Get("Authorization") != "Bearer "+token {
					t.Errorf("request %d: no bearer token", i)
				}
				wantPath := "/services/data/v60.0/query"
				if i > 0 {
					wantPath += "/01g"
				}
				if !strings.HasPrefix(r.Path, wantPath) {
					t.Errorf("request %d: path %s, want %s...", i, r.Path, wantPath)
				}
			}
			if got := reqs[0].Header.Get("Sforce-Query-Options"); got != "batchSize=200" {
				t.Errorf("Sforce-Query-Options %q, want batchSize=200", got)
			}
			if !strings.Contains(e.logs.String(), "remaining=") {
				t.Errorf("no API usage logged at debug: %s", e.logs.String())
			}
		})
	}
}

func TestCreateRecord(t *testing.T) {
	e := setup(t, salesforcefake.Options{}, func(c *salesforce.Config) { c.APIVersion = "59.0" })
	res, err := e.exec(t, "create_record", map[string]any{"sobject": "Account", "fields": map[string]any{"Name": "Acme Ltd", "NumberOfEmployees": 12}}, cred())
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		ID, SObject string
		Success     bool
	}
	json.Unmarshal(res.Data, &out)
	recs := e.fake.Records("Account")
	if len(recs) != 1 || recs[0]["Name"] != "Acme Ltd" || recs[0]["NumberOfEmployees"] != float64(12) || recs[0]["Id"] != out.ID {
		t.Fatalf("stored %v, result %s", recs, res.Data)
	}
	if !out.Success || out.SObject != "Account" || len(res.IDs) != 1 || res.IDs[0] != "Account/"+out.ID {
		t.Errorf("result %s ids %v", res.Data, res.IDs)
	}
	if r := e.fake.Requests()[0]; r.Method != http.MethodPost || r.Path != "/services/data/v59.0/sobjects/Account/" {
		t.Errorf("request %s %s, want POST /services/data/v59.0/sobjects/Account/", r.Method, r.Path)
	}

	for _, tc := range []struct {
		name      string
		payload   map[string]any
		want      connectors.Class
		detail    string
		noRequest bool
	}{
		{"required field missing", map[string]any{"sobject": "Contact", "fields": map[string]any{"FirstName": "Ann"}}, connectors.ClassInvalid, "REQUIRED_FIELD_MISSING", false},
		{"unknown field", map[string]any{"sobject": "Account", "fields": map[string]any{"Name": "x", "Nope__c": 1}}, connectors.ClassInvalid, "INVALID_FIELD", false},
		{"unknown custom object", map[string]any{"sobject": "Invoice__c", "fields": map[string]any{"Name": "x"}}, connectors.ClassNotFound, "NOT_FOUND", false},
		{"path in the sobject", map[string]any{"sobject": "Account/../../query", "fields": map[string]any{"Name": "x"}}, connectors.ClassInvalid, "sobject must match", true},
		{"object value", map[string]any{"sobject": "Account", "fields": map[string]any{"Name": map[string]any{"a": 1}}}, connectors.ClassInvalid, "want a string", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			_, err := e.exec(t, "create_record", tc.payload, cred())
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Class != tc.want || !strings.Contains(ce.Detail, tc.detail) {
				t.Errorf("got %v, want %s mentioning %q", err, tc.want, tc.detail)
			}
			if sent := len(e.fake.Requests()) > before; sent == tc.noRequest {
				t.Errorf("request sent: %v, want %v", sent, !tc.noRequest)
			}
		})
	}
}

func TestErrorsAreClassified(t *testing.T) {
	date := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name       string
		fault      salesforcefake.Fault
		revoke     bool
		soql       string
		timeout    time.Duration
		want       connectors.Class
		retryAfter time.Duration // exact, or (when negative) within a second of its absolute value
	}{
		{"limit exceeded with Retry-After", salesforcefake.Fault{Status: 403, RetryAfter: "7"}, false, "", 0, connectors.ClassRateLimited, 7 * time.Second},
		{"limit exceeded without Retry-After", salesforcefake.Fault{Status: 403}, false, "", 0, connectors.ClassRateLimited, 42 * time.Second},
		{"concurrency limit", salesforcefake.Fault{Status: 403, Message: "ConcurrentPerOrgLongTxn Limit exceeded."}, false, "", 0, connectors.ClassRateLimited, 5 * time.Second},
		{"429 with an HTTP date", salesforcefake.Fault{Status: 429, RetryAfter: date}, false, "", 0, connectors.ClassRateLimited, -30 * time.Second},
		{"unknown exception", salesforcefake.Fault{Status: 500}, false, "", 0, connectors.ClassUnavailable, 0},
		{"server unavailable", salesforcefake.Fault{Status: 503}, false, "", 0, connectors.ClassUnavailable, 0},
		{"query timeout", salesforcefake.Fault{Status: 400, ErrorCode: "QUERY_TIMEOUT", Message: "Your query request was running for too long."}, false, "", 0, connectors.ClassTimeout, 0},
		{"insufficient access", salesforcefake.Fault{Status: 403, ErrorCode: "INSUFFICIENT_ACCESS", Message: "insufficient access rights on object id"}, false, "", 0, connectors.ClassInvalid, 0},
		{"revoked token", salesforcefake.Fault{}, true, "", 0, connectors.ClassUnauthorized, 0},
		{"token echoed in a message", salesforcefake.Fault{Status: 401, Message: "Session " + token + " expired"}, false, "", 0, connectors.ClassUnauthorized, 0},
		{"token echoed in a 400", salesforcefake.Fault{Status: 400, ErrorCode: "MALFORMED_QUERY", Message: "bad token " + token}, false, "", 0, connectors.ClassInvalid, 0},
		{"malformed query", salesforcefake.Fault{}, false, "SELECT FROM Account", 0, connectors.ClassInvalid, 0},
		{"unknown object", salesforcefake.Fault{}, false, "SELECT Id FROM Nope__c", 0, connectors.ClassInvalid, 0},
		{"slow answer", salesforcefake.Fault{Delay: 2 * time.Second}, false, "", 100 * time.Millisecond, connectors.ClassTimeout, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, salesforcefake.Options{}, func(c *salesforce.Config) { c.LimitRetryAfter = 42 * time.Second })
			e.fake.Add("Account", accounts(3)...)
			if tc.fault != (salesforcefake.Fault{}) {
				e.fake.Inject(tc.fault)
			}
			if tc.revoke {
				e.fake.Revoke(token)
			}
			soql := tc.soql
			if soql == "" {
				soql = "SELECT Id FROM Account"
			}
			p, _ := json.Marshal(map[string]any{"soql": soql})
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := e.c.Execute(ctx, "query", connectors.ExecContext{Tenant: "acme", Payload: p, Credential: cred()})
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Class != tc.want {
				t.Fatalf("got %v, want class %s", err, tc.want)
			}
			switch want := tc.retryAfter; {
			case want >= 0 && ce.RetryAfter != want:
				t.Errorf("RetryAfter %v, want %v", ce.RetryAfter, want)
			case want < 0 && (ce.RetryAfter < -want-2*time.Second || ce.RetryAfter > -want):
				t.Errorf("RetryAfter %v, want about %v", ce.RetryAfter, -want)
			}
			assertNoSecret(t, "the error", err.Error())
		})
	}
}

func TestInstanceURL(t *testing.T) {
	e := setup(t, salesforcefake.Options{}, nil)
	other := salesforcefake.New(salesforcefake.Options{Tokens: []string{token}})
	defer other.Close()
	other.Add("Account", accounts(1)...)

	cr := cred()
	cr.Values = map[string]connectors.Secret{"instance_url": connectors.Secret(other.URL)}
	res, err := e.exec(t, "query", map[string]any{"soql": "SELECT Id, Name FROM Account"}, cr)
	if err != nil || !strings.Contains(string(res.Data), `"count":1`) {
		t.Fatalf("query on the credential's instance: %s %v", res.Data, err)
	}
	if len(e.fake.Requests()) != 0 || len(other.Requests()) != 1 {
		t.Errorf("requests: base %d, instance %d; want 0 and 1", len(e.fake.Requests()), len(other.Requests()))
	}

	for _, bad := range []string{"ftp://example.com", "http://example.com", "https://user:pw@example.com", "not a url"} {
		cr.Values["instance_url"] = connectors.Secret(bad)
		if _, err := e.exec(t, "query", map[string]any{"soql": "SELECT Id FROM Account"}, cr); connectors.ClassOf(err) != connectors.ClassUnauthorized {
			t.Errorf("instance_url %q: got %v, want unauthorized", bad, err)
		}
	}
	if _, err := e.exec(t, "query", map[string]any{"soql": "SELECT Id FROM Account"}, connectors.Credential{}); connectors.ClassOf(err) != connectors.ClassUnauthorized {
		t.Errorf("no token: got %v, want unauthorized", err)
	}
}

func TestNextRecordsURLStaysOnTheInstance(t *testing.T) {
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer evil.Close()
	for _, next := range []string{evil.URL + "/services/data/v60.0/query/01g-2", "//" + evil.Listener.Addr().String() + "/services/data/v60.0/query/x", "/services/apexrest/x", "/services/data/v60.0/../../x"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(map[string]any{"totalSize": 4, "done": false, "nextRecordsUrl": next,
				"records": []any{map[string]any{"attributes": map[string]any{"type": "Account"}, "Id": "001000000000001AAA"}}})
		}))
		c, err := salesforce.New(salesforce.Config{BaseURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Execute(t.Context(), "query", connectors.ExecContext{Payload: json.RawMessage(`{"soql":"SELECT Id FROM Account"}`), Credential: cred()})
		if connectors.ClassOf(err) != connectors.ClassUnavailable {
			t.Errorf("nextRecordsUrl %q: got %v, want unavailable", next, err)
		}
		srv.Close()
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the token went to another host %d times", n)
	}
}

func TestHealthCheck(t *testing.T) {
	e := setup(t, salesforcefake.Options{}, nil)
	if err := e.c.HealthCheck(t.Context(), "acme"); err != nil {
		t.Errorf("health: %v", err)
	}
	if r := e.fake.Requests(); len(r) != 1 || r[0].Path != "/services/data/" || r[0].Header.Get("Authorization") != "" {
		t.Errorf("health requests %+v, want one unauthenticated GET /services/data/", r)
	}
	e.fake.Close()
	if err := e.c.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("health of a closed server: got %v, want unavailable", err)
	}
	called := ""
	c, _ := salesforce.New(salesforce.Config{BaseURL: "https://acme.my.salesforce.com", Health: func(_ context.Context, tenant string) error {
		called = tenant
		return nil
	}})
	if err := c.HealthCheck(t.Context(), "globex"); err != nil || called != "globex" {
		t.Errorf("Config.Health: %v, called for %q", err, called)
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  salesforce.Config
		ok   bool
	}{
		{"defaults", salesforce.Config{BaseURL: "https://acme.my.salesforce.com"}, true},
		{"version with v", salesforce.Config{BaseURL: "https://acme.my.salesforce.com", APIVersion: "v61.0"}, true},
		{"no base", salesforce.Config{}, false},
		{"plain http", salesforce.Config{BaseURL: "http://acme.my.salesforce.com"}, false},
		{"bad version", salesforce.Config{BaseURL: "https://acme.my.salesforce.com", APIVersion: "60"}, false},
		{"bad batch", salesforce.Config{BaseURL: "https://acme.my.salesforce.com", BatchSize: 50}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := salesforce.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok %v", err, tc.ok)
			}
			if c != nil && (c.ID() != "salesforce" || len(c.Operations()) != 2) {
				t.Errorf("id %s, %d operations", c.ID(), len(c.Operations()))
			}
		})
	}
}

func TestOperationsAreDescribedTruthfully(t *testing.T) {
	c, _ := salesforce.New(salesforce.Config{BaseURL: "https://acme.my.salesforce.com"})
	want := map[string]struct {
		access     connectors.Access
		attributed bool
		auth       connectors.AuthPattern
	}{
		"query":         {connectors.Read, false, connectors.ServiceToService},
		"create_record": {connectors.Write, true, connectors.IntegrationOwner},
	}
	for _, op := range c.Operations() {
		w, ok := want[op.Name]
		if !ok || op.Access != w.access || op.Attributed != w.attributed || connectors.ChooseAuth(op) != w.auth || !op.PII {
			t.Errorf("%s: access %s attributed %v auth %s pii %v", op.Name, op.Access, op.Attributed, connectors.ChooseAuth(op), op.PII)
		}
	}
}
