package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/relay/ingest"
	"github.com/mcc-bridge/bridge/relay/store"
	"github.com/mcc-bridge/bridge/relay/store/storetest"
	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

var (
	acme   = tunnel.Identity{Tenant: storetest.TenantA, Agent: "agent-01"}
	globex = tunnel.Identity{Tenant: storetest.TenantB, Agent: "agent-07"}
)

type env struct {
	t      *testing.T
	store  *store.Embedded
	h      *ingest.Handler
	reg    *prometheus.Registry
	logged func() string
}

func newEnv(t *testing.T, cfg ingest.Config) *env {
	t.Helper()
	log, logged := tunneltest.Logger(t)
	s, err := store.Open(t.Context(), t.TempDir(), store.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	reg := prometheus.NewRegistry()
	if cfg.Metrics, err = ingest.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	h, err := ingest.New(s, log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: s, h: h, reg: reg, logged: logged}
}

// do serves one request as peer (nil: no peer) and returns the response.
func (e *env) do(peer *tunnel.Identity, method, path string, body io.Reader) *http.Response {
	e.t.Helper()
	r := httptest.NewRequestWithContext(e.t.Context(), method, path, body)
	if peer != nil {
		r = r.WithContext(tunnel.WithPeer(r.Context(), *peer))
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w.Result()
}

func (e *env) postJSON(peer *tunnel.Identity, path string, v any) *http.Response {
	e.t.Helper()
	j, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(peer, http.MethodPost, path, bytes.NewReader(j))
}

// decode reads a JSON body into v, checking the status and content type.
func decode(t *testing.T, res *http.Response, status int, v any) {
	t.Helper()
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Fatalf("got status %d (%s), want %d", res.StatusCode, body, status)
	}
	want := "application/json"
	if status >= 400 {
		want = "application/problem+json"
	}
	if ct := res.Header.Get("Content-Type"); ct != want {
		t.Errorf("got Content-Type %q, want %q", ct, want)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
}

// wantProblem checks a problem response: status, type, and words the
// detail must (and must not) contain.
func wantProblem(t *testing.T, res *http.Response, status int, typ string, detailHas []string, detailLacks ...string) ingest.Problem {
	t.Helper()
	var p ingest.Problem
	decode(t, res, status, &p)
	if p.Type != typ || p.Status != status || p.Title == "" {
		t.Errorf("got problem %+v, want type %s, status %d and a title", p, typ, status)
	}
	for _, s := range detailHas {
		if !strings.Contains(p.Detail, s) {
			t.Errorf("detail %q does not name %q", p.Detail, s)
		}
	}
	for _, s := range detailLacks {
		if strings.Contains(p.Detail, s) {
			t.Errorf("detail %q echoes %q", p.Detail, s)
		}
	}
	return p
}

func blobPath(sha string) string { return ingestapi.BlobsPath + sha }

func TestPutBlob(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	content := []byte("quarterly plan\n")
	sha := storetest.SHA256(content)
	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		var got struct {
			SHA256  string `json:"sha256"`
			Size    int64  `json:"size"`
			Created bool   `json:"created"`
		}
		decode(t, e.do(&acme, http.MethodPut, blobPath(sha), bytes.NewReader(content)), want, &got)
		if got.SHA256 != sha || got.Size != int64(len(content)) || got.Created != (i == 0) {
			t.Errorf("put %d: got %+v", i, got)
		}
	}
	rc, _, err := e.store.OpenBlob(t.Context(), acme.Tenant, sha)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Errorf("stored %q, want %q", got, content)
	}
	// The blob belongs to the peer's tenant only.
	if _, _, err := e.store.OpenBlob(t.Context(), globex.Tenant, sha); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("other tenant sees the blob: %v", err)
	}
	if got := metricValue(t, e.reg, "bridge_ingest_blob_bytes_total", map[string]string{"tenant": acme.Tenant}); got != float64(len(content)) {
		t.Errorf("blob bytes metric: got %v, want %d", got, len(content))
	}
	if got := metricValue(t, e.reg, "bridge_ingest_blobs_total", map[string]string{"tenant": acme.Tenant, "result": "existed"}); got != 1 {
		t.Errorf("blobs existed metric: got %v, want 1", got)
	}
}

