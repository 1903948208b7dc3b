package spemu

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var tokenRE = regexp.MustCompile(`^1;1;[0-9a-f-]{36};\d{18};\d+$`)

func TestResponseFormats(t *testing.T) {
	e := newEnv(t, Options{HealthScore: 3})
	e.generate(Spec{Seed: 1, ItemsPerList: 5})
	tests := []struct {
		name, accept, wantCT string
		check                func(t *testing.T, m map[string]any)
	}{
		{"verbose", verbose, "odata=verbose", func(t *testing.T, m map[string]any) {
			if got := dig(m, "d", "__metadata", "type"); got != "SP.Web" {
				t.Errorf("d.__metadata.type: got %v, want SP.Web", got)
			}
			if got, _ := dig(m, "d", "Lists", "__deferred", "uri").(string); !strings.HasSuffix(got, "/sites/site0/_api/Web/Lists") {
				t.Errorf("Lists.__deferred.uri: got %q", got)
			}
		}},
		{"nometadata", nometa, "odata=nometadata", func(t *testing.T, m map[string]any) {
			if m["Title"] != "Site 0" || m["__metadata"] != nil || m["odata.metadata"] != nil || m["Lists"] != nil {
				t.Errorf("nometadata web: got %v", m)
			}
		}},
		{"minimalmetadata", minimal, "odata=minimalmetadata", func(t *testing.T, m map[string]any) {
			if m["odata.type"] != "SP.Web" || !strings.Contains(fmt.Sprint(m["odata.metadata"]), "$metadata#SP.ApiData.Webs") {
				t.Errorf("minimalmetadata web: got %v", m)
			}
		}},
		{"plain application/json is minimal", "application/json", "odata=minimalmetadata", func(t *testing.T, m map[string]any) {
			if m["odata.type"] != "SP.Web" {
				t.Errorf("odata.type: got %v", m["odata.type"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := e.do("GET", "/sites/site0/_api/web", tt.accept, nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tt.wantCT) {
				t.Errorf("Content-Type: got %q, want it to contain %q", ct, tt.wantCT)
			}
			for h, want := range map[string]string{"X-SharePointHealthScore": "3", "MicrosoftSharePointTeamServices": "16.0.0.10337"} {
				if got := resp.Header.Get(h); got != want {
					t.Errorf("%s: got %q, want %q", h, got, want)
				}
			}
			if _, err := parseGUID(resp.Header.Get("SPRequestGuid")); err != nil {
				t.Errorf("SPRequestGuid %q: %v", resp.Header.Get("SPRequestGuid"), err)
			}
			tt.check(t, decode(t, b))
		})
	}
}

func TestSiteAndVersions(t *testing.T) {
	tests := []struct {
		name      string
		version   Version
		wantToken bool
		wantTS    string
	}{
		{"SP2019", SP2019, true, "16.0.0.10337"},
		{"SP2016", SP2016, true, "16.0.0.4351"},
		{"SP2013 has no CurrentChangeToken", SP2013, false, "15.0.0.4420"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{Version: tt.version, ViewThreshold: 1234})
			e.generate(Spec{Seed: 2, ItemsPerList: 3})
			for _, accept := range []string{verbose, nometa} {
				resp, b := e.do("GET", "/sites/site0/_api/site", accept, nil, nil)
				if got := resp.Header.Get("MicrosoftSharePointTeamServices"); got != tt.wantTS {
					t.Errorf("team services: got %q, want %q", got, tt.wantTS)
				}
				site := entity(accept, decode(t, b))
				if got := num(site["MaxItemsPerThrottledOperation"]); got != 1234 {
					t.Errorf("MaxItemsPerThrottledOperation: got %d, want 1234", got)
				}
				tok, _ := dig(site, "CurrentChangeToken", "StringValue").(string)
				if tt.wantToken != (tok != "") {
					t.Fatalf("%s CurrentChangeToken: got %q, want present=%v", accept, tok, tt.wantToken)
				}
				if tok != "" {
					if !tokenRE.MatchString(tok) {
						t.Errorf("token %q does not match %v", tok, tokenRE)
					}
					want, _ := e.s.CurrentChangeToken("/sites/site0")
					if tok[strings.LastIndexByte(tok, ';'):] != want[strings.LastIndexByte(want, ';'):] {
						t.Errorf("token number: got %q, want %q", tok, want)
					}
				}
				if site["Id"] == "" || site["ServerRelativeUrl"] != "/sites/site0" || !strings.HasSuffix(fmt.Sprint(site["Url"]), "/sites/site0") {
					t.Errorf("site: got %v", site)
				}
			}
		})
	}
}

func TestWebsAndLists(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 3, WebsPerSite: 3, Libraries: 2, Lists: 1, ItemsPerList: 4})
	for _, accept := range []string{verbose, nometa} {
		t.Run(accept, func(t *testing.T) {
			_, m := e.getJSON("/sites/site0/_api/web/webs?$skip=1&$top=1", accept)
			webs := results(accept, m)
			if len(webs) != 1 || dig(webs, 0, "ServerRelativeUrl") != "/sites/site0/web1" {
				t.Fatalf("webs $skip=1&$top=1: got %v", webs)
			}
			// A sub-web's own API: /sites/site0/web1/_api/web.
			_, m = e.getJSON("/sites/site0/web1/_api/web", accept)
			if got := entity(accept, m)["ServerRelativeUrl"]; got != "/sites/site0/web1" {
				t.Errorf("sub-web _api: got %v", got)
			}
			code, m := e.getJSON("/sites/site0/_api/web/lists?$filter=(Hidden%20eq%20false)&$expand=RootFolder&$select=Title,Id,BaseTemplate,BaseType,Hidden,ItemCount,RootFolder/ServerRelativeUrl,HasUniqueRoleAssignments", accept)
			if code != 200 {
				t.Fatalf("lists: HTTP %d %v", code, m)
			}
			lists := results(accept, m)
			var titles []string
			for _, l := range lists {
				lm := l.(map[string]any)
				titles = append(titles, lm["Title"].(string))
				if lm["Hidden"] != false {
					t.Errorf("list %v is hidden", lm["Title"])
				}
				bt, bty := num(lm["BaseTemplate"]), num(lm["BaseType"])
				if (bt == 101) != (bty == 1) {
					t.Errorf("list %v: BaseTemplate %d with BaseType %d", lm["Title"], bt, bty)
				}
				root, _ := dig(lm, "RootFolder", "ServerRelativeUrl").(string)
				if !strings.HasPrefix(root, "/sites/site0/") {
					t.Errorf("list %v RootFolder: got %q", lm["Title"], root)
				}
				if _, ok := lm["HasUniqueRoleAssignments"].(bool); !ok {
					t.Errorf("list %v HasUniqueRoleAssignments: got %v", lm["Title"], lm["HasUniqueRoleAssignments"])
				}
			}
			want := []string{"Documents", "Library 1", "Tasks 0"}
			if !slices.Equal(titles, want) {
				t.Errorf("visible lists: got %v, want %v", titles, want)
			}
			_, m = e.getJSON("/sites/site0/_api/web/lists?$filter=Hidden%20eq%20true", accept)
			if got := results(accept, m); len(got) != 1 || dig(got, 0, "Title") != "TaxonomyHiddenList" {
				t.Errorf("hidden lists: got %v", got)
			}
		})
	}
}

