// Package aemassetsfake is a fake AEM as a Cloud Service author for the
// Assets connector's tests, on 127.0.0.1, following the published APIs:
//
//	GET  /api/assets/{path}.json?offset=&limit=   Assets HTTP API (Siren), srn:paging
//	GET  /bin/querybuilder.json?path=&type=&fulltext=&orderby=&p.offset=&p.limit=
//	POST /content/dam/{folder}.initiateUpload.json   fileName, fileSize (form) -> 201
//	PUT  {uploadURI}                                 a part, pre-signed (no Authorization)
//	POST /content/dam/{folder}.completeUpload.json   fileName, mimeType, uploadToken -> 200
//
// AEM requests need "Authorization: Bearer <token>" (401 otherwise). The
// upload URIs point at a fake binary storage under /blob/ on the same
// server: it checks each part's signature, order and size (within
// minPartSize and maxPartSize, only the last part smaller) and refuses
// parts that carry an Authorization header; completing assembles the
// parts into the asset, whose content tests read back.
//
// Tests inject faults (any status, a Retry-After header, a delay) on the
// requests whose path contains a given string, and read back the requests
// it received.
package aemassetsfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value of every field means its default.
type Options struct {
	// Tokens are the access tokens it accepts.
	Tokens []string
	// MinPartSize and MaxPartSize bound upload parts. Zero means 256 KiB
	// and 100 MiB.
	MinPartSize, MaxPartSize int64
	// MaxURIs caps the upload URIs of a file: it gets one per
	// MinPartSize bytes, at least one. Zero means 10.
	MaxURIs int
}

// Asset is an asset in the fake DAM.
type Asset struct {
	// Path is its DAM path, e.g. /content/dam/marketing/logo.png.
	Path     string
	Title    string
	MimeType string
	Metadata map[string]any
	Content  []byte
	Created  time.Time
}

// Fault is a scripted answer to the next requests whose path contains Path.
type Fault struct {
	// Path selects the requests ("" means every request but the health
	// check's), e.g. "/blob/" or ".completeUpload.json".
	Path string
	// Status is the HTTP status to answer with; zero (with Delay) answers
	// normally, late.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body, when set, is the body (JSON); else a Sling-like HTML error page.
	Body string
	// Delay holds the answer back this long (or until the client leaves).
	Delay time.Duration
	// Times is how many requests it answers. Zero means 1.
	Times int
}

// Request is a request the server received.
type Request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// upload is a direct binary upload in progress.
type upload struct {
	id, sig, token string
	folder         string
	fileName, mime string
	size           int64
	parts          [][]byte
	received       int64
}

// Server is a fake AEM author with its binary storage.
type Server struct {
	// URL is its base URL (the author host).
	URL string

	srv  *httptest.Server
	opts Options

	mu       sync.Mutex
	tokens   map[string]bool    // guarded by mu
	folders  map[string]string  // guarded by mu; path -> title
	assets   map[string]*Asset  // guarded by mu
	uploads  map[string]*upload // guarded by mu; id -> upload
	faults   []Fault            // guarded by mu
	requests []Request          // guarded by mu
}

// New starts a Server with the folder /content/dam. Close it when done.
func New(opts Options) *Server {
	if opts.MinPartSize <= 0 {
		opts.MinPartSize = 256 << 10
	}
	if opts.MaxPartSize <= 0 {
		opts.MaxPartSize = 100 << 20
	}
	if opts.MaxURIs <= 0 {
		opts.MaxURIs = 10
	}
	s := &Server{opts: opts, tokens: map[string]bool{}, folders: map[string]string{"/content/dam": "Assets"},
		assets: map[string]*Asset{}, uploads: map[string]*upload{}}
	for _, t := range opts.Tokens {
		s.tokens[t] = true
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddFolder adds a folder (and its missing parents) under /content/dam.
func (s *Server) AddFolder(p, title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addFolder(p, title)
}

func (s *Server) addFolder(p, title string) {
	for dir := path.Dir(p); dir != "/content" && dir != "/" && s.folders[dir] == ""; dir = path.Dir(dir) {
		s.folders[dir] = path.Base(dir)
	}
	s.folders[p] = title
}

// AddAsset adds an asset (and its missing folders).
func (s *Server) AddAsset(a Asset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Created.IsZero() {
		a.Created = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	}
	if a.MimeType == "" {
		a.MimeType = mimeOf(a.Path)
	}
	if dir := path.Dir(a.Path); s.folders[dir] == "" {
		s.addFolder(dir, path.Base(dir))
	}
	cp := a
	s.assets[a.Path] = &cp
}

// Asset returns a copy of the asset at p.
func (s *Server) Asset(p string) (Asset, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.assets[p]
	if !ok {
		return Asset{}, false
	}
	cp := *a
	cp.Content = append([]byte(nil), a.Content...)
	return cp, true
}

// Revoke makes token invalid, as an expired one is.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = false
}

// Inject queues a fault.
func (s *Server) Inject(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func mimeOf(p string) string {
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		t, _, _ = strings.Cut(t, ";")
		return t
	}
	return "application/octet-stream"
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// slingError writes Sling's HTML error page.
func slingError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><h1>%s (%d)</h1><p>%s</p></body></html>",
		status, http.StatusText(status), http.StatusText(status), status, msg)
}