// hideLen hides a reader's length, so the request has no Content-Length.
type hideLen struct{ io.Reader }

func TestPutBlobRefusals(t *testing.T) {
	content := []byte("0123456789abcdef")
	sha := storetest.SHA256(content)
	for _, tc := range []struct {
		name    string
		peer    *tunnel.Identity
		path    string
		body    io.Reader
		status  int
		typ     string
		detail  []string
		noStore string // a SHA-256 that must not be stored afterwards
	}{
		{"no peer", nil, blobPath(sha), bytes.NewReader(content), 401, ingest.ProblemUnauthenticated, []string{"tunnel"}, sha},
		{"upper-case hex", &acme, blobPath(strings.ToUpper(sha)), bytes.NewReader(content), 400, ingest.ProblemInvalidSHA256, []string{"path", "SHA-256"}, ""},
		{"short", &acme, blobPath(sha[:63]), bytes.NewReader(content), 400, ingest.ProblemInvalidSHA256, []string{"path"}, ""},
		{"not hex", &acme, blobPath(strings.Repeat("g", 64)), bytes.NewReader(content), 400, ingest.ProblemInvalidSHA256, []string{"path"}, ""},
		{"mismatch", &acme, blobPath(storetest.SHA256([]byte("other"))), bytes.NewReader(content), 422, ingest.ProblemHashMismatch, []string{"16 bytes", "SHA-256"}, storetest.SHA256([]byte("other"))},
		{"too large, with length", &acme, blobPath(storetest.SHA256(append(content, 'x'))), bytes.NewReader(append(content, 'x')), 413, ingest.ProblemBodyTooLarge, []string{"16 bytes"}, storetest.SHA256(append(content, 'x'))},
		{"too large, streamed", &acme, blobPath(storetest.SHA256(append(content, 'x'))), hideLen{bytes.NewReader(append(content, 'x'))}, 413, ingest.ProblemBodyTooLarge, []string{"16 bytes"}, storetest.SHA256(append(content, 'x'))},
		{"body breaks", &acme, blobPath(sha), io.MultiReader(bytes.NewReader(content[:4]), errReader{}), 400, ingest.ProblemIncompleteBody, []string{"body"}, sha},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ingest.Config{MaxBlobBytes: int64(len(content))})
			wantProblem(t, e.do(tc.peer, http.MethodPut, tc.path, tc.body), tc.status, tc.typ, tc.detail)
			if tc.noStore != "" {
				if _, _, err := e.store.OpenBlob(t.Context(), acme.Tenant, tc.noStore); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("blob stored after a refusal: %v", err)
				}
			}
			if st, _ := e.store.Stats(t.Context(), acme.Tenant); st.Blobs != 0 {
				t.Errorf("got %d blobs after a refusal, want 0", st.Blobs)
			}
		})
	}
	t.Run("exactly the cap", func(t *testing.T) {
		e := newEnv(t, ingest.Config{MaxBlobBytes: int64(len(content))})
		var got map[string]any
		decode(t, e.do(&acme, http.MethodPut, blobPath(sha), hideLen{bytes.NewReader(content)}), http.StatusCreated, &got)
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

func batchOf(id string, docs ...ingestapi.Document) ingestapi.Batch {
	return ingestapi.Batch{ID: id, Upserts: docs}
}

func TestPostBatch(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	content := []byte("notes about the ibex")
	sha := storetest.SHA256(content)
	decode(t, e.do(&acme, http.MethodPut, blobPath(sha), bytes.NewReader(content)), http.StatusCreated, &map[string]any{})
	d := storetest.Doc(1, "/sites/marketing/Shared Documents/notes.txt")
	d.ContentSHA256 = sha
	b := batchOf("b-1", d, storetest.Doc(2, "/sites/marketing/Shared Documents/two.docx"))
	b.Deletes = []ingestapi.Key{{Site: storetest.Site, ListID: storetest.ListID, ItemID: 99}}

	var res ingestapi.BatchResult
	decode(t, e.postJSON(&acme, ingestapi.BatchesPath, b), http.StatusOK, &res)
	if res != (ingestapi.BatchResult{ID: "b-1", Upserted: 2}) {
		t.Errorf("got %+v, want 2 upserted", res)
	}
	got, err := e.store.Get(t.Context(), acme.Tenant, d.Key)
	if err != nil || !storetest.SameDocs([]ingestapi.Document{got}, []ingestapi.Document{d}) {
		t.Errorf("stored %+v, %v; want %+v", got, err, d)
	}
	hits, err := e.store.Search(t.Context(), acme.Tenant, store.SearchQuery{Text: "ibex"})
	if err != nil || len(hits) != 1 {
		t.Errorf("search: got %d hits, %v; want 1", len(hits), err)
	}

	// A replay answers the same, marked duplicate.
	decode(t, e.postJSON(&acme, ingestapi.BatchesPath, b), http.StatusOK, &res)
	if res != (ingestapi.BatchResult{ID: "b-1", Upserted: 2, Duplicate: true}) {
		t.Errorf("replay: got %+v, want the first result with duplicate", res)
	}
	if got := metricValue(t, e.reg, "bridge_ingest_documents_upserted_total", map[string]string{"tenant": acme.Tenant}); got != 2 {
		t.Errorf("upserted metric: got %v, want 2 (the replay is not counted)", got)
	}
	if got := metricCount(t, e.reg, "bridge_ingest_batch_duration_seconds", map[string]string{"outcome": "duplicate"}); got != 1 {
		t.Errorf("duplicate batches in the latency histogram: got %d, want 1", got)
	}
	// Deletes are counted.
	decode(t, e.postJSON(&acme, ingestapi.BatchesPath, ingestapi.Batch{ID: "b-2",
		DeletePrefixes: []ingestapi.PathPrefix{{Site: storetest.Site, Path: "/sites/marketing/Shared Documents"}}}), http.StatusOK, &res)
	if res.Deleted != 2 {
		t.Errorf("prefix delete: got %+v, want 2 deleted", res)
	}
	if got := metricValue(t, e.reg, "bridge_ingest_documents_deleted_total", map[string]string{"tenant": acme.Tenant, "cause": "batch"}); got != 2 {
		t.Errorf("deleted metric: got %v, want 2", got)
	}
	logs := e.logged()
	if !strings.Contains(logs, `msg="batch applied"`) || !strings.Contains(logs, "batch=b-1") || !strings.Contains(logs, "tenant=acme") || !strings.Contains(logs, "agent=agent-01") {
		t.Errorf("no debug line for the batch with tenant, agent and id:\n%s", logs)
	}
}

func TestBatchTenantFromPeer(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	d := storetest.Doc(1, "/x/globex.txt")
	var res ingestapi.BatchResult
	decode(t, e.postJSON(&globex, ingestapi.BatchesPath, batchOf("g-1", d)), http.StatusOK, &res)
	if _, err := e.store.Get(t.Context(), globex.Tenant, d.Key); err != nil {
		t.Errorf("not stored for the peer's tenant: %v", err)
	}
	if _, err := e.store.Get(t.Context(), acme.Tenant, d.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stored for another tenant: %v", err)
	}
	// A payload naming a tenant is refused, not obeyed.
	body := `{"id":"g-2","tenant":"acme","upserts":[]}`
	wantProblem(t, e.do(&globex, http.MethodPost, ingestapi.BatchesPath, strings.NewReader(body)),
		http.StatusBadRequest, ingest.ProblemUnknownField, []string{`"tenant"`})
	if st, _ := e.store.Stats(t.Context(), acme.Tenant); st != (store.Stats{}) {
		t.Errorf("acme got data from globex's peer: %+v", st)
	}
	// The same batch ID in two tenants is two batches.
	decode(t, e.postJSON(&acme, ingestapi.BatchesPath, batchOf("g-1", d)), http.StatusOK, &res)
	if res.Duplicate {
		t.Errorf("acme's batch g-1 was taken for globex's")
	}
}

func TestPostBatchRefusals(t *testing.T) {
	valid := func() ingestapi.Batch { return batchOf("r-1", storetest.Doc(1, "/r/a.txt")) }
	js := func(v any) string {
		j, _ := json.Marshal(v)
		return string(j)
	}
	badKind := valid()
	badKind.Upserts[0].Kind = "widget"
	noGen := valid()
	noGen.Upserts = append(noGen.Upserts, storetest.Doc(2, "/r/b.txt"))
	noGen.Upserts[1].Generation = ""
	missing := valid()
	missing.Upserts[0].ContentSHA256 = storetest.SHA256([]byte("never uploaded"))
	big := valid()
	big.Upserts[0].Fields = map[string]string{"Blob": strings.Repeat("x", ingestapi.MaxBatchBytes)}
	const secret = "hunter2-secret-value"
	manyBad := ingestapi.Batch{ID: "many"}
	for i := range 15 {
		manyBad.Upserts = append(manyBad.Upserts, storetest.Doc(i+1, "relative"))
	}

	for _, tc := range []struct {
		name   string
		peer   *tunnel.Identity
		body   io.Reader
		status int
		typ    string
		detail []string
	}{
		{"no peer", nil, strings.NewReader(js(valid())), 401, ingest.ProblemUnauthenticated, nil},
		{"empty body", &acme, strings.NewReader(""), 400, ingest.ProblemInvalidJSON, []string{"empty"}},
		{"not JSON", &acme, strings.NewReader("id=" + secret), 400, ingest.ProblemInvalidJSON, []string{"byte"}},
		{"truncated", &acme, strings.NewReader(js(valid())[:20]), 400, ingest.ProblemInvalidJSON, []string{"ends"}},
		{"array", &acme, strings.NewReader(`["` + secret + `"]`), 400, ingest.ProblemInvalidJSON, []string{"object"}},
		{"wrong type", &acme, strings.NewReader(`{"id":"x","upserts":[{"item_id":"` + secret + `"}]}`), 400, ingest.ProblemInvalidJSON, []string{"upserts.item_id", "number"}},
		{"bad time", &acme, strings.NewReader(`{"id":"x","upserts":[{"created":"` + secret + `"}]}`), 400, ingest.ProblemInvalidJSON, []string{"RFC 3339"}},
		{"unknown top-level field", &acme, strings.NewReader(`{"id":"x","bogus":"` + secret + `"}`), 400, ingest.ProblemUnknownField, []string{`"bogus"`}},
		{"unknown nested field", &acme, strings.NewReader(`{"id":"x","upserts":[{"colour":"` + secret + `"}]}`), 400, ingest.ProblemUnknownField, []string{`"colour"`}},
		{"trailing data", &acme, strings.NewReader(js(valid()) + ` {"id":"` + secret + `"}`), 400, ingest.ProblemInvalidJSON, []string{"after"}},
		{"oversize", &acme, strings.NewReader(js(big)), 413, ingest.ProblemBodyTooLarge, []string{fmt.Sprint(ingestapi.MaxBatchBytes)}},
		{"oversize streamed", &acme, hideLen{strings.NewReader(js(big))}, 413, ingest.ProblemBodyTooLarge, []string{fmt.Sprint(ingestapi.MaxBatchBytes)}},
		{"body breaks", &acme, io.MultiReader(strings.NewReader(`{"id":"x","upserts":[`), errReader{}), 400, ingest.ProblemIncompleteBody, nil},
		{"no id", &acme, strings.NewReader(`{"upserts":[]}`), 422, ingest.ProblemInvalidBatch, []string{"id"}},
		{"bad kind", &acme, strings.NewReader(js(badKind)), 422, ingest.ProblemInvalidBatch, []string{"upserts[0]", "kind"}},
		{"second upsert invalid", &acme, strings.NewReader(js(noGen)), 422, ingest.ProblemInvalidBatch, []string{"upserts[1]", "generation"}},
		{"bad delete prefix", &acme, strings.NewReader(`{"id":"x","delete_prefixes":[{"site":"s","path":"relative"}]}`), 422, ingest.ProblemInvalidBatch, []string{"delete_prefixes[0]"}},
		{"many errors clipped", &acme, strings.NewReader(js(manyBad)), 422, ingest.ProblemInvalidBatch, []string{"upserts[0]", "upserts[9]", "and 5 more"}},
		{"missing blob", &acme, strings.NewReader(js(missing)), 409, ingest.ProblemMissingBlob, []string{"upserts[0].content_sha256", missing.Upserts[0].ContentSHA256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ingest.Config{})
			p := wantProblem(t, e.do(tc.peer, http.MethodPost, ingestapi.BatchesPath, tc.body), tc.status, tc.typ, tc.detail, secret)
			if tc.typ == ingest.ProblemMissingBlob {
				want := []ingest.MissingBlob{{Upsert: 0, SHA256: missing.Upserts[0].ContentSHA256}}
				if len(p.MissingBlobs) != 1 || p.MissingBlobs[0] != want[0] {
					t.Errorf("missing_blobs: got %+v, want %+v", p.MissingBlobs, want)
				}
			}
			if st, _ := e.store.Stats(t.Context(), acme.Tenant); st != (store.Stats{}) {
				t.Errorf("a refused batch left data: %+v", st)
			}
			if tc.peer != nil && !strings.Contains(e.logged(), `level=WARN msg="batch refused"`) {
				t.Errorf("no warning logged")
			}
			if got := metricValue(t, e.reg, "bridge_ingest_problems_total", map[string]string{"endpoint": "batches", "problem": tc.typ[len("https://mcc-bridge.dev/problems/"):]}); got != 1 {
				t.Errorf("problems metric: got %v, want 1", got)
			}
		})
	}
}

func TestMissingBlobThenRetry(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	content := []byte("uploaded late")
	d := storetest.Doc(1, "/late.txt")
	d.ContentSHA256 = storetest.SHA256(content)
	b := batchOf("late-1", d)
	wantProblem(t, e.postJSON(&acme, ingestapi.BatchesPath, b), http.StatusConflict, ingest.ProblemMissingBlob, nil)
	if !strings.Contains(e.logged(), "batch=late-1") {
		t.Errorf("the warning does not name the batch:\n%s", e.logged())
	}
	decode(t, e.do(&acme, http.MethodPut, blobPath(d.ContentSHA256), bytes.NewReader(content)), http.StatusCreated, &map[string]any{})
	var res ingestapi.BatchResult
	decode(t, e.postJSON(&acme, ingestapi.BatchesPath, b), http.StatusOK, &res)
	if res.Duplicate || res.Upserted != 1 {
		t.Errorf("retry: got %+v, want applied", res)
	}
}

func TestBatchConflict(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	decode(t, e.postJSON(&acme, ingestapi.BatchesPath, batchOf("c-1", storetest.Doc(1, "/a"))), http.StatusOK, &ingestapi.BatchResult{})
	wantProblem(t, e.postJSON(&acme, ingestapi.BatchesPath, batchOf("c-1", storetest.Doc(2, "/b"))),
		http.StatusConflict, ingest.ProblemBatchConflict, []string{"id"})
}

func TestPostGeneration(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	old, cur := storetest.Doc(1, "/g/old.txt"), storetest.Doc(2, "/g/new.txt")
	old.Generation, cur.Generation = "gen-1", "gen-2"
	decode(t, e.postJSON(&acme, ingestapi.BatchesPath, batchOf("g", old, cur)), http.StatusOK, &ingestapi.BatchResult{})
	// Another tenant finishing the same site touches nothing of acme's.
	var res ingestapi.GenerationResult
	decode(t, e.postJSON(&globex, ingestapi.GenerationsPath, ingestapi.Generation{Site: storetest.Site, Generation: "zzz"}), http.StatusOK, &res)
	if res.Deleted != 0 {
		t.Errorf("globex: got %+v, want nothing deleted", res)
	}
	for i := range 2 {
		decode(t, e.postJSON(&acme, ingestapi.GenerationsPath, ingestapi.Generation{Site: storetest.Site, Generation: "gen-2"}), http.StatusOK, &res)
		if res.Deleted != 1 {
			t.Errorf("finish %d: got %+v, want 1 deleted", i, res)
		}
	}
	if _, err := e.store.Get(t.Context(), acme.Tenant, old.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("orphan still there: %v", err)
	}
	if _, err := e.store.Get(t.Context(), acme.Tenant, cur.Key); err != nil {
		t.Errorf("current document deleted: %v", err)
	}
	if got := metricValue(t, e.reg, "bridge_ingest_documents_deleted_total", map[string]string{"tenant": acme.Tenant, "cause": "generation"}); got < 1 {
		t.Errorf("generation deletes metric: got %v, want at least 1", got)
	}
}

func TestPostGenerationRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		peer   *tunnel.Identity
		body   string
		status int
		typ    string
		detail []string
	}{
		{"no peer", nil, `{"site":"s","generation":"g"}`, 401, ingest.ProblemUnauthenticated, nil},
		{"no generation", &acme, `{"site":"s"}`, 422, ingest.ProblemInvalidGeneration, []string{"generation"}},
		{"nothing", &acme, `{}`, 422, ingest.ProblemInvalidGeneration, []string{"site and generation"}},
		{"unknown field", &acme, `{"site":"s","generation":"g","tenant":"globex"}`, 400, ingest.ProblemUnknownField, []string{`"tenant"`}},
		{"bad JSON", &acme, `{"site":`, 400, ingest.ProblemInvalidJSON, nil},
		{"wrong type", &acme, `{"site":1,"generation":"g"}`, 400, ingest.ProblemInvalidJSON, []string{"site", "string"}},
		{"oversize", &acme, `{"site":"` + strings.Repeat("s", 70<<10) + `","generation":"g"}`, 413, ingest.ProblemBodyTooLarge, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, ingest.Config{})
			decode(t, e.postJSON(&acme, ingestapi.BatchesPath, batchOf("seed", storetest.Doc(1, "/keep"))), http.StatusOK, &ingestapi.BatchResult{})
			wantProblem(t, e.do(tc.peer, http.MethodPost, ingestapi.GenerationsPath, strings.NewReader(tc.body)), tc.status, tc.typ, tc.detail)
			if st, _ := e.store.Stats(t.Context(), acme.Tenant); st.Documents != 1 {
				t.Errorf("a refused generation deleted documents: %+v", st)
			}
		})
	}
}

