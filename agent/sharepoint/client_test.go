package sharepoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecodeCollection(t *testing.T) {
	for _, tc := range []struct {
		name, body, next string
		n                int
	}{
		{"verbose", `{"d":{"results":[{"Id":1},{"Id":2}],"__next":"https://sp/_api/web/lists?$skiptoken=x"}}`, "https://sp/_api/web/lists?$skiptoken=x", 2},
		{"verbose last page", `{"d":{"results":[{"Id":1}]}}`, "", 1},
		{"light", `{"odata.metadata":"m","value":[{"Id":1}],"odata.nextLink":"web/lists?$skiptoken=y"}`, "web/lists?$skiptoken=y", 1},
		{"nometadata empty", `{"value":[]}`, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries, next, err := decodeCollection([]byte(tc.body))
			if err != nil || len(entries) != tc.n || next != tc.next {
				t.Errorf("got %d entries, next %q, err %v", len(entries), next, err)
			}
		})
	}
	if _, _, err := decodeCollection([]byte(`{"d":`)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

func TestFieldTypes(t *testing.T) {
	var v struct {
		Length   Int64
		N        Int64
		Created  Time
		Local    Time
		Old      Time
		Version  string `json:"OData__UIVersionString"`
		Metadata any    `json:"__metadata"`
	}
	body := `{"Length":"3000000000","N":12,"Created":"2022-11-26T01:51:46Z","Local":"2022-11-26T01:51:46","Old":"/Date(1669427506000)/","OData__UIVersionString":"3.0","__metadata":{"type":"SP.File"}}`
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Length != 3000000000 || v.N != 12 || v.Version != "3.0" {
		t.Errorf("ints/version: %+v", v)
	}
	want := time.Date(2022, 11, 26, 1, 51, 46, 0, time.UTC)
	if !v.Created.Equal(want) || !v.Local.Equal(want) || !v.Old.Equal(want) || v.Created.NoOffset || !v.Local.NoOffset {
		t.Errorf("times: %v %v %v", v.Created, v.Local, v.Old)
	}
	pst := time.FixedZone("PST", -8*3600)
	c := &Client{cfg: Config{Location: pst}}
	if got := c.localTime(v.Local); !got.Equal(want.Add(8 * time.Hour)) {
		t.Errorf("local time in PST: %v, want %v", got, want.Add(8*time.Hour))
	}
	if got := c.localTime(v.Created); !got.Equal(want) {
		t.Errorf("a time with an offset moved: %v", got)
	}
	if err := json.Unmarshal([]byte(`{"Length":"12x"}`), &v); err == nil {
		t.Error("bad Int64 accepted")
	}
}

func TestParseAPIError(t *testing.T) {
	verbose := `{"error":{"code":"-2147024860, Microsoft.SharePoint.SPQueryThrottledException","message":{"lang":"en-US","value":"The attempted operation is prohibited because it exceeds the list view threshold."}}}`
	light := `{"odata.error":{"code":"-2130575172, Microsoft.SharePoint.SPException","message":{"lang":"en-US","value":"The changeToken refers to a time before the start of the current change log."}}}`
	e := parseAPIError(500, []byte(verbose), "u")
	if e.Code != CodeThrottled || e.Type != "Microsoft.SharePoint.SPQueryThrottledException" || !strings.Contains(e.Message, "threshold") {
		t.Errorf("verbose: %+v", e)
	}
	e = parseAPIError(400, []byte(light), "u")
	if e.Code != CodeTokenExpired || !IsCode(fmt.Errorf("wrapped: %w", e), CodeTokenExpired) {
		t.Errorf("light: %+v", e)
	}
	e = parseAPIError(502, []byte("<html>bad gateway</html>"), "u")
	if e.Code != 0 || !strings.Contains(e.Error(), "502") {
		t.Errorf("html: %+v", e)
	}
}

func TestODataLiteral(t *testing.T) {
	got := odataLiteral("/sites/mkt/Shared Documents/O'Brien's #1 100%.docx")
	want := "'/sites/mkt/Shared%20Documents/O%27%27Brien%27%27s%20%231%20100%25.docx'"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// fakeSP answers from a script of handlers, one per request, and counts.
func newClient(t *testing.T, h http.HandlerFunc) (*Client, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{SiteURL: srv.URL + "/sites/mkt", Auth: Auth{Method: "basic", Username: "corp\\svc", Password: "Zq9-sp-secret"},
		Version: "1.2.3", BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond, RequestsPerSecond: 1000, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	return c, &n
}

func TestThrottlingRetries(t *testing.T) {
	var calls atomic.Int32
	c, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if ua := r.Header.Get("User-Agent"); ua != "NONISV|MCC|MCCBridge/1.2.3" {
			t.Errorf("User-Agent %q", ua)
		}
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable) // no Retry-After
		default:
			w.Header().Set("X-SharePointHealthScore", "2")
			io.WriteString(w, `{"d":{"Id":"{ABC}","Url":"http://x/sites/mkt","ServerRelativeUrl":"/sites/mkt","CurrentChangeToken":{"StringValue":"1;1;abc;1;5"}}}`)
		}
	})
	site, err := c.Site(context.Background())
	if err != nil || site.CurrentChangeToken != "1;1;abc;1;5" || site.ID != "abc" {
		t.Fatalf("site %+v, %v", site, err)
	}
	if _, retries := c.Stats().Snapshot(); retries != 2 {
		t.Errorf("retries = %d, want 2", retries)
	}
	// A request that keeps failing is an error, never silently dropped.
	c2, n := newClient(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	_, err = c2.Site(context.Background())
	if err == nil || !strings.Contains(err.Error(), "keeps throttling") || n.Load() != 4 {
		t.Errorf("persistent 503: %v after %d requests", err, n.Load())
	}
	if strings.Contains(err.Error(), "Zq9-sp-secret") {
		t.Error("the password leaked into an error")
	}
}

