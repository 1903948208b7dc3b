package adobeanalytics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/adobeanalytics"
	"github.com/mcc-bridge/bridge/connectors/adobeanalytics/adobeanalyticsfake"
)

// token is the IMS access token the tests use: no error or log may hold
// it, nor a part of it.
const token = "eyJhbGciOiJSUzI1NiJ9.ims-SecretAccessToken-7d1e4c.sig"

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
	for _, part := range []string{token, token[:16], token[len(token)-16:], "SecretAccessToken"} {
		if strings.Contains(s, part) {
			t.Errorf("%s holds (part of) the token: %s", what, s)
			return
		}
	}
}

type env struct {
	c    *adobeanalytics.Connector
	fake *adobeanalyticsfake.Server
	logs *logBuffer
}

func setup(t *testing.T, opts adobeanalyticsfake.Options, edit func(*adobeanalytics.Config)) *env {
	t.Helper()
	opts.Tokens = append(opts.Tokens, token)
	fake := adobeanalyticsfake.New(opts)
	t.Cleanup(fake.Close)
	fake.SetRows("acme.prod", pages(7))
	logs := &logBuffer{}
	cfg := adobeanalytics.Config{BaseURL: fake.URL, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if edit != nil {
		edit(&cfg)
	}
	c, err := adobeanalytics.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { assertNoSecret(t, "the log", logs.String()) })
	return &env{c: c, fake: fake, logs: logs}
}

func pages(n int) []adobeanalyticsfake.Row {
	var rows []adobeanalyticsfake.Row
	for i := range n {
		rows = append(rows, adobeanalyticsfake.Row{ItemID: fmt.Sprint(1000 + i), Value: fmt.Sprintf("/page/%d", i), Base: float64(100 - i)})
	}
	return rows
}

func cred() connectors.Credential {
	return connectors.Credential{Pattern: connectors.ServiceToService, Method: "oauth2-client-credentials", Token: token,
		Values: map[string]connectors.Secret{"client_id": "test-client", "global_company_id": "acmeco0"}, Subject: "tech-account@techacct.adobe.com"}
}

func report(limit int) map[string]any {
	p := map[string]any{"rsid": "acme.prod", "dateRange": "2024-01-01T00:00:00.000/2024-02-01T00:00:00.000",
		"metrics": []string{"metrics/pageviews", "metrics/visits"}, "dimension": "variables/page", "segments": []string{"s300000_abc"}}
	if limit > 0 {
		p["limit"] = limit
	}
	return p
}

func (e *env) exec(ctx context.Context, t *testing.T, payload any, cr connectors.Credential) (connectors.Result, error) {
	t.Helper()
	p, _ := json.Marshal(payload)
	res, err := e.c.Execute(ctx, "run_report", connectors.ExecContext{Tenant: "acme", TraceID: "trace-1", Payload: p, Credential: cr, Attempt: 1})
	if err != nil {
		assertNoSecret(t, "the error", err.Error())
		var ce *connectors.Error
		if errors.As(err, &ce) {
			assertNoSecret(t, "the error detail", ce.Detail)
		}
	}
	return res, err
}

type reportOut struct {
	RSID, Dimension string
	Metrics         []string
	Rows            []struct {
		ItemID, Value string
		Data          []float64
	}
	Totals           []float64
	Count, TotalRows int
	Truncated        bool
}