func TestWrongMethod(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, ingestapi.BatchesPath},
		{http.MethodPost, blobPath(storetest.SHA256(nil))},
		{http.MethodGet, ingestapi.GenerationsPath},
	} {
		if res := e.do(&acme, tc.method, tc.path, nil); res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: got %d, want 405", tc.method, tc.path, res.StatusCode)
		}
	}
}

func TestStoreClosed(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	e.store.Close()
	wantProblem(t, e.postJSON(&acme, ingestapi.BatchesPath, batchOf("x", storetest.Doc(1, "/a"))), http.StatusServiceUnavailable, ingest.ProblemUnavailable, nil)
	wantProblem(t, e.do(&acme, http.MethodPut, blobPath(storetest.SHA256(nil)), strings.NewReader("")), http.StatusServiceUnavailable, ingest.ProblemUnavailable, nil)
	wantProblem(t, e.postJSON(&acme, ingestapi.GenerationsPath, ingestapi.Generation{Site: "s", Generation: "g"}), http.StatusServiceUnavailable, ingest.ProblemUnavailable, nil)
}

// failingStore fails every call with err.
type failingStore struct{ err error }

func (f failingStore) PutBlob(context.Context, string, string, io.Reader) (bool, int64, error) {
	return false, 0, f.err
}

