package sharepoint

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Site is a site collection.
type Site struct {
	ID                 string
	URL                string
	ServerRelativeURL  string
	CurrentChangeToken string // empty on SharePoint 2013
}

type changeTokenJSON struct {
	StringValue string
}

// Site reads the site collection, with its current change token.
func (c *Client) Site(ctx context.Context) (Site, error) {
	b, err := c.getJSON(ctx, c.abs("", "site?$select=Id,Url,ServerRelativeUrl,CurrentChangeToken"), "web")
	if err != nil {
		return Site{}, err
	}
	raw, err := decodeEntity(b)
	if err != nil {
		return Site{}, err
	}
	var s struct {
		ID                 string `json:"Id"`
		URL                string `json:"Url"`
		ServerRelativeURL  string `json:"ServerRelativeUrl"`
		CurrentChangeToken *changeTokenJSON
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return Site{}, fmt.Errorf("sharepoint site: %w", err)
	}
	out := Site{ID: normGUID(s.ID), URL: strings.TrimRight(s.URL, "/"), ServerRelativeURL: s.ServerRelativeURL}
	if out.URL == "" {
		out.URL = c.base.String()
	}
	if s.CurrentChangeToken != nil {
		out.CurrentChangeToken = s.CurrentChangeToken.StringValue
	}
	return out, nil
}

// Web is a web (the root web of a site, or a sub-web).
type Web struct {
	ID                string
	Title             string
	URL               string
	ServerRelativeURL string
}

type webJSON struct {
	ID                string `json:"Id"`
	Title             string
	URL               string `json:"Url"`
	ServerRelativeURL string `json:"ServerRelativeUrl"`
}

func (w webJSON) web() Web {
	return Web{ID: normGUID(w.ID), Title: w.Title, URL: strings.TrimRight(w.URL, "/"), ServerRelativeURL: w.ServerRelativeURL}
}

