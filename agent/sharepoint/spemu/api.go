package spemu

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// rctx is one REST request being served.
type rctx struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	mode    format
	origin  string // "http://host:port"
	web     *web   // the web of the URL prefix
	q       url.Values
	account string // authenticated account
	resp    *response
	after   func() // runs after the content lock is released (streaming)

	counts map[*list]map[string]int // folder child counts, built on demand
}

// ServeHTTP serves the REST API, direct file URLs and the /_emu/ admin API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	rid := randomGUID().String()
	h.Set("SPRequestGuid", rid)
	h.Set("request-id", rid)
	h.Set("X-SharePointHealthScore", strconv.Itoa(s.ctl.healthScore()))
	h.Set("MicrosoftSharePointTeamServices", s.opts.Version.teamServices())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-MS-InvokeApp", "1; RequireReadOnly")
	if !s.opts.DisableAdmin && strings.HasPrefix(r.URL.Path, "/_emu/") {
		s.admin(w, r)
		return
	}
	acct, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	if d := s.opts.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	c := &rctx{s: s, w: w, r: r, mode: formatOf(r.Header.Get("Accept")), account: acct, origin: s.origin(r)}
	c.q, _ = url.ParseQuery(r.URL.RawQuery)
	prefix, rest, isAPI := splitAPI(r.URL.Path)
	kind := EndpointContent
	var segs []seg
	var perr error
	if isAPI {
		segs, perr = parseSegments(rest)
		kind = classify(segs)
	}
	s.ctl.count(kind, r.UserAgent())
	if f := s.ctl.fault(kind, r.Method, r.URL.Path); f != nil {
		s.throttle(w, r, f)
		return
	}
	s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "kind", kind)
	if !isAPI {
		s.mu.RLock()
		err := c.direct(r.URL.Path)
		s.mu.RUnlock()
		if err != nil {
			http.Error(w, "404 NOT FOUND", http.StatusNotFound)
			return
		}
		c.after()
		return
	}
	if perr != nil {
		c.fail(perr)
		c.flush()
		return
	}
	if kind == EndpointChanges {
		s.mu.Lock()
		for _, st := range s.sites {
			s.prune(st)
		}
		s.mu.Unlock()
	}
	s.mu.RLock()
	var err error
	switch c.web = s.webOf(prefix); {
	case c.web == nil:
		err = errResource(r.URL.Path)
	case r.Method == http.MethodPost && !(len(segs) == 1 && strings.EqualFold(segs[0].name, "contextinfo")) &&
		!s.ctl.checkDigest(r.Header.Get("X-RequestDigest"), c.web.site, s.Now()):
		err = errDigest()
	default:
		err = c.route(segs)
	}
	s.mu.RUnlock()
	if err != nil && r.Method == http.MethodPost {
		io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20)) // keep the connection usable
	}
	if err != nil {
		c.fail(err)
		c.after = nil
	}
	if c.after != nil {
		c.after()
		return
	}
	c.flush()
}