func (f failingStore) Apply(context.Context, string, ingestapi.Batch) (ingestapi.BatchResult, error) {
	return ingestapi.BatchResult{}, f.err
}

func (f failingStore) FinishGeneration(context.Context, string, ingestapi.Generation) (ingestapi.GenerationResult, error) {
	return ingestapi.GenerationResult{}, f.err
}

func TestStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		typ    string
	}{
		{"internal error is not echoed", errors.New("disk I/O error at /var/lib/relay/relay.db"), 500, ingest.ProblemInternal},
		{"invalid argument", fmt.Errorf("apply: %w: tenant must be 1 to 63 characters", store.ErrInvalid), 422, ingest.ProblemInvalidRequest},
		{"cancelled", fmt.Errorf("apply: %w", context.Canceled), 503, ingest.ProblemUnavailable},
		{"closed", store.ErrClosed, 503, ingest.ProblemUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, logged := tunneltest.Logger(t)
			h, err := ingest.New(failingStore{tc.err}, log, ingest.Config{}) // no metrics: nil-safe
			if err != nil {
				t.Fatal(err)
			}
			e := &env{t: t, h: h, logged: logged}
			for _, res := range []*http.Response{
				e.postJSON(&acme, ingestapi.BatchesPath, batchOf("x", storetest.Doc(1, "/a"))),
				e.do(&acme, http.MethodPut, blobPath(storetest.SHA256(nil)), strings.NewReader("")),
				e.postJSON(&acme, ingestapi.GenerationsPath, ingestapi.Generation{Site: "s", Generation: "g"}),
			} {
				wantProblem(t, res, tc.status, tc.typ, nil, "/var/lib", "disk")
			}
			if !strings.Contains(logged(), tc.err.Error()) {
				t.Errorf("the store's error was not logged")
			}
		})
	}
}

