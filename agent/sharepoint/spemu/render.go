package spemu

import (
	"encoding/json"
	"encoding/xml"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// renderParams are SP.RenderListDataParameters' properties.
var renderParams = [...]string{
	"AddRequiredFields", "AllowMultipleValueFilterForTaxonomyFields", "AudienceTarget", "DatesInUtc",
	"DeferredRender", "ExpandGroups", "ExpandUserField", "FilterOutChannelFoldersInDefaultDocLib",
	"FirstGroupOnly", "FolderServerRelativeUrl", "ImageFieldsToTryRewriteToCdnUrls", "MergeDefaultView",
	"OriginalDate", "OverrideViewXml", "Paging", "RenderOptions", "ReplaceGroup",
	"RequireFolderColoringFields", "ShowStubFile", "ViewId", "ViewXml",
}

// camlNode is a generic CAML element.
type camlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Kids    []camlNode `xml:",any"`
}

func (n *camlNode) attr(name string) string {
	for _, a := range n.Attrs {
		if strings.EqualFold(a.Name.Local, name) {
			return a.Value
		}
	}
	return ""
}

func (n *camlNode) kid(name string) *camlNode {
	for i := range n.Kids {
		if strings.EqualFold(n.Kids[i].XMLName.Local, name) {
			return &n.Kids[i]
		}
	}
	return nil
}

// camlWhere converts a <Where> child to a filter: And, Or, Eq, Neq, Gt,
// Geq, Lt, Leq, IsNull, IsNotNull.
func camlWhere(n *camlNode) (filterExpr, error) {
	name := strings.ToLower(n.XMLName.Local)
	switch name {
	case "and", "or":
		if len(n.Kids) != 2 {
			return nil, errQuery("CAML <%s> needs two operands.", n.XMLName.Local)
		}
		a, err := camlWhere(&n.Kids[0])
		if err != nil {
			return nil, err
		}
		b, err := camlWhere(&n.Kids[1])
		if err != nil {
			return nil, err
		}
		if name == "and" {
			return andExpr{a, b}, nil
		}
		return orExpr{a, b}, nil
	case "eq", "neq", "gt", "geq", "lt", "leq", "isnull", "isnotnull":
		fr := n.kid("FieldRef")
		if fr == nil || fr.attr("Name") == "" {
			return nil, errQuery("CAML <%s> lacks a FieldRef.", n.XMLName.Local)
		}
		op := map[string]string{"eq": "eq", "neq": "ne", "gt": "gt", "geq": "ge", "lt": "lt", "leq": "le", "isnull": "eq", "isnotnull": "ne"}[name]
		if name == "isnull" || name == "isnotnull" {
			return cmpExpr{field: fr.attr("Name"), op: op, lit: nil}, nil
		}
		v := n.kid("Value")
		if v == nil {
			return nil, errQuery("CAML <%s> lacks a Value.", n.XMLName.Local)
		}
		lit, err := camlValue(v)
		if err != nil {
			return nil, err
		}
		return cmpExpr{field: fr.attr("Name"), op: op, lit: lit}, nil
	}
	return nil, errQuery("CAML <%s> is not supported by the emulator.", n.XMLName.Local)
}

func camlValue(v *camlNode) (any, error) {
	text := strings.TrimSpace(v.Text)
	switch strings.ToLower(v.attr("Type")) {
	case "counter", "integer", "number", "lookup":
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, errQuery("CAML value %q is not a number.", text)
		}
		return n, nil
	case "boolean":
		return text == "1" || strings.EqualFold(text, "true"), nil
	case "datetime":
		if v.kid("Today") != nil {
			return time.Now().UTC().Truncate(24 * time.Hour), nil
		}
		for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, text); err == nil {
				return t.UTC(), nil
			}
		}
		return nil, errQuery("CAML value %q is not a date.", text)
	}
	return text, nil
}

