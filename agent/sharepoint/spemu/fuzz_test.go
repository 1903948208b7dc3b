package spemu

import (
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/tunnel/proxy/ntlmserver"
)

// Every parser of bytes from the network is fuzzed: go test -fuzz=FuzzX.

func FuzzParseSegments(f *testing.F) {
	for _, s := range []string{"web/GetFileByServerRelativeUrl('/a/O''Brien.docx')/$value", "web/lists(guid'x')/items(3)",
		"a('", "x(')')", "((((", "web/getbytitle('a(b)')/items", ")"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		segs, err := parseSegments(p)
		if err != nil {
			return
		}
		for _, sg := range segs {
			if strings.Contains(sg.name, "/") {
				t.Fatalf("segment name %q contains a slash", sg.name)
			}
			if sg.hasArgs {
				if s, ok := unquote(sg.args); ok && strings.Count(sg.args, "'") < 2 {
					t.Fatalf("unquote(%q) = %q without quotes", sg.args, s)
				}
			}
		}
	})
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"(Hidden eq false)", "Id gt 5 and not (Title eq 'O''Brien')", "Modified ge datetime'2024-01-01T00:00:00Z'",
		"UniqueId eq guid'00000000-0000-0000-0000-000000000000'", "(", "a eq", "'", "guid'", "x eq 1 or"} {
		f.Add(s)
	}
	it := &item{id: 3, name: "a", dir: "/x", author: &principal{}, editor: &principal{}, major: 1}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseFilter(s)
		if err != nil || e == nil {
			return
		}
		e.eval(itemField(it))
		e.fields(func(string) {})
	})
}

func FuzzChangeToken(f *testing.F) {
	f.Add("1;1;482e418a-0900-414b-8902-02248c2e44e8;634955266749500000;5749111")
	f.Add("1;3;{482E418A-0900-414B-8902-02248C2E44E8};634955266749500000;0")
	f.Add("1;;;;")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseChangeToken(s)
		if err != nil {
			return
		}
		again, err := parseChangeToken(tok.String())
		if err != nil || again.num != tok.num || again.id != tok.id || again.scope != tok.scope || !again.time.Equal(tok.time.Truncate(100*time.Nanosecond)) {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v %v", s, tok, tok.String(), again, err)
		}
	})
}

func FuzzNTLMAuthenticate(f *testing.F) {
	f.Add([]byte("NTLMSSP\x00\x03\x00\x00\x00"))
	f.Add(make([]byte, 80))
	f.Fuzz(func(t *testing.T, b []byte) {
		ntlmserver.MessageType(b)
		if m, err := ntlmserver.ParseAuthenticate(b); err == nil {
			ntlmserver.VerifyNTLMv2(m, "pw", make([]byte, 8), ntlmserver.AVPairs())
		}
	})
}

func FuzzViewXML(f *testing.F) {
	f.Add("<View Scope='RecursiveAll'><Query><Where><And><Gt><FieldRef Name='ID'/><Value Type='Counter'>5</Value></Gt><IsNull><FieldRef Name='Title'/></IsNull></And></Where></Query><RowLimit Paged='TRUE'>10</RowLimit></View>")
	f.Add("<View><Query><Where><Or><Eq/></Or></Where></Query></View>")
	it := &item{id: 9, name: "a", dir: "/x", author: &principal{}, editor: &principal{}, major: 1}
	f.Fuzz(func(t *testing.T, s string) {
		var v camlNode
		if xml.Unmarshal([]byte(s), &v) != nil {
			return
		}
		if q := v.kid("Query"); q != nil {
			if w := q.kid("Where"); w != nil && len(w.Kids) > 0 {
				if e, err := camlWhere(&w.Kids[0]); err == nil {
					e.eval(itemField(it))
				}
			}
		}
	})
}

// FuzzServe sends arbitrary API paths and queries through the handler: no
// panic, and every answer is a status SharePoint would give.
func FuzzServe(f *testing.F) {
	s := New(Options{})
	if err := s.Generate(Spec{Seed: 1, ItemsPerList: 5, FolderDepth: 1, FolderBreadth: 1, Lists: 1}); err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{"web", "web/lists", "web/lists/getbytitle('Documents')/items", "web/GetFileByServerRelativeUrl('/sites/site0/Shared Documents/Plans')",
		"web/GetFolderByServerRelativeUrl('/sites/site0/Shared Documents')/Files", "site/CurrentChangeToken", "web/lists(guid'zz')", "web/siteusers/getbyid(6)"} {
		f.Add(p, "$select=*&$expand=RootFolder,File&$filter=Id gt 1&$top=2")
	}
	f.Fuzz(func(t *testing.T, p, q string) {
		u := &url.URL{Path: "/sites/site0/_api/" + p, RawQuery: url.Values{"x": {q}}.Encode()}
		if vals, err := url.ParseQuery(q); err == nil {
			u.RawQuery = vals.Encode()
		}
		for _, accept := range []string{verbose, nometa} {
			req := httptest.NewRequest("GET", "http://h/", nil)
			req.URL = u
			req.Header.Set("Accept", accept)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusInternalServerError,
				http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
			default:
				t.Fatalf("%s: HTTP %d", u, rec.Code)
			}
			if rec.Code == http.StatusInternalServerError && !strings.Contains(rec.Body.String(), "SPQueryThrottledException") {
				t.Fatalf("%s: unexpected 500: %s", u, rec.Body.String())
			}
		}
	})
}
