package spemu

import (
	"encoding/json"
	"io"
	"sort"
	"strconv"
	"strings"
)

// changeQueryProps are SP.ChangeQuery's properties besides the tokens and
// FetchLimit: every one a Boolean.
var changeQueryFlags = [...]string{
	"Activity", "Add", "Alert", "ContentType", "DeleteObject", "Field", "File", "Folder", "Group",
	"GroupMembershipAdd", "GroupMembershipDelete", "IgnoreStartTokenNotFoundError", "Item",
	"LatestFirst", "List", "Move", "Navigation", "RecursiveAll", "Rename", "RequireSecurityTrim",
	"Restore", "RoleAssignmentAdd", "RoleAssignmentDelete", "RoleDefinitionAdd",
	"RoleDefinitionDelete", "RoleDefinitionUpdate", "SecurityPolicy", "Site", "SystemUpdate",
	"Update", "User", "View", "Web",
}

// bodyFormat is the request body's OData flavour: its Content-Type, else
// the Accept header's.
func (c *rctx) bodyFormat() format {
	if ct := c.r.Header.Get("Content-Type"); strings.Contains(strings.ToLower(ct), "json") {
		return formatOf(ct)
	}
	return c.mode
}

// readParam decodes a POST body {"<name>": {...}} and checks __metadata
// against the body format: required and equal to typ in verbose, absent
// in JSON Light.
func (c *rctx) readParam(name, typ string) (map[string]any, format, error) {
	bf := c.bodyFormat()
	dec := json.NewDecoder(io.LimitReader(c.r.Body, 4<<20))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil {
		return nil, bf, errOData("The request body is not valid JSON: %v", err)
	}
	raw, ok := body[name]
	if !ok {
		return nil, bf, errOData("The parameter '%s' is missing from the request body.", name)
	}
	for k := range body {
		if k != name {
			return nil, bf, errOData("The parameter '%s' in the request payload is not a valid parameter for the function.", k)
		}
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, bf, errOData("The parameter '%s' is not an object of type '%s'.", name, typ)
	}
	if err := checkMetadata(bf, obj, typ); err != nil {
		return nil, bf, err
	}
	return obj, bf, nil
}

func checkMetadata(bf format, obj map[string]any, typ string) error {
	md, has := obj["__metadata"]
	if bf != fmtVerbose {
		if has {
			return errOData("The property '__metadata' does not exist on type '%s'. Make sure to only use property names that are defined by the type.", typ)
		}
		return nil
	}
	m, _ := md.(map[string]any)
	got, _ := m["type"].(string)
	if got != typ {
		return errOData("A type named '%s' could not be resolved by the model. When a model is available, each type name must resolve to a valid type (expected '%s' in __metadata).", got, typ)
	}
	return nil
}

// changeQuery is a parsed SP.ChangeQuery.
type changeQuery struct {
	flags      map[string]bool
	start, end *changeToken
	limit      int
}

func (c *rctx) parseChangeQuery() (*changeQuery, error) {
	obj, bf, err := c.readParam("query", "SP.ChangeQuery")
	if err != nil {
		return nil, err
	}
	q := &changeQuery{flags: map[string]bool{}, limit: 1000}
	for k, v := range obj {
		switch k {
		case "__metadata":
		case "FetchLimit":
			n, err := edmInt64(bf, v)
			if err != nil {
				return nil, err
			}
			if n > 0 {
				q.limit = int(min(n, 1000))
			}
		case "ChangeTokenStart", "ChangeTokenEnd":
			t, err := parseTokenParam(bf, k, v)
			if err != nil {
				return nil, err
			}
			if k == "ChangeTokenStart" {
				q.start = t
			} else {
				q.end = t
			}
		default:
			known := false
			for _, f := range changeQueryFlags {
				known = known || f == k
			}
			if !known {
				return nil, errOData("The property '%s' does not exist on type 'SP.ChangeQuery'. Make sure to only use property names that are defined by the type.", k)
			}
			b, ok := v.(bool)
			if !ok && v != nil {
				return nil, errOData("Cannot convert a primitive value to the expected type 'Edm.Boolean' for property '%s'.", k)
			}
			q.flags[k] = b
		}
	}
	return q, nil
}