// randomGUID is a request id from the process-wide random source.
func randomGUID() guid {
	var g guid
	a, b := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		g[i], g[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// origin is Options.PublicURL or the request's scheme and host.
func (s *Server) origin(r *http.Request) string {
	if s.opts.PublicURL != "" {
		return strings.TrimSuffix(s.opts.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// apiBase is "<origin><web>/_api/".
func (c *rctx) apiBase() string {
	if c.web.url == "/" {
		return c.origin + "/_api/"
	}
	return c.origin + c.web.url + "/_api/"
}

// absURL is the absolute, percent-encoded URL of a server-relative path.
func (c *rctx) absURL(ref string) string { return c.origin + (&url.URL{Path: ref}).EscapedPath() }

// throttle answers an injected fault.
func (s *Server) throttle(w http.ResponseWriter, r *http.Request, f *Fault) {
	io.Copy(io.Discard, io.LimitReader(r.Body, 8<<20))
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body>The server is busy now. Try again later.</body></html>", f.Status, http.StatusText(f.Status))
}

// splitAPI splits ".../<web>/_api/<rest>" (or _vti_bin/client.svc).
func splitAPI(p string) (prefix, rest string, ok bool) {
	lp := strings.ToLower(p)
	for _, marker := range []string{"/_api", "/_vti_bin/client.svc"} {
		i := strings.Index(lp, marker+"/")
		if i < 0 && strings.HasSuffix(lp, marker) {
			i = len(lp) - len(marker)
		}
		if i >= 0 {
			rest = ""
			if i+len(marker)+1 <= len(p) {
				rest = p[i+len(marker)+1:]
			}
			prefix = p[:i]
			if prefix == "" {
				prefix = "/"
			}
			return prefix, rest, true
		}
	}
	return "", "", false
}

// seg is one path segment of an API URL: name and optional (args).
type seg struct {
	name    string
	args    string
	hasArgs bool
}

// parseSegments splits "web/GetFileByServerRelativeUrl('/a/b”c')/$value",
// honouring quotes (with ” escapes) inside parentheses.
func parseSegments(p string) ([]seg, error) {
	var out []seg
	for i := 0; i < len(p); {
		if p[i] == '/' {
			i++
			continue
		}
		j := i
		for j < len(p) && p[j] != '(' && p[j] != '/' {
			j++
		}
		sg := seg{name: p[i:j]}
		if j < len(p) && p[j] == '(' {
			k, ok := scanArgs(p, j)
			if !ok {
				return nil, errBadLiteral(p)
			}
			sg.args, sg.hasArgs = p[j+1:k-1], true
			j = k
			if j < len(p) && p[j] != '/' {
				return nil, errBadLiteral(p)
			}
		}
		out = append(out, sg)
		i = j
	}
	return out, nil
}

// scanArgs returns the index after the ')' matching p[open].
func scanArgs(p string, open int) (int, bool) {
	depth, inQ := 0, false
	for i := open; i < len(p); i++ {
		c := p[i]
		if inQ {
			if c == '\'' {
				if i+1 < len(p) && p[i+1] == '\'' {
					i++
					continue
				}
				inQ = false
			}
			continue
		}
		switch c {
		case '\'':
			inQ = true
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

// stringArg parses an OData string literal argument ('...' with doubled
// apostrophes), a parameter alias (@v, from the query string) or a named
// argument (decodedurl='...').
func (c *rctx) stringArg(sg seg) (string, error) {
	a := strings.TrimSpace(sg.args)
	if k, v, ok := strings.Cut(a, "="); ok && !strings.HasPrefix(a, "'") && isIdent(strings.TrimSpace(k)) {
		a = strings.TrimSpace(v)
	}
	if strings.HasPrefix(a, "@") {
		v, ok := c.q[a]
		if !ok || len(v) == 0 {
			return "", errQuery("The parameter alias %s has no value.", a)
		}
		a = strings.TrimSpace(v[0])
	}
	s, ok := unquote(a)
	if !ok {
		return "", errBadLiteral(sg.name + "(" + sg.args + ")")
	}
	return s, nil
}

// unquote parses '...' where an apostrophe inside must be doubled.
func unquote(a string) (string, bool) {
	if len(a) < 2 || a[0] != '\'' || a[len(a)-1] != '\'' {
		return "", false
	}
	in := a[1 : len(a)-1]
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		if in[i] == '\'' {
			if i+1 < len(in) && in[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return "", false
		}
		b.WriteByte(in[i])
	}
	return b.String(), true
}

// guidArg parses guid'...' or '...'.
func guidArg(sg seg) (guid, error) {
	a := strings.TrimSpace(sg.args)
	if len(a) > 4 && strings.EqualFold(a[:4], "guid") {
		a = a[4:]
	}
	s, ok := unquote(a)
	if !ok {
		return guid{}, errBadLiteral(sg.name + "(" + sg.args + ")")
	}
	g, err := parseGUID(s)
	if err != nil {
		return guid{}, errBadLiteral(sg.name + "(" + sg.args + ")")
	}
	return g, nil
}

func intArg(sg seg) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(sg.args))
	if err != nil {
		return 0, errBadLiteral(sg.name + "(" + sg.args + ")")
	}
	return n, nil
}

// classify maps a request to an Endpoint kind.
func classify(segs []seg) Endpoint {
	has := func(names ...string) bool {
		for _, sg := range segs {
			for _, n := range names {
				if strings.EqualFold(sg.name, n) {
					return true
				}
			}
		}
		return false
	}
	switch {
	case len(segs) == 0:
		return EndpointOther
	case has("contextinfo"):
		return EndpointContextInfo
	case has("getchanges"):
		return EndpointChanges
	case has("renderlistdataasstream"):
		return EndpointRenderListData
	case has("$value"):
		return EndpointContent
	case has("roleassignments", "roledefinitions", "hasuniqueroleassignments", "roledefinitionbindings"):
		return EndpointRoles
	case has("siteusers", "sitegroups", "currentuser"):
		return EndpointUsers
	case has("getfilebyserverrelativeurl", "getfilebyserverrelativepath", "getfolderbyserverrelativeurl", "getfolderbyserverrelativepath"):
		return EndpointFile
	case has("items", "getitembyid"):
		return EndpointItems
	case has("lists"):
		return EndpointLists
	case has("web", "site", "webs"):
		return EndpointWeb
	}
	return EndpointOther
}

func (c *rctx) isGet() bool { return c.r.Method == http.MethodGet || c.r.Method == http.MethodHead }

func (c *rctx) needGet(resource string) error {
	if !c.isGet() {
		return errMethod(c.r.Method, resource)
	}
	return nil
}

func (c *rctx) needPost(resource string) error {
	if c.r.Method != http.MethodPost {
		return errMethod(c.r.Method, resource)
	}
	return nil
}

// route dispatches an API request (content lock held for reading).
func (c *rctx) route(segs []seg) error {
	if len(segs) == 0 {
		return errResource(c.r.URL.Path)
	}
	first, rest := segs[0], segs[1:]
	switch strings.ToLower(first.name) {
	case "contextinfo":
		if err := c.needPost("contextinfo"); err != nil {
			return err
		}
		return c.contextInfo()
	case "site":
		return c.routeSite(rest)
	case "web":
		return c.routeWeb(c.web, rest)
	case "lists":
		return c.routeLists(c.web, segs)
	}
	return errResource(c.r.URL.Path)
}

func (c *rctx) routeSite(rest []seg) error {
	st := c.web.site
	if len(rest) == 0 {
		if err := c.needGet("Site"); err != nil {
			return err
		}
		return c.writeSite(st)
	}
	switch strings.ToLower(rest[0].name) {
	case "getchanges":
		if err := c.needPost("GetChanges"); err != nil {
			return err
		}
		return c.getChanges(scopeSite, st.root, nil)
	case "rootweb":
		save := c.web
		c.web = st.root
		defer func() { c.web = save }()
		return c.routeWeb(st.root, rest[1:])
	}
	if len(rest) == 1 {
		if err := c.needGet(rest[0].name); err != nil {
			return err
		}
		return c.writeProp(c.siteProps(st), rest[0].name)
	}
	return errResource(c.r.URL.Path)
}

func (c *rctx) routeWeb(w *web, rest []seg) error {
	if len(rest) == 0 {
		if err := c.needGet("Web"); err != nil {
			return err
		}
		c.writeEntity(c.webEntity(w, parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))), "SP.ApiData.Webs")
		return nil
	}
	s0 := rest[0]
	switch strings.ToLower(s0.name) {
	case "lists":
		return c.routeLists(w, rest)
	case "getchanges":
		if err := c.needPost("GetChanges"); err != nil {
			return err
		}
		return c.getChanges(scopeWeb, w, nil)
	case "getfilebyserverrelativeurl", "getfilebyserverrelativepath":
		ref, err := c.stringArg(s0)
		if err != nil {
			return err
		}
		return c.routeFile(w, ref, rest[1:])
	case "getfolderbyserverrelativeurl", "getfolderbyserverrelativepath":
		ref, err := c.stringArg(s0)
		if err != nil {
			return err
		}
		return c.routeFolder(w, ref, rest[1:])
	}
	if err := c.needGet(s0.name); err != nil {
		return err
	}
	switch strings.ToLower(s0.name) {
	case "webs":
		if len(rest) > 1 {
			return errResource(c.r.URL.Path)
		}
		return c.writeWebs(w)
	case "roleassignments":
		return c.writeRoleAssignments(w.site, w.effectiveScope(), c.apiBase()+"Web/RoleAssignments", rest[1:])
	case "siteusers":
		return c.writeSiteUsers(w.site, rest[1:])
	case "sitegroups":
		return c.writeSiteGroups(w.site, rest[1:])
	case "roledefinitions":
		return c.writeRoleDefinitions(w.site, rest[1:])
	case "currentuser":
		return c.writeCurrentUser(w.site)
	}
	if len(rest) == 1 {
		return c.writeProp(c.webProps(w), s0.name)
	}
	return errResource(c.r.URL.Path)
}

// routeLists handles "lists", "lists(guid'..')", "lists/getbytitle('..')".
func (c *rctx) routeLists(w *web, rest []seg) error {
	s0 := rest[0]
	var l *list
	switch {
	case s0.hasArgs:
		id, err := guidArg(s0)
		if err != nil {
			return err
		}
		l = c.listByID(w, id)
		rest = rest[1:]
	case len(rest) == 1:
		if err := c.needGet("Lists"); err != nil {
			return err
		}
		return c.writeLists(w)
	default:
		s1 := rest[1]
		switch strings.ToLower(s1.name) {
		case "getbytitle":
			t, err := c.stringArg(s1)
			if err != nil {
				return err
			}
			for _, x := range w.lists {
				if strings.EqualFold(x.title, t) {
					l = x
				}
			}
		case "getbyid":
			id, err := guidArg(s1)
			if err != nil {
				return err
			}
			l = c.listByID(w, id)
		default:
			return errResource(c.r.URL.Path)
		}
		rest = rest[2:]
	}
	if l == nil {
		return errListNotFound()
	}
	return c.routeList(l, rest)
}

func (c *rctx) listByID(w *web, id guid) *list {
	for _, l := range w.lists {
		if l.id == id {
			return l
		}
	}
	return nil
}

func (c *rctx) routeList(l *list, rest []seg) error {
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	if len(rest) == 0 {
		if err := c.needGet("List"); err != nil {
			return err
		}
		c.writeEntity(c.listEntity(l, sel, exp), "SP.ApiData.Lists")
		return nil
	}
	s0 := rest[0]
	switch strings.ToLower(s0.name) {
	case "getchanges":
		if err := c.needPost("GetChanges"); err != nil {
			return err
		}
		return c.getChanges(scopeList, l.web, l)
	case "renderlistdataasstream":
		if err := c.needPost("RenderListDataAsStream"); err != nil {
			return err
		}
		return c.renderListData(l)
	}
	if err := c.needGet(s0.name); err != nil {
		return err
	}
	switch strings.ToLower(s0.name) {
	case "items":
		if !s0.hasArgs {
			if len(rest) > 1 {
				return errResource(c.r.URL.Path)
			}
			return c.writeItems(l)
		}
		fallthrough
	case "getitembyid":
		id, err := intArg(s0)
		if err != nil {
			return err
		}
		it := l.byID[id]
		if it == nil {
			return errItemNotFound()
		}
		return c.routeItem(it, rest[1:])
	case "roleassignments":
		return c.writeRoleAssignments(l.web.site, l.effectiveScope(), c.listURI(l)+"/RoleAssignments", rest[1:])
	case "rootfolder":
		return c.routeFolderOf(l, nil, rest[1:])
	}
	if len(rest) == 1 {
		return c.writeProp(c.listProps(l), s0.name)
	}
	return errResource(c.r.URL.Path)
}

func (c *rctx) routeItem(it *item, rest []seg) error {
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	if len(rest) == 0 {
		props := c.itemProps(it)
		if bad := unknownSelected(sel, props); bad != "" {
			return errQuery("The field or property '%s' does not exist.", bad)
		}
		c.writeEntity(c.itemEntity(it, props, sel, exp), "SP.ListData."+it.list.entityTypeName()+"Items")
		return nil
	}
	switch strings.ToLower(rest[0].name) {
	case "roleassignments":
		return c.writeRoleAssignments(it.list.web.site, it.effectiveScope(), c.itemURI(it)+"/RoleAssignments", rest[1:])
	case "file":
		if !it.isFile {
			return errFileNotFound(it.fileRef())
		}
		return c.routeFileItem(it, rest[1:])
	case "folder":
		if it.fsType != fsFolder {
			return errFolderNotFound()
		}
		return c.routeFolderOf(it.list, it, rest[1:])
	}
	if len(rest) == 1 {
		return c.writeProp(c.itemProps(it), rest[0].name)
	}
	return errResource(c.r.URL.Path)
}

// findRef resolves a server-relative URL (or one relative to the web) to
// its list and item within the web's site collection.
func (c *rctx) findRef(w *web, ref string) (target, error) {
	if !strings.HasPrefix(ref, "/") {
		ref = joinURL(w.url, ref)
	}
	t, err := c.s.resolve(ref)
	if err != nil || t.web.site != w.site {
		return target{}, ErrNotFound
	}
	return t, nil
}

func (c *rctx) routeFile(w *web, ref string, rest []seg) error {
	t, err := c.findRef(w, ref)
	if err != nil || t.item == nil || !t.item.isFile {
		return errFileNotFound(ref)
	}
	return c.routeFileItem(t.item, rest)
}

func (c *rctx) routeFileItem(it *item, rest []seg) error {
	if len(rest) == 0 {
		if err := c.needGet("File"); err != nil {
			return err
		}
		c.writeEntity(c.fileEntity(it, parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))), "SP.ApiData.Files12")
		return nil
	}
	if err := c.needGet(rest[0].name); err != nil {
		return err
	}
	switch strings.ToLower(rest[0].name) {
	case "$value", "openbinarystream":
		c.streamContent(it)
		return nil
	case "listitemallfields":
		return c.routeItem(it, rest[1:])
	}
	if len(rest) == 1 {
		return c.writeProp(c.fileProps(it), rest[0].name)
	}
	return errResource(c.r.URL.Path)
}

func (c *rctx) routeFolder(w *web, ref string, rest []seg) error {
	t, err := c.findRef(w, ref)
	if err != nil || t.list == nil {
		return errFolderNotFound()
	}
	if t.item != nil && t.item.fsType != fsFolder {
		return errFolderNotFound()
	}
	return c.routeFolderOf(t.list, t.item, rest)
}

func (c *rctx) routeFolderOf(l *list, f *item, rest []seg) error {
	if err := c.needGet("Folder"); err != nil {
		return err
	}
	sel, exp := parseTree(c.q.Get("$select")), parseTree(c.q.Get("$expand"))
	if len(rest) == 0 {
		c.writeEntity(c.folderEntity(l, f, sel, exp), "SP.ApiData.Folders")
		return nil
	}
	switch strings.ToLower(rest[0].name) {
	case "files":
		c.writeCollection(c.folderFiles(l, f, sel, exp), "SP.ApiData.Files12", "", "")
		return nil
	case "folders":
		c.writeCollection(c.folderFolders(l, f, sel, exp), "SP.ApiData.Folders", "", "")
		return nil
	case "listitemallfields":
		if f == nil {
			return errResource(c.r.URL.Path)
		}
		return c.routeItem(f, rest[1:])
	}
	if len(rest) == 1 {
		return c.writeProp(c.folderProps(l, f), rest[0].name)
	}
	return errResource(c.r.URL.Path)
}

// contextInfo issues a form digest.
func (c *rctx) contextInfo() error {
	io.Copy(io.Discard, io.LimitReader(c.r.Body, 1<<20))
	s := c.s
	d := s.ctl.newDigest(c.web.site, s.Now(), s.opts.DigestTimeout)
	versions := []string{"14.0.0.0", "15.0.0.0"}
	fields := jobj{
		{"FormDigestTimeoutSeconds", int(s.opts.DigestTimeout / time.Second)},
		{"FormDigestValue", d},
		{"LibraryVersion", s.opts.Version.libraryVersion()},
		{"SiteFullUrl", c.origin + c.web.site.url},
		{"SupportedSchemaVersions", c.primColl("Collection(Edm.String)", versions)},
		{"WebFullUrl", c.origin + c.web.url},
	}
	switch c.mode {
	case fmtVerbose:
		c.writeJSON(200, c.mode.contentType(), jobj{{"d", jobj{{"GetContextWebInformation",
			append(jobj{{"__metadata", jobj{{"type", "SP.ContextWebInformation"}}}}, fields...)}}}})
	case fmtMinimal:
		c.writeJSON(200, c.mode.contentType(), append(jobj{{"odata.metadata", c.apiBase() + "$metadata#SP.ContextWebInformation"}}, fields...))
	default:
		c.writeJSON(200, c.mode.contentType(), fields)
	}
	return nil
}

// primColl is a collection of primitives.
func (c *rctx) primColl(typ string, v []string) any {
	if c.mode == fmtVerbose {
		return jobj{{"__metadata", jobj{{"type", typ}}}, {"results", v}}
	}
	return v
}