func TestDigestRefreshedOnce(t *testing.T) {
	var digests, posts atomic.Int32
	c, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_api/contextinfo"):
			n := digests.Add(1)
			fmt.Fprintf(w, `{"d":{"GetContextWebInformation":{"FormDigestValue":"digest-%d","FormDigestTimeoutSeconds":1800}}}`, n)
		case strings.HasSuffix(r.URL.Path, "/getchanges"):
			posts.Add(1)
			if r.Header.Get("X-RequestDigest") != "digest-2" {
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `{"error":{"code":"-2130575251, Microsoft.SharePoint.SPException","message":{"value":"The security validation for this page is invalid."}}}`)
				return
			}
			var body map[string]map[string]any
			json.NewDecoder(r.Body).Decode(&body)
			if body["query"]["FetchLimit"] != "1000" {
				t.Errorf("FetchLimit %v, want the string 1000", body["query"]["FetchLimit"])
			}
			io.WriteString(w, `{"d":{"results":[]}}`)
		}
	})
	if err := c.Changes(context.Background(), "1;1;x;1;1", func([]Change) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if digests.Load() != 2 || posts.Load() != 2 {
		t.Errorf("digests %d posts %d, want 2 and 2", digests.Load(), posts.Load())
	}
	// A digest that stays bad: one refresh only, then the error.
	c2, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_api/contextinfo") {
			io.WriteString(w, `{"d":{"GetContextWebInformation":{"FormDigestValue":"d","FormDigestTimeoutSeconds":1800}}}`)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":{"code":"-2130575251, Microsoft.SharePoint.SPException","message":{"value":"bad digest"}}}`)
	})
	err := c2.Changes(context.Background(), "", func([]Change) error { return nil })
	if !IsCode(err, CodeBadDigest) {
		t.Errorf("persistent bad digest: %v", err)
	}
}

func TestResumableDownload(t *testing.T) {
	content := strings.Repeat("0123456789", 100000) // 1 MB
	var ranges []string
	c, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		rg := r.Header.Get("Range")
		ranges = append(ranges, rg)
		if rg == "" {
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, content[:300000])
			// Reset mid-stream: hijack and close.
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		var from int
		fmt.Sscanf(rg, "bytes=%d-", &from)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(content)-1, len(content)))
		w.Header().Set("Content-Length", fmt.Sprint(len(content)-from))
		w.WriteHeader(http.StatusPartialContent)
		io.WriteString(w, content[from:])
	})
	r, err := c.OpenFile(context.Background(), "", "/sites/mkt/Docs/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != content {
		t.Fatalf("download: %d bytes, err %v", len(got), err)
	}
	if len(ranges) != 2 || ranges[1] == "" {
		t.Errorf("requests %q, want a resume with Range", ranges)
	}
}

func TestAuthFailureIsClear(t *testing.T) {
	c, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", "NTLM")
		w.WriteHeader(http.StatusUnauthorized)
	})
	_, err := c.Site(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("401: %v", err)
	}
}

func TestSecretRedacts(t *testing.T) {
	s := Secret("Zq9-sp-secret")
	for _, got := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(got, "Zq9") {
			t.Errorf("secret printed: %s", got)
		}
	}
}

func TestReachTracksTheLastAnswer(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusUnauthorized)
	c, _ := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		if s := int(status.Load()); s != http.StatusOK {
			w.WriteHeader(s)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"d":{"Id":"1","Url":"http://x/sites/mkt","ServerRelativeUrl":"/sites/mkt"}}`)
	})
	ctx := context.Background()
	if r := c.Reach(); !r.LastOK.IsZero() || r.Failure != "" {
		t.Errorf("before any request: %+v", r)
	}
	c.Site(ctx)
	r := c.Reach()
	if r.Failure != "auth" || r.LastFailure.IsZero() || !strings.Contains(r.Error, "401") || strings.Contains(r.Error, "Zq9-sp-secret") {
		t.Errorf("after a 401: %+v", r)
	}
	status.Store(http.StatusForbidden)
	c.Site(ctx)
	if r := c.Reach(); r.Failure != "denied" {
		t.Errorf("after a 403: %+v", r)
	}
	status.Store(http.StatusOK)
	if _, err := c.Site(ctx); err != nil {
		t.Fatal(err)
	}
	if r := c.Reach(); r.Failure != "" || r.LastOK.IsZero() || r.Error != "" {
		t.Errorf("after a success: %+v", r)
	}

	down, err := New(Config{SiteURL: "http://127.0.0.1:1/sites/mkt", Auth: Auth{Method: "basic", Username: "u", Password: "Zq9-sp-secret"},
		Version: "1", BackoffBase: time.Millisecond, BackoffMax: time.Millisecond, RequestsPerSecond: 1000, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	down.Site(ctx)
	if r := down.Reach(); r.Failure != "unreachable" || !strings.Contains(r.Error, "127.0.0.1:1") {
		t.Errorf("nothing listening: %+v", r)
	}
}
