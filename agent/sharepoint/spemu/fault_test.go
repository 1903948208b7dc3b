package spemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestInjectFault(t *testing.T) {
	type req struct {
		method, path   string
		wantStatus     int
		wantRetryAfter string
	}
	const web, items = "/sites/site0/_api/web", "/sites/site0/_api/web/lists/getbytitle('Documents')/items"
	const file = "/sites/site0/_api/web/GetFileByServerRelativeUrl('/sites/site0/Shared%20Documents/Document%2000000.docx')"
	tests := []struct {
		name          string
		fault         Fault
		reqs          []req
		wantThrottled int64
	}{
		{"503 without Retry-After, twice", Fault{Count: 2}, []req{
			{"GET", web, 503, ""}, {"GET", items, 503, ""}, {"GET", web, 200, ""}}, 2},
		{"503 with Retry-After", Fault{Status: 503, RetryAfter: 2 * time.Second}, []req{
			{"GET", web, 503, "2"}, {"GET", web, 200, ""}}, 1},
		{"429 rounds Retry-After up", Fault{Status: 429, RetryAfter: 1500 * time.Millisecond}, []req{
			{"GET", web, 429, "2"}, {"GET", web, 200, ""}}, 1},
		{"only items requests", Fault{Endpoint: EndpointItems, Count: 1}, []req{
			{"GET", web, 200, ""}, {"GET", file, 200, ""}, {"GET", items, 503, ""}, {"GET", items, 200, ""}}, 1},
		{"path pattern", Fault{PathContains: "getfilebyserverrelativeurl"}, []req{
			{"GET", items, 200, ""}, {"GET", file, 503, ""}, {"GET", file, 200, ""}}, 1},
		{"POST only", Fault{Method: "POST", Status: 429}, []req{
			{"GET", web, 200, ""}, {"POST", "/sites/site0/_api/contextinfo", 429, ""}, {"POST", "/sites/site0/_api/contextinfo", 200, ""}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.generate(Spec{Seed: 30, ItemsPerList: 3, PlainNames: true})
			e.s.InjectFault(tt.fault)
			for i, r := range tt.reqs {
				resp, _ := e.do(r.method, r.path, nometa, nil, nil)
				if resp.StatusCode != r.wantStatus || resp.Header.Get("Retry-After") != r.wantRetryAfter {
					t.Errorf("request %d %s %s: HTTP %d Retry-After %q, want %d %q", i, r.method, r.path,
						resp.StatusCode, resp.Header.Get("Retry-After"), r.wantStatus, r.wantRetryAfter)
				}
				if resp.Header.Get("X-SharePointHealthScore") == "" {
					t.Errorf("request %d: no X-SharePointHealthScore", i)
				}
			}
			if got := e.s.Stats().Throttled; got != tt.wantThrottled {
				t.Errorf("Throttled: got %d, want %d", got, tt.wantThrottled)
			}
		})
	}
	t.Run("ClearFaults", func(t *testing.T) {
		e := newEnv(t, Options{})
		e.generate(Spec{Seed: 30, ItemsPerList: 1})
		e.s.InjectFault(Fault{Count: 5})
		e.s.ClearFaults()
		if resp, _ := e.do("GET", web, nometa, nil, nil); resp.StatusCode != 200 {
			t.Errorf("HTTP %d after ClearFaults", resp.StatusCode)
		}
	})
}

func TestHealthScore(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 31, ItemsPerList: 1})
	for _, tt := range []struct{ set, want int }{{0, 0}, {3, 3}, {7, 7}, {10, 10}, {12, 10}, {-1, 0}} {
		e.s.SetHealthScore(tt.set)
		resp, _ := e.do("GET", "/sites/site0/_api/web", nometa, nil, nil)
		if got := resp.Header.Get("X-SharePointHealthScore"); got != strconv.Itoa(tt.want) {
			t.Errorf("SetHealthScore(%d): header %q, want %d", tt.set, got, tt.want)
		}
	}
}

