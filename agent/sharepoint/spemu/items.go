package spemu

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	defaultPageSize = 100
	maxPageSize     = 5000
)

// itemField reads a list item field for $filter and CAML.
func itemField(it *item) func(string) (any, bool) {
	return func(name string) (any, bool) {
		switch strings.ToLower(name) {
		case "id":
			return int64(it.id), true
		case "modified":
			return it.modified, true
		case "created":
			return it.created, true
		case "title":
			if it.title == "" {
				return nil, true
			}
			return it.title, true
		case "fsobjtype", "filesystemobjecttype":
			return int64(it.fsType), true
		case "fileleafref":
			return it.name, true
		case "fileref":
			return it.fileRef(), true
		case "filedirref":
			return it.dir, true
		case "uniqueid":
			return it.uniqueID, true
		case "guid":
			return it.guidField, true
		case "odata__uiversionstring", "_uiversionstring":
			return it.uiVersion(), true
		case "authorid":
			return int64(it.author.id), true
		case "editorid":
			return int64(it.editor.id), true
		case "file_x0020_size":
			if !it.isFile {
				return nil, true
			}
			return it.content.size, true
		}
		return nil, false
	}
}

// isIDField reports whether a field is the indexed ID column.
func isIDField(f string) bool { return strings.EqualFold(f, "id") }

// parseSkipToken reads "Paged=TRUE&p_ID=N" (as $skiptoken or NextHref).
func parseSkipToken(v string) (int, error) {
	vals, err := url.ParseQuery(v)
	if err != nil {
		return 0, errQuery("The $skiptoken '%s' is not valid.", v)
	}
	for k, vs := range vals {
		if strings.EqualFold(k, "p_ID") && len(vs) > 0 {
			n, err := strconv.Atoi(vs[0])
			if err != nil || n < 0 {
				return 0, errQuery("The $skiptoken '%s' is not valid.", v)
			}
			return n, nil
		}
	}
	return 0, nil
}

// writeItems serves GET .../items: $select, $expand, $filter, $orderby on
// ID, $top (default 100, at most 5000) and paging by
// $skiptoken=Paged=TRUE&p_ID=<last id>; $skip is ignored as in SharePoint.
// On a list holding more than ViewThreshold items the query fails with
// SPQueryThrottledException as Options.Threshold describes.
func (c *rctx) writeItems(l *list) error {
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	probe := &item{list: l, author: &principal{}, editor: &principal{}, major: 1, isFile: l.isLibrary()}
	if bad := unknownSelected(sel, c.itemProps(probe)); bad != "" {
		return errQuery("The field or property '%s' does not exist.", bad)
	}
	requested, top := defaultPageSize, defaultPageSize
	if v := c.q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errQuery("The value of $top, '%s', is not valid.", v)
		}
		requested, top = n, min(n, maxPageSize)
	}
	pID, err := parseSkipToken(c.q.Get("$skiptoken"))
	if err != nil {
		return err
	}
	filter, err := parseFilter(c.q.Get("$filter"))
	if err != nil {
		return err
	}
	desc, orderOther := false, ""
	if ob := strings.Fields(c.q.Get("$orderby")); len(ob) > 0 {
		switch {
		case len(ob) > 2 || !isIDField(strings.TrimSuffix(ob[0], ",")):
			orderOther = ob[0]
		case len(ob) == 2 && strings.EqualFold(ob[1], "desc"):
			desc = true
		case len(ob) == 2 && !strings.EqualFold(ob[1], "asc"):
			return errQuery("The $orderby '%s' is not valid.", c.q.Get("$orderby"))
		}
	}
	threshold := c.s.opts.ViewThreshold
	if l.itemCount() > threshold {
		if c.s.opts.Threshold == ThresholdStrict {
			return errThrottled()
		}
		nonIndexed := false
		if filter != nil {
			filter.fields(func(f string) { nonIndexed = nonIndexed || !isIDField(f) })
		}
		if requested > threshold || nonIndexed || orderOther != "" {
			return errThrottled()
		}
	}
	if orderOther != "" {
		return errQuery("$orderby on '%s' is not supported by the emulator (only Id).", orderOther)
	}
	match := func(it *item) (bool, error) {
		if filter == nil {
			return true, nil
		}
		return filter.eval(itemField(it))
	}
	var page []*item
	more := false
	visit := func(it *item) (bool, error) {
		ok, err := match(it)
		if err != nil || !ok {
			return true, err
		}
		if len(page) == top {
			more = true
			return false, nil
		}
		page = append(page, it)
		return true, nil
	}
	if err := l.walk(pID, desc, visit); err != nil {
		return err
	}
	out := make([]jobj, 0, len(page))
	for _, it := range page {
		out = append(out, c.itemEntity(it, c.itemProps(it), sel, exp))
	}
	var abs, rel string
	if more && top > 0 {
		abs = c.listURI(l) + "/Items?%24skiptoken=Paged%3dTRUE%26p_ID%3d" + strconv.Itoa(page[len(page)-1].id) + c.keptQuery("$skiptoken")
		rel = strings.TrimPrefix(abs, c.apiOf(l.web))
	}
	c.writeCollection(out, "SP.ListData."+l.entityTypeName()+"Items", abs, rel)
	return nil
}

// keptQuery re-encodes the request's query parameters but drop, as
// "&%24select=..." pairs, the way SharePoint writes next links.
func (c *rctx) keptQuery(drop string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(c.r.URL.RawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || strings.EqualFold(dk, drop) {
			continue
		}
		b.WriteString("&")
		b.WriteString(strings.ReplaceAll(url.QueryEscape(dk), "+", "%20"))
		b.WriteString("=")
		b.WriteString(strings.ReplaceAll(url.QueryEscape(dv), "+", "%20"))
	}
	return b.String()
}

// displayTime is RenderListDataAsStream's display form, "11/26/2022 1:51 AM".
func displayTime(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("1/2/2006 3:04 PM")
}

// walk visits l's items in ID order (descending when desc) after pID (before
// it when descending; 0 means from the start), until visit says stop or fails.
func (l *list) walk(pID int, desc bool, visit func(*item) (bool, error)) error {
	if desc {
		end := len(l.items)
		if pID > 0 {
			end = l.firstAfter(pID - 1)
		}
		for i := end - 1; i >= 0; i-- {
			if cont, err := visit(l.items[i]); err != nil || !cont {
				return err
			}
		}
		return nil
	}
	for i := l.firstAfter(pID); i < len(l.items); i++ {
		if cont, err := visit(l.items[i]); err != nil || !cont {
			return err
		}
	}
	return nil
}