// Webs returns the root web and every sub-web below it, depth first.
func (c *Client) Webs(ctx context.Context) ([]Web, error) {
	b, err := c.getJSON(ctx, c.abs("", "web?$select=Id,Title,Url,ServerRelativeUrl"), "web")
	if err != nil {
		return nil, err
	}
	raw, err := decodeEntity(b)
	if err != nil {
		return nil, err
	}
	var root webJSON
	if err := json.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("sharepoint web: %w", err)
	}
	out := []Web{root.web()}
	if out[0].URL == "" {
		out[0].URL = c.base.String()
	}
	for i := 0; i < len(out); i++ {
		w := out[i]
		err := c.each(ctx, w.URL, c.abs(w.URL, "web/webs?$select=Id,Title,Url,ServerRelativeUrl&$top=500"), "web", func(e json.RawMessage) error {
			var sub webJSON
			if err := json.Unmarshal(e, &sub); err != nil {
				return fmt.Errorf("sharepoint webs of %s: %w", w.URL, err)
			}
			out = append(out, sub.web())
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// List is a list or document library.
type List struct {
	ID                string
	Title             string
	BaseType          int // 1: document library
	BaseTemplate      int
	ItemCount         int
	RootFolder        string // server-relative URL
	HasUniqueRoles    bool
	WebURL            string
	WebID             string
	IsDocumentLibrary bool
}

// Lists returns the visible lists of web.
func (c *Client) Lists(ctx context.Context, w Web) ([]List, error) {
	var out []List
	u := c.abs(w.URL, "web/lists?$select=Id,Title,BaseType,BaseTemplate,ItemCount,Hidden,HasUniqueRoleAssignments,RootFolder/ServerRelativeUrl&$expand=RootFolder&$filter=(Hidden%20eq%20false)")
	err := c.each(ctx, w.URL, u, "lists", func(e json.RawMessage) error {
		var l struct {
			ID                       string `json:"Id"`
			Title                    string
			BaseType                 int
			BaseTemplate             int
			ItemCount                int
			Hidden                   bool
			HasUniqueRoleAssignments bool
			RootFolder               json.RawMessage
		}
		if err := json.Unmarshal(e, &l); err != nil {
			return fmt.Errorf("sharepoint lists of %s: %w", w.URL, err)
		}
		if l.Hidden {
			return nil
		}
		var rf struct{ ServerRelativeUrl string }
		if !deferred(l.RootFolder) {
			json.Unmarshal(l.RootFolder, &rf)
		}
		out = append(out, List{ID: normGUID(l.ID), Title: l.Title, BaseType: l.BaseType, BaseTemplate: l.BaseTemplate, ItemCount: l.ItemCount,
			RootFolder: rf.ServerRelativeUrl, HasUniqueRoles: l.HasUniqueRoleAssignments, WebURL: w.URL, WebID: w.ID, IsDocumentLibrary: l.BaseType == 1})
		return nil
	})
	return out, err
}

// Item is a list item: a file, a folder, or a plain item.
type Item struct {
	ID             int
	UniqueID       string
	Title          string
	FileRef        string // server-relative URL
	FileLeafRef    string
	FileDirRef     string
	IsFolder       bool
	HasFile        bool
	Version        string
	ETag           string
	Created        time.Time
	Modified       time.Time
	Length         int64
	HasUniqueRoles bool
	// RolesUnknown is true for items read through RenderListDataAsStream,
	// whose rows do not say whether they have unique permissions.
	RolesUnknown bool
}

// Kind is "file", "folder" or "item".
func (it Item) Kind() string {
	switch {
	case it.IsFolder:
		return "folder"
	case it.HasFile:
		return "file"
	}
	return "item"
}

const itemSelect = "$select=Id,Title,FileRef,FileLeafRef,FileDirRef,FileSystemObjectType,Created,Modified,OData__UIVersionString,owshiddenversion,UniqueId,GUID,HasUniqueRoleAssignments,File/Length,File/ETag,File/Name,File/ServerRelativeUrl&$expand=File"

type itemJSON struct {
	ID                       int `json:"Id"`
	Title                    string
	FileRef                  string
	FileLeafRef              string
	FileDirRef               string
	FileSystemObjectType     int
	Created                  Time
	Modified                 Time
	UIVersionString          string `json:"OData__UIVersionString"`
	HiddenVersion            Int64  `json:"owshiddenversion"`
	UniqueID                 string `json:"UniqueId"`
	GUID                     string
	HasUniqueRoleAssignments bool
	File                     json.RawMessage
	Metadata                 *struct {
		ETag string `json:"etag"`
	} `json:"__metadata"`
	ODataETag string `json:"odata.etag"`
}

func (c *Client) item(raw json.RawMessage) (Item, error) {
	var j itemJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return Item{}, fmt.Errorf("sharepoint item: %w", err)
	}
	return c.itemFrom(j), nil
}

// itemFrom makes an Item of its JSON, in either format.
func (c *Client) itemFrom(j itemJSON) Item {
	it := Item{ID: j.ID, UniqueID: normGUID(j.UniqueID), Title: j.Title, FileRef: j.FileRef, FileLeafRef: j.FileLeafRef, FileDirRef: j.FileDirRef,
		IsFolder: j.FileSystemObjectType == 1, Version: j.UIVersionString, Created: c.localTime(j.Created), Modified: c.localTime(j.Modified),
		HasUniqueRoles: j.HasUniqueRoleAssignments}
	if it.UniqueID == "" {
		it.UniqueID = normGUID(j.GUID)
	}
	if j.Metadata != nil {
		it.ETag = j.Metadata.ETag
	}
	if it.ETag == "" {
		it.ETag = j.ODataETag
	}
	if it.ETag == "" && j.HiddenVersion > 0 {
		// nometadata sends no etag: an item's is its owshiddenversion.
		it.ETag = fmt.Sprintf(`"%d"`, j.HiddenVersion)
	}
	if !it.IsFolder && !deferred(j.File) {
		var f struct {
			Length Int64
			ETag   string
			Name   string
		}
		if err := json.Unmarshal(j.File, &f); err == nil && (f.Name != "" || f.Length > 0 || f.ETag != "") {
			it.HasFile, it.Length = true, int64(f.Length)
			if f.ETag != "" {
				it.ETag = f.ETag
			}
		}
	}
	if it.FileLeafRef == "" && it.FileRef != "" {
		it.FileLeafRef = it.FileRef[strings.LastIndexByte(it.FileRef, '/')+1:]
	}
	return it
}

// localTime re-reads a time parsed as UTC in the site's zone when the
// server sent it without an offset. Offsets that were present are kept.
func (c *Client) localTime(t Time) time.Time {
	if !t.NoOffset || t.IsZero() {
		return t.Time
	}
	y, mo, d := t.Date()
	h, mi, sec := t.Clock()
	return time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), c.cfg.Location).UTC()
}

func listPath(l List) string { return "web/lists(guid'" + l.ID + "')" }

