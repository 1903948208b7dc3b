package spemu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

var allChangeFlags = []string{"Item", "List", "Web", "Site", "User", "Group", "File", "Folder",
	"Add", "Update", "DeleteObject", "Rename", "Move", "Restore", "RoleAssignmentAdd", "RoleAssignmentDelete",
	"GroupMembershipAdd", "GroupMembershipDelete", "SecurityPolicy", "RoleDefinitionAdd", "RoleDefinitionDelete",
	"RoleDefinitionUpdate", "SystemUpdate", "Navigation"}

// changeQueryBody builds {"query": SP.ChangeQuery} for the flavour.
func changeQueryBody(accept, token string, limit any, flags []string) map[string]any {
	q := map[string]any{}
	for _, f := range flags {
		q[f] = true
	}
	if limit != nil {
		q["FetchLimit"] = limit
	}
	if token != "" {
		tok := map[string]any{"StringValue": token}
		if accept == verbose {
			tok["__metadata"] = map[string]string{"type": "SP.ChangeToken"}
		}
		q["ChangeTokenStart"] = tok
	}
	if accept == verbose {
		q["__metadata"] = map[string]string{"type": "SP.ChangeQuery"}
	}
	return map[string]any{"query": q}
}

// allChanges pages through getchanges from token until an empty batch.
func (e *env) allChanges(api, accept, digest, token string, limit int, flags []string) ([]map[string]any, string) {
	e.t.Helper()
	var out []map[string]any
	for range 1000 {
		code, m := e.postJSON(api+"/getchanges", accept, digest, changeQueryBody(accept, token, strconv.Itoa(limit), flags))
		if code != 200 {
			e.t.Fatalf("getchanges: HTTP %d %v", code, m)
		}
		batch := results(accept, m)
		if len(batch) > limit {
			e.t.Fatalf("batch of %d above FetchLimit %d", len(batch), limit)
		}
		if len(batch) == 0 {
			return out, token
		}
		for _, c := range batch {
			cm := c.(map[string]any)
			out = append(out, cm)
			token = dig(cm, "ChangeToken", "StringValue").(string)
		}
	}
	e.t.Fatal("getchanges never ended")
	return nil, ""
}

// changeSig is a change reduced to what a test asserts.
type changeSig struct {
	typ  int64
	kind string // SP.ChangeItem -> Item
	url  string // ServerRelativeUrl, RootFolderUrl or ""
}

func sigOf(accept string, c map[string]any) changeSig {
	kind := ""
	if accept == verbose {
		kind, _ = dig(c, "__metadata", "type").(string)
	} else {
		kind, _ = c["odata.type"].(string)
	}
	url, _ := c["ServerRelativeUrl"].(string)
	if u, ok := c["RootFolderUrl"].(string); ok {
		url = u
	}
	return changeSig{num(c["ChangeType"]), strings.TrimPrefix(kind, "SP.Change"), url}
}

