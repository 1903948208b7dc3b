package aemassets_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
	"github.com/mcc-bridge/bridge/connectors/aemassets"
	"github.com/mcc-bridge/bridge/connectors/aemassets/aemassetsfake"
)

// token is the access token the tests use: no error or log may hold it,
// nor a part of it.
const token = "eyJhbGciOiJSUzI1NiJ9.aem-SecretBearerToken-55e0a1.sig"

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

// assertNoSecret fails when s holds the token, a telling part of it, or
// an upload URI's signature.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, part := range []string{token, token[:16], token[len(token)-16:], "SecretBearerToken", "sig="} {
		if strings.Contains(s, part) {
			t.Errorf("%s holds (part of) a secret: %s", what, s)
			return
		}
	}
}

type env struct {
	c    *aemassets.Connector
	fake *aemassetsfake.Server
	logs *logBuffer
}

func setup(t *testing.T, opts aemassetsfake.Options, edit func(*aemassets.Config)) *env {
	t.Helper()
	opts.Tokens = append(opts.Tokens, token)
	if opts.MinPartSize == 0 {
		opts.MinPartSize = 1024
	}
	if opts.MaxPartSize == 0 {
		opts.MaxPartSize = 64 << 10
	}
	fake := aemassetsfake.New(opts)
	t.Cleanup(fake.Close)
	fake.AddFolder("/content/dam/marketing", "Marketing")
	fake.AddFolder("/content/dam/marketing/2024", "2024")
	for i := range 7 {
		fake.AddAsset(aemassetsfake.Asset{Path: fmt.Sprintf("/content/dam/marketing/asset-%d.png", i), Title: fmt.Sprintf("Campaign visual %d", i),
			Metadata: map[string]any{"dc:creator": "Sarah Example"}, Content: []byte("png bytes")})
	}
	logs := &logBuffer{}
	cfg := aemassets.Config{BaseURL: fake.URL, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if edit != nil {
		edit(&cfg)
	}
	c, err := aemassets.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { assertNoSecret(t, "the log", logs.String()) })
	return &env{c: c, fake: fake, logs: logs}
}

func cred() connectors.Credential {
	return connectors.Credential{Pattern: connectors.ServiceToService, Method: "oauth2", Token: token, Subject: "tech-account@techacct.adobe.com"}
}

func (e *env) exec(ctx context.Context, t *testing.T, op string, payload any, cr connectors.Credential) (connectors.Result, error) {
	t.Helper()
	p, _ := json.Marshal(payload)
	res, err := e.c.Execute(ctx, op, connectors.ExecContext{Tenant: "acme", TraceID: "trace-1", Payload: p, Credential: cr, Attempt: 1})
	if err != nil {
		assertNoSecret(t, "the error", err.Error())
		var ce *connectors.Error
		if errors.As(err, &ce) {
			assertNoSecret(t, "the error detail", ce.Detail)
		}
	}
	return res, err
}

// requests returns the fake's requests whose path contains part.
func (e *env) requests(part string) []aemassetsfake.Request {
	var out []aemassetsfake.Request
	for _, r := range e.fake.Requests() {
		if strings.Contains(r.Path, part) {
			out = append(out, r)
		}
	}
	return out
}

func TestSearchPages(t *testing.T) {
	for _, tc := range []struct {
		name      string
		payload   map[string]any
		wantCount int
		wantMore  bool
		wantReqs  int
	}{
		{"every asset, four pages", map[string]any{"path": "/content/dam/marketing", "limit": 100}, 7, false, 4},
		{"limit inside the third page", map[string]any{"path": "/content/dam/marketing", "limit": 5}, 5, true, 3},
		{"full text", map[string]any{"path": "/content/dam/marketing", "fulltext": "visual 3"}, 1, false, 1},
		{"default path", map[string]any{}, 7, false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, aemassetsfake.Options{}, func(c *aemassets.Config) { c.PageSize = 2 })
			res, err := e.exec(t.Context(), t, "search_assets", tc.payload, cred())
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Assets []struct{ Path, Name, Title string }
				Count  int
				More   bool
			}
			json.Unmarshal(res.Data, &out)
			if out.Count != tc.wantCount || len(out.Assets) != tc.wantCount || out.More != tc.wantMore || len(res.IDs) != tc.wantCount {
				t.Errorf("got count %d assets %d more %v ids %d, want %d %d %v %d", out.Count, len(out.Assets), out.More, len(res.IDs), tc.wantCount, tc.wantCount, tc.wantMore, tc.wantCount)
			}
			if tc.wantCount > 1 && (out.Assets[1].Path != "/content/dam/marketing/asset-1.png" || out.Assets[1].Name != "asset-1.png" || out.Assets[1].Title != "Campaign visual 1") {
				t.Errorf("second hit %+v", out.Assets[1])
			}
			reqs := e.requests("/bin/querybuilder.json")
			if len(reqs) != tc.wantReqs {
				t.Fatalf("%d requests, want %d", len(reqs), tc.wantReqs)
			}
			for i, r := range reqs {
				q, _ := url.ParseQuery(r.RawQuery)
				if r.Header.Get("Authorization") != "Bearer "+token || q.Get("type") != "dam:Asset" || q.Get("p.offset") != fmt.Sprint(2*i) ||
					(q.Get("p.limit") != "2" && tc.wantCount > 1) || q.Get("orderby") != "path" || !strings.HasPrefix(q.Get("path"), "/content/dam") {
					t.Errorf("request %d: %s", i, r.RawQuery)
				}
			}
		})
	}
}