// Items calls fn for the items of l with an ID above afterID, in ID order,
// pageSize at a time (at most 5000). A list over the view threshold is read
// through RenderListDataAsStream instead.
func (c *Client) Items(ctx context.Context, l List, afterID, pageSize int, fn func(Item) error) error {
	if pageSize <= 0 || pageSize > 5000 {
		pageSize = 500
	}
	u := c.abs(l.WebURL, fmt.Sprintf("%s/items?%s&$top=%d&$orderby=Id", listPath(l), itemSelect, pageSize))
	if afterID > 0 {
		u += fmt.Sprintf("&$filter=Id%%20gt%%20%d", afterID)
	}
	err := eachOf(ctx, c, l.WebURL, u, "items", func(j itemJSON) error {
		it := c.itemFrom(j)
		if it.ID <= afterID {
			return nil
		}
		afterID = it.ID
		return fn(it)
	})
	if IsCode(err, CodeThrottled) {
		c.log.Info("list over the view threshold; reading it with RenderListDataAsStream", "list", l.Title)
		return c.renderItems(ctx, l, afterID, pageSize, fn)
	}
	return err
}

// renderItems pages a large list with RenderListDataAsStream, whose rows
// hold strings.
func (c *Client) renderItems(ctx context.Context, l List, afterID, pageSize int, fn func(Item) error) error {
	base := c.abs(l.WebURL, listPath(l)+"/RenderListDataAsStream")
	query := ""
	if afterID > 0 {
		query = fmt.Sprintf("Paged=TRUE&p_ID=%d", afterID)
	}
	for {
		u := base
		if query != "" {
			u += "?" + query
		}
		b, err := c.postJSON(ctx, u, "render", c.renderBody(pageSize))
		if IsCode(err, CodeThrottled) && pageSize > 50 {
			// A page larger than the view threshold is refused too: halve it.
			pageSize /= 2
			continue
		}
		if err != nil {
			return err
		}
		var page struct {
			Row      []map[string]any
			NextHref string
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return fmt.Errorf("sharepoint RenderListDataAsStream %s: %w", l.Title, err)
		}
		for _, row := range page.Row {
			it := rowItem(row, l.IsDocumentLibrary)
			if it.ID <= afterID {
				continue
			}
			afterID = it.ID
			if err := fn(it); err != nil {
				return err
			}
		}
		if page.NextHref == "" || len(page.Row) == 0 {
			return nil
		}
		query = strings.TrimPrefix(page.NextHref, "?")
		if i := strings.IndexByte(page.NextHref, '?'); i >= 0 {
			query = page.NextHref[i+1:]
		}
	}
}

func (c *Client) renderBody(pageSize int) map[string]any {
	viewXML := fmt.Sprintf(`<View Scope="RecursiveAll"><Query><OrderBy><FieldRef Name="ID" Ascending="TRUE"/></OrderBy></Query>`+
		`<ViewFields><FieldRef Name="ID"/><FieldRef Name="Title"/><FieldRef Name="FileRef"/><FieldRef Name="FileLeafRef"/><FieldRef Name="FileDirRef"/>`+
		`<FieldRef Name="FSObjType"/><FieldRef Name="Created"/><FieldRef Name="Modified"/><FieldRef Name="_UIVersionString"/><FieldRef Name="UniqueId"/>`+
		`<FieldRef Name="File_x0020_Size"/><FieldRef Name="SMTotalFileStreamSize"/><FieldRef Name="HasUniqueRoleAssignments"/></ViewFields>`+
		`<RowLimit Paged="TRUE">%d</RowLimit></View>`, pageSize)
	return map[string]any{"parameters": c.typed("SP.RenderListDataParameters", map[string]any{
		"ViewXml":       viewXML,
		"RenderOptions": 2,
	})}
}

func rowString(row map[string]any, keys ...string) string {
	for _, k := range keys {
		switch v := row[k].(type) {
		case string:
			if v != "" {
				return v
			}
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			return strconv.FormatBool(v)
		}
	}
	return ""
}