func TestStatsByEndpoint(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 32, ItemsPerList: 3, PlainNames: true})
	d := e.digest("/sites/site0")
	e.s.ResetStats()
	id, _ := listInfo(t, e, "/sites/site0", "Documents") // lists: 1
	lapi := "/sites/site0/_api/web/lists(guid'" + id + "')"
	file := "/sites/site0/_api/web/GetFileByServerRelativeUrl('/sites/site0/Shared%20Documents/Document%2000000.docx')"
	e.do("GET", "/sites/site0/_api/web", nometa, nil, nil)
	e.do("GET", "/sites/site0/_api/site", nometa, nil, nil)
	e.do("GET", "/sites/site0/_api/web/webs", nometa, nil, nil)
	e.do("GET", lapi+"/items", nometa, nil, nil)
	e.do("GET", lapi+"/items(1)", nometa, nil, nil)
	e.do("GET", file, nometa, nil, nil)
	e.do("GET", file+"/$value", "", nil, nil)
	e.do("GET", "/sites/site0/Shared%20Documents/Document%2000000.docx", "", nil, nil)
	e.postJSON("/sites/site0/_api/site/getchanges", nometa, d, changeQueryBody(nometa, "", "10", []string{"Item", "Add"}))
	e.postJSON("/sites/site0/_api/contextinfo", nometa, "", nil)
	renderPage(t, e, id, d, "", nometa, map[string]any{"ViewXml": "<View/>"})
	e.do("GET", "/sites/site0/_api/web/roleassignments", nometa, nil, nil)
	e.do("GET", "/sites/site0/_api/web/siteusers", nometa, nil, nil)
	st := e.s.Stats()
	want := map[Endpoint]int64{EndpointWeb: 3, EndpointLists: 1, EndpointItems: 2, EndpointFile: 1, EndpointContent: 2,
		EndpointChanges: 1, EndpointContextInfo: 1, EndpointRenderListData: 1, EndpointRoles: 1, EndpointUsers: 1}
	for k, v := range want {
		if st.Requests[k] != v {
			t.Errorf("%s: got %d, want %d", k, st.Requests[k], v)
		}
	}
	if st.LastUserAgent != "NONISV|MCC|MCCBridge/test" || e.s.LastUserAgent() != st.LastUserAgent {
		t.Errorf("LastUserAgent: got %q", st.LastUserAgent)
	}
}

func TestDownloadReset(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 33, ItemsPerList: 1, PlainNames: true})
	const size = 1 << 20
	it, err := e.s.AddFile("/sites/site0/Shared Documents", "big.bin", FileSpec{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	var wantSHA string
	for _, en := range e.s.Snapshot() {
		if en.FileRef == it.FileRef {
			wantSHA = en.SHA256
		}
	}
	u := e.url + "/sites/site0/_api/web/GetFileByServerRelativeUrl('" + odataLiteral(it.FileRef) + "')/$value"
	tests := []struct {
		name  string
		after int64
	}{{"after 100000 bytes", 100000}, {"after the headers", 0}, {"mid buffer", 40961}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.s.ResetDownloadAfter(it.FileRef, tt.after)
			resp, err := e.hc.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			if resp.ContentLength != size {
				t.Errorf("Content-Length: got %d", resp.ContentLength)
			}
			first, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !errors.Is(err, io.ErrUnexpectedEOF) || int64(len(first)) != tt.after {
				t.Fatalf("cut download: %d bytes, err %v; want %d bytes and unexpected EOF", len(first), err, tt.after)
			}
			req, _ := http.NewRequest("GET", u, nil)
			req.Header.Set("Range", "bytes="+strconv.FormatInt(tt.after, 10)+"-")
			resp, err = e.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 206 {
				t.Fatalf("resume: HTTP %d %v", resp.StatusCode, err)
			}
			whole := append(first, rest...)
			if sum := sha256.Sum256(whole); hex.EncodeToString(sum[:]) != wantSHA {
				t.Fatalf("resumed content: SHA-256 %x, want %s", sum, wantSHA)
			}
			resp, err = e.hc.Get(u) // the reset happens once
			if err != nil {
				t.Fatal(err)
			}
			full, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(whole, full) {
				t.Fatalf("second download differs from the resumed one (err %v)", err)
			}
		})
	}
	if got := e.s.Stats().Resets; got != int64(len(tests)) {
		t.Errorf("Resets: got %d, want %d", got, len(tests))
	}
}
