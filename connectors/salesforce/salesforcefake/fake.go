// Package salesforcefake is a fake Salesforce REST API for tests, on
// 127.0.0.1, following the published API:
//
//	GET  /services/data/                        versions (no authentication)
//	GET  /services/data/vXX.X/query?q=SOQL      first page; Sforce-Query-Options: batchSize=200..2000
//	GET  /services/data/vXX.X/query/{locator}   next pages (nextRecordsUrl)
//	POST /services/data/vXX.X/sobjects/{name}/  create a record -> 201 {"id","success","errors"}
//
// Requests carry "Authorization: Bearer <token>"; unknown or revoked
// tokens get 401 [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}].
// Every API answer carries "Sforce-Limit-Info: api-usage=used/limit";
// past the limit Salesforce refuses with 403 REQUEST_LIMIT_EXCEEDED. Its
// SOQL is a small subset: SELECT fields FROM object [WHERE field = 'value']
// [ORDER BY field [ASC|DESC]] [LIMIT n].
//
// Tests inject faults (any status with Salesforce's body for it, a
// Retry-After header, a delay) and read back the requests it received.
package salesforcefake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	// Versions are the API versions it serves. Nil means 58.0, 59.0 and 60.0.
	Versions []string
	// PageSize, when set, is the number of records per query page,
	// whatever batchSize asks (real Salesforce pages by at least 200).
	PageSize int
	// DailyLimit is the org's API request limit. Zero means 15000.
	DailyLimit int
}

// Fault is a scripted answer to the next requests of the REST API (not
// the versions list).
type Fault struct {
	// Status is the HTTP status to answer with, with Salesforce's error
	// body for it; zero (with Delay) answers normally, late.
	Status int
	// ErrorCode and Message override the body's; empty means
	// Salesforce's usual for Status.
	ErrorCode, Message string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
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

// object is an sObject type: its fields and records.
type object struct {
	prefix   string // key prefix of its ids, e.g. "001"
	fields   map[string]bool
	required []string
	records  []map[string]any
}

// cursor is a query's remaining records.
type cursor struct {
	version string
	total   int
	rows    []map[string]any
	next    int
	size    int
}

// Server is a fake Salesforce org.
type Server struct {
	// URL is its base URL (an instance URL).
	URL string

	srv  *httptest.Server
	opts Options

	mu       sync.Mutex
	tokens   map[string]bool    // guarded by mu; token -> valid
	objects  map[string]*object // guarded by mu
	cursors  map[string]*cursor // guarded by mu
	faults   []Fault            // guarded by mu
	requests []Request          // guarded by mu
	used     int                // guarded by mu
	seq      int                // guarded by mu; ids and locators
}

// New starts a Server with Account, Contact, Lead and Opportunity
// defined. Close it when done.
func New(opts Options) *Server {
	if opts.Versions == nil {
		opts.Versions = []string{"58.0", "59.0", "60.0"}
	}
	if opts.DailyLimit <= 0 {
		opts.DailyLimit = 15000
	}
	s := &Server{opts: opts, tokens: map[string]bool{}, objects: map[string]*object{}, cursors: map[string]*cursor{}}
	for _, t := range opts.Tokens {
		s.tokens[t] = true
	}
	s.Define("Account", "001", []string{"Name"}, "Name", "Industry", "Phone", "Website", "NumberOfEmployees", "AnnualRevenue")
	s.Define("Contact", "003", []string{"LastName"}, "FirstName", "LastName", "Email", "Phone", "AccountId")
	s.Define("Lead", "00Q", []string{"LastName", "Company"}, "FirstName", "LastName", "Company", "Email", "Status")
	s.Define("Opportunity", "006", []string{"Name", "StageName", "CloseDate"}, "Name", "StageName", "CloseDate", "Amount", "AccountId")
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Define adds an sObject type with its key prefix, required fields and
// fields (Id and CreatedDate are implicit).
func (s *Server) Define(name, prefix string, required []string, fields ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := &object{prefix: prefix, fields: map[string]bool{"Id": true, "CreatedDate": true}, required: required}
	for _, f := range append(fields, required...) {
		o.fields[f] = true
	}
	s.objects[name] = o
}

// Add stores records of an sObject type and returns their ids.
func (s *Server) Add(name string, recs ...map[string]any) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects[name]
	var ids []string
	for _, r := range recs {
		ids = append(ids, s.insert(o, r))
	}
	return ids
}

func (s *Server) insert(o *object, fields map[string]any) string {
	s.seq++
	id := fmt.Sprintf("%s%012dAAA", o.prefix, s.seq)
	r := map[string]any{"Id": id, "CreatedDate": "2024-05-01T10:00:00.000+0000"}
	for k, v := range fields {
		r[k] = v
	}
	o.records = append(o.records, r)
	return id
}

// Records returns copies of the stored records of an sObject type.
func (s *Server) Records(name string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects[name]
	if o == nil {
		return nil
	}
	out := make([]map[string]any, 0, len(o.records))
	for _, r := range o.records {
		c := map[string]any{}
		for k, v := range r {
			c[k] = v
		}
		out = append(out, c)
	}
	return out
}

// Revoke makes token invalid, as an expired or revoked session is.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = false
}