func TestGetChangesEveryMutation(t *testing.T) {
	e := newEnv(t, Options{})
	s := e.s
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddSite("mkt", "Marketing"))
	must(s.AddList("/sites/mkt", "Documents", TemplateDocumentLibrary))
	must(s.AddList("/sites/mkt", "Archive", TemplateDocumentLibrary))
	must(s.AddList("/sites/mkt", "Tasks", TemplateGenericList))
	for _, u := range []string{"alice", "bob"} {
		if err := s.AddUser("/sites/mkt", User{Login: `i:0#.w|contoso\` + u, Email: u + "@contoso.com"}); err != nil {
			t.Fatal(err)
		}
	}
	const D = "/sites/mkt/Shared Documents"
	digest := e.digest("/sites/mkt")
	token, _ := s.CurrentChangeToken("/sites/mkt")
	var subVersion string
	steps := []struct {
		name string
		do   func() error
		want []changeSig
	}{
		{"AddFolder", func() error { _, err := s.AddFolder(D, "Plans"); return err }, []changeSig{{1, "Item", D + "/Plans"}}},
		{"AddFolder nested", func() error { _, err := s.AddFolder(D+"/Plans", "Sub"); return err }, []changeSig{{1, "Item", D + "/Plans/Sub"}}},
		{"AddFile", func() error { _, err := s.AddFile(D+"/Plans/Sub", "a.docx", FileSpec{Size: 10}); return err }, []changeSig{{1, "Item", D + "/Plans/Sub/a.docx"}}},
		{"AddFile awkward", func() error {
			_, err := s.AddFile(D+"/Plans", "O'Brien's #1 100%.docx", FileSpec{Size: 10})
			return err
		},
			[]changeSig{{1, "Item", D + "/Plans/O'Brien's #1 100%.docx"}}},
		{"UpdateFile", func() error { _, err := s.UpdateFile(D+"/Plans/Sub/a.docx", FileSpec{Size: 11}); return err },
			[]changeSig{{2, "Item", D + "/Plans/Sub/a.docx"}}},
		{"AddItem", func() error { _, err := s.AddItem("/sites/mkt/Lists/Tasks", "t1"); return err }, []changeSig{{1, "Item", "/sites/mkt/Lists/Tasks/1_.000"}}},
		{"UpdateItem", func() error { _, err := s.UpdateItem("/sites/mkt/Lists/Tasks/1_.000", "t1 v2"); return err },
			[]changeSig{{2, "Item", "/sites/mkt/Lists/Tasks/1_.000"}}},
		{"Rename folder: one change, children silent", func() error { _, err := s.Rename(D+"/Plans", "Plans 2"); return err },
			[]changeSig{{4, "Item", D + "/Plans 2"}}},
		{"Move within the library", func() error { _, err := s.Move(D+"/Plans 2/O'Brien's #1 100%.docx", D); return err },
			[]changeSig{{5, "Item", D + "/Plans 2/O'Brien's #1 100%.docx"}, {6, "Item", D + "/O'Brien's #1 100%.docx"}}},
		{"Move to another library", func() error { _, err := s.Move(D+"/Plans 2/Sub/a.docx", "/sites/mkt/Archive"); return err },
			[]changeSig{{5, "Item", D + "/Plans 2/Sub/a.docx"}, {6, "Item", "/sites/mkt/Archive/a.docx"}}},
		{"Delete file", func() error { return s.Delete(D + "/O'Brien's #1 100%.docx") }, []changeSig{{3, "Item", D + "/O'Brien's #1 100%.docx"}}},
		{"Put a file back under Sub", func() error { _, err := s.AddFile(D+"/Plans 2/Sub", "b.txt", FileSpec{Size: 3}); return err },
			[]changeSig{{1, "Item", D + "/Plans 2/Sub/b.txt"}}},
		{"DeleteFolder: one DeleteObject", func() error { return s.DeleteFolder(D + "/Plans 2") }, []changeSig{{3, "Item", D + "/Plans 2"}}},
		{"Restore subtree: one Restore", func() error { _, err := s.Restore(D + "/Plans 2"); return err }, []changeSig{{7, "Item", D + "/Plans 2"}}},
		{"BreakInheritance", func() error {
			it, _ := s.Lookup(D + "/Plans 2/Sub/b.txt")
			subVersion = it.Version
			return s.BreakInheritance(D+"/Plans 2/Sub", true)
		}, []changeSig{{17, "Item", D + "/Plans 2/Sub"}}},
		{"AddRoleAssignment", func() error { return s.AddRoleAssignment(D+"/Plans 2/Sub", `i:0#.w|contoso\alice`, "Read") },
			[]changeSig{{11, "Item", D + "/Plans 2/Sub"}}},
		{"RemoveRoleAssignment", func() error { return s.RemoveRoleAssignment(D+"/Plans 2/Sub", `i:0#.w|contoso\alice`) },
			[]changeSig{{12, "Item", D + "/Plans 2/Sub"}}},
		{"ResetInheritance", func() error { return s.ResetInheritance(D + "/Plans 2/Sub") }, []changeSig{{18, "Item", D + "/Plans 2/Sub"}}},
		{"SetPermissions on a list", func() error { return s.SetPermissions(D, Grant{Login: `i:0#.w|contoso\bob`, Role: "Read"}) },
			[]changeSig{{17, "List", D}, {11, "List", D}}},
		{"AddGroupMember", func() error { return s.AddGroupMember("/sites/mkt", "Marketing Members", `i:0#.w|contoso\alice`) },
			[]changeSig{{13, "Group", ""}}},
		{"RemoveGroupMember", func() error { return s.RemoveGroupMember("/sites/mkt", "Marketing Members", `i:0#.w|contoso\alice`) },
			[]changeSig{{14, "Group", ""}}},
		{"AddUser", func() error { return s.AddUser("/sites/mkt", User{Login: `i:0#.w|contoso\carol`}) }, []changeSig{{1, "User", ""}}},
		{"AddList and DeleteList", func() error {
			if _, err := s.AddList("/sites/mkt", "Later", TemplateDocumentLibrary); err != nil {
				return err
			}
			return s.DeleteList("/sites/mkt/Later")
		}, []changeSig{{1, "List", "/sites/mkt/Later"}, {3, "List", "/sites/mkt/Later"}}},
		{"AddWeb", func() error { _, err := s.AddWeb("/sites/mkt", "team", "Team"); return err }, []changeSig{{1, "Web", ""}}},
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); err != nil {
				t.Fatal(err)
			}
			// nometadata carries no odata.type: minimal is the light flavour that tells items from lists.
			accept := []string{verbose, minimal}[i%2]
			got, last := e.allChanges("/sites/mkt/_api/site", accept, digest, token, 2, allChangeFlags)
			var sigs []changeSig
			for _, c := range got {
				sigs = append(sigs, sigOf(accept, c))
				if _, err := parseChangeToken(dig(c, "ChangeToken", "StringValue").(string)); err != nil {
					t.Errorf("change token: %v", err)
				}
				if c["SiteId"] == nil || c["Time"] == nil {
					t.Errorf("change lacks SiteId/Time: %v", c)
				}
			}
			if fmt.Sprint(sigs) != fmt.Sprint(st.want) {
				t.Fatalf("changes: got %v, want %v", sigs, st.want)
			}
			token = last
		})
	}
	t.Run("permission changes left content alone", func(t *testing.T) {
		it, err := s.Lookup(D + "/Plans 2/Sub/b.txt")
		if err != nil || it.Version != subVersion {
			t.Errorf("b.txt: %+v %v, want version %s", it, err, subVersion)
		}
	})
	t.Run("restored subtree keeps ids", func(t *testing.T) {
		it, err := s.Lookup(D + "/Plans 2/Sub/b.txt")
		if err != nil || it.ID != 5 {
			t.Errorf("b.txt after restore: %+v %v, want id 5", it, err)
		}
		if _, err := s.Restore(D + "/Plans 2"); !errors.Is(err, ErrNotInRecycleBin) {
			t.Errorf("second restore: %v, want ErrNotInRecycleBin", err)
		}
	})
}