// storageError writes the binary storage's XML error.
func storageError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 256<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()
	if r.URL.Path == "/" {
		slingError(w, http.StatusUnauthorized, "Authentication required")
		return
	}

	s.mu.Lock()
	var f *Fault
	for i := range s.faults {
		if strings.Contains(r.URL.Path, s.faults[i].Path) {
			cp := s.faults[i]
			f = &cp
			if s.faults[i].Times--; s.faults[i].Times <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			break
		}
	}
	s.mu.Unlock()
	if f != nil && f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	if f != nil && f.Status != 0 {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(f.Status)
			io.WriteString(w, f.Body)
			return
		}
		slingError(w, f.Status, "injected")
		return
	}

	if strings.HasPrefix(r.URL.Path, "/blob/") {
		s.putPart(w, r, body)
		return
	}
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	valid := found && s.tokens[tok]
	s.mu.Unlock()
	if !valid {
		slingError(w, http.StatusUnauthorized, "Authentication required")
		return
	}
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && (p == "/api/assets.json" || strings.HasPrefix(p, "/api/assets/") && strings.HasSuffix(p, ".json")):
		s.assetsAPI(w, r)
	case r.Method == http.MethodGet && p == "/bin/querybuilder.json":
		s.queryBuilder(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(p, ".initiateUpload.json"):
		s.initiate(w, r, strings.TrimSuffix(p, ".initiateUpload.json"), body)
	case r.Method == http.MethodPost && strings.HasSuffix(p, ".completeUpload.json"):
		s.complete(w, r, strings.TrimSuffix(p, ".completeUpload.json"), body)
	default:
		slingError(w, http.StatusNotFound, "Resource at '"+p+"' not found: No resource found")
	}
}

// link is a Siren link.
func (s *Server) link(rel, p string) map[string]any {
	return map[string]any{"rel": []string{rel}, "href": s.URL + p}
}

func apiHref(damPath string) string {
	return "/api/assets" + strings.TrimPrefix(damPath, "/content/dam") + ".json"
}