func TestGetMetadata(t *testing.T) {
	e := setup(t, aemassetsfake.Options{}, func(c *aemassets.Config) { c.PageSize = 2 })
	type out struct {
		Path, Kind    string
		Class         []string
		Properties    map[string]any
		Entities      []struct{ Name, Title, Path string }
		TotalEntities int
		Truncated     bool
	}
	for _, tc := range []struct {
		name          string
		payload       map[string]any
		kind          string
		entities      int
		total         int
		truncated     bool
		wantReqs      int
		check         func(t *testing.T, o out)
		wantClass     connectors.Class
		wantNoRequest bool
	}{
		{name: "asset", payload: map[string]any{"path": "/content/dam/marketing/asset-3.png"}, kind: "asset", entities: 3, total: 3, wantReqs: 2,
			check: func(t *testing.T, o out) {
				md, _ := o.Properties["metadata"].(map[string]any)
				if md["dc:format"] != "image/png" || md["dc:creator"] != "Sarah Example" || o.Entities[2].Name != "original" {
					t.Errorf("asset metadata %v, renditions %+v", o.Properties, o.Entities)
				}
			}},
		{name: "folder, four pages", payload: map[string]any{"path": "/content/dam/marketing"}, kind: "folder", entities: 8, total: 8, wantReqs: 4,
			check: func(t *testing.T, o out) {
				if o.Entities[0].Path != "/content/dam/marketing/2024" || o.Entities[1].Name != "asset-0.png" || o.Properties["dc:title"] != "Marketing" || o.Properties["srn:paging"] != nil {
					t.Errorf("folder %+v", o)
				}
			}},
		{name: "folder, limit inside the third page", payload: map[string]any{"path": "/content/dam/marketing/", "limit": 5}, kind: "folder", entities: 5, total: 8, truncated: true, wantReqs: 3},
		{name: "not found", payload: map[string]any{"path": "/content/dam/nope.png"}, wantClass: connectors.ClassNotFound},
		{name: "outside the DAM", payload: map[string]any{"path": "/etc/passwd"}, wantClass: connectors.ClassInvalid, wantNoRequest: true},
		{name: "escaping the DAM", payload: map[string]any{"path": "/content/dam/../../etc"}, wantClass: connectors.ClassInvalid, wantNoRequest: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.fake.Requests())
			res, err := e.exec(t.Context(), t, "get_metadata", tc.payload, cred())
			if tc.wantClass != "" {
				if connectors.ClassOf(err) != tc.wantClass {
					t.Errorf("got %v, want %s", err, tc.wantClass)
				}
				if sent := len(e.fake.Requests()) > before; sent == tc.wantNoRequest {
					t.Errorf("request sent: %v", sent)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var o out
			json.Unmarshal(res.Data, &o)
			if o.Kind != tc.kind || len(o.Entities) != tc.entities || o.TotalEntities != tc.total || o.Truncated != tc.truncated {
				t.Errorf("got kind %s entities %d total %d truncated %v, want %s %d %d %v", o.Kind, len(o.Entities), o.TotalEntities, o.Truncated, tc.kind, tc.entities, tc.total, tc.truncated)
			}
			if n := len(e.fake.Requests()) - before; n != tc.wantReqs {
				t.Errorf("%d requests, want %d", n, tc.wantReqs)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
	if r := e.requests("/api/assets/marketing.json"); len(r) < 2 || r[1].RawQuery != "offset=2&limit=2" {
		t.Errorf("folder requests %+v, want offset=2&limit=2 second", r)
	}
}

func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestUpload(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		opts      aemassetsfake.Options
		wantParts int
	}{
		{"one part", 100, aemassetsfake.Options{}, 1},
		{"parts of minPartSize and a short last one", 5000, aemassetsfake.Options{}, 5},
		{"every URI", 20000, aemassetsfake.Options{}, 10},
		{"exactly two parts", 2048, aemassetsfake.Options{}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.opts, nil)
			data := content(tc.size)
			cr := cred()
			cr.Pattern = connectors.IntegrationOwner
			res, err := e.exec(t.Context(), t, "upload_asset", map[string]any{"folder": "/content/dam/marketing/2024", "fileName": "brief v2.pdf",
				"content": base64.StdEncoding.EncodeToString(data), "sha256": sum(data)}, cr)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Path, FileName, MimeType, SHA256 string
				Size, Parts                      int
			}
			json.Unmarshal(res.Data, &out)
			const want = "/content/dam/marketing/2024/brief v2.pdf"
			if out.Path != want || out.MimeType != "application/pdf" || out.Size != tc.size || out.SHA256 != sum(data) || out.Parts != tc.wantParts || len(res.IDs) != 1 || res.IDs[0] != want {
				t.Errorf("result %s ids %v, want %d parts", res.Data, res.IDs, tc.wantParts)
			}
			a, ok := e.fake.Asset(want)
			if !ok || sum(a.Content) != sum(data) {
				t.Fatalf("stored asset: %v, SHA-256 %s, want %s", ok, sum(a.Content), sum(data))
			}
			ini := e.requests(".initiateUpload.json")
			if len(ini) != 1 || ini[0].Path != "/content/dam/marketing/2024.initiateUpload.json" || ini[0].Header.Get("Authorization") != "Bearer "+token ||
				string(ini[0].Body) != "fileName=brief+v2.pdf&fileSize="+fmt.Sprint(tc.size) {
				t.Errorf("initiate requests %+v", ini)
			}
			parts := e.requests("/blob/")
			if len(parts) != tc.wantParts {
				t.Errorf("%d parts sent, want %d", len(parts), tc.wantParts)
			}
			for i, p := range parts {
				if p.Header.Get("Authorization") != "" || !strings.HasSuffix(p.Path, fmt.Sprintf("/%d", i)) {
					t.Errorf("part %d: %s with Authorization %q", i, p.Path, p.Header.Get("Authorization"))
				}
			}
			done := e.requests(".completeUpload.json")
			if len(done) != 1 || done[0].Header.Get("Authorization") != "Bearer "+token {
				t.Fatalf("complete requests %+v", done)
			}
			if f, _ := url.ParseQuery(string(done[0].Body)); f.Get("fileName") != "brief v2.pdf" || f.Get("mimeType") != "application/pdf" || f.Get("uploadToken") == "" {
				t.Errorf("complete form %s", done[0].Body)
			}
		})
	}
}