func rowItem(row map[string]any, library bool) Item {
	id, _ := strconv.Atoi(rowString(row, "ID", "Id"))
	size, _ := strconv.ParseInt(strings.ReplaceAll(rowString(row, "File_x0020_Size", "SMTotalFileStreamSize", "FileSizeDisplay"), ",", ""), 10, 64)
	it := Item{ID: id, Title: rowString(row, "Title"), FileRef: rowString(row, "FileRef"), FileLeafRef: rowString(row, "FileLeafRef"),
		FileDirRef: rowString(row, "FileDirRef"), Version: rowString(row, "_UIVersionString", "OData__UIVersionString"),
		UniqueID: normGUID(rowString(row, "UniqueId")), Length: size}
	fs := rowString(row, "FSObjType", "FileSystemObjectType")
	it.IsFolder = fs == "1"
	it.HasFile = !it.IsFolder && library // in a document library every non-folder item is a file
	for _, f := range []struct {
		key string
		dst *time.Time
	}{{"Created", &it.Created}, {"Modified", &it.Modified}} {
		var t Time
		if s := rowString(row, f.key+".", f.key); s != "" && t.UnmarshalJSON([]byte(strconv.Quote(s))) == nil {
			*f.dst = t.Time
		}
	}
	switch strings.ToLower(rowString(row, "HasUniqueRoleAssignments")) {
	case "1", "true", "yes":
		it.HasUniqueRoles = true
	case "0", "false", "no":
	default:
		it.RolesUnknown = true
	}
	return it
}

// Item reads one item of l by ID.
func (c *Client) Item(ctx context.Context, l List, id int) (Item, error) {
	b, err := c.getJSON(ctx, c.abs(l.WebURL, fmt.Sprintf("%s/items(%d)?%s", listPath(l), id, itemSelect)), "items")
	if err != nil {
		return Item{}, err
	}
	raw, err := decodeEntity(b)
	if err != nil {
		return Item{}, err
	}
	return c.item(raw)
}

// itemsPerQuery bounds the IDs of one ItemsByID query, keeping its URL
// well under the 2,048 characters IIS and proxies commonly allow.
const itemsPerQuery = 40