func TestReportPages(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limit         int
		wantCount     int
		wantTruncated bool
		wantRequests  int
	}{
		{"limit inside the third page", 5, 5, true, 3},
		{"all four pages", 100, 7, false, 4},
		{"limit at a page's end", 4, 4, true, 2},
		{"default limit", 0, 7, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, adobeanalyticsfake.Options{}, func(c *adobeanalytics.Config) { c.PageSize = 2 })
			res, err := e.exec(t.Context(), t, report(tc.limit), cred())
			if err != nil {
				t.Fatal(err)
			}
			var out reportOut
			if err := json.Unmarshal(res.Data, &out); err != nil {
				t.Fatal(err)
			}
			if out.Count != tc.wantCount || len(out.Rows) != tc.wantCount || out.Truncated != tc.wantTruncated || out.TotalRows != 7 {
				t.Errorf("got count %d rows %d truncated %v totalRows %d, want %d %d %v 7", out.Count, len(out.Rows), out.Truncated, out.TotalRows, tc.wantCount, tc.wantCount, tc.wantTruncated)
			}
			if r := out.Rows[tc.wantCount-1]; r.ItemID != fmt.Sprint(1000+tc.wantCount-1) || len(r.Data) != 2 || r.Data[1] != 2*r.Data[0] {
				t.Errorf("last row %+v", r)
			}
			if len(out.Totals) != 2 || out.Totals[0] != 679 || len(res.IDs) != 1 || res.IDs[0] != "rsid:acme.prod" {
				t.Errorf("totals %v ids %v", out.Totals, res.IDs)
			}
			reqs := e.fake.Requests()
			if len(reqs) != tc.wantRequests {
				t.Fatalf("%d requests, want %d", len(reqs), tc.wantRequests)
			}
			for i, r := range reqs {
				if r.Method != http.MethodPost || r.Path != "/api/acmeco0/reports" || r.Header.Get("Authorization") != "Bearer "+token ||
					r.Header.Get("x-api-key") != "test-client" || r.Header.Get("x-proxy-global-company-id") != "acmeco0" {
					t.Errorf("request %d: %s %s headers %v", i, r.Method, r.Path, r.Header)
				}
				var body struct {
					RSID          string
					GlobalFilters []map[string]string
					Settings      struct{ Limit, Page int }
				}
				json.Unmarshal(r.Body, &body)
				if body.RSID != "acme.prod" || body.Settings.Page != i || body.Settings.Limit != 2 || len(body.GlobalFilters) != 2 || body.GlobalFilters[1]["segmentId"] != "s300000_abc" {
					t.Errorf("request %d body %s", i, r.Body)
				}
			}
		})
	}
}

func TestErrorsAreClassified(t *testing.T) {
	date := time.Now().Add(20 * time.Second).UTC().Format(http.TimeFormat)
	noClient := cred()
	noClient.Values = map[string]connectors.Secret{"global_company_id": "acmeco0"}
	wrongClient := cred()
	wrongClient.Values = map[string]connectors.Secret{"client_id": "other-client", "global_company_id": "acmeco0"}
	noCompany := cred()
	noCompany.Values = map[string]connectors.Secret{"client_id": "test-client"}
	badCompany := cred()
	badCompany.Values = map[string]connectors.Secret{"client_id": "test-client", "global_company_id": "../admin"}
	for _, tc := range []struct {
		name       string
		fault      adobeanalyticsfake.Fault
		revoke     bool
		cred       connectors.Credential
		payload    map[string]any
		timeout    time.Duration
		want       connectors.Class
		retryAfter time.Duration // exact, or (when negative) within two seconds below its absolute value
	}{
		{"429 with Retry-After", adobeanalyticsfake.Fault{Status: 429, RetryAfter: "7"}, false, cred(), nil, 0, connectors.ClassRateLimited, 7 * time.Second},
		{"429 without Retry-After", adobeanalyticsfake.Fault{Status: 429}, false, cred(), nil, 0, connectors.ClassRateLimited, 6 * time.Second},
		{"429 with an HTTP date", adobeanalyticsfake.Fault{Status: 429, RetryAfter: date}, false, cred(), nil, 0, connectors.ClassRateLimited, -20 * time.Second},
		{"500", adobeanalyticsfake.Fault{Status: 500}, false, cred(), nil, 0, connectors.ClassUnavailable, 0},
		{"502 from the gateway", adobeanalyticsfake.Fault{Status: 502}, false, cred(), nil, 0, connectors.ClassUnavailable, 0},
		{"expired token", adobeanalyticsfake.Fault{}, true, cred(), nil, 0, connectors.ClassUnauthorized, 0},
		{"wrong client id", adobeanalyticsfake.Fault{}, false, wrongClient, nil, 0, connectors.ClassUnauthorized, 0},
		{"no client id", adobeanalyticsfake.Fault{}, false, noClient, nil, 0, connectors.ClassUnauthorized, 0},
		{"no company", adobeanalyticsfake.Fault{}, false, noCompany, nil, 0, connectors.ClassUnauthorized, 0},
		{"company with a path", adobeanalyticsfake.Fault{}, false, badCompany, nil, 0, connectors.ClassUnauthorized, 0},
		{"unknown report suite", adobeanalyticsfake.Fault{}, false, cred(), map[string]any{"rsid": "nope"}, 0, connectors.ClassInvalid, 0},
		{"token echoed in a 400", adobeanalyticsfake.Fault{Status: 400, Body: `{"errorCode":"invalid_request","errorDescription":"bad header Bearer ` + token + `"}`}, false, cred(), nil, 0, connectors.ClassInvalid, 0},
		{"token echoed in a 500", adobeanalyticsfake.Fault{Status: 500, Body: `{"error_code":"500000","message":"` + token + `"}`}, false, cred(), nil, 0, connectors.ClassUnavailable, 0},
		{"slow answer", adobeanalyticsfake.Fault{Delay: 2 * time.Second}, false, cred(), nil, 100 * time.Millisecond, connectors.ClassTimeout, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, adobeanalyticsfake.Options{}, nil)
			if tc.fault != (adobeanalyticsfake.Fault{}) {
				e.fake.Inject(tc.fault)
			}
			if tc.revoke {
				e.fake.Revoke(token)
			}
			p := report(0)
			for k, v := range tc.payload {
				p[k] = v
			}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := e.exec(ctx, t, p, tc.cred)
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
		})
	}
}