func TestUploadFailures(t *testing.T) {
	data := content(5000)
	good := map[string]any{"folder": "/content/dam/marketing", "fileName": "a.bin", "content": base64.StdEncoding.EncodeToString(data)}
	with := func(k string, v any) map[string]any {
		p := map[string]any{}
		for k, v := range good {
			p[k] = v
		}
		p[k] = v
		return p
	}
	for _, tc := range []struct {
		name      string
		opts      aemassetsfake.Options
		fault     aemassetsfake.Fault
		payload   map[string]any
		want      connectors.Class
		wantSent  []string // request kinds that must have been made
		wantNot   []string // and must not
		wantAsset bool
	}{
		{name: "too large for the URIs", opts: aemassetsfake.Options{MaxPartSize: 1024, MaxURIs: 2}, payload: good, want: connectors.ClassInvalid,
			wantSent: []string{".initiateUpload.json"}, wantNot: []string{"/blob/", ".completeUpload.json"}},
		{name: "storage fails on a part", fault: aemassetsfake.Fault{Path: "/blob/", Status: 503}, payload: good, want: connectors.ClassUnavailable,
			wantSent: []string{"/blob/"}, wantNot: []string{".completeUpload.json"}},
		{name: "storage refuses the signature", fault: aemassetsfake.Fault{Path: "/blob/", Status: 403}, payload: good, want: connectors.ClassUnavailable,
			wantNot: []string{".completeUpload.json"}},
		{name: "storage slows down", fault: aemassetsfake.Fault{Path: "/blob/", Status: 429, RetryAfter: "3"}, payload: good, want: connectors.ClassRateLimited},
		{name: "complete fails", fault: aemassetsfake.Fault{Path: ".completeUpload.json", Status: 500}, payload: good, want: connectors.ClassUnavailable},
		{name: "folder missing", payload: with("folder", "/content/dam/nope"), want: connectors.ClassNotFound, wantNot: []string{"/blob/"}},
		{name: "completeURI on another host", fault: aemassetsfake.Fault{Path: ".initiateUpload.json", Status: 201,
			Body: `{"completeURI":"https://evil.example/content/dam/marketing.completeUpload.json","folderPath":"/content/dam/marketing","files":[{"fileName":"a.bin","mimeType":"application/octet-stream","uploadToken":"t","uploadURIs":["https://evil.example/blob"],"minPartSize":1,"maxPartSize":100000}]}`},
			payload: good, want: connectors.ClassUnavailable, wantNot: []string{"/blob/", ".completeUpload.json"}},
		{name: "upload URI not https", fault: aemassetsfake.Fault{Path: ".initiateUpload.json", Status: 201,
			Body: `{"completeURI":"/content/dam/marketing.completeUpload.json","folderPath":"/content/dam/marketing","files":[{"fileName":"a.bin","mimeType":"application/octet-stream","uploadToken":"t","uploadURIs":["http://storage.example/blob?sig=x"],"minPartSize":1,"maxPartSize":100000}]}`},
			payload: good, want: connectors.ClassUnavailable, wantNot: []string{".completeUpload.json"}},
		{name: "SHA-256 mismatch", payload: with("sha256", strings.Repeat("0", 64)), want: connectors.ClassInvalid, wantNot: []string{".initiateUpload.json"}},
		{name: "not base64", payload: with("content", "not base64!"), want: connectors.ClassInvalid, wantNot: []string{".initiateUpload.json"}},
		{name: "folder outside the DAM", payload: with("folder", "/apps/x"), want: connectors.ClassInvalid, wantNot: []string{".initiateUpload.json"}},
		{name: "name with a path", payload: with("fileName", "../a.bin"), want: connectors.ClassInvalid, wantNot: []string{".initiateUpload.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, tc.opts, nil)
			if tc.fault.Path != "" {
				e.fake.Inject(tc.fault)
			}
			_, err := e.exec(t.Context(), t, "upload_asset", tc.payload, cred())
			if connectors.ClassOf(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			for _, k := range tc.wantSent {
				if len(e.requests(k)) == 0 {
					t.Errorf("no %s request", k)
				}
			}
			for _, k := range tc.wantNot {
				if n := len(e.requests(k)); n != 0 {
					t.Errorf("%d %s requests, want none", n, k)
				}
			}
			if _, ok := e.fake.Asset("/content/dam/marketing/a.bin"); ok {
				t.Error("the asset was created")
			}
		})
	}
}

func TestErrorsAreClassified(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fault      aemassetsfake.Fault
		revoke     bool
		timeout    time.Duration
		want       connectors.Class
		retryAfter time.Duration
	}{
		{"429 with Retry-After", aemassetsfake.Fault{Path: "/bin/", Status: 429, RetryAfter: "7"}, false, 0, connectors.ClassRateLimited, 7 * time.Second},
		{"429 without Retry-After", aemassetsfake.Fault{Path: "/bin/", Status: 429}, false, 0, connectors.ClassRateLimited, 5 * time.Second},
		{"500", aemassetsfake.Fault{Path: "/bin/", Status: 500}, false, 0, connectors.ClassUnavailable, 0},
		{"503", aemassetsfake.Fault{Path: "/bin/", Status: 503}, false, 0, connectors.ClassUnavailable, 0},
		{"expired token", aemassetsfake.Fault{}, true, 0, connectors.ClassUnauthorized, 0},
		{"403", aemassetsfake.Fault{Path: "/bin/", Status: 403}, false, 0, connectors.ClassInvalid, 0},
		{"token echoed", aemassetsfake.Fault{Path: "/bin/", Status: 400, Body: `{"success":false,"errorMessage":"bad header Bearer ` + token + `"}`}, false, 0, connectors.ClassInvalid, 0},
		{"slow answer", aemassetsfake.Fault{Path: "/bin/", Delay: 2 * time.Second}, false, 100 * time.Millisecond, connectors.ClassTimeout, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t, aemassetsfake.Options{}, nil)
			if tc.fault.Path != "" {
				e.fake.Inject(tc.fault)
			}
			if tc.revoke {
				e.fake.Revoke(token)
			}
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := e.exec(ctx, t, "search_assets", map[string]any{"fulltext": "campaign"}, cred())
			ce := &connectors.Error{}
			if !errors.As(err, &ce) || ce.Class != tc.want || ce.RetryAfter != tc.retryAfter {
				t.Fatalf("got %v (RetryAfter %v), want class %s, RetryAfter %v", err, ce.RetryAfter, tc.want, tc.retryAfter)
			}
		})
	}
}