// ItemsByID calls fn for each item of l whose ID is in ids and that still
// exists, reading them itemsPerQuery at a time with an $filter of Id
// equalities. Items that are gone are skipped: the caller knows which IDs
// it asked for. A list where such a query hits the view threshold (a
// SharePoint that refuses every query on a large list) is read one item at
// a time instead, from then on.
func (c *Client) ItemsByID(ctx context.Context, l List, ids []int, fn func(Item) error) error {
	for len(ids) > 0 {
		n := min(len(ids), itemsPerQuery)
		chunk := ids[:n]
		ids = ids[n:]
		if _, single := c.singleItems.Load(l.ID); !single {
			var f strings.Builder
			for i, id := range chunk {
				if i > 0 {
					f.WriteString("%20or%20")
				}
				fmt.Fprintf(&f, "Id%%20eq%%20%d", id)
			}
			u := c.abs(l.WebURL, fmt.Sprintf("%s/items?%s&$top=%d&$filter=%s", listPath(l), itemSelect, n, f.String()))
			err := eachOf(ctx, c, l.WebURL, u, "items", func(j itemJSON) error {
				return fn(c.itemFrom(j))
			})
			if !IsCode(err, CodeThrottled) {
				if err != nil {
					return err
				}
				continue
			}
			c.log.Info("list refuses queries by ID over the view threshold; reading changed items one at a time", "list", l.Title)
			c.singleItems.Store(l.ID, true)
		}
		for _, id := range chunk {
			it, err := c.Item(ctx, l, id)
			if IsNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// FolderItem reads the list item behind the folder at serverRelativeURL
// (its ID and whether it has unique permissions).
func (c *Client) FolderItem(ctx context.Context, webURL, serverRelativeURL string) (Item, error) {
	u := c.abs(webURL, "web/GetFolderByServerRelativeUrl("+odataLiteral(serverRelativeURL)+")/ListItemAllFields?$select=Id,FileRef,FileLeafRef,FileSystemObjectType,HasUniqueRoleAssignments,owshiddenversion")
	b, err := c.getJSON(ctx, u, "items")
	if err != nil {
		return Item{}, err
	}
	raw, err := decodeEntity(b)
	if err != nil {
		return Item{}, err
	}
	return c.item(raw)
}

// Principal is one principal who may read.
type Principal struct {
	Kind  string // user or group
	Login string
	Email string
}

// Readers returns who may read the securable at path ("web", "web/lists(guid'..')"
// or "web/lists(guid'..')/items(N)", relative to webURL): the principals of
// role assignments whose role grants ViewListItems or Open, groups with
// their users.
func (c *Client) Readers(ctx context.Context, webURL, securable string) ([]Principal, error) {
	u := c.abs(webURL, securable+"/roleassignments?$expand=Member/Users,RoleDefinitionBindings")
	var out []Principal
	seen := map[string]bool{}
	add := func(p Principal) {
		k := p.Kind + "|" + strings.ToLower(p.Login)
		if p.Login == "" || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, p)
	}
	err := c.each(ctx, webURL, u, "roles", func(e json.RawMessage) error {
		var ra struct {
			Member                 json.RawMessage
			RoleDefinitionBindings json.RawMessage
		}
		if err := json.Unmarshal(e, &ra); err != nil {
			return fmt.Errorf("sharepoint role assignments: %w", err)
		}
		canRead := false
		for _, rd := range rawList(ra.RoleDefinitionBindings) {
			var d struct {
				RoleTypeKind    int
				BasePermissions struct{ Low Int64 }
			}
			json.Unmarshal(rd, &d)
			if d.BasePermissions.Low&0x1 != 0 || d.BasePermissions.Low&0x20000 != 0 || (d.RoleTypeKind >= 2 && d.RoleTypeKind <= 7) || d.RoleTypeKind == 255 {
				canRead = true
			}
		}
		if !canRead {
			return nil
		}
		var m struct {
			PrincipalType int
			LoginName     string
			Title         string
			Email         string
			Users         json.RawMessage
		}
		json.Unmarshal(ra.Member, &m)
		if m.PrincipalType == 1 {
			add(Principal{Kind: "user", Login: m.LoginName, Email: m.Email})
			return nil
		}
		if m.PrincipalType == 4 { // a directory security group: its members are not listed
			add(Principal{Kind: "group", Login: m.LoginName, Email: m.Email})
			return nil
		}
		name := m.Title
		if name == "" {
			name = m.LoginName
		}
		add(Principal{Kind: "group", Login: name})
		for _, ur := range rawList(m.Users) {
			var usr struct {
				LoginName, Email string
				PrincipalType    int
			}
			json.Unmarshal(ur, &usr)
			kind := "user"
			if usr.PrincipalType == 4 {
				kind = "group"
			}
			add(Principal{Kind: kind, Login: usr.LoginName, Email: usr.Email})
		}
		return nil
	})
	return out, err
}

// rawList reads an expanded collection: {"results":[...]} (verbose) or [...].
func rawList(raw json.RawMessage) []json.RawMessage {
	if deferred(raw) {
		return nil
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil {
		return arr
	}
	var vc struct {
		Results []json.RawMessage `json:"results"`
	}
	if json.Unmarshal(raw, &vc) == nil {
		return vc.Results
	}
	return nil
}

// Change is one entry of the change log.
type Change struct {
	Token             string
	Type              int
	ItemID            int
	ListID            string
	WebID             string
	Time              time.Time
	ServerRelativeURL string
	UniqueID          string
	ObjectType        string // SP.ChangeItem, SP.ChangeList, SP.ChangeWeb, ...
}

// Change types (SP.ChangeType).
const (
	ChangeAdd              = 1
	ChangeUpdate           = 2
	ChangeDeleteObject     = 3
	ChangeRename           = 4
	ChangeMoveAway         = 5
	ChangeMoveInto         = 6
	ChangeRestore          = 7
	ChangeRoleAdd          = 8
	ChangeRoleDelete       = 9
	ChangeRoleUpdate       = 10
	ChangeAssignmentAdd    = 11
	ChangeAssignmentDelete = 12
	ChangeMemberAdd        = 13
	ChangeMemberDelete     = 14
	ChangeSystemUpdate     = 15
	ChangeScopeAdd         = 17
	ChangeScopeDelete      = 18
)

// Changes reads the site's change log after token, FetchLimit at a time,
// calling fn with each page until a page comes back empty. fn returns the
// token to continue from (normally the last change's); an error stops.
func (c *Client) Changes(ctx context.Context, token string, fn func(page []Change) error) error {
	u := c.abs("", "site/getchanges")
	for {
		query := c.typed("SP.ChangeQuery", map[string]any{
			"Add": true, "Update": true, "DeleteObject": true, "Rename": true, "Move": true, "Restore": true,
			"SystemUpdate": true, "RoleAssignmentAdd": true, "RoleAssignmentDelete": true, "RoleDefinitionAdd": true,
			"RoleDefinitionUpdate": true, "RoleDefinitionDelete": true, "GroupMembershipAdd": true, "GroupMembershipDelete": true,
			"SecurityPolicy": true,
			// Group: membership changes (SP.ChangeGroup) reach what the group may read.
			"Item": true, "File": true, "Folder": true, "List": true, "Web": true, "Site": false, "Group": true,
			"FetchLimit": "1000",
		})
		if token != "" {
			query["ChangeTokenStart"] = c.typed("SP.ChangeToken", map[string]any{"StringValue": token})
		}
		b, err := c.postJSON(ctx, u, "changes", map[string]any{"query": query})
		if err != nil {
			return err
		}
		entries, _, err := decodeCollection(b)
		if err != nil {
			return fmt.Errorf("sharepoint getchanges: %w", err)
		}
		if len(entries) == 0 {
			return nil
		}
		page := make([]Change, 0, len(entries))
		for _, e := range entries {
			var j struct {
				ChangeToken       changeTokenJSON
				ChangeType        int
				ItemID            int    `json:"ItemId"`
				ListID            string `json:"ListId"`
				WebID             string `json:"WebId"`
				Time              Time
				ServerRelativeURL string                 `json:"ServerRelativeUrl"`
				UniqueID          string                 `json:"UniqueId"`
				Metadata          *struct{ Type string } `json:"__metadata"`
				ODataType         string                 `json:"odata.type"`
			}
			if err := json.Unmarshal(e, &j); err != nil {
				return fmt.Errorf("sharepoint getchanges: %w", err)
			}
			ch := Change{Token: j.ChangeToken.StringValue, Type: j.ChangeType, ItemID: j.ItemID, ListID: normGUID(j.ListID), WebID: normGUID(j.WebID),
				Time: j.Time.Time, ServerRelativeURL: j.ServerRelativeURL, UniqueID: normGUID(j.UniqueID), ObjectType: j.ODataType}
			if j.Metadata != nil {
				ch.ObjectType = j.Metadata.Type
			}
			page = append(page, ch)
		}
		if err := fn(page); err != nil {
			return err
		}
		next := page[len(page)-1].Token
		if next == "" || next == token {
			return fmt.Errorf("sharepoint getchanges: the change log did not advance past %q", token)
		}
		token = next
	}
}

// normGUID lower-cases a GUID and drops braces.
func normGUID(s string) string {
	return strings.ToLower(strings.Trim(s, "{}"))
}

// OpenFile streams the content of the file at serverRelativeURL. A
// connection reset mid-stream is resumed with a Range request, up to
// MaxRetries times; the reader never holds the whole file.
func (c *Client) OpenFile(ctx context.Context, webURL, serverRelativeURL string) (io.ReadCloser, error) {
	u := c.abs(webURL, "web/GetFileByServerRelativeUrl("+odataLiteral(serverRelativeURL)+")/$value")
	r := &resumable{c: c, ctx: ctx, url: u}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

type resumable struct {
	c       *Client
	ctx     context.Context
	url     string
	body    io.ReadCloser // read as is: the transport buffers the connection, and a buffer per file would cost an allocation per file
	off     int64
	size    int64 // -1 unknown
	resumes int
}

func (r *resumable) open() error {
	h := map[string]string{}
	if r.off > 0 {
		h["Range"] = fmt.Sprintf("bytes=%d-", r.off)
	}
	resp, err := r.c.do(r.ctx, request{method: http.MethodGet, url: r.url, kind: "file", headers: h})
	if err != nil {
		return err
	}
	if r.off > 0 && resp.StatusCode != http.StatusPartialContent {
		resp.Body.Close()
		return fmt.Errorf("sharepoint %s: resume at byte %d: server answered %s, not 206", redactURL(r.url), r.off, resp.Status)
	}
	if r.off == 0 {
		r.size = resp.ContentLength
	}
	r.body = resp.Body
	return nil
}

func (r *resumable) Read(p []byte) (int, error) {
	for {
		n, err := r.body.Read(p)
		r.off += int64(n)
		if err == nil || n > 0 {
			return n, nil
		}
		if err == io.EOF {
			if r.size >= 0 && r.off < r.size {
				err = io.ErrUnexpectedEOF
			} else {
				return 0, io.EOF
			}
		}
		if r.ctx.Err() != nil {
			return 0, r.ctx.Err()
		}
		if r.resumes >= r.c.cfg.MaxRetries {
			return 0, fmt.Errorf("sharepoint %s: download broke at byte %d: %w", redactURL(r.url), r.off, err)
		}
		r.resumes++
		r.body.Close()
		r.c.log.Warn("sharepoint download broke; resuming", "url", redactURL(r.url), "at", r.off, "err", err)
		if oerr := r.open(); oerr != nil {
			return 0, oerr
		}
	}
}

func (r *resumable) Close() error { return r.body.Close() }