// renderListData serves POST .../RenderListDataAsStream with ViewXml
// (Scope, Query/Where, Query/OrderBy on ID, ViewFields, RowLimit Paged) and
// paging by NextHref ("?Paged=TRUE&p_ID=N&PageFirstRow=M&View=...",
// appended to the endpoint URL or passed as parameters.Paging). Rows hold
// strings (people fields are arrays); it works on lists over the threshold
// while RowLimit and Where stay within it.
func (c *rctx) renderListData(l *list) error {
	p, _, err := c.readParam("parameters", "SP.RenderListDataParameters")
	if err != nil {
		return err
	}
	for k := range p {
		known := k == "__metadata"
		for _, n := range renderParams {
			known = known || n == k
		}
		if !known {
			return errOData("The property '%s' does not exist on type 'SP.RenderListDataParameters'. Make sure to only use property names that are defined by the type.", k)
		}
	}
	str := func(k string) string {
		switch v := p[k].(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return ""
	}
	view := &camlNode{XMLName: xml.Name{Local: "View"}}
	if vx := str("ViewXml"); vx != "" {
		view = &camlNode{}
		if err := xml.Unmarshal([]byte(vx), view); err != nil || !strings.EqualFold(view.XMLName.Local, "View") {
			return &apiError{400, CodeGeneric, typeSPException, "Cannot complete this action.\n\nPlease try again. (invalid ViewXml)"}
		}
	}
	rowLimit := 30
	if rl := view.kid("RowLimit"); rl != nil {
		n, err := strconv.Atoi(strings.TrimSpace(rl.Text))
		if err != nil || n <= 0 {
			return errQuery("RowLimit %q is not valid.", rl.Text)
		}
		rowLimit = n
	}
	var where filterExpr
	desc, orderOther := false, ""
	if q := view.kid("Query"); q != nil {
		if w := q.kid("Where"); w != nil && len(w.Kids) > 0 {
			if where, err = camlWhere(&w.Kids[0]); err != nil {
				return err
			}
		}
		if ob := q.kid("OrderBy"); ob != nil {
			for _, fr := range ob.Kids {
				if !isIDField(fr.attr("Name")) {
					orderOther = fr.attr("Name")
				} else if strings.EqualFold(fr.attr("Ascending"), "FALSE") {
					desc = true
				}
			}
		}
	}
	// Paging: the query string of NextHref, or parameters.Paging.
	paging := c.q
	if pg := str("Paging"); pg != "" {
		paging, _ = url.ParseQuery(strings.TrimPrefix(pg, "?"))
	}
	pID := 0
	if strings.EqualFold(paging.Get("Paged"), "TRUE") {
		if pID, err = strconv.Atoi(paging.Get("p_ID")); err != nil || pID < 0 {
			return errQuery("p_ID %q is not valid.", paging.Get("p_ID"))
		}
	}
	firstRow := 1
	if v := paging.Get("PageFirstRow"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			firstRow = n
		}
	}
	threshold := c.s.opts.ViewThreshold
	if l.itemCount() > threshold {
		nonIndexed := false
		if where != nil {
			where.fields(func(f string) { nonIndexed = nonIndexed || !isIDField(f) })
		}
		if rowLimit > threshold || nonIndexed || orderOther != "" {
			return errThrottled()
		}
	}
	if orderOther != "" {
		return errQuery("OrderBy on '%s' is not supported by the emulator (only ID).", orderOther)
	}
	folder := l.rootURL()
	if f := str("FolderServerRelativeUrl"); f != "" {
		folder = cleanRef(f)
	} else if f := c.q.Get("RootFolder"); f != "" {
		folder = cleanRef(f)
	}
	if _, ok := l.folder(folder); !ok {
		return errFolderNotFound()
	}
	lf := lowerKey(folder)
	scope := strings.ToLower(view.attr("Scope"))
	inScope := func(it *item) bool {
		d := lowerKey(it.dir)
		direct := d == lf
		below := direct || strings.HasPrefix(d, lf+"/")
		switch scope {
		case "recursive":
			return below && it.fsType != fsFolder
		case "recursiveall":
			return below
		case "filesonly":
			return direct && it.fsType != fsFolder
		}
		return direct
	}
	var rows []*item
	more := false
	visit := func(it *item) (bool, error) {
		if !inScope(it) {
			return true, nil
		}
		if where != nil {
			ok, err := where.eval(itemField(it))
			if err != nil || !ok {
				return true, err
			}
		}
		if len(rows) == rowLimit {
			more = true
			return false, nil
		}
		rows = append(rows, it)
		return true, nil
	}
	if err := l.walk(pID, desc, visit); err != nil {
		return err
	}
	var fields map[string]bool
	if vf := view.kid("ViewFields"); vf != nil {
		fields = map[string]bool{}
		for _, fr := range vf.Kids {
			fields[strings.ToLower(fr.attr("Name"))] = true
		}
	}
	utc, _ := p["DatesInUtc"].(bool)
	loc := c.s.opts.TimeZone
	if utc {
		loc = time.UTC
	}
	out := make([]jobj, 0, len(rows))
	for _, it := range rows {
		out = append(out, c.renderRow(it, fields, loc))
	}
	viewID := rootFolderID(l).braced()
	resp := jobj{
		{"Row", out},
		{"FirstRow", firstRow},
		{"FolderPermissions", "0x7fffffffffffffff"},
		{"LastRow", firstRow + len(rows) - 1},
		{"RowLimit", rowLimit},
		{"FilterLink", "?"},
		{"ForceNoHierarchy", "1"},
		{"HierarchyHasIndention", ""},
	}
	if pID > 0 {
		resp = append(resp, jfield{"PrevHref", "?Paged=TRUE&PagedPrev=TRUE&p_ID=" + strconv.Itoa(pID+1) +
			"&PageFirstRow=" + strconv.Itoa(max(firstRow-rowLimit, 1)) + "&View=" + url.QueryEscape(viewID)})
	}
	if more && len(rows) > 0 {
		resp = append(resp, jfield{"NextHref", "?Paged=TRUE&p_ID=" + strconv.Itoa(rows[len(rows)-1].id) +
			"&PageFirstRow=" + strconv.Itoa(firstRow+len(rows)) + "&View=" + url.QueryEscape(viewID)})
	}
	c.writeJSON(200, "application/json;charset=utf-8", resp)
	return nil
}

