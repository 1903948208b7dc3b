package spemu

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ---- URIs ----

// apiOf is "<origin><web>/_api/" for any web.
func (c *rctx) apiOf(w *web) string {
	if w.url == "/" {
		return c.origin + "/_api/"
	}
	return c.origin + w.url + "/_api/"
}

func (c *rctx) rel(w *web, uri string) string { return strings.TrimPrefix(uri, c.apiOf(w)) }

func (c *rctx) listURI(l *list) string {
	return c.apiOf(l.web) + "Web/Lists(guid'" + l.id.String() + "')"
}

func (c *rctx) itemURI(it *item) string {
	return c.listURI(it.list) + "/Items(" + strconv.Itoa(it.id) + ")"
}

// escLiteral is an OData string literal argument, URL-encoded.
func escLiteral(s string) string { return url.PathEscape(strings.ReplaceAll(s, "'", "''")) }

func (c *rctx) fileURI(w *web, ref string) string {
	return c.apiOf(w) + "Web/GetFileByServerRelativeUrl('" + escLiteral(ref) + "')"
}

func (c *rctx) folderURI(w *web, ref string) string {
	return c.apiOf(w) + "Web/GetFolderByServerRelativeUrl('" + escLiteral(ref) + "')"
}

// itemTime is a list item DateTime: UTC with Z, or site-local without
// offset when Options.LocalTimes.
func (c *rctx) itemTime(t time.Time) string {
	if c.s.opts.LocalTimes {
		return t.In(c.s.opts.TimeZone).Format("2006-01-02T15:04:05")
	}
	return utcTime(t)
}

func (v Version) libraryVersion() string {
	switch v {
	case SP2016:
		return "16.0.4351.1000"
	case SP2013:
		return "15.0.4420.1017"
	}
	return "16.0.10337.12109"
}

// propGetter reads plain properties by name, for $filter.
func propGetter(props []prop) func(string) (any, bool) {
	return func(name string) (any, bool) {
		for _, p := range props {
			if p.nav == nil && strings.EqualFold(p.name, name) {
				if g, ok := p.val.(string); ok {
					if id, err := parseGUID(g); err == nil && len(g) == 36 {
						return id, true
					}
				}
				return p.val, true
			}
		}
		return nil, false
	}
}