func TestGetChangesFlagsAndScopes(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 12, ItemsPerList: 3, Libraries: 2, WebsPerSite: 1, PlainNames: true, UniqueEvery: -1})
	s := e.s
	d := e.digest("/sites/site0")
	tok, _ := s.CurrentChangeToken("/sites/site0")
	docID, _ := listInfo(t, e, "/sites/site0", "Documents")
	libID, _ := listInfo(t, e, "/sites/site0", "Library 1")
	if _, err := s.AddFile("/sites/site0/Shared Documents", "new.txt", FileSpec{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateFile("/sites/site0/Shared Documents/new.txt", FileSpec{Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move("/sites/site0/Shared Documents/new.txt", "/sites/site0/Library 1"); err != nil {
		t.Fatal(err)
	}
	if err := s.BreakInheritance("/sites/site0/Library 1/new.txt", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddFile("/sites/site0/web0/Shared Documents", "sub.txt", FileSpec{Size: 1}); err != nil {
		t.Fatal(err)
	}
	flagTests := []struct {
		name  string
		flags []string
		want  []int64
	}{
		{"Item and Add only", []string{"Item", "Add"}, []int64{1, 1}},
		{"Item and Update only", []string{"Item", "Update"}, []int64{2}},
		{"Move selects MoveAway and MoveInto", []string{"Item", "Move"}, []int64{5, 6}},
		{"SecurityPolicy selects ScopeAdd", []string{"Item", "SecurityPolicy"}, []int64{17}},
		{"change types without object types select nothing", []string{"Add", "Update", "Move"}, nil},
		{"File and Folder do not select list items", []string{"File", "Folder", "Add", "Update", "Move"}, nil},
		{"List object only", []string{"List", "Add", "Update"}, nil},
	}
	for _, tt := range flagTests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := e.allChanges("/sites/site0/_api/site", nometa, d, tok, 1000, tt.flags)
			var types []int64
			for _, c := range got {
				types = append(types, num(c["ChangeType"]))
			}
			if fmt.Sprint(types) != fmt.Sprint(tt.want) {
				t.Errorf("types: got %v, want %v", types, tt.want)
			}
		})
	}
	webTok := changeToken{scopeWeb, s.sites[0].root.id, time.Now(), 0}.String()
	subTok := changeToken{scopeWeb, s.sites[0].root.subwebs[0].id, time.Now(), 0}.String()
	docTok := fmt.Sprintf("1;3;%s;%d;0", docID, toTicks(time.Now()))
	libTok := fmt.Sprintf("1;3;%s;%d;0", libID, toTicks(time.Now()))
	scopeTests := []struct {
		name, api, token string
		flags            []string
		wantErr          string
		wantScope        string // "1;3;<id>" prefix of result tokens
		wantN            int
		wantSub          bool // the sub-web's change is included
	}{
		{"list scope returns list tokens", "/sites/site0/_api/web/lists(guid'" + docID + "')", docTok, []string{"Item", "Add", "Update", "Move"},
			"", "1;3;" + docID + ";", 3 + 3, false},
		{"other list's token", "/sites/site0/_api/web/lists(guid'" + docID + "')", libTok, []string{"Item", "Add"},
			"-2130575173, Microsoft.SharePoint.SPException", "", 0, false},
		{"site token on a list", "/sites/site0/_api/web/lists(guid'" + docID + "')", tok, []string{"Item", "Add"},
			"-2130575173, Microsoft.SharePoint.SPException", "", 0, false},
		{"web scope excludes sub-webs", "/sites/site0/_api/web", webTok, []string{"Item", "Add"}, "", "1;2;", 0, false},
		{"sub-web scope", "/sites/site0/web0/_api/web", subTok, []string{"Item", "Add"}, "", "1;2;" + s.sites[0].root.subwebs[0].id.String(), 0, true},
		{"web RecursiveAll includes sub-webs", "/sites/site0/_api/web", webTok, []string{"Item", "Add", "RecursiveAll"}, "", "1;2;", 0, true},
		{"web token on the site", "/sites/site0/_api/site", webTok, []string{"Item"}, "-2130575173, Microsoft.SharePoint.SPException", "", 0, false},
		{"malformed token", "/sites/site0/_api/site", "1;1;nope", []string{"Item"}, "-1, System.ArgumentException", "", 0, false},
	}
	for _, tt := range scopeTests {
		t.Run(tt.name, func(t *testing.T) {
			code, m := e.postJSON(tt.api+"/getchanges", nometa, d, changeQueryBody(nometa, tt.token, "1000", tt.flags))
			if tt.wantErr != "" {
				if code == 200 || errCode(m) != tt.wantErr {
					t.Errorf("HTTP %d %q, want error %q", code, errCode(m), tt.wantErr)
				}
				return
			}
			if code != 200 {
				t.Fatalf("HTTP %d %v", code, m)
			}
			got := results(nometa, m)
			for _, c := range got {
				if tk := dig(c, "ChangeToken", "StringValue").(string); !strings.HasPrefix(tk, tt.wantScope) {
					t.Errorf("token %q, want prefix %q", tk, tt.wantScope)
				}
			}
			if tt.wantN > 0 && len(got) != tt.wantN {
				t.Errorf("changes: got %d, want %d", len(got), tt.wantN)
			}
			urls := map[string]bool{}
			for _, c := range got {
				urls[fmt.Sprint(dig(c, "ServerRelativeUrl"))] = true
			}
			if sub := urls["/sites/site0/web0/Shared Documents/sub.txt"]; sub != tt.wantSub {
				t.Errorf("sub-web change present %v, want %v (%d changes)", sub, tt.wantSub, len(got))
			}
		})
	}
}

func TestGetChangesPaging(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 13, ItemsPerList: 2500, PlainNames: true})
	d := e.digest("/sites/site0")
	for _, accept := range []string{verbose, nometa} {
		t.Run(accept, func(t *testing.T) {
			var sizes []int
			seen := map[string]bool{}
			token := ""
			for {
				code, m := e.postJSON("/sites/site0/_api/site/getchanges", accept, d, changeQueryBody(accept, token, "5000", []string{"Item", "Add"}))
				if code != 200 {
					t.Fatalf("HTTP %d %v", code, m)
				}
				batch := results(accept, m)
				sizes = append(sizes, len(batch))
				if len(batch) == 0 {
					break
				}
				for _, c := range batch {
					k := fmt.Sprint(c.(map[string]any)["UniqueId"])
					if seen[k] {
						t.Fatalf("change for %s twice", k)
					}
					seen[k] = true
					token = dig(c, "ChangeToken", "StringValue").(string)
				}
			}
			if fmt.Sprint(sizes) != "[1000 1000 502 0]" { // 2500 files and 2 hidden list items
				t.Errorf("batch sizes with FetchLimit 5000 (capped at 1000): got %v", sizes)
			}
		})
	}
}

