package spemu

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// format is the response (or request body) OData JSON flavour.
type format int

const (
	fmtVerbose format = iota // application/json;odata=verbose
	fmtMinimal               // JSON Light minimalmetadata (and plain application/json)
	fmtNoMeta                // JSON Light nometadata
)

// formatOf reads an Accept or Content-Type header. Anything that is not
// verbose or nometadata is treated as minimalmetadata (SharePoint itself
// would answer Atom XML to a non-JSON Accept).
func formatOf(h string) format {
	h = strings.ToLower(h)
	switch {
	case strings.Contains(h, "odata=verbose"):
		return fmtVerbose
	case strings.Contains(h, "odata=nometadata"):
		return fmtNoMeta
	}
	return fmtMinimal
}

func (f format) contentType() string {
	switch f {
	case fmtVerbose:
		return "application/json;odata=verbose;charset=utf-8"
	case fmtNoMeta:
		return "application/json;odata=nometadata;streaming=true;charset=utf-8"
	}
	return "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
}

// tree is a parsed $select or $expand: lowercase names to sub-trees.
type tree struct {
	all  bool // "*"
	kids map[string]*tree
	name map[string]string // lowercase -> as written
}

// parseTree parses "A,B/C,*"; "" gives nil.
func parseTree(s string) *tree {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	root := &tree{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t := root
		for seg := range strings.SplitSeq(part, "/") {
			seg = strings.TrimSpace(seg)
			if seg == "*" {
				t.all = true
				break
			}
			if t.kids == nil {
				t.kids, t.name = map[string]*tree{}, map[string]string{}
			}
			k := strings.ToLower(seg)
			if t.kids[k] == nil {
				t.kids[k] = &tree{}
				t.name[k] = seg
			}
			t = t.kids[k]
		}
	}
	return root
}

func (t *tree) child(k string) *tree {
	if t == nil {
		return nil
	}
	return t.kids[strings.ToLower(k)]
}

// sub is the selection inside an explicitly selected navigation
// property: nil (defaults) unless it names sub-properties.
func (t *tree) sub(k string) *tree {
	c := t.child(k)
	if c == nil || (len(c.kids) == 0 && !c.all) {
		return nil
	}
	return c
}

// prop is one property of an entity being serialized.
type prop struct {
	name  string
	val   any
	extra bool                     // only returned when selected by name
	nav   func(sel, exp *tree) any // navigation property: builds the expanded value
	uri   string                   // navigation: deferred URI
}

// meta is an entity's OData metadata.
type meta struct {
	typ      string
	uri      string // absolute
	id       string // absolute; "" means uri
	etag     string
	editLink string // relative to _api/
}