// SetUsage sets the API requests used so far today.
func (s *Server) SetUsage(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.used = n
}

// Inject queues a fault for the next requests.
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

// apiError is one element of Salesforce's error array.
type apiError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string, fields ...string) {
	writeJSON(w, status, []apiError{{Message: msg, ErrorCode: code, Fields: fields}})
}

// defaultError is Salesforce's usual error for a status.
func defaultError(status int) (code, msg string) {
	switch status {
	case http.StatusUnauthorized:
		return "INVALID_SESSION_ID", "Session expired or invalid"
	case http.StatusForbidden, http.StatusTooManyRequests:
		return "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
	case http.StatusNotFound:
		return "NOT_FOUND", "The requested resource does not exist"
	case http.StatusBadRequest:
		return "MALFORMED_QUERY", "unexpected token: 'FROM'"
	case http.StatusServiceUnavailable:
		return "SERVER_UNAVAILABLE", "Server temporarily unavailable"
	}
	return "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567-890 (-1234567)"
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()

	if r.URL.Path == "/services/data/" || r.URL.Path == "/services/data" {
		var out []map[string]string
		for _, v := range s.opts.Versions {
			out = append(out, map[string]string{"label": "Version " + v, "url": "/services/data/v" + v, "version": v})
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/services/data/v")
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	version, rest, _ := strings.Cut(rest, "/")

	s.mu.Lock()
	var f *Fault
	if len(s.faults) > 0 {
		cp := s.faults[0]
		f = &cp
		if s.faults[0].Times--; s.faults[0].Times <= 0 {
			s.faults = s.faults[1:]
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

	// Authentication comes before everything else.
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	valid := found && s.tokens[tok]
	if valid {
		s.used++
	}
	used, limit := s.used, s.opts.DailyLimit
	s.mu.Unlock()
	if !valid {
		writeError(w, http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
		return
	}
	w.Header().Set("Sforce-Limit-Info", fmt.Sprintf("api-usage=%d/%d", used, limit))
	if f != nil && f.Status != 0 {
		code, msg := defaultError(f.Status)
		if f.ErrorCode != "" {
			code = f.ErrorCode
		}
		if f.Message != "" {
			msg = f.Message
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(w, f.Status, code, msg)
		return
	}
	if used > limit {
		writeError(w, http.StatusForbidden, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
		return
	}
	if !s.serves(version) {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	switch {
	case rest == "query" && r.Method == http.MethodGet:
		s.query(w, r, version)
	case strings.HasPrefix(rest, "query/") && r.Method == http.MethodGet:
		s.more(w, version, strings.TrimPrefix(rest, "query/"))
	case strings.HasPrefix(rest, "sobjects/") && r.Method == http.MethodPost:
		s.create(w, r, version, strings.TrimSuffix(strings.TrimPrefix(rest, "sobjects/"), "/"), body)
	case rest == "query" || strings.HasPrefix(rest, "sobjects/"):
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "HTTP Method '"+r.Method+"' not allowed. Allowed are GET,HEAD")
	default:
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
}

func (s *Server) serves(version string) bool {
	for _, v := range s.opts.Versions {
		if v == version {
			return true
		}
	}
	return false
}

// pageSize is the records per page for a request's batchSize.
func (s *Server) pageSize(r *http.Request) int {
	if s.opts.PageSize > 0 {
		return s.opts.PageSize
	}
	size := 2000
	for _, opt := range strings.Split(r.Header.Get("Sforce-Query-Options"), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(opt), "batchSize="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				size = min(max(n, 200), 2000)
			}
		}
	}
	return size
}

func (s *Server) query(w http.ResponseWriter, r *http.Request, version string) {
	q, err := parseSOQL(r.URL.Query().Get("q"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "MALFORMED_QUERY", err.Error())
		return
	}
	s.mu.Lock()
	o := s.objects[q.from]
	if o == nil {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "INVALID_TYPE", fmt.Sprintf("\nFROM %s\n     ^\nERROR at Row:1:Column:15\nsObject type '%s' is not supported.", q.from, q.from))
		return
	}
	for _, f := range append(append([]string{}, q.fields...), q.where, q.orderBy) {
		if f != "" && !o.fields[f] {
			s.mu.Unlock()
			writeError(w, http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("No such column '%s' on entity '%s'.", f, q.from))
			return
		}
	}
	var rows []map[string]any
	for _, rec := range o.records {
		if q.where != "" && fmt.Sprint(rec[q.where]) != q.value {
			continue
		}
		row := map[string]any{"attributes": map[string]string{"type": q.from, "url": "/services/data/v" + version + "/sobjects/" + q.from + "/" + rec["Id"].(string)}}
		for _, f := range q.fields {
			row[f] = rec[f]
		}
		row["\x00sort"] = rec[q.orderBy]
		rows = append(rows, row)
	}
	if q.orderBy != "" {
		sort.SliceStable(rows, func(i, j int) bool {
			a, b := fmt.Sprint(rows[i]["\x00sort"]), fmt.Sprint(rows[j]["\x00sort"])
			if q.desc {
				return a > b
			}
			return a < b
		})
	}
	for _, row := range rows {
		delete(row, "\x00sort")
	}
	if q.limit >= 0 && len(rows) > q.limit {
		rows = rows[:q.limit]
	}
	c := &cursor{version: version, total: len(rows), rows: rows, size: s.pageSize(r)}
	s.seq++
	id := fmt.Sprintf("01g%012dAAA", s.seq)
	s.cursors[id] = c
	s.mu.Unlock()
	s.page(w, id, c)
}

func (s *Server) more(w http.ResponseWriter, version, locator string) {
	id, off, _ := strings.Cut(locator, "-")
	s.mu.Lock()
	c := s.cursors[id]
	n, err := strconv.Atoi(off)
	if c == nil || err != nil || n != c.next || c.version != version {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	s.mu.Unlock()
	s.page(w, id, c)
}

// page answers the cursor's next page.
func (s *Server) page(w http.ResponseWriter, id string, c *cursor) {
	s.mu.Lock()
	start := c.next
	end := min(start+c.size, len(c.rows))
	recs := c.rows[start:end]
	c.next = end
	done := end >= len(c.rows)
	if done {
		delete(s.cursors, id)
	}
	s.mu.Unlock()
	out := map[string]any{"totalSize": c.total, "done": done, "records": recs}
	if !done {
		out["nextRecordsUrl"] = fmt.Sprintf("/services/data/v%s/query/%s-%d", c.version, id, end)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, version, name string, body []byte) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
		return
	}
	var fields map[string]any
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		writeError(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "Unexpected character at [line:1, column:1]")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects[name]
	if o == nil {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	for k, v := range fields {
		if !o.fields[k] || k == "Id" || k == "CreatedDate" {
			writeError(w, http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("No such column '%s' on sobject of type %s", k, name))
			return
		}
		switch v.(type) {
		case map[string]any, []any:
			writeError(w, http.StatusBadRequest, "JSON_PARSER_ERROR", "Cannot deserialize instance of string from START_OBJECT value")
			return
		}
	}
	var missing []string
	for _, f := range o.required {
		if v, ok := fields[f]; !ok || v == nil || v == "" {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		writeError(w, http.StatusBadRequest, "REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(missing, ", ")+"]", missing...)
		return
	}
	id := s.insert(o, fields)
	w.Header().Set("Location", "/services/data/v"+version+"/sobjects/"+name+"/"+id)
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "success": true, "errors": []any{}})
}