// listInfo returns a list's id and root URL by title.
func listInfo(t *testing.T, e *env, web, title string) (string, string) {
	t.Helper()
	code, m := e.getJSON(web+"/_api/web/lists/getbytitle('"+title+"')?$expand=RootFolder", nometa)
	if code != 200 {
		t.Fatalf("getbytitle(%s): HTTP %d %v", title, code, m)
	}
	return m["Id"].(string), dig(m, "RootFolder", "ServerRelativeUrl").(string)
}

func TestItemsPaging(t *testing.T) {
	tests := []struct {
		name   string
		accept string
		style  NextLinkStyle
		top    int
		want   string // "abs", "rel" or "both"
	}{
		{"verbose always absolute", verbose, NextLinkRelative, 500, "abs"},
		{"light relative", nometa, NextLinkRelative, 500, "rel"},
		{"light absolute", nometa, NextLinkAbsolute, 500, "abs"},
		{"light alternating", minimal, NextLinkAlternate, 250, "both"},
		{"default page of 100", nometa, NextLinkAlternate, 0, "both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{NextLinks: tt.style})
			e.generate(Spec{Seed: 4, ItemsPerList: 2400, FolderDepth: 1, FolderBreadth: 3, PlainNames: true})
			id, _ := listInfo(t, e, "/sites/site0", "Documents")
			apiBase := e.url + "/sites/site0/_api/"
			link := fmt.Sprintf("/sites/site0/_api/web/lists(guid'%s')/items?$select=Id,FileRef,OData__UIVersionString&$skip=7", id)
			if tt.top > 0 {
				link += "&$top=" + strconv.Itoa(tt.top)
			}
			pageSize := cmp0(tt.top, 100)
			seen := map[int64]bool{}
			var last int64
			kinds := map[string]bool{}
			pages := 0
			for link != "" {
				code, m := e.getJSON(link, tt.accept)
				if code != 200 {
					t.Fatalf("page %d: HTTP %d %v", pages, code, m)
				}
				rows := results(tt.accept, m)
				if nx := next(tt.accept, m); nx != "" && len(rows) != pageSize {
					t.Fatalf("page %d: %d rows, want %d", pages, len(rows), pageSize)
				}
				for _, r := range rows {
					id := num(dig(r, "Id"))
					if seen[id] || id <= last {
						t.Fatalf("item %d repeated or out of order after %d", id, last)
					}
					seen[id], last = true, id
					if dig(r, "OData__UIVersionString") != "1.0" || dig(r, "FileRef") == nil {
						t.Fatalf("row %v lacks selected fields", r)
					}
				}
				pages++
				link = next(tt.accept, m)
				if link == "" {
					break
				}
				if !strings.Contains(link, "%24skiptoken=Paged%3dTRUE%26p_ID%3d"+strconv.FormatInt(last, 10)) {
					t.Fatalf("next link %q lacks the skiptoken of id %d", link, last)
				}
				if strings.HasPrefix(link, "http") {
					kinds["abs"] = true
				} else {
					kinds["rel"] = true
					if !strings.HasPrefix(link, "Web/Lists(guid'") {
						t.Fatalf("relative link %q is not relative to _api/", link)
					}
					link = resolveNext(t, apiBase, link)
				}
			}
			if want := 2400 + 3; len(seen) != want {
				t.Errorf("items seen: got %d, want %d (files and folders)", len(seen), want)
			}
			switch tt.want {
			case "both":
				if !kinds["abs"] || !kinds["rel"] {
					t.Errorf("next link kinds: got %v, want absolute and relative", kinds)
				}
			default:
				if len(kinds) != 1 || !kinds[tt.want] {
					t.Errorf("next link kinds: got %v, want only %s", kinds, tt.want)
				}
			}
		})
	}
}