// entity assembles an entity for the response format, applying $select and
// $expand as SharePoint does: without $select every non-extra property;
// navigation properties expanded when in $expand, else deferred (verbose
// only).
func (c *rctx) entity(m meta, props []prop, sel, exp *tree) jobj {
	o := make(jobj, 0, len(props)+4)
	switch c.mode {
	case fmtVerbose:
		md := jobj{{"id", cmp(m.id, m.uri)}, {"uri", m.uri}}
		if m.etag != "" {
			md = append(md, jfield{"etag", m.etag})
		}
		md = append(md, jfield{"type", m.typ})
		o = append(o, jfield{"__metadata", md})
	case fmtMinimal:
		o = append(o, jfield{"odata.type", m.typ}, jfield{"odata.id", cmp(m.id, m.uri)})
		if m.etag != "" {
			o = append(o, jfield{"odata.etag", m.etag})
		}
		o = append(o, jfield{"odata.editLink", m.editLink})
	}
	selAll := sel == nil || sel.all
	for _, p := range props {
		explicit := sel.child(p.name) != nil
		if p.nav == nil {
			if explicit || (selAll && !p.extra) {
				o = append(o, jfield{p.name, p.val})
			}
			continue
		}
		if !(selAll || explicit) {
			continue
		}
		if e := exp.child(p.name); e != nil {
			o = append(o, jfield{p.name, p.nav(sel.sub(p.name), e)})
		} else if c.mode == fmtVerbose {
			o = append(o, jfield{p.name, jobj{{"__deferred", jobj{{"uri", p.uri}}}}})
		}
	}
	return o
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// unknownSelected returns the first selected name that is no property.
func unknownSelected(sel *tree, props []prop) string {
	if sel == nil {
		return ""
	}
	for k, t := range sel.kids {
		found := false
		for _, p := range props {
			if strings.EqualFold(p.name, k) {
				found = true
				if p.nav == nil && len(t.kids) > 0 {
					return sel.name[k]
				}
				break
			}
		}
		if !found {
			return sel.name[k]
		}
	}
	return ""
}

// coll wraps a nested collection: {"results":[...]} in verbose, a plain
// array in JSON Light.
func (c *rctx) coll(items []jobj) any {
	if items == nil {
		items = []jobj{}
	}
	if c.mode == fmtVerbose {
		return jobj{{"results", items}}
	}
	return items
}

// complexVal is a complex-type value with its verbose __metadata type.
func (c *rctx) complexVal(typ string, fields jobj) jobj {
	if c.mode == fmtVerbose {
		return append(jobj{{"__metadata", jobj{{"type", typ}}}}, fields...)
	}
	return fields
}

// writeJSON encodes the response; ServeHTTP sends it once the content
// lock is released.
func (c *rctx) writeJSON(status int, ct string, v any) {
	c.resp = &response{status: status, ct: ct, body: appendJSON(make([]byte, 0, 4096), v)}
}

// response is a response built under the content lock.
type response struct {
	status int
	ct     string
	body   []byte
}

// flush sends the built response.
func (c *rctx) flush() {
	if c.resp == nil {
		return
	}
	h := c.w.Header()
	h.Set("Content-Type", c.resp.ct)
	if strings.HasPrefix(c.resp.ct, "application/json;odata") {
		h.Set("DataServiceVersion", "3.0")
	}
	h.Set("Content-Length", strconv.Itoa(len(c.resp.body)))
	c.w.WriteHeader(c.resp.status)
	if c.r.Method != http.MethodHead {
		c.w.Write(c.resp.body)
	}
}

// writeEntity answers one entity; frag is the $metadata fragment.
func (c *rctx) writeEntity(o jobj, frag string) {
	switch c.mode {
	case fmtVerbose:
		c.writeJSON(200, c.mode.contentType(), jobj{{"d", o}})
	case fmtMinimal:
		c.writeJSON(200, c.mode.contentType(), append(jobj{{"odata.metadata", c.apiBase() + "$metadata#" + frag + "/@Element"}}, o...))
	default:
		c.writeJSON(200, c.mode.contentType(), o)
	}
}

// writeCollection answers a collection with an optional next link (given
// absolute and relative to _api/).
func (c *rctx) writeCollection(items []jobj, frag, nextAbs, nextRel string) {
	if items == nil {
		items = []jobj{}
	}
	if c.mode == fmtVerbose {
		d := jobj{{"results", items}}
		if nextAbs != "" {
			d = append(d, jfield{"__next", nextAbs})
		}
		c.writeJSON(200, c.mode.contentType(), jobj{{"d", d}})
		return
	}
	var o jobj
	if c.mode == fmtMinimal {
		o = append(o, jfield{"odata.metadata", c.apiBase() + "$metadata#" + frag})
	}
	o = append(o, jfield{"value", items})
	if nextAbs != "" {
		o = append(o, jfield{"odata.nextLink", c.s.lightNextLink(nextAbs, nextRel)})
	}
	c.writeJSON(200, c.mode.contentType(), o)
}

// lightNextLink picks the JSON Light next link per Options.NextLinks.
func (s *Server) lightNextLink(abs, rel string) string {
	switch s.opts.NextLinks {
	case NextLinkAbsolute:
		return abs
	case NextLinkRelative:
		return rel
	}
	if s.linkFlip.Add(1)%2 == 1 {
		return abs
	}
	return rel
}

// writeValue answers a single property (/_api/web/Title).
func (c *rctx) writeValue(name string, v any, edm string) {
	switch c.mode {
	case fmtVerbose:
		c.writeJSON(200, c.mode.contentType(), jobj{{"d", jobj{{name, v}}}})
	case fmtMinimal:
		if o, ok := v.(jobj); ok {
			c.writeJSON(200, c.mode.contentType(), append(jobj{{"odata.metadata", c.apiBase() + "$metadata#" + edm}}, o...))
			return
		}
		c.writeJSON(200, c.mode.contentType(), jobj{{"odata.metadata", c.apiBase() + "$metadata#" + edm}, {"value", v}})
	default:
		if o, ok := v.(jobj); ok {
			c.writeJSON(200, c.mode.contentType(), o)
			return
		}
		c.writeJSON(200, c.mode.contentType(), jobj{{"value", v}})
	}
}

// writeProp answers /<entity>/<Property> from the entity's properties.
func (c *rctx) writeProp(props []prop, name string) error {
	for _, p := range props {
		if strings.EqualFold(p.name, name) && p.nav == nil {
			c.writeValue(p.name, p.val, edmType(p.val))
			return nil
		}
	}
	return errResource(c.r.URL.Path)
}

// edmType names a property value's type for odata.metadata.
func edmType(v any) string {
	switch v.(type) {
	case bool:
		return "Edm.Boolean"
	case int:
		return "Edm.Int32"
	case int64:
		return "Edm.Int64"
	case jobj:
		return "SP.ChangeToken"
	}
	return "Edm.String"
}

// fail answers an error with SharePoint's envelope in the request's format.
func (c *rctx) fail(err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, CodeGeneric, "System.InvalidOperationException", err.Error()}
	}
	c.s.log.Debug("request failed", "method", c.r.Method, "path", c.r.URL.Path, "status", ae.status, "code", ae.code)
	body := jobj{{"code", strconv.FormatInt(ae.code, 10) + ", " + ae.typ}, {"message", jobj{{"lang", "en-US"}, {"value", ae.msg}}}}
	if c.mode == fmtVerbose {
		c.writeJSON(ae.status, c.mode.contentType(), jobj{{"error", body}})
		return
	}
	c.writeJSON(ae.status, c.mode.contentType(), jobj{{"odata.error", body}})
}