func TestGetChangesRequestValidation(t *testing.T) {
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 14, ItemsPerList: 20, PlainNames: true})
	d := e.digest("/sites/site0")
	const odataErr = "-1, Microsoft.Data.OData.ODataException"
	tests := []struct {
		name, ct, body string
		wantStatus     int
		wantCode       string
	}{
		{"verbose ok", verbose, `{"query":{"__metadata":{"type":"SP.ChangeQuery"},"Item":true,"Add":true,"FetchLimit":"10"}}`, 200, ""},
		{"verbose without __metadata", verbose, `{"query":{"Item":true,"Add":true}}`, 400, odataErr},
		{"verbose wrong type", verbose, `{"query":{"__metadata":{"type":"SP.ChangeToken"},"Item":true}}`, 400, odataErr},
		{"verbose FetchLimit as a number", verbose, `{"query":{"__metadata":{"type":"SP.ChangeQuery"},"Item":true,"FetchLimit":10}}`, 400, odataErr},
		{"verbose token without its __metadata", verbose, `{"query":{"__metadata":{"type":"SP.ChangeQuery"},"Item":true,"ChangeTokenStart":{"StringValue":"x"}}}`, 400, odataErr},
		{"light with __metadata", nometa, `{"query":{"__metadata":{"type":"SP.ChangeQuery"},"Item":true}}`, 400, odataErr},
		{"light FetchLimit number ok", nometa, `{"query":{"Item":true,"Add":true,"FetchLimit":10}}`, 200, ""},
		{"light FetchLimit string ok", nometa, `{"query":{"Item":true,"Add":true,"FetchLimit":"10"}}`, 200, ""},
		{"unknown property", nometa, `{"query":{"Item":true,"Bogus":true}}`, 400, odataErr},
		{"flag not a boolean", nometa, `{"query":{"Item":"yes"}}`, 400, odataErr},
		{"not JSON", nometa, `{"query":`, 400, odataErr},
		{"missing query", nometa, `{"q":{}}`, 400, odataErr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m := e.postJSON("/sites/site0/_api/site/getchanges", tt.ct, d, tt.body)
			if code != tt.wantStatus || errCode(m) != tt.wantCode {
				t.Errorf("HTTP %d %q, want %d %q (%v)", code, errCode(m), tt.wantStatus, tt.wantCode, m)
			}
			if code == 200 && len(results(tt.ct, m)) != 10 {
				t.Errorf("FetchLimit 10: got %d changes", len(results(tt.ct, m)))
			}
		})
	}
	t.Run("GET is refused", func(t *testing.T) {
		if code, _ := e.getJSON("/sites/site0/_api/site/getchanges", nometa); code != 405 {
			t.Errorf("HTTP %d, want 405", code)
		}
	})
}