func (s *Server) assetsAPI(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/assets"), ".json")
	damPath := "/content/dam" + rel
	q := r.URL.Query()
	offset, limit := 0, 20
	if v := q.Get("offset"); v != "" {
		offset, _ = strconv.Atoi(v)
	}
	if v := q.Get("limit"); v != "" {
		limit, _ = strconv.Atoi(v)
	}
	if offset < 0 || limit < 1 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"class": []string{"core/response"},
			"properties": map[string]any{"status.code": 400, "status.message": "offset and limit must be positive"}})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out map[string]any
	var children []map[string]any
	if title, ok := s.folders[damPath]; ok {
		var names []string
		for p := range s.folders {
			if path.Dir(p) == damPath && p != damPath {
				names = append(names, p)
			}
		}
		for p := range s.assets {
			if path.Dir(p) == damPath {
				names = append(names, p)
			}
		}
		sort.Strings(names)
		for _, p := range names {
			if t, ok := s.folders[p]; ok {
				children = append(children, map[string]any{"class": []string{"assets/folder"},
					"properties": map[string]any{"name": path.Base(p), "dc:title": t}, "links": []any{s.link("self", apiHref(p))}})
				continue
			}
			a := s.assets[p]
			children = append(children, map[string]any{"class": []string{"assets/asset"},
				"properties": map[string]any{"name": path.Base(p), "dc:title": a.Title, "metadata": map[string]any{"dc:format": a.MimeType}},
				"links":      []any{s.link("self", apiHref(p))}})
		}
		out = map[string]any{"class": []string{"assets/folder"}, "properties": map[string]any{"name": path.Base(damPath), "dc:title": title},
			"links": []any{s.link("self", r.URL.Path), s.link("parent", apiHref(path.Dir(damPath)))}}
	} else if a, ok := s.assets[damPath]; ok {
		md := map[string]any{"dc:format": a.MimeType, "dam:size": len(a.Content), "dc:title": a.Title, "jcr:created": a.Created.Format(time.RFC3339)}
		for k, v := range a.Metadata {
			md[k] = v
		}
		for _, name := range []string{"cq5dam.thumbnail.140.100.png", "cq5dam.web.1280.1280.jpeg", "original"} {
			children = append(children, map[string]any{"class": []string{"assets/asset/renditions"}, "properties": map[string]any{"name": name},
				"links": []any{s.link("self", "/api/assets"+strings.TrimPrefix(damPath, "/content/dam")+"/renditions/"+name)}})
		}
		out = map[string]any{"class": []string{"assets/asset"}, "properties": map[string]any{"name": path.Base(damPath), "metadata": md, "related": map[string]any{}},
			"links": []any{s.link("self", r.URL.Path), s.link("parent", apiHref(path.Dir(damPath))), s.link("content", damPath)}}
	} else {
		writeJSON(w, http.StatusNotFound, map[string]any{"class": []string{"core/response"},
			"properties": map[string]any{"path": r.URL.Path, "status.code": 404, "status.message": "Not Found"}})
		return
	}
	props := out["properties"].(map[string]any)
	props["srn:paging"] = map[string]int{"total": len(children), "offset": offset, "limit": limit}
	start := min(offset, len(children))
	out["entities"] = children[start:min(start+limit, len(children))]
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) queryBuilder(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	root := q.Get("path")
	offset, limit := 0, 10
	if v := q.Get("p.offset"); v != "" {
		offset, _ = strconv.Atoi(v)
	}
	if v := q.Get("p.limit"); v != "" {
		limit, _ = strconv.Atoi(v)
	}
	if root != "/content/dam" && !strings.HasPrefix(root, "/content/dam/") || offset < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "errorMessage": "invalid path or offset"})
		return
	}
	if t := q.Get("type"); t != "" && t != "dam:Asset" {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "results": 0, "total": 0, "more": false, "offset": offset, "hits": []any{}})
		return
	}
	text := strings.ToLower(q.Get("fulltext"))
	s.mu.Lock()
	var matches []*Asset
	for p, a := range s.assets {
		if !strings.HasPrefix(p, root+"/") {
			continue
		}
		if text != "" {
			hay := strings.ToLower(path.Base(p) + " " + a.Title + " " + fmt.Sprint(a.Metadata))
			if !strings.Contains(hay, text) {
				continue
			}
		}
		matches = append(matches, a)
	}
	s.mu.Unlock()
	sort.Slice(matches, func(i, j int) bool { return matches[i].Path < matches[j].Path })
	start := min(offset, len(matches))
	end := len(matches)
	if limit >= 0 {
		end = min(start+limit, len(matches))
	}
	hits := []map[string]any{}
	for _, a := range matches[start:end] {
		h := map[string]any{"path": a.Path, "name": path.Base(a.Path), "title": a.Title,
			"lastModified": a.Created.Format("2006-01-02 15:04:05"), "created": a.Created.Format("2006-01-02 15:04:05")}
		if text != "" {
			h["excerpt"] = "..." + text + "..."
		}
		hits = append(hits, h)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "results": len(hits), "total": len(matches),
		"more": end < len(matches), "offset": offset, "hits": hits})
}