func TestBaseURLFromTheCredential(t *testing.T) {
	e := setup(t, aemassetsfake.Options{}, nil)
	other := aemassetsfake.New(aemassetsfake.Options{Tokens: []string{token}})
	defer other.Close()
	other.AddAsset(aemassetsfake.Asset{Path: "/content/dam/x.png", Title: "elsewhere"})
	cr := cred()
	cr.Values = map[string]connectors.Secret{"base_url": connectors.Secret(other.URL)}
	res, err := e.exec(t.Context(), t, "search_assets", map[string]any{}, cr)
	if err != nil || !strings.Contains(string(res.Data), "elsewhere") || len(e.fake.Requests()) != 0 {
		t.Errorf("search on the credential's host: %s %v (%d requests to BaseURL)", res.Data, err, len(e.fake.Requests()))
	}
	for _, bad := range []string{"http://aem.example", "https://aem.example/path", "ftp://aem.example"} {
		cr.Values["base_url"] = connectors.Secret(bad)
		if _, err := e.exec(t.Context(), t, "search_assets", map[string]any{}, cr); connectors.ClassOf(err) != connectors.ClassUnauthorized {
			t.Errorf("base_url %q: got %v, want unauthorized", bad, err)
		}
	}
}

func TestHealthCheck(t *testing.T) {
	e := setup(t, aemassetsfake.Options{}, nil)
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
	c, _ := aemassets.New(aemassets.Config{BaseURL: "https://author.example", Health: func(_ context.Context, tenant string) error {
		called = tenant
		return nil
	}})
	if err := c.HealthCheck(t.Context(), "globex"); err != nil || called != "globex" {
		t.Errorf("Config.Health: %v, called for %q", err, called)
	}
}