func TestChangeItemFieldsPerVersion(t *testing.T) {
	tests := []struct {
		version     Version
		has, hasNot []string
	}{
		{SP2019, []string{"ItemId", "ListId", "WebId", "ServerRelativeUrl", "Editor", "UniqueId", "FileSystemObjectType", "ListTitle", "Title"}, nil},
		{SP2016, []string{"ItemId", "ListId", "WebId", "ServerRelativeUrl", "Editor"}, []string{"UniqueId", "ListTitle"}},
		{SP2013, []string{"ItemId", "ListId", "WebId"}, []string{"ServerRelativeUrl", "UniqueId", "Editor"}},
	}
	for _, tt := range tests {
		t.Run(tt.version.String(), func(t *testing.T) {
			e := newEnv(t, Options{Version: tt.version})
			e.generate(Spec{Seed: 15, ItemsPerList: 1, PlainNames: true})
			got, _ := e.allChanges("/sites/site0/_api/site", verbose, e.digest("/sites/site0"), "", 1000, []string{"Item", "Add"})
			if len(got) == 0 {
				t.Fatal("no changes")
			}
			c := got[0]
			if dig(c, "__metadata", "type") != "SP.ChangeItem" || !strings.HasSuffix(fmt.Sprint(dig(c, "__metadata", "uri")), "/_api/SP.ChangeItem") {
				t.Errorf("__metadata: %v", c["__metadata"])
			}
			for _, f := range tt.has {
				if _, ok := c[f]; !ok {
					t.Errorf("missing %s", f)
				}
			}
			for _, f := range tt.hasNot {
				if _, ok := c[f]; ok {
					t.Errorf("unexpected %s", f)
				}
			}
		})
	}
}