func (s *Server) initiate(w http.ResponseWriter, r *http.Request, folder string, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		slingError(w, http.StatusBadRequest, "want form data")
		return
	}
	names, sizes := form["fileName"], form["fileSize"]
	if len(names) == 0 || len(names) != len(sizes) {
		slingError(w, http.StatusBadRequest, "fileName and fileSize are required for each file")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.folders[folder]; !ok {
		slingError(w, http.StatusNotFound, "folder "+folder+" not found")
		return
	}
	var files []map[string]any
	for i, name := range names {
		size, err := strconv.ParseInt(sizes[i], 10, 64)
		if err != nil || size < 0 || name == "" || strings.Contains(name, "/") {
			slingError(w, http.StatusBadRequest, "bad fileName or fileSize")
			return
		}
		n := int(min(max((size+s.opts.MinPartSize-1)/s.opts.MinPartSize, 1), int64(s.opts.MaxURIs)))
		u := &upload{id: randomHex(8), sig: randomHex(16), token: randomHex(24), folder: folder, fileName: name, mime: mimeOf(name), size: size}
		s.uploads[u.id] = u
		var uris []string
		for j := range n {
			uris = append(uris, fmt.Sprintf("%s/blob/%s/%d?sv=2019-12-12&se=2030-01-01&sig=%s", s.URL, u.id, j, u.sig))
		}
		files = append(files, map[string]any{"fileName": name, "mimeType": u.mime, "uploadToken": u.token, "uploadURIs": uris,
			"minPartSize": s.opts.MinPartSize, "maxPartSize": s.opts.MaxPartSize})
	}
	writeJSON(w, http.StatusCreated, map[string]any{"completeURI": folder + ".completeUpload.json", "folderPath": folder, "files": files})
}

func (s *Server) putPart(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Method != http.MethodPut {
		storageError(w, http.StatusMethodNotAllowed, "UnsupportedHttpVerb", "The resource doesn't support the specified HTTP verb.")
		return
	}
	if r.Header.Get("Authorization") != "" {
		storageError(w, http.StatusBadRequest, "InvalidAuthenticationInfo", "Authentication information is not given in the correct format.")
		return
	}
	id, idx, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/blob/"), "/")
	i, err := strconv.Atoi(idx)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.uploads[id]
	if u == nil || err != nil || r.URL.Query().Get("sig") != u.sig {
		storageError(w, http.StatusForbidden, "AuthenticationFailed", "Server failed to authenticate the request.")
		return
	}
	n := int64(len(body))
	last := u.received+n == u.size
	switch {
	case i != len(u.parts):
		storageError(w, http.StatusBadRequest, "InvalidBlockList", fmt.Sprintf("part %d arrived when part %d was expected", i, len(u.parts)))
	case n > s.opts.MaxPartSize:
		storageError(w, http.StatusRequestEntityTooLarge, "RequestBodyTooLarge", fmt.Sprintf("part of %d bytes exceeds maxPartSize %d", n, s.opts.MaxPartSize))
	case u.received+n > u.size:
		storageError(w, http.StatusBadRequest, "InvalidBlobOrBlock", fmt.Sprintf("parts exceed the file size %d", u.size))
	case !last && n < s.opts.MinPartSize:
		storageError(w, http.StatusBadRequest, "InvalidBlobOrBlock", fmt.Sprintf("part of %d bytes below minPartSize %d and not the last", n, s.opts.MinPartSize))
	default:
		u.parts = append(u.parts, append([]byte(nil), body...))
		u.received += n
		w.WriteHeader(http.StatusCreated)
	}
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, folder string, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		slingError(w, http.StatusBadRequest, "want form data")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var u *upload
	for _, c := range s.uploads {
		if c.token == form.Get("uploadToken") {
			u = c
		}
	}
	switch {
	case u == nil || form.Get("uploadToken") == "":
		slingError(w, http.StatusBadRequest, "invalid upload token")
		return
	case u.folder != folder || u.fileName != form.Get("fileName") || u.mime != form.Get("mimeType"):
		slingError(w, http.StatusBadRequest, "fileName, mimeType and folder must be those of the initiation")
		return
	case u.received != u.size:
		slingError(w, http.StatusConflict, fmt.Sprintf("only %d of %d bytes were uploaded", u.received, u.size))
		return
	}
	// An existing asset is replaced (replace=true), versioned
	// (createVersion=true) or updated in place: the fake keeps the latest.
	p := folder + "/" + u.fileName
	var content []byte
	for _, part := range u.parts {
		content = append(content, part...)
	}
	s.assets[p] = &Asset{Path: p, Title: u.fileName, MimeType: u.mime, Content: content, Created: time.Now().UTC(), Metadata: map[string]any{}}
	delete(s.uploads, u.id)
	writeJSON(w, http.StatusOK, map[string]any{"status.code": 200, "status.message": "OK", "path": p})
}