func TestNewAndOperations(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  aemassets.Config
		ok   bool
	}{
		{"defaults", aemassets.Config{BaseURL: "https://author.example"}, true},
		{"narrower root", aemassets.Config{BaseURL: "https://author.example", DAMRoot: "/content/dam/acme"}, true},
		{"no base", aemassets.Config{}, false},
		{"base with a path", aemassets.Config{BaseURL: "https://author.example/content"}, false},
		{"root outside the DAM", aemassets.Config{BaseURL: "https://author.example", DAMRoot: "/apps"}, false},
		{"root escaping the DAM", aemassets.Config{BaseURL: "https://author.example", DAMRoot: "/content/dam/../../apps"}, false},
		{"upload too large", aemassets.Config{BaseURL: "https://author.example", MaxUploadBytes: 64 << 20}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := aemassets.New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Errorf("got %v, want ok %v", err, tc.ok)
			}
		})
	}
	c, _ := aemassets.New(aemassets.Config{BaseURL: "https://author.example"})
	want := map[string]struct {
		access connectors.Access
		auth   connectors.AuthPattern
		pii    bool
	}{
		"search_assets": {connectors.Read, connectors.ServiceToService, false},
		"get_metadata":  {connectors.Read, connectors.ServiceToService, true},
		"upload_asset":  {connectors.Write, connectors.IntegrationOwner, false},
	}
	for _, op := range c.Operations() {
		w, ok := want[op.Name]
		if !ok || op.Access != w.access || connectors.ChooseAuth(op) != w.auth || op.PII != w.pii {
			t.Errorf("%s: access %s auth %s pii %v", op.Name, op.Access, connectors.ChooseAuth(op), op.PII)
		}
	}
	if c.ID() != "aem_assets" || len(c.Operations()) != 3 {
		t.Errorf("id %s, %d operations", c.ID(), len(c.Operations()))
	}
}