// query applies $filter, $skip and $top to n entities.
func (c *rctx) query(n int, props func(i int) []prop) ([]int, error) {
	f, err := parseFilter(c.q.Get("$filter"))
	if err != nil {
		return nil, err
	}
	skip, top := 0, -1
	if v := c.q.Get("$skip"); v != "" {
		if skip, err = strconv.Atoi(v); err != nil || skip < 0 {
			return nil, errQuery("The value of $skip, '%s', is not valid.", v)
		}
	}
	if v := c.q.Get("$top"); v != "" {
		if top, err = strconv.Atoi(v); err != nil || top < 0 {
			return nil, errQuery("The value of $top, '%s', is not valid.", v)
		}
	}
	var idx []int
	for i := range n {
		if f != nil {
			ok, err := f.eval(propGetter(props(i)))
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		idx = append(idx, i)
	}
	idx = idx[min(skip, len(idx)):]
	if top >= 0 && top < len(idx) {
		idx = idx[:top]
	}
	return idx, nil
}

// ---- site and web ----

func (c *rctx) changeTokenVal(t changeToken) jobj {
	return c.complexVal("SP.ChangeToken", jobj{{"StringValue", t.String()}})
}

func (c *rctx) siteProps(st *site) []prop {
	ps := []prop{
		{name: "AllowSelfServiceUpgrade", val: true},
		{name: "CompatibilityLevel", val: 15},
		{name: "Id", val: st.id.String()},
		{name: "MaxItemsPerThrottledOperation", val: c.s.opts.ViewThreshold},
		{name: "PrimaryUri", val: c.origin + "/"},
		{name: "ReadOnly", val: false},
		{name: "ServerRelativeUrl", val: st.url},
		{name: "Url", val: c.origin + st.url},
	}
	if c.s.opts.Version != SP2013 {
		ps = append(ps, prop{name: "CurrentChangeToken", val: c.changeTokenVal(changeToken{scopeSite, st.id, c.s.Now(), st.lastChange})})
	}
	ps = append(ps, prop{name: "RootWeb", uri: c.apiOf(st.root) + "Site/RootWeb",
		nav: func(sel, exp *tree) any { return c.webEntity(st.root, sel, exp) }})
	return ps
}

func (c *rctx) writeSite(st *site) error {
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	uri := c.apiOf(st.root) + "Site"
	c.writeEntity(c.entity(meta{typ: "SP.Site", uri: uri, editLink: "Site"}, c.siteProps(st), sel, exp), "SP.ApiData.Sites")
	return nil
}

func (c *rctx) webProps(w *web) []prop {
	base := c.apiOf(w) + "Web"
	created := c.itemTime(w.created)
	lastMod := w.modified
	for _, l := range w.lists {
		if l.lastModified.After(lastMod) {
			lastMod = l.lastModified
		}
	}
	return []prop{
		{name: "AllowRssFeeds", val: true},
		{name: "Configuration", val: 0},
		{name: "Created", val: created},
		{name: "Description", val: ""},
		{name: "Id", val: w.id.String()},
		{name: "Language", val: 1033},
		{name: "LastItemModifiedDate", val: utcTime(lastMod)},
		{name: "RecycleBinEnabled", val: true},
		{name: "ServerRelativeUrl", val: w.url},
		{name: "Title", val: w.title},
		{name: "UIVersion", val: 15},
		{name: "Url", val: c.origin + strings.TrimSuffix(w.url, "/")},
		{name: "WebTemplate", val: "STS"},
		{name: "HasUniqueRoleAssignments", val: w.perms != nil, extra: true},
		{name: "Lists", uri: base + "/Lists", nav: func(sel, exp *tree) any {
			var out []jobj
			for _, l := range w.lists {
				out = append(out, c.listEntity(l, sel, exp))
			}
			return c.coll(out)
		}},
		{name: "Webs", uri: base + "/Webs", nav: func(sel, exp *tree) any {
			var out []jobj
			for _, sw := range w.subwebs {
				out = append(out, c.webEntity(sw, sel, exp))
			}
			return c.coll(out)
		}},
		{name: "RoleAssignments", uri: base + "/RoleAssignments", nav: func(sel, exp *tree) any {
			return c.coll(c.roleAssignmentEntities(w.site, w.effectiveScope(), base+"/RoleAssignments", sel, exp))
		}},
		{name: "SiteUsers", uri: base + "/SiteUsers", nav: func(sel, exp *tree) any {
			var out []jobj
			for _, p := range w.site.principals {
				if p.kind != principalSPGroup {
					out = append(out, c.principalEntity(w.site, p, sel, exp))
				}
			}
			return c.coll(out)
		}},
		{name: "ParentWeb", uri: base + "/ParentWeb", nav: func(sel, exp *tree) any {
			if w.parent == nil {
				return nil
			}
			return c.webEntity(w.parent, sel, exp)
		}},
	}
}

func (c *rctx) webEntity(w *web, sel, exp *tree) jobj {
	uri := c.apiOf(w) + "Web"
	return c.entity(meta{typ: "SP.Web", uri: uri, editLink: "Web"}, c.webProps(w), sel, exp)
}

func (c *rctx) writeWebs(w *web) error {
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	idx, err := c.query(len(w.subwebs), func(i int) []prop { return c.webProps(w.subwebs[i]) })
	if err != nil {
		return err
	}
	out := make([]jobj, 0, len(idx))
	for _, i := range idx {
		out = append(out, c.webEntity(w.subwebs[i], sel, exp))
	}
	c.writeCollection(out, "SP.ApiData.Webs", "", "")
	return nil
}

// ---- lists ----

func (c *rctx) listProps(l *list) []prop {
	base := c.listURI(l)
	ps := []prop{
		{name: "BaseTemplate", val: l.template},
		{name: "BaseType", val: map[bool]int{true: baseTypeDocumentLibrary, false: baseTypeGenericList}[l.isLibrary()]},
		{name: "Created", val: c.itemTime(l.created)},
		{name: "Description", val: ""},
		{name: "EnableVersioning", val: true},
		{name: "EntityTypeName", val: l.entityTypeName()},
		{name: "Hidden", val: l.hidden},
		{name: "Id", val: l.id.String()},
		{name: "IsCatalog", val: false},
		{name: "ItemCount", val: l.itemCount()},
		{name: "LastItemDeletedDate", val: utcTime(l.lastDeleted)},
		{name: "LastItemModifiedDate", val: utcTime(l.lastModified)},
		{name: "ListItemEntityTypeFullName", val: l.itemTypeName()},
		{name: "NoCrawl", val: false},
		{name: "ParentWebUrl", val: l.web.url},
		{name: "ServerTemplateCanCreateFolders", val: true},
		{name: "Title", val: l.title},
	}
	if c.s.opts.Version != SP2013 {
		ps = append(ps, prop{name: "CurrentChangeToken", val: c.changeTokenVal(changeToken{scopeList, l.id, c.s.Now(), l.web.site.lastChange})})
	}
	ps = append(ps,
		prop{name: "HasUniqueRoleAssignments", val: l.perms != nil, extra: true},
		prop{name: "RootFolder", uri: base + "/RootFolder", nav: func(sel, exp *tree) any { return c.folderEntity(l, nil, sel, exp) }},
		prop{name: "Items", uri: base + "/Items", nav: func(sel, exp *tree) any {
			var out []jobj
			for _, it := range l.items[:min(len(l.items), 100)] {
				out = append(out, c.itemEntity(it, c.itemProps(it), sel, exp))
			}
			return c.coll(out)
		}},
		prop{name: "RoleAssignments", uri: base + "/RoleAssignments", nav: func(sel, exp *tree) any {
			return c.coll(c.roleAssignmentEntities(l.web.site, l.effectiveScope(), base+"/RoleAssignments", sel, exp))
		}},
		prop{name: "ParentWeb", uri: base + "/ParentWeb", nav: func(sel, exp *tree) any { return c.webEntity(l.web, sel, exp) }},
	)
	return ps
}

func (c *rctx) listEntity(l *list, sel, exp *tree) jobj {
	typ := "SP.List"
	uri := c.listURI(l)
	return c.entity(meta{typ: typ, uri: uri, editLink: c.rel(l.web, uri)}, c.listProps(l), sel, exp)
}

func (c *rctx) writeLists(w *web) error {
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	idx, err := c.query(len(w.lists), func(i int) []prop { return c.listProps(w.lists[i]) })
	if err != nil {
		return err
	}
	out := make([]jobj, 0, len(idx))
	for _, i := range idx {
		out = append(out, c.listEntity(w.lists[i], sel, exp))
	}
	c.writeCollection(out, "SP.ApiData.Lists", "", "")
	return nil
}

// ---- items ----

func (c *rctx) itemProps(it *item) []prop {
	l := it.list
	base := c.itemURI(it)
	var title, size, ftype any
	if it.title != "" {
		title = it.title
	}
	if it.isFile {
		size = strconv.FormatInt(it.content.size, 10)
		ftype = extension(it.name)
	}
	ps := make([]prop, 0, 32)
	ps = append(ps, prop{name: "FileSystemObjectType", val: it.fsType}, prop{name: "Id", val: it.id})
	if l.isLibrary() {
		ps = append(ps, prop{name: "ServerRedirectedEmbedUri", val: nil}, prop{name: "ServerRedirectedEmbedUrl", val: ""})
	}
	ps = append(ps, prop{name: "ContentTypeId", val: it.contentTypeID()}, prop{name: "Title", val: title})
	if !l.isLibrary() {
		ps = append(ps, prop{name: "Attachments", val: false})
	}
	ps = append(ps,
		prop{name: "OData__UIVersionString", val: it.uiVersion()},
		prop{name: "Created", val: c.itemTime(it.created)},
		prop{name: "Modified", val: c.itemTime(it.modified)},
		prop{name: "AuthorId", val: it.author.id},
		prop{name: "EditorId", val: it.editor.id},
		prop{name: "ID", val: it.id},
		prop{name: "GUID", val: it.guidField.String()},
		prop{name: "FileRef", val: it.fileRef(), extra: true},
		prop{name: "FileLeafRef", val: it.name, extra: true},
		prop{name: "FileDirRef", val: it.dir, extra: true},
		prop{name: "UniqueId", val: it.uniqueID.String(), extra: true},
		prop{name: "FSObjType", val: strconv.Itoa(it.fsType), extra: true},
		prop{name: "File_x0020_Size", val: size, extra: true},
		prop{name: "File_x0020_Type", val: ftype, extra: true},
		prop{name: "owshiddenversion", val: it.hidden, extra: true},
		prop{name: "HasUniqueRoleAssignments", val: it.perms != nil, extra: true},
		prop{name: "EncodedAbsUrl", val: c.absURL(it.fileRef()), extra: true},
		prop{name: "File", uri: base + "/File", nav: func(sel, exp *tree) any {
			if !it.isFile {
				return nil
			}
			return c.fileEntity(it, sel, exp)
		}},
		prop{name: "Folder", uri: base + "/Folder", nav: func(sel, exp *tree) any {
			if it.fsType != fsFolder {
				return nil
			}
			return c.folderEntity(l, it, sel, exp)
		}},
		prop{name: "Author", uri: base + "/Author", nav: func(sel, exp *tree) any { return c.userInfoEntity(l, it.author, sel) }},
		prop{name: "Editor", uri: base + "/Editor", nav: func(sel, exp *tree) any { return c.userInfoEntity(l, it.editor, sel) }},
		prop{name: "RoleAssignments", uri: base + "/RoleAssignments", nav: func(sel, exp *tree) any {
			return c.coll(c.roleAssignmentEntities(l.web.site, it.effectiveScope(), base+"/RoleAssignments", sel, exp))
		}},
		prop{name: "ParentList", uri: base + "/ParentList", nav: func(sel, exp *tree) any { return c.listEntity(l, sel, exp) }},
	)
	return ps
}

func (c *rctx) itemEntity(it *item, props []prop, sel, exp *tree) jobj {
	uri := c.itemURI(it)
	return c.entity(meta{typ: it.list.itemTypeName(), uri: uri, etag: `"` + strconv.Itoa(it.hidden) + `"`,
		editLink: c.rel(it.list.web, uri)}, props, sel, exp)
}

// userInfoEntity is an expanded Author/Editor lookup.
func (c *rctx) userInfoEntity(l *list, p *principal, sel *tree) any {
	if p == nil {
		return nil
	}
	uri := c.apiOf(l.web) + "Web/SiteUserInfoList/Items(" + strconv.Itoa(p.id) + ")"
	return c.entity(meta{typ: "SP.Data.UserInfoItem", uri: uri, etag: `"1"`, editLink: c.rel(l.web, uri)}, []prop{
		{name: "Id", val: p.id}, {name: "Title", val: p.title}, {name: "Name", val: p.login}, {name: "EMail", val: p.email},
		{name: "UserName", val: p.email}, {name: "ID", val: p.id},
	}, sel, nil)
}

// ---- files and folders ----

func (c *rctx) fileProps(it *item) []prop {
	uri := c.fileURI(it.list.web, it.fileRef())
	var title any
	if it.title != "" {
		title = it.title
	}
	return []prop{
		{name: "CheckInComment", val: ""},
		{name: "CheckOutType", val: 2},
		{name: "ContentTag", val: it.uniqueID.braced() + "," + strconv.Itoa(it.hidden) + ",1"},
		{name: "CustomizedPageStatus", val: 0},
		{name: "ETag", val: `"` + it.uniqueID.braced() + "," + strconv.Itoa(it.hidden) + `"`},
		{name: "Exists", val: true},
		{name: "IrmEnabled", val: false},
		{name: "Length", val: strconv.FormatInt(it.content.size, 10)},
		{name: "Level", val: 1},
		{name: "LinkingUri", val: nil},
		{name: "LinkingUrl", val: ""},
		{name: "MajorVersion", val: it.major},
		{name: "MinorVersion", val: 0},
		{name: "Name", val: it.name},
		{name: "ServerRelativeUrl", val: it.fileRef()},
		{name: "TimeCreated", val: utcTime(it.created)},
		{name: "TimeLastModified", val: utcTime(it.modified)},
		{name: "Title", val: title},
		{name: "UIVersion", val: it.major * 512},
		{name: "UIVersionLabel", val: it.uiVersion()},
		{name: "UniqueId", val: it.uniqueID.String()},
		{name: "ListItemAllFields", uri: uri + "/ListItemAllFields", nav: func(sel, exp *tree) any {
			return c.itemEntity(it, c.itemProps(it), sel, exp)
		}},
		{name: "Author", uri: uri + "/Author", nav: func(sel, exp *tree) any { return c.principalEntity(it.list.web.site, it.author, sel, exp) }},
		{name: "ModifiedBy", uri: uri + "/ModifiedBy", nav: func(sel, exp *tree) any { return c.principalEntity(it.list.web.site, it.editor, sel, exp) }},
	}
}

func (c *rctx) fileEntity(it *item, sel, exp *tree) jobj {
	uri := c.fileURI(it.list.web, it.fileRef())
	return c.entity(meta{typ: "SP.File", uri: uri, editLink: c.rel(it.list.web, uri)}, c.fileProps(it), sel, exp)
}

// rootFolderID is the list root folder's UniqueId, derived from the list id.
func rootFolderID(l *list) guid {
	g := l.id
	for i := range g {
		g[i] ^= 0xa5
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// childCount is the number of direct children of a folder URL.
func (c *rctx) childCount(l *list, dir string) int {
	if c.counts == nil {
		c.counts = map[*list]map[string]int{}
	}
	m := c.counts[l]
	if m == nil {
		m = map[string]int{}
		for _, it := range l.items {
			m[lowerKey(it.dir)]++
		}
		c.counts[l] = m
	}
	return m[lowerKey(dir)]
}

func (c *rctx) folderProps(l *list, f *item) []prop {
	ref, name, id, created, modified := l.rootURL(), l.rootName, rootFolderID(l), l.created, l.lastModified
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if f != nil {
		ref, name, id, created, modified = f.fileRef(), f.name, f.uniqueID, f.created, f.modified
	}
	uri := c.folderURI(l.web, ref)
	ps := []prop{
		{name: "Exists", val: true},
		{name: "IsWOPIEnabled", val: false},
		{name: "ItemCount", val: c.childCount(l, ref)},
		{name: "Name", val: name},
		{name: "ProgID", val: nil},
		{name: "ServerRelativeUrl", val: ref},
		{name: "TimeCreated", val: utcTime(created)},
		{name: "TimeLastModified", val: utcTime(modified)},
		{name: "UniqueId", val: id.String()},
		{name: "WelcomePage", val: ""},
		{name: "Files", uri: uri + "/Files", nav: func(sel, exp *tree) any { return c.coll(c.folderFiles(l, f, sel, exp)) }},
		{name: "Folders", uri: uri + "/Folders", nav: func(sel, exp *tree) any { return c.coll(c.folderFolders(l, f, sel, exp)) }},
	}
	if f != nil {
		ps = append(ps, prop{name: "ListItemAllFields", uri: uri + "/ListItemAllFields", nav: func(sel, exp *tree) any {
			return c.itemEntity(f, c.itemProps(f), sel, exp)
		}})
	}
	return ps
}

func (c *rctx) folderEntity(l *list, f *item, sel, exp *tree) jobj {
	ref := l.rootURL()
	if f != nil {
		ref = f.fileRef()
	}
	uri := c.folderURI(l.web, ref)
	return c.entity(meta{typ: "SP.Folder", uri: uri, editLink: c.rel(l.web, uri)}, c.folderProps(l, f), sel, exp)
}

func (c *rctx) folderFiles(l *list, f *item, sel, exp *tree) []jobj {
	dir := lowerKey(folderURL(l, f))
	out := []jobj{}
	for _, it := range l.items {
		if it.isFile && lowerKey(it.dir) == dir {
			out = append(out, c.fileEntity(it, sel, exp))
		}
	}
	return out
}

func (c *rctx) folderFolders(l *list, f *item, sel, exp *tree) []jobj {
	dir := lowerKey(folderURL(l, f))
	out := []jobj{}
	for _, it := range l.items {
		if it.fsType == fsFolder && lowerKey(it.dir) == dir {
			out = append(out, c.folderEntity(l, it, sel, exp))
		}
	}
	return out
}

// ---- principals and roles ----

func (c *rctx) principalProps(st *site, p *principal) []prop {
	api := c.apiOf(st.root)
	if p.kind == principalSPGroup {
		uri := api + "Web/SiteGroups/GetById(" + strconv.Itoa(p.id) + ")"
		return []prop{
			{name: "Id", val: p.id},
			{name: "IsHiddenInUI", val: false},
			{name: "LoginName", val: p.login},
			{name: "Title", val: p.title},
			{name: "PrincipalType", val: p.kind},
			{name: "AllowMembersEditMembership", val: false},
			{name: "AllowRequestToJoinLeave", val: false},
			{name: "AutoAcceptRequestToJoinLeave", val: false},
			{name: "Description", val: nil},
			{name: "OnlyAllowMembersViewMembership", val: true},
			{name: "OwnerTitle", val: st.principals[1].title},
			{name: "RequestToJoinLeaveEmailSetting", val: nil},
			{name: "Users", uri: uri + "/Users", nav: func(sel, exp *tree) any {
				var out []jobj
				for _, m := range p.members {
					out = append(out, c.principalEntity(st, m, sel, exp))
				}
				return c.coll(out)
			}},
		}
	}
	var userID any
	if p.kind == principalUser {
		userID = c.complexVal("SP.UserIdInfo", jobj{{"NameId", "s-1-5-21-" + strconv.Itoa(1000+p.id)}, {"NameIdIssuer", "urn:office:idp:activedirectory"}})
	}
	uri := api + "Web/GetUserById(" + strconv.Itoa(p.id) + ")"
	return []prop{
		{name: "Id", val: p.id},
		{name: "IsHiddenInUI", val: false},
		{name: "LoginName", val: p.login},
		{name: "Title", val: p.title},
		{name: "PrincipalType", val: p.kind},
		{name: "Email", val: p.email},
		{name: "IsShareByEmailGuestUser", val: false},
		{name: "IsSiteAdmin", val: p.siteAdmin},
		{name: "UserId", val: userID},
		{name: "Groups", uri: uri + "/Groups", nav: func(sel, exp *tree) any {
			var out []jobj
			for _, g := range st.principals {
				if g.kind == principalSPGroup && containsPrincipal(g.members, p) {
					out = append(out, c.principalEntity(st, g, sel, exp))
				}
			}
			return c.coll(out)
		}},
	}
}

func containsPrincipal(ps []*principal, p *principal) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func (c *rctx) principalEntity(st *site, p *principal, sel, exp *tree) jobj {
	api := c.apiOf(st.root)
	typ, uri := "SP.User", api+"Web/GetUserById("+strconv.Itoa(p.id)+")"
	if p.kind == principalSPGroup {
		typ, uri = "SP.Group", api+"Web/SiteGroups/GetById("+strconv.Itoa(p.id)+")"
	}
	return c.entity(meta{typ: typ, uri: uri, editLink: c.rel(st.root, uri)}, c.principalProps(st, p), sel, exp)
}

func (c *rctx) roleDefEntity(st *site, r *roleDef, sel *tree) jobj {
	uri := c.apiOf(st.root) + "Web/RoleDefinitions(" + strconv.Itoa(r.id) + ")"
	return c.entity(meta{typ: "SP.RoleDefinition", uri: uri, editLink: c.rel(st.root, uri)}, []prop{
		{name: "BasePermissions", val: c.complexVal("SP.BasePermissions", jobj{
			{"High", strconv.FormatUint(uint64(r.high), 10)}, {"Low", strconv.FormatUint(uint64(r.low), 10)}})},
		{name: "Description", val: r.desc},
		{name: "Hidden", val: false},
		{name: "Id", val: r.id},
		{name: "Name", val: r.name},
		{name: "Order", val: r.order},
		{name: "RoleTypeKind", val: r.kind},
	}, sel, nil)
}

func (c *rctx) roleAssignmentEntities(st *site, sc *scope, base string, sel, exp *tree) []jobj {
	out := make([]jobj, 0, len(sc.assignments))
	for _, a := range sc.assignments {
		out = append(out, c.roleAssignmentEntity(st, a, base, sel, exp))
	}
	return out
}

func (c *rctx) roleAssignmentEntity(st *site, a assignment, base string, sel, exp *tree) jobj {
	uri := base + "/GetByPrincipalId(" + strconv.Itoa(a.p.id) + ")"
	return c.entity(meta{typ: "SP.RoleAssignment", uri: uri, editLink: strings.TrimPrefix(uri, c.apiOf(st.root))}, []prop{
		{name: "PrincipalId", val: a.p.id},
		{name: "Member", uri: uri + "/Member", nav: func(sel, exp *tree) any { return c.principalEntity(st, a.p, sel, exp) }},
		{name: "RoleDefinitionBindings", uri: uri + "/RoleDefinitionBindings", nav: func(sel, exp *tree) any {
			var out []jobj
			for _, r := range a.roles {
				out = append(out, c.roleDefEntity(st, r, sel))
			}
			return c.coll(out)
		}},
	}, sel, exp)
}

func (c *rctx) writeRoleAssignments(st *site, sc *scope, base string, rest []seg) error {
	if len(rest) > 0 {
		return errResource(c.r.URL.Path)
	}
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	idx, err := c.query(len(sc.assignments), func(i int) []prop {
		return []prop{{name: "PrincipalId", val: sc.assignments[i].p.id}}
	})
	if err != nil {
		return err
	}
	out := make([]jobj, 0, len(idx))
	for _, i := range idx {
		out = append(out, c.roleAssignmentEntity(st, sc.assignments[i], base, sel, exp))
	}
	c.writeCollection(out, "SP.ApiData.RoleAssignments", "", "")
	return nil
}

func (c *rctx) writePrincipals(st *site, ps []*principal, frag string) error {
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	idx, err := c.query(len(ps), func(i int) []prop { return c.principalProps(st, ps[i]) })
	if err != nil {
		return err
	}
	out := make([]jobj, 0, len(idx))
	for _, i := range idx {
		out = append(out, c.principalEntity(st, ps[i], sel, exp))
	}
	c.writeCollection(out, frag, "", "")
	return nil
}

// writeSiteUsers is /web/siteusers: users and security groups.
func (c *rctx) writeSiteUsers(st *site, rest []seg) error {
	var ps []*principal
	for _, p := range st.principals {
		if p.kind != principalSPGroup {
			ps = append(ps, p)
		}
	}
	if len(rest) == 0 {
		return c.writePrincipals(st, ps, "SP.ApiData.Users")
	}
	if strings.EqualFold(rest[0].name, "getbyid") && len(rest) == 1 {
		id, err := intArg(rest[0])
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.id == id {
				c.writeEntity(c.principalEntity(st, p, parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))), "SP.ApiData.Users")
				return nil
			}
		}
		return &apiError{404, -2146232832, typeSPException, "User cannot be found."}
	}
	return errResource(c.r.URL.Path)
}