func TestNewConfig(t *testing.T) {
	if _, err := ingest.New(nil, nil, ingest.Config{}); err == nil {
		t.Error("New accepted a nil store")
	}
	if _, err := ingest.New(failingStore{}, nil, ingest.Config{MaxBlobBytes: -1}); err == nil {
		t.Error("New accepted a negative blob cap")
	}
	if _, err := ingest.NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewRegistry()
	ingest.NewMetrics(reg)
	if _, err := ingest.NewMetrics(reg); err == nil {
		t.Error("NewMetrics registered twice in one registry")
	}
}

// TestOverHTTP serves the handler from a mux on a real HTTP server whose
// ConnContext sets the peer, as tunnel.ConnContext does on tunnel streams,
// and streams a multi-megabyte blob through it.
func TestOverHTTP(t *testing.T) {
	e := newEnv(t, ingest.Config{MaxBlobBytes: 8 << 20})
	mux := http.NewServeMux()
	e.h.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context { return tunnel.WithPeer(ctx, globex) }
	srv.Start()
	t.Cleanup(srv.Close)

	content := bytes.Repeat([]byte("0123456789abcdef"), 4<<16) // 4 MiB
	sha := storetest.SHA256(content)
	put := func(sha string, body io.Reader) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, srv.URL+blobPath(sha), body)
		if err != nil {
			t.Fatal(err)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	decode(t, put(sha, hideLen{bytes.NewReader(content)}), http.StatusCreated, &map[string]any{})
	decode(t, put(sha, bytes.NewReader(content)), http.StatusOK, &map[string]any{})
	if st, _ := e.store.Stats(t.Context(), globex.Tenant); st.Blobs != 1 || st.BlobBytes != int64(len(content)) {
		t.Errorf("got %+v, want one blob of %d bytes", st, len(content))
	}

	d := storetest.Doc(1, "/big.txt")
	d.ContentSHA256 = sha
	j, _ := json.Marshal(batchOf("http-1", d))
	res, err := srv.Client().Post(srv.URL+ingestapi.BatchesPath, "application/json", bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	var br ingestapi.BatchResult
	decode(t, res, http.StatusOK, &br)
	if _, err := e.store.Get(t.Context(), globex.Tenant, d.Key); err != nil {
		t.Errorf("not stored for the connection's peer: %v", err)
	}

	big := bytes.Repeat([]byte("x"), 9<<20)
	wantProblem(t, put(storetest.SHA256(big), hideLen{bytes.NewReader(big)}), http.StatusRequestEntityTooLarge, ingest.ProblemBodyTooLarge, nil)
	if st, _ := e.store.Stats(t.Context(), globex.Tenant); st.Blobs != 1 {
		t.Errorf("got %d blobs after an oversize upload, want 1", st.Blobs)
	}
}