// edmInt64 reads an Edm.Int64: a JSON string in verbose, a string or a
// number in JSON Light.
func edmInt64(bf format, v any) (int64, error) {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err == nil {
			return n, nil
		}
	case json.Number:
		if bf != fmtVerbose {
			if n, err := x.Int64(); err == nil {
				return n, nil
			}
		}
	case nil:
		return 0, nil
	}
	return 0, errOData("Cannot convert a primitive value to the expected type 'Edm.Int64'. See the inner exception for more details.")
}

func parseTokenParam(bf format, name string, v any) (*changeToken, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errOData("The property '%s' must be an object of type 'SP.ChangeToken'.", name)
	}
	if err := checkMetadata(bf, m, "SP.ChangeToken"); err != nil {
		return nil, err
	}
	for k := range m {
		if k != "__metadata" && k != "StringValue" {
			return nil, errOData("The property '%s' does not exist on type 'SP.ChangeToken'. Make sure to only use property names that are defined by the type.", k)
		}
	}
	sv, _ := m["StringValue"].(string)
	if sv == "" {
		return nil, nil
	}
	t, err := parseChangeToken(sv)
	if err != nil {
		return nil, errBadToken(sv)
	}
	return &t, nil
}

// changeFlag maps a change type to the SP.ChangeQuery flag that selects it.
func changeFlag(t ChangeType) string {
	switch t {
	case ChangeAdd:
		return "Add"
	case ChangeUpdate:
		return "Update"
	case ChangeDeleteObject:
		return "DeleteObject"
	case ChangeRename:
		return "Rename"
	case ChangeMoveAway, ChangeMoveInto:
		return "Move"
	case ChangeRestore:
		return "Restore"
	case ChangeRoleAdd:
		return "RoleDefinitionAdd"
	case ChangeRoleDelete:
		return "RoleDefinitionDelete"
	case ChangeRoleUpdate:
		return "RoleDefinitionUpdate"
	case ChangeAssignmentAdd:
		return "RoleAssignmentAdd"
	case ChangeAssignmentDelete:
		return "RoleAssignmentDelete"
	case ChangeMemberAdd:
		return "GroupMembershipAdd"
	case ChangeMemberDelete:
		return "GroupMembershipDelete"
	case ChangeSystemUpdate:
		return "SystemUpdate"
	case ChangeNavigation:
		return "Navigation"
	case ChangeScopeAdd, ChangeScopeDelete:
		return "SecurityPolicy"
	}
	return ""
}

// objectFlag maps an object kind to its SP.ChangeQuery flag. Documents and
// folders of lists are list items (SP.ChangeItem, flag Item); SharePoint
// reserves File and Folder for files and folders outside lists, which the
// emulator does not model, so those flags select nothing.
func objectFlag(k objectKind) string {
	switch k {
	case objItem:
		return "Item"
	case objList:
		return "List"
	case objWeb:
		return "Web"
	case objSite:
		return "Site"
	case objUser:
		return "User"
	case objGroup:
		return "Group"
	}
	return ""
}