// writeSiteGroups is /web/sitegroups, sitegroups/getbyid(N) and its users.
func (c *rctx) writeSiteGroups(st *site, rest []seg) error {
	var gs []*principal
	for _, p := range st.principals {
		if p.kind == principalSPGroup {
			gs = append(gs, p)
		}
	}
	if len(rest) == 0 {
		return c.writePrincipals(st, gs, "SP.ApiData.Groups")
	}
	if !strings.EqualFold(rest[0].name, "getbyid") {
		return errResource(c.r.URL.Path)
	}
	id, err := intArg(rest[0])
	if err != nil {
		return err
	}
	for _, g := range gs {
		if g.id != id {
			continue
		}
		switch {
		case len(rest) == 1:
			c.writeEntity(c.principalEntity(st, g, parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))), "SP.ApiData.Groups")
			return nil
		case len(rest) == 2 && strings.EqualFold(rest[1].name, "users"):
			return c.writePrincipals(st, g.members, "SP.ApiData.Users")
		}
		return errResource(c.r.URL.Path)
	}
	return &apiError{404, -2146232832, typeSPException, "Group cannot be found."}
}

func (c *rctx) writeRoleDefinitions(st *site, rest []seg) error {
	if len(rest) > 0 {
		return errResource(c.r.URL.Path)
	}
	sel := parseTree(c.q.Get("$select"))
	out := make([]jobj, 0, len(st.roles))
	for _, r := range st.roles {
		out = append(out, c.roleDefEntity(st, r, sel))
	}
	c.writeCollection(out, "SP.ApiData.RoleDefinitions", "", "")
	return nil
}

// writeCurrentUser maps the authenticated account to a site user.
func (c *rctx) writeCurrentUser(st *site) error {
	p := st.byLogin[lowerKey("SHAREPOINT\\system")]
	if c.account != "" {
		acct := lowerKey(c.account)
		if !strings.Contains(acct, "\\") {
			acct = lowerKey(c.s.opts.Domain) + "\\" + acct
		}
		found := false
		for _, x := range st.principals {
			if x.kind == principalUser && (lowerKey(x.login) == acct || strings.HasSuffix(lowerKey(x.login), "|"+acct)) {
				p, found = x, true
				break
			}
		}
		if !found {
			p = &principal{id: 1073741822, kind: principalUser, login: "i:0#.w|" + acct, title: c.account}
		}
	}
	c.writeEntity(c.principalEntity(st, p, parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))), "SP.ApiData.Users")
	return nil
}