func TestClientSideRateLimit(t *testing.T) {
	t.Run("a long report waits instead of being refused", func(t *testing.T) {
		// Adobe's 12 requests per window, in a 600ms window: a bucket of 6
		// filling at 8/s sends at most 10.8 in any 600ms.
		e := setup(t, adobeanalyticsfake.Options{RateWindow: 600 * time.Millisecond}, func(c *adobeanalytics.Config) {
			c.PageSize, c.Rate, c.Burst = 1, 8, 6
		})
		e.fake.SetRows("acme.prod", pages(12))
		start := time.Now()
		res, err := e.exec(t.Context(), t, report(12), cred())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(res.Data), `"count":12`) || len(e.fake.Requests()) != 12 {
			t.Errorf("got %s after %d requests", res.Data, len(e.fake.Requests()))
		}
		if el := time.Since(start); el < 600*time.Millisecond || el > 10*time.Second {
			t.Errorf("12 pages took %v, want about 750ms", el)
		}
	})
	t.Run("a wait past the deadline is refused at once", func(t *testing.T) {
		e := setup(t, adobeanalyticsfake.Options{}, func(c *adobeanalytics.Config) { c.Rate, c.Burst = 0.1, 1 })
		if _, err := e.exec(t.Context(), t, report(5), cred()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := e.exec(ctx, t, report(5), cred())
		ce := &connectors.Error{}
		if !errors.As(err, &ce) || ce.Class != connectors.ClassRateLimited || ce.RetryAfter < 8*time.Second || time.Since(start) > 500*time.Millisecond {
			t.Errorf("got %v (RetryAfter %v) after %v, want rate-limited about 10s at once", err, ce.RetryAfter, time.Since(start))
		}
		if n := len(e.fake.Requests()); n != 1 {
			t.Errorf("%d requests reached Adobe, want 1", n)
		}
	})
}

func TestHealthCheck(t *testing.T) {
	e := setup(t, adobeanalyticsfake.Options{}, nil)
	if err := e.c.HealthCheck(t.Context(), "acme"); err != nil {
		t.Errorf("health: %v", err)
	}
	if r := e.fake.Requests(); len(r) != 1 || r[0].Header.Get("Authorization") != "" {
		t.Errorf("health requests %+v, want one unauthenticated request", r)
	}
	e.fake.Close()
	if err := e.c.HealthCheck(t.Context(), "acme"); connectors.ClassOf(err) != connectors.ClassUnavailable {
		t.Errorf("health of a closed server: got %v, want unavailable", err)
	}
	called := ""
	c, _ := adobeanalytics.New(adobeanalytics.Config{Health: func(_ context.Context, tenant string) error {
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
		cfg  adobeanalytics.Config
		ok   bool
	}{
		{"defaults", adobeanalytics.Config{}, true},
		{"company", adobeanalytics.Config{GlobalCompanyID: "acmeco0"}, true},
		{"bad company", adobeanalytics.Config{GlobalCompanyID: "acme/co"}, false},
		{"plain http", adobeanalytics.Config{BaseURL: "http://analytics.adobe.io"}, false},
		{"page too large", adobeanalytics.Config{PageSize: 50001}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := adobeanalytics.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok %v", err, tc.ok)
			}
			if c != nil {
				ops := c.Operations()
				if c.ID() != "adobe_analytics" || len(ops) != 1 || ops[0].Access != connectors.Read || ops[0].Attributed || ops[0].PII ||
					connectors.ChooseAuth(ops[0]) != connectors.ServiceToService {
					t.Errorf("id %s, operations %+v", c.ID(), ops)
				}
			}
		})
	}
}