func TestChangeLogRetention(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, Options{Retention: 48 * time.Hour, Now: func() time.Time { return now }})
	s := e.s
	if _, err := s.AddSite("mkt", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddList("/sites/mkt", "Documents", TemplateDocumentLibrary); err != nil {
		t.Fatal(err)
	}
	t0, _ := s.CurrentChangeToken("/sites/mkt")
	if _, err := s.AddFile("/sites/mkt/Shared Documents", "a.txt", FileSpec{Size: 1}); err != nil {
		t.Fatal(err)
	}
	t1, _ := s.CurrentChangeToken("/sites/mkt")
	s.Advance(49 * time.Hour)
	if _, err := s.AddFile("/sites/mkt/Shared Documents", "b.txt", FileSpec{Size: 1}); err != nil {
		t.Fatal(err)
	}
	d := e.digest("/sites/mkt")
	tests := []struct {
		name, token string
		flags       []string
		wantCode    string
		wantURLs    string
	}{
		{"token before pruned changes", t0, []string{"Item", "Add"}, "-2130575172, Microsoft.SharePoint.SPException", ""},
		{"token after the pruned changes", t1, []string{"Item", "Add"}, "", "[/sites/mkt/Shared Documents/b.txt]"},
		{"no token starts at the oldest kept change", "", []string{"Item", "Add"}, "", "[/sites/mkt/Shared Documents/b.txt]"},
		{"IgnoreStartTokenNotFoundError", t0, []string{"Item", "Add", "IgnoreStartTokenNotFoundError"}, "", "[/sites/mkt/Shared Documents/b.txt]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, accept := range []string{verbose, nometa} {
				code, m := e.postJSON("/sites/mkt/_api/site/getchanges", accept, d, changeQueryBody(accept, tt.token, "100", tt.flags))
				if tt.wantCode != "" {
					if code != 500 || errCode(m) != tt.wantCode {
						t.Errorf("%s: HTTP %d %q, want 500 %q", accept, code, errCode(m), tt.wantCode)
					}
					msg := fmt.Sprint(dig(m, "error", "message", "value"), dig(m, "odata.error", "message", "value"))
					if !strings.Contains(msg, "The changeToken refers to a time before the start of the current change log.") {
						t.Errorf("message: %s", msg)
					}
					continue
				}
				var urls []string
				for _, c := range results(accept, m) {
					urls = append(urls, fmt.Sprint(c.(map[string]any)["ServerRelativeUrl"]))
				}
				if fmt.Sprint(urls) != tt.wantURLs {
					t.Errorf("%s: HTTP %d changes %v, want %s", accept, code, urls, tt.wantURLs)
				}
			}
		})
	}
	ch, _ := s.Changes("/sites/mkt")
	if len(ch) != 1 {
		t.Errorf("kept changes: got %d, want 1", len(ch))
	}
}