func cmp0(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

func TestItemFields(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 5, ItemsPerList: 3, Lists: 1})
	id, root := listInfo(t, e, "/sites/site0", "Documents")
	base := "/sites/site0/_api/web/lists(guid'" + id + "')/items"
	t.Run("default fields omit FileRef", func(t *testing.T) {
		_, m := e.getJSON(base, nometa)
		r := results(nometa, m)[0].(map[string]any)
		for _, f := range []string{"Id", "ID", "Title", "Created", "Modified", "OData__UIVersionString", "GUID", "FileSystemObjectType", "AuthorId"} {
			if _, ok := r[f]; !ok {
				t.Errorf("default item lacks %s: %v", f, r)
			}
		}
		for _, f := range []string{"FileRef", "FileLeafRef", "UniqueId", "HasUniqueRoleAssignments", "_UIVersionString"} {
			if _, ok := r[f]; ok {
				t.Errorf("default item has %s", f)
			}
		}
		if s := r["Created"].(string); !strings.HasSuffix(s, "Z") {
			t.Errorf("Created %q is not UTC", s)
		}
	})
	t.Run("select and expand File", func(t *testing.T) {
		for _, accept := range []string{verbose, nometa} {
			code, m := e.getJSON(base+"?$select=Id,FileRef,FileLeafRef,UniqueId,FSObjType,File,Folder&$expand=File,Folder&$top=5000", accept)
			if code != 200 {
				t.Fatalf("HTTP %d %v", code, m)
			}
			files, folders := 0, 0
			for _, r := range results(accept, m) {
				rm := r.(map[string]any)
				switch rm["FSObjType"] {
				case "0":
					files++
					l, ok := dig(rm, "File", "Length").(string)
					if !ok {
						t.Fatalf("File.Length is not a string: %v", dig(rm, "File"))
					}
					if _, err := strconv.ParseInt(l, 10, 64); err != nil || dig(rm, "File", "Name") != rm["FileLeafRef"] {
						t.Errorf("File %v", dig(rm, "File"))
					}
					if etag, _ := dig(rm, "File", "ETag").(string); !regexp.MustCompile(`^"\{[0-9A-F-]{36}\},\d+"$`).MatchString(etag) {
						t.Errorf("ETag %q", etag)
					}
				case "1":
					folders++
					if rm["File"] != nil {
						t.Errorf("folder %v has File %v", rm["FileRef"], rm["File"])
					}
					if got := dig(rm, "Folder", "ServerRelativeUrl"); got != rm["FileRef"] {
						t.Errorf("Folder.ServerRelativeUrl: got %v, want %v", got, rm["FileRef"])
					}
				}
				if !strings.HasPrefix(rm["FileRef"].(string), root+"/") {
					t.Errorf("FileRef %v outside %s", rm["FileRef"], root)
				}
			}
			if files == 0 || folders == 0 {
				t.Errorf("%s: files %d folders %d", accept, files, folders)
			}
		}
	})
	t.Run("unknown field is 400", func(t *testing.T) {
		code, m := e.getJSON(base+"?$select=Id,NoSuchColumn", verbose)
		if code != 400 || !strings.Contains(errCode(m), "-1, ") {
			t.Errorf("got HTTP %d %v", code, m)
		}
	})
	t.Run("single item, property and filter", func(t *testing.T) {
		code, m := e.getJSON(base+"(2)?$select=Id,HasUniqueRoleAssignments", nometa)
		if code != 200 || num(m["Id"]) != 2 {
			t.Fatalf("items(2): HTTP %d %v", code, m)
		}
		code, m = e.getJSON(base+"(2)/HasUniqueRoleAssignments", verbose)
		if _, ok := dig(m, "d", "HasUniqueRoleAssignments").(bool); code != 200 || !ok {
			t.Errorf("items(2)/HasUniqueRoleAssignments: HTTP %d %v", code, m)
		}
		code, m = e.getJSON(base+"(999)", verbose)
		if code != 404 || errCode(m) != "-2147024809, System.ArgumentException" {
			t.Errorf("items(999): HTTP %d %v", code, m)
		}
		_, m = e.getJSON(base+"?$filter=Id%20gt%2010%20and%20FSObjType%20eq%200&$select=Id", nometa)
		for _, r := range results(nometa, m) {
			if num(dig(r, "Id")) <= 10 {
				t.Errorf("filter Id gt 10 returned %v", r)
			}
		}
		code, m = e.getJSON(base+"?$filter=substringof('a',Title)", nometa)
		if code != 400 {
			t.Errorf("substringof: HTTP %d %v", code, m)
		}
	})
	t.Run("generic list item", func(t *testing.T) {
		id, _ := listInfo(t, e, "/sites/site0", "Tasks 0")
		_, m := e.getJSON("/sites/site0/_api/web/lists(guid'"+id+"')/items?$select=Title,FileLeafRef,FileRef,Attachments", verbose)
		r := results(verbose, m)
		if len(r) == 0 {
			t.Fatal("no items")
		}
		leaf, _ := dig(r, 0, "FileLeafRef").(string)
		if !strings.HasSuffix(leaf, "_.000") || !strings.HasPrefix(dig(r, 0, "FileRef").(string), "/sites/site0/Lists/Tasks0/") {
			t.Errorf("generic item: %v", r[0])
		}
		if typ := dig(r, 0, "__metadata", "type"); typ != "SP.Data.Tasks0ListItem" {
			t.Errorf("item type: got %v, want SP.Data.Tasks0ListItem", typ)
		}
	})
}

