package spemu

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Accept headers of the three OData flavours.
const (
	verbose = "application/json;odata=verbose"
	nometa  = "application/json;odata=nometadata"
	minimal = "application/json;odata=minimalmetadata"
)

// env is an emulator served over real TCP by httptest.
type env struct {
	t   *testing.T
	s   *Server
	url string
	hc  *http.Client
}

// testLogger writes to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s := New(o)
	ts := httptest.NewUnstartedServer(s)
	s.ConfigureServer(ts.Config)
	ts.Start()
	t.Cleanup(ts.Close)
	return &env{t: t, s: s, url: ts.URL, hc: ts.Client()}
}

func (e *env) generate(sp Spec) {
	e.t.Helper()
	if err := e.s.Generate(sp); err != nil {
		e.t.Fatalf("Generate: %v", err)
	}
}

// do sends a request; path may be absolute or start with "/".
func (e *env) do(method, path, accept string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = e.url + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		e.t.Fatalf("NewRequest %s: %v", u, err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("User-Agent", "NONISV|MCC|MCCBridge/test")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read %s: %v", u, err)
	}
	return resp, b
}

// getJSON GETs and decodes a JSON answer.
func (e *env) getJSON(path, accept string) (int, map[string]any) {
	e.t.Helper()
	resp, b := e.do("GET", path, accept, nil, nil)
	return resp.StatusCode, decode(e.t, b)
}

// postJSON POSTs a JSON body (Content-Type follows accept) with a digest.
func (e *env) postJSON(path, accept, digest string, body any) (int, map[string]any) {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	case nil:
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	hdr := map[string]string{"Content-Type": accept}
	if digest != "" {
		hdr["X-RequestDigest"] = digest
	}
	resp, b := e.do("POST", path, accept, raw, hdr)
	return resp.StatusCode, decode(e.t, b)
}

// digest gets a form digest from contextinfo.
func (e *env) digest(site string) string {
	e.t.Helper()
	code, m := e.postJSON(site+"/_api/contextinfo", verbose, "", nil)
	if code != 200 {
		e.t.Fatalf("contextinfo: HTTP %d %v", code, m)
	}
	d, _ := dig(m, "d", "GetContextWebInformation", "FormDigestValue").(string)
	if d == "" {
		e.t.Fatalf("contextinfo: no digest in %v", m)
	}
	return d
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", truncate(string(b)), err)
	}
	return m
}

func truncate(s string) string {
	if len(s) > 400 {
		return s[:400] + "..."
	}
	return s
}

// dig walks maps by string keys and slices by int indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// results is a collection's entries in either flavour.
func results(accept string, m map[string]any) []any {
	if accept == verbose {
		r, _ := dig(m, "d", "results").([]any)
		return r
	}
	r, _ := m["value"].([]any)
	return r
}

// entity is a single entity in either flavour.
func entity(accept string, m map[string]any) map[string]any {
	if accept == verbose {
		e, _ := m["d"].(map[string]any)
		return e
	}
	return m
}

// next is a collection's next link in either flavour.
func next(accept string, m map[string]any) string {
	if accept == verbose {
		s, _ := dig(m, "d", "__next").(string)
		return s
	}
	s, _ := m["odata.nextLink"].(string)
	return s
}

// errCode is "<code>, <type>" from either error envelope.
func errCode(m map[string]any) string {
	if c, ok := dig(m, "error", "code").(string); ok {
		return c
	}
	c, _ := dig(m, "odata.error", "code").(string)
	return c
}

// num reads a JSON number.
func num(v any) int64 {
	n, _ := v.(json.Number).Int64()
	return n
}

// odataLiteral quotes a server-relative URL for GetFileByServerRelativeUrl:
// apostrophes doubled, then percent-encoded.
func odataLiteral(ref string) string {
	return url.PathEscape(strings.ReplaceAll(ref, "'", "''"))
}

// resolveNext makes a JSON Light next link absolute against <web>/_api/.
func resolveNext(t *testing.T, apiBase, link string) string {
	t.Helper()
	b, err := url.Parse(apiBase)
	if err != nil {
		t.Fatal(err)
	}
	r, err := url.Parse(link)
	if err != nil {
		t.Fatalf("next link %q: %v", link, err)
	}
	return b.ResolveReference(r).String()
}

// TestLatency: Options.Latency delays every request before it is served.
func TestLatency(t *testing.T) {
	for _, d := range []time.Duration{0, 60 * time.Millisecond} {
		e := newEnv(t, Options{Latency: d})
		e.generate(Spec{SiteNames: []string{"mkt"}, ItemsPerList: 1, PlainNames: true})
		start := time.Now()
		resp, _ := e.do(http.MethodGet, "/sites/mkt/_api/web", "application/json;odata=verbose", nil, nil)
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("latency %v: status %d", d, resp.StatusCode)
		}
		if took < d {
			t.Errorf("latency %v: the request took %v", d, took)
		}
	}
}