// renderRow is one RenderListDataAsStream row: values as strings.
func (c *rctx) renderRow(it *item, fields map[string]bool, loc *time.Location) jobj {
	name := it.name
	ext := extension(name)
	base := strings.TrimSuffix(name, "."+ext)
	if ext == "" || it.fsType == fsFolder {
		base, ext = name, ""
	}
	row := jobj{
		{"ID", strconv.Itoa(it.id)},
		{"PermMask", "0x7fffffffffffffff"},
		{"FSObjType", strconv.Itoa(it.fsType)},
		{"UniqueId", it.uniqueID.braced()},
		{"ContentTypeId", it.contentTypeID()},
		{"FileRef", it.fileRef()},
		{"FileRef.urlencode", url.QueryEscape(it.fileRef())},
		{"FileLeafRef", name},
		{"FileLeafRef.Name", base},
		{"FileLeafRef.Suffix", ext},
		{"FileDirRef", it.dir},
		{"File_x0020_Type", ext},
		{"_UIVersionString", it.uiVersion()},
		{"owshiddenversion", strconv.Itoa(it.hidden)},
		{"Modified", displayTime(it.modified, loc)},
		{"Modified.", utcTime(it.modified)},
		{"Created", displayTime(it.created, loc)},
		{"Created.", utcTime(it.created)},
	}
	if it.isFile {
		sz := strconv.FormatInt(it.content.size, 10)
		row = append(row, jfield{"File_x0020_Size", sz}, jfield{"SMTotalFileStreamSize", sz})
	}
	if fields == nil || fields["title"] {
		row = append(row, jfield{"Title", it.title})
	}
	person := func(p *principal) []jobj {
		return []jobj{{{"id", strconv.Itoa(p.id)}, {"title", p.title}, {"email", p.email}, {"sip", ""}, {"picture", ""}}}
	}
	if fields == nil || fields["editor"] {
		row = append(row, jfield{"Editor", person(it.editor)})
	}
	if fields["author"] {
		row = append(row, jfield{"Author", person(it.author)})
	}
	return row
}