// getChanges serves POST {site|web|list}/getchanges.
func (c *rctx) getChanges(scope tokenScope, w *web, l *list) error {
	q, err := c.parseChangeQuery()
	if err != nil {
		return err
	}
	st := w.site
	objID := st.id
	switch scope {
	case scopeWeb:
		objID = w.id
	case scopeList:
		objID = l.id
	}
	for _, t := range []*changeToken{q.start, q.end} {
		if t != nil && (t.scope != scope || t.id != objID) {
			return errTokenWrongObject()
		}
	}
	after := st.prunedUntil
	if q.start != nil {
		switch {
		case q.start.num >= st.prunedUntil:
			after = q.start.num
		case !q.flags["IgnoreStartTokenNotFoundError"]:
			return errTokenExpired()
		}
	}
	webs := map[guid]bool{w.id: true}
	if scope == scopeWeb && q.flags["RecursiveAll"] {
		var walk func(x *web)
		walk = func(x *web) {
			webs[x.id] = true
			for _, sw := range x.subwebs {
				walk(sw)
			}
		}
		walk(w)
	}
	match := func(ch *change) bool {
		if !q.flags[objectFlag(ch.obj)] || !q.flags[changeFlag(ch.typ)] {
			return false
		}
		switch scope {
		case scopeWeb:
			return webs[ch.webID]
		case scopeList:
			return ch.listID == l.id
		}
		return true
	}
	i := sort.Search(len(st.changes), func(i int) bool { return st.changes[i].num > after })
	var hits []*change
	for ; i < len(st.changes); i++ {
		ch := &st.changes[i]
		if q.end != nil && ch.num > q.end.num {
			break
		}
		if match(ch) {
			hits = append(hits, ch)
			if !q.flags["LatestFirst"] && len(hits) == q.limit {
				break
			}
		}
	}
	if q.flags["LatestFirst"] {
		for a, b := 0, len(hits)-1; a < b; a, b = a+1, b-1 {
			hits[a], hits[b] = hits[b], hits[a]
		}
		hits = hits[:min(len(hits), q.limit)]
	}
	out := make([]jobj, 0, len(hits))
	for _, ch := range hits {
		out = append(out, c.changeEntity(st, ch, changeToken{scope: scope, id: objID, time: ch.time, num: ch.num}))
	}
	c.writeCollection(out, "Collection(SP.Change)", "", "")
	return nil
}

// changeEntity is an SP.ChangeItem, SP.ChangeList, SP.ChangeWeb,
// SP.ChangeSite, SP.ChangeUser or SP.ChangeGroup, with the fields of the
// emulated version.
func (c *rctx) changeEntity(st *site, ch *change, tok changeToken) jobj {
	v := c.s.opts.Version
	typ := "SP.Change"
	ps := []prop{
		{name: "ChangeToken", val: c.changeTokenVal(tok)},
		{name: "ChangeType", val: int(ch.typ)},
		{name: "SiteId", val: st.id.String()},
		{name: "Time", val: utcTime(ch.time)},
	}
	switch ch.obj {
	case objItem:
		typ = "SP.ChangeItem"
		if v != SP2013 {
			ps = append(ps, prop{name: "Editor", val: ch.editor})
		}
		ps = append(ps, prop{name: "ItemId", val: ch.itemID}, prop{name: "ListId", val: ch.listID.String()})
		if v != SP2013 {
			ps = append(ps, prop{name: "ServerRelativeUrl", val: ch.url})
		}
		ps = append(ps, prop{name: "WebId", val: ch.webID.String()})
		if v == SP2019 {
			ps = append(ps,
				prop{name: "FileSystemObjectType", val: ch.fsType},
				prop{name: "ListTitle", val: ch.listTtl},
				prop{name: "Title", val: ch.title},
				prop{name: "UniqueId", val: ch.uniqueID.String()})
		}
	case objList:
		typ = "SP.ChangeList"
		if v != SP2013 {
			ps = append(ps, prop{name: "BaseTemplate", val: ch.template}, prop{name: "Editor", val: ch.editor},
				prop{name: "Hidden", val: ch.hidden})
		}
		ps = append(ps, prop{name: "ListId", val: ch.listID.String()})
		if v != SP2013 {
			ps = append(ps, prop{name: "RootFolderUrl", val: ch.url}, prop{name: "Title", val: ch.title})
		}
		ps = append(ps, prop{name: "WebId", val: ch.webID.String()})
	case objWeb:
		typ = "SP.ChangeWeb"
		ps = append(ps, prop{name: "WebId", val: ch.webID.String()})
	case objSite:
		typ = "SP.ChangeSite"
	case objUser:
		typ = "SP.ChangeUser"
		ps = append(ps, prop{name: "Activate", val: false}, prop{name: "UserId", val: ch.princID})
	case objGroup:
		typ = "SP.ChangeGroup"
		ps = append(ps, prop{name: "GroupId", val: ch.princID})
	}
	api := c.apiOf(st.root)
	var id guid
	for i := range 8 {
		id[i] = byte(ch.num >> (8 * i))
		id[8+i] = st.id[8+i]
	}
	return c.entity(meta{typ: typ, uri: api + typ, id: api + typ + id.String(), editLink: typ}, ps, nil, nil)
}