func TestLocalTimes(t *testing.T) {
	e := newEnv(t, Options{LocalTimes: true, TimeZone: time.FixedZone("X", 2*3600)})
	e.generate(Spec{Seed: 5, ItemsPerList: 2, PlainNames: true})
	id, _ := listInfo(t, e, "/sites/site0", "Documents")
	_, m := e.getJSON("/sites/site0/_api/web/lists(guid'"+id+"')/items?$select=Created,Modified,File&$expand=File", nometa)
	r := results(nometa, m)[0].(map[string]any)
	created := r["Created"].(string)
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$`).MatchString(created) {
		t.Errorf("Created %q is not local time without offset", created)
	}
	utc, _ := time.Parse(time.RFC3339, dig(r, "File", "TimeCreated").(string))
	local, _ := time.Parse("2006-01-02T15:04:05", created)
	if d := local.Sub(utc); d != 2*time.Hour {
		t.Errorf("local - UTC: got %v, want 2h", d)
	}
}

func TestListViewThreshold(t *testing.T) {
	tests := []struct {
		name      string
		mode      ThresholdMode
		threshold int
		items     int
		query     string
		want      int
	}{
		{"strict: any items query over the threshold", ThresholdStrict, 50, 60, "?$top=10", 500},
		{"strict: default page too", ThresholdStrict, 50, 60, "", 500},
		{"strict: single item still works", ThresholdStrict, 50, 60, "(3)", 200},
		{"strict: at the threshold works", ThresholdStrict, 50, 49, "?$top=10", 200},
		{"indexed: small page by ID works", ThresholdIndexed, 50, 60, "?$top=10", 200},
		{"indexed: $top above threshold", ThresholdIndexed, 50, 60, "?$top=51", 500},
		{"indexed: filter on Id works", ThresholdIndexed, 50, 60, "?$filter=Id%20gt%205&$top=20", 200},
		{"indexed: default page of 100 above a threshold of 50", ThresholdIndexed, 50, 60, "?$filter=Id%20gt%205", 500},
		{"indexed: filter on Title", ThresholdIndexed, 50, 60, "?$filter=Title%20eq%20'x'", 500},
		{"indexed: orderby Modified", ThresholdIndexed, 50, 60, "?$orderby=Modified", 500},
		{"default 5000, 5001 items", ThresholdStrict, 0, 5001, "?$top=5000", 500},
		{"default 5000, 5000 items", ThresholdStrict, 0, 4998, "?$top=5000", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, Options{Threshold: tt.mode, ViewThreshold: tt.threshold})
			// Plain names: Plans folder and awkward files would add 13 items; 1 folder? none.
			e.generate(Spec{Seed: 6, ItemsPerList: tt.items, PlainNames: true})
			id, _ := listInfo(t, e, "/sites/site0", "Documents")
			for _, accept := range []string{verbose, nometa} {
				code, m := e.getJSON("/sites/site0/_api/web/lists(guid'"+id+"')/items"+tt.query, accept)
				if code != tt.want {
					t.Fatalf("%s: HTTP %d, want %d: %v", accept, code, tt.want, m)
				}
				if tt.want == 500 {
					if got := errCode(m); got != "-2147024860, Microsoft.SharePoint.SPQueryThrottledException" {
						t.Errorf("%s: error code %q", accept, got)
					}
					key := "odata.error"
					if accept == verbose {
						key = "error"
					}
					if dig(m, key, "message", "lang") != "en-US" || dig(m, key, "message", "value") == nil {
						t.Errorf("%s envelope: got %v", accept, m)
					}
				}
			}
		})
	}
}

// renderPage posts one RenderListDataAsStream request.
func renderPage(t *testing.T, e *env, listID, digest, query, accept string, params map[string]any) (int, map[string]any) {
	t.Helper()
	if accept == verbose {
		params["__metadata"] = map[string]string{"type": "SP.RenderListDataParameters"}
	}
	return e.postJSON("/sites/site0/_api/web/lists(guid'"+listID+"')/RenderListDataAsStream"+query, accept, digest,
		map[string]any{"parameters": params})
}

func TestRenderListDataAsStream(t *testing.T) {
	e := newEnv(t, Options{ViewThreshold: 50})
	e.generate(Spec{Seed: 7, ItemsPerList: 230, FolderDepth: 2, FolderBreadth: 2})
	id, root := listInfo(t, e, "/sites/site0", "Documents")
	d := e.digest("/sites/site0")
	snap := e.s.Snapshot()
	tests := []struct {
		name      string
		scope     string
		viewXML   string
		viaParams bool
		accept    string
		want      func(en Entry) bool
	}{
		{"RecursiveAll with NextHref in the URL", "RecursiveAll", "", false, nometa, func(Entry) bool { return true }},
		{"Recursive skips folders, paging in parameters", "Recursive", "", true, verbose, func(en Entry) bool { return en.Kind != KindFolder }},
		{"root folder only", "", "", false, nometa, func(en Entry) bool { return strings.Count(en.FileRef, "/") == strings.Count(root, "/")+1 }},
		{"Where ID gt 100", "RecursiveAll", "<Query><Where><Gt><FieldRef Name='ID'/><Value Type='Counter'>100</Value></Gt></Where></Query>", false, nometa,
			func(en Entry) bool { return en.ItemID > 100 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := map[int]bool{}
			for _, en := range snap {
				if en.ListID == id && tt.want(en) {
					want[en.ItemID] = true
				}
			}
			got := map[int]bool{}
			query, paging := "", ""
			for page := 0; ; page++ {
				params := map[string]any{
					"ViewXml":       "<View Scope='" + tt.scope + "'>" + tt.viewXML + "<ViewFields><FieldRef Name='Title'/><FieldRef Name='Author'/></ViewFields><RowLimit Paged='TRUE'>30</RowLimit></View>",
					"RenderOptions": 2,
				}
				if tt.viaParams && paging != "" {
					params["Paging"] = paging
				}
				code, m := renderPage(t, e, id, d, query, tt.accept, params)
				if code != 200 {
					t.Fatalf("page %d: HTTP %d %v", page, code, m)
				}
				rows, _ := m["Row"].([]any)
				for _, r := range rows {
					rm := r.(map[string]any)
					idStr, ok := rm["ID"].(string)
					if !ok {
						t.Fatalf("ID is not a string: %v", rm["ID"])
					}
					n, _ := strconv.Atoi(idStr)
					if got[n] {
						t.Fatalf("row %d returned twice", n)
					}
					got[n] = true
					for _, f := range []string{"FileRef", "FileLeafRef", "FSObjType", "UniqueId", "_UIVersionString", "Modified", "Title"} {
						if _, ok := rm[f].(string); !ok {
							t.Fatalf("row field %s is not a string: %v", f, rm[f])
						}
					}
					if _, ok := rm["Author"].([]any); !ok {
						t.Fatalf("Author is not an array: %v", rm["Author"])
					}
				}
				nh, _ := m["NextHref"].(string)
				if nh == "" {
					break
				}
				if !strings.HasPrefix(nh, "?Paged=TRUE&p_ID=") {
					t.Fatalf("NextHref %q", nh)
				}
				query, paging = nh, nh
				if tt.viaParams {
					query = ""
				}
			}
			if len(got) != len(want) {
				t.Fatalf("rows: got %d, want %d", len(got), len(want))
			}
			for n := range want {
				if !got[n] {
					t.Errorf("item %d missing", n)
				}
			}
		})
	}
	t.Run("RowLimit above the threshold is throttled", func(t *testing.T) {
		code, m := renderPage(t, e, id, d, "", nometa, map[string]any{"ViewXml": "<View Scope='RecursiveAll'><RowLimit Paged='TRUE'>51</RowLimit></View>"})
		if code != 500 || errCode(m) != "-2147024860, Microsoft.SharePoint.SPQueryThrottledException" {
			t.Errorf("HTTP %d %v", code, m)
		}
	})
	t.Run("verbose body without __metadata is an ODataException", func(t *testing.T) {
		code, m := e.postJSON("/sites/site0/_api/web/lists(guid'"+id+"')/RenderListDataAsStream", verbose, d,
			map[string]any{"parameters": map[string]any{"ViewXml": "<View/>"}})
		if code != 400 || errCode(m) != "-1, Microsoft.Data.OData.ODataException" {
			t.Errorf("HTTP %d %v", code, m)
		}
	})
}

func TestFileContentAndRange(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 8, ItemsPerList: 1, PlainNames: true})
	const big = int64(3)<<30 + 7 // above 2^31, never held in memory
	it, err := e.s.AddFile("/sites/site0/Shared Documents", "huge.bin", FileSpec{Size: big})
	if err != nil {
		t.Fatal(err)
	}
	small, err := e.s.AddFile("/sites/site0/Shared Documents", "small.txt", FileSpec{Data: []byte("hello, sharepoint")})
	if err != nil {
		t.Fatal(err)
	}
	fileAPI := func(ref string) string {
		return "/sites/site0/_api/web/GetFileByServerRelativeUrl('" + odataLiteral(ref) + "')"
	}
	_, m := e.getJSON(fileAPI(it.FileRef), nometa)
	if got := m["Length"]; got != strconv.FormatInt(big, 10) {
		t.Fatalf("Length: got %#v, want the string %d", got, big)
	}
	gen := content{seed: 0}
	e.s.mu.RLock()
	for _, l := range e.s.sites[0].root.lists {
		if x := l.byRef[lowerKey(it.FileRef)]; x != nil {
			gen = x.content
		}
	}
	e.s.mu.RUnlock()
	want := func(a, b int64) []byte {
		p := make([]byte, b-a+1)
		gen.ReadAt(p, a)
		return p
	}
	tests := []struct {
		name      string
		rng       string
		status    int
		from, to  int64
		wantRange string
	}{
		{"head of file", "bytes=0-99", 206, 0, 99, "bytes 0-99/" + strconv.FormatInt(big, 10)},
		{"beyond 2^31", "bytes=2147483640-2147483700", 206, 2147483640, 2147483700, ""},
		{"suffix", "bytes=-10", 206, big - 10, big - 1, ""},
		{"open end", fmt.Sprintf("bytes=%d-", big-5), 206, big - 5, big - 1, ""},
		{"unsatisfiable", fmt.Sprintf("bytes=%d-", big+5), 416, 0, -1, "bytes */" + strconv.FormatInt(big, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := e.do("GET", fileAPI(it.FileRef)+"/$value", "", nil, map[string]string{"Range": tt.rng})
			if resp.StatusCode != tt.status {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.wantRange != "" && resp.Header.Get("Content-Range") != tt.wantRange {
				t.Errorf("Content-Range: got %q, want %q", resp.Header.Get("Content-Range"), tt.wantRange)
			}
			if tt.status == 206 {
				if got := resp.Header.Get("Content-Length"); got != strconv.FormatInt(tt.to-tt.from+1, 10) {
					t.Errorf("Content-Length: got %s", got)
				}
				if string(b) != string(want(tt.from, tt.to)) {
					t.Errorf("range body differs from the generator")
				}
			}
		})
	}
	t.Run("whole small file, $value and direct URL", func(t *testing.T) {
		for _, u := range []string{fileAPI(small.FileRef) + "/$value", "/sites/site0/Shared%20Documents/small.txt"} {
			resp, b := e.do("GET", u, "", nil, nil)
			if resp.StatusCode != 200 || string(b) != "hello, sharepoint" || resp.Header.Get("Content-Length") != "17" {
				t.Errorf("%s: HTTP %d %q", u, resp.StatusCode, b)
			}
		}
	})
	t.Run("HEAD on a 3 GiB file", func(t *testing.T) {
		resp, _ := e.do("HEAD", fileAPI(it.FileRef)+"/$value", "", nil, nil)
		if resp.ContentLength != big {
			t.Errorf("Content-Length: got %d, want %d", resp.ContentLength, big)
		}
	})
}

func TestAwkwardNamesRoundTrip(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 9, ItemsPerList: 4, FolderDepth: 1, FolderBreadth: 3})
	byRef := map[string]Entry{}
	for _, en := range e.s.Snapshot() {
		byRef[en.FileRef] = en
	}
	refs := []string{"/sites/site0/Shared Documents/Q&A #2/O'Brien's #1 100%.docx"}
	for _, n := range AwkwardNames() {
		refs = append(refs, "/sites/site0/Shared Documents/Plans/"+n)
	}
	for _, ref := range refs {
		t.Run(ref, func(t *testing.T) {
			en, ok := byRef[ref]
			if !ok {
				t.Fatalf("%s not generated", ref)
			}
			lit := odataLiteral(ref)
			for _, u := range []string{
				"/sites/site0/_api/web/GetFileByServerRelativeUrl('" + lit + "')",
				"/sites/site0/_api/web/GetFileByServerRelativePath(decodedurl='" + lit + "')",
				"/sites/site0/_api/web/GetFileByServerRelativeUrl(@f)?@f=" + url.QueryEscape("'"+strings.ReplaceAll(ref, "'", "''")+"'"),
			} {
				code, m := e.getJSON(u, nometa)
				if code != 200 || m["Name"] != en.Name || m["ServerRelativeUrl"] != ref || m["UniqueId"] != en.UniqueID {
					t.Fatalf("%s: HTTP %d %v", u, code, m)
				}
			}
			resp, b := e.do("GET", "/sites/site0/_api/web/GetFileByServerRelativeUrl('"+lit+"')/$value", "", nil, nil)
			sum := sha256.Sum256(b)
			if resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != en.SHA256 {
				t.Errorf("$value: HTTP %d, SHA-256 %x, want %s", resp.StatusCode, sum, en.SHA256)
			}
		})
	}
	t.Run("NFC and NFD are distinct files", func(t *testing.T) {
		nfc, nfd := byRef["/sites/site0/Shared Documents/Plans/R\u00e9sum\u00e9 final.pdf"], byRef["/sites/site0/Shared Documents/Plans/Re\u0301sume\u0301 final.pdf"]
		if nfc.UniqueID == "" || nfd.UniqueID == "" || nfc.UniqueID == nfd.UniqueID {
			t.Errorf("NFC %v, NFD %v", nfc.UniqueID, nfd.UniqueID)
		}
	})
	errTests := []struct {
		name, path, want string
		status           int
	}{
		{"undoubled apostrophe", "/sites/site0/_api/web/GetFileByServerRelativeUrl('/sites/site0/Shared%20Documents/Plans/O'Brien's%20%231%20100%25.docx')",
			"-1, Microsoft.SharePoint.Client.InvalidClientQueryException", 400},
		{"missing file", "/sites/site0/_api/web/GetFileByServerRelativeUrl('/sites/site0/Shared%20Documents/nope.docx')",
			"-2130575338, Microsoft.SharePoint.SPException", 404},
		{"missing folder", "/sites/site0/_api/web/GetFolderByServerRelativeUrl('/sites/site0/Shared%20Documents/nope')",
			"-2147024894, System.IO.FileNotFoundException", 404},
		{"folder is not a file", "/sites/site0/_api/web/GetFileByServerRelativeUrl('/sites/site0/Shared%20Documents/Plans')",
			"-2130575338, Microsoft.SharePoint.SPException", 404},
		{"unknown resource", "/sites/site0/_api/web/nosuchthing/x", "-1, Microsoft.SharePoint.Client.ResourceNotFoundException", 404},
		{"unknown list", "/sites/site0/_api/web/lists(guid'00000000-0000-0000-0000-000000000001')", "-1, System.ArgumentException", 404},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			for _, accept := range []string{verbose, nometa} {
				code, m := e.getJSON(tt.path, accept)
				if code != tt.status || errCode(m) != tt.want {
					t.Errorf("%s: HTTP %d %q, want %d %q", accept, code, errCode(m), tt.status, tt.want)
				}
			}
		})
	}
}

func TestFolders(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 10, ItemsPerList: 9, FolderDepth: 1, FolderBreadth: 2, PlainNames: true})
	_, m := e.getJSON("/sites/site0/_api/web/GetFolderByServerRelativeUrl('"+odataLiteral("/sites/site0/Shared Documents")+"')/Folders", nometa)
	var names []string
	for _, f := range results(nometa, m) {
		names = append(names, dig(f, "Name").(string))
	}
	if want := []string{"Folder 1.0.0", "Folder 1.0.1"}; !slices.Equal(names, want) {
		t.Errorf("Folders: got %v, want %v", names, want)
	}
	_, m = e.getJSON("/sites/site0/_api/web/GetFolderByServerRelativeUrl('"+odataLiteral("/sites/site0/Shared Documents/Folder 1.0.0")+"')?$expand=Files,ListItemAllFields", verbose)
	d := m["d"].(map[string]any)
	files, _ := dig(d, "Files", "results").([]any)
	if num(d["ItemCount"]) != 3 || len(files) != 3 || dig(d, "ListItemAllFields", "FileSystemObjectType") == nil {
		t.Errorf("folder: ItemCount %v, files %d, item %v", d["ItemCount"], len(files), dig(d, "ListItemAllFields"))
	}
}

func TestRoleAssignmentsAndUsers(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 11, ItemsPerList: 30, Libraries: 2, UniqueEvery: 10, PlainNames: true})
	for _, accept := range []string{verbose, nometa} {
		t.Run(accept, func(t *testing.T) {
			_, m := e.getJSON("/sites/site0/_api/web/roleassignments?$expand=Member/users,RoleDefinitionBindings", accept)
			ras := results(accept, m)
			if len(ras) != 3 {
				t.Fatalf("web role assignments: got %d, want 3", len(ras))
			}
			usersOf := func(v any) []any {
				if accept == verbose {
					r, _ := dig(v, "results").([]any)
					return r
				}
				r, _ := v.([]any)
				return r
			}
			for _, ra := range ras {
				if num(dig(ra, "Member", "PrincipalType")) != 8 {
					t.Errorf("member %v is not a SharePoint group", dig(ra, "Member", "Title"))
				}
				if len(usersOf(dig(ra, "Member", "Users"))) == 0 {
					t.Errorf("group %v has no expanded users", dig(ra, "Member", "Title"))
				}
				rd := usersOf(dig(ra, "RoleDefinitionBindings"))
				if len(rd) != 1 {
					t.Fatalf("bindings: %v", rd)
				}
				if _, ok := dig(rd[0], "BasePermissions", "Low").(string); !ok {
					t.Errorf("BasePermissions.Low is not a string: %v", dig(rd[0], "BasePermissions"))
				}
			}
			_, m = e.getJSON("/sites/site0/_api/web/siteusers?$filter=IsSiteAdmin%20eq%20true", accept)
			if u := results(accept, m); len(u) != 1 || dig(u, 0, "LoginName") != `i:0#.w|contoso\user01` {
				t.Errorf("site admins: got %v", u)
			}
		})
	}
	t.Run("unique library and items", func(t *testing.T) {
		id, _ := listInfo(t, e, "/sites/site0", "Library 1")
		lapi := "/sites/site0/_api/web/lists(guid'" + id + "')"
		_, m := e.getJSON(lapi+"/HasUniqueRoleAssignments", nometa)
		if m["value"] != true {
			t.Errorf("Library 1 HasUniqueRoleAssignments: got %v", m)
		}
		_, m = e.getJSON(lapi+"/roleassignments?$expand=Member", nometa)
		var titles []string
		for _, ra := range results(nometa, m) {
			titles = append(titles, dig(ra, "Member", "Title").(string))
		}
		if slices.Contains(titles, "Site 0 Visitors") || !slices.Contains(titles, "User 08") {
			t.Errorf("Library 1 assignments: %v", titles)
		}
		_, m = e.getJSON(lapi+"/items?$select=Id,HasUniqueRoleAssignments&$top=100", nometa)
		var unique, inherit int64
		for _, r := range results(nometa, m) {
			if dig(r, "HasUniqueRoleAssignments") == true {
				unique = num(dig(r, "Id"))
			} else {
				inherit = num(dig(r, "Id"))
			}
		}
		if unique == 0 || inherit == 0 {
			t.Fatalf("unique %d inherit %d", unique, inherit)
		}
		_, m = e.getJSON(fmt.Sprintf("%s/items(%d)/roleassignments?$expand=Member", lapi, unique), nometa)
		if n := len(results(nometa, m)); n != 2 {
			t.Errorf("unique item assignments: got %d, want 2", n)
		}
		// An inheriting item answers its parent's assignments.
		_, m = e.getJSON(fmt.Sprintf("%s/items(%d)/roleassignments", lapi, inherit), nometa)
		_, ml := e.getJSON(lapi+"/roleassignments", nometa)
		if len(results(nometa, m)) != len(results(nometa, ml)) {
			t.Errorf("inheriting item: %d assignments, list has %d", len(results(nometa, m)), len(results(nometa, ml)))
		}
	})
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t, Options{})
	steps := []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/_emu/sites", `{"name":"mkt","title":"Marketing"}`, 200},
		{"POST", "/_emu/lists", `{"web":"/sites/mkt","title":"Documents"}`, 200},
		{"POST", "/_emu/folders", `{"parent":"/sites/mkt/Shared Documents","name":"Plans"}`, 200},
		{"POST", "/_emu/files", `{"folder":"/sites/mkt/Shared Documents/Plans","name":"a.txt","size":10}`, 200},
		{"POST", "/_emu/update", `{"ref":"/sites/mkt/Shared Documents/Plans/a.txt","size":20}`, 200},
		{"POST", "/_emu/rename", `{"ref":"/sites/mkt/Shared Documents/Plans","name":"Plans 2"}`, 200},
		{"POST", "/_emu/delete", `{"ref":"/sites/mkt/Shared Documents/Plans 2"}`, 200},
		{"POST", "/_emu/restore", `{"ref":"/sites/mkt/Shared Documents/Plans 2"}`, 200},
		{"POST", "/_emu/restore", `{"ref":"/sites/mkt/Shared Documents/Plans 2"}`, 404},
		{"POST", "/_emu/faults", `{"endpoint":"web","status":429,"retryAfterSeconds":1}`, 200},
		{"POST", "/_emu/health", `{"score":4}`, 200},
		{"POST", "/_emu/clock", `{"advance":"1h"}`, 200},
		{"GET", "/_emu/snapshot", "", 200},
		{"GET", "/_emu/changes?site=/sites/mkt", "", 200},
		{"GET", "/_emu/token?site=/sites/mkt", "", 200},
		{"GET", "/_emu/nope", "", 404},
	}
	for _, st := range steps {
		resp, b := e.do(st.method, st.path, "", []byte(st.body), nil)
		if resp.StatusCode != st.status {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", st.method, st.path, resp.StatusCode, st.status, b)
		}
	}
	it, err := e.s.Lookup("/sites/mkt/Shared Documents/Plans 2/a.txt")
	if err != nil || it.Version != "2.0" || it.Size != 20 {
		t.Errorf("after admin calls: %+v %v", it, err)
	}
	if resp, _ := e.do("GET", "/sites/mkt/_api/web", nometa, nil, nil); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("injected fault: HTTP %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if e.s.HealthScore() != 4 {
		t.Errorf("health: got %d", e.s.HealthScore())
	}
	resp, _ := e.do("GET", "/sites/mkt/_api/web", nometa, nil, nil)
	if resp.Header.Get("X-SharePointHealthScore") != "4" {
		t.Errorf("X-SharePointHealthScore: got %q", resp.Header.Get("X-SharePointHealthScore"))
	}
}
