// Package workfrontfake is an in-memory Adobe Workfront REST API (v20.0)
// for tests, served by httptest on 127.0.0.1. It follows the published
// API where the connector depends on it:
//
//   - paths /attask/api/v20.0/{objCode}[/{ID}|/search|/count], with the
//     object code case-insensitive and "proj"/"project" alike;
//   - authentication by a "sessionID" header or parameter (where Workfront
//     OAuth2 access tokens go), an "Authorization: Bearer" header (Adobe IMS
//     tokens), or an "apiKey" header or parameter;
//   - searches filtered by request parameters (name, name_Mod, status,
//     lastUpdateDate with _Mod=gte, ID_Sort) and paged with $$FIRST (a
//     0-based offset) and $$LIMIT (default 100, at most 2000: more is an
//     IllegalArgumentException);
//   - the fields parameter, with custom data as "DE:<name>";
//   - creates and updates from a JSON body, the updates parameter, or plain
//     field parameters;
//   - responses {"data": ...} and errors {"error": {"class", "message"}}
//     with the HTTP status: 401 for a missing, expired or revoked session,
//     404 for unknown objects, 400/422 for invalid requests;
//   - a cap on concurrent requests (Workfront limits concurrent API threads
//     per customer), answered 429 with Retry-After.
//
// Tests inject faults (429 with Retry-After, 5xx, slow responses),
// expire or revoke tokens, and inspect the requests received.
package workfrontfake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIPath is the API's path prefix.
const APIPath = "/attask/api/v20.0"

// DateLayout is how Workfront writes dates: "2024-05-01T09:00:00:000-0600".
const DateLayout = "2006-01-02T15:04:05:000-0700"

// Workfront error classes the fake answers with.
const (
	ClassAuthentication  = "com.attask.common.AuthenticationException"
	ClassNotFound        = "com.attask.common.NotFoundException"
	ClassIllegalArgument = "java.lang.IllegalArgumentException"
	ClassInternal        = "java.lang.RuntimeException"
	// ClassTooManyRequests is the fake's own name: Workfront publishes no
	// class for throttled requests.
	ClassTooManyRequests = "com.attask.common.TooManyConcurrentRequestsException"
)

// Fault is a failure injected into the next matching requests.
type Fault struct {
	// Path, when set, limits the fault to requests whose path contains it.
	Path string
	// Delay holds the request before it is answered (or failed).
	Delay time.Duration
	// Status, when set, answers with this HTTP status and a Workfront
	// error body instead of serving the request.
	Status int
	// RetryAfter is sent as the Retry-After header when set.
	RetryAfter string
	// Message, when set, is the error body's message (e.g. one that
	// echoes what the client sent).
	Message string
	// Times is how many requests the fault applies to; zero means one.
	Times int
}

// Request is a request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
}

// Object is a Workfront object: its fields by name, custom data as
// "DE:<name>".
type Object map[string]any

// ID returns the object's ID.
func (o Object) ID() string { s, _ := o["ID"].(string); return s }

type tokenState int

const (
	tokenValid tokenState = iota
	tokenExpired
	tokenRevoked
)

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, e.g. "http://127.0.0.1:43210".
	URL string
	srv *httptest.Server

	mu         sync.Mutex
	tokens     map[string]tokenState // session ids and bearer tokens
	apiKeys    map[string]tokenState
	objects    map[string]map[string]Object // objCode -> ID -> object
	order      map[string][]string          // objCode -> IDs in creation order
	faults     []Fault
	requests   []Request
	inflight   int
	maxThreads int
	seq        int
	now        func() time.Time
}

// New starts a fake. maxThreads caps concurrent requests (zero means 10,
// Workfront's usual cap per customer). Close it when done.
func New(maxThreads int) *Server {
	if maxThreads <= 0 {
		maxThreads = 10
	}
	s := &Server{
		tokens: map[string]tokenState{}, apiKeys: map[string]tokenState{},
		objects: map[string]map[string]Object{"PROJ": {}, "TASK": {}}, order: map[string][]string{},
		maxThreads: maxThreads, now: time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AddToken makes tok a valid session (an OAuth2 access token).
func (s *Server) AddToken(tok string) { s.setToken(s.tokens, tok, tokenValid) }

// ExpireToken makes tok an expired session.
func (s *Server) ExpireToken(tok string) { s.setToken(s.tokens, tok, tokenExpired) }

// RevokeToken makes tok a revoked session.
func (s *Server) RevokeToken(tok string) { s.setToken(s.tokens, tok, tokenRevoked) }

// AddAPIKey makes key a valid API key.
func (s *Server) AddAPIKey(key string) { s.setToken(s.apiKeys, key, tokenValid) }

// RevokeAPIKey clears key, as clearApiKey does.
func (s *Server) RevokeAPIKey(key string) { s.setToken(s.apiKeys, key, tokenRevoked) }

func (s *Server) setToken(m map[string]tokenState, tok string, st tokenState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[tok] = st
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
	return slices.Clone(s.requests)
}

// AddProject stores a project (fields as Workfront names them) and
// returns its ID. Missing ID, status and dates are filled in.
func (s *Server) AddProject(p Object) string { return s.add("PROJ", p) }

// AddTask stores a task and returns its ID.
func (s *Server) AddTask(t Object) string { return s.add("TASK", t) }

// Project returns a copy of a stored project.
func (s *Server) Project(id string) (Object, bool) { return s.get("PROJ", id) }

// Task returns a copy of a stored task.
func (s *Server) Task(id string) (Object, bool) { return s.get("TASK", id) }

func (s *Server) add(code string, o Object) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addLocked(code, maps.Clone(o))
}

func (s *Server) addLocked(code string, o Object) string {
	if o.ID() == "" {
		s.seq++
		o["ID"] = fmt.Sprintf("%08x%024x", s.seq, 0xabc0ffee)
	}
	o["objCode"] = code
	now := s.now().Format(DateLayout)
	for k, v := range map[string]any{"entryDate": now, "lastUpdateDate": now, "percentComplete": 0.0} {
		if _, ok := o[k]; !ok {
			o[k] = v
		}
	}
	if _, ok := o["status"]; !ok {
		o["status"] = map[string]string{"PROJ": "PLN", "TASK": "NEW"}[code]
	}
	s.objects[code][o.ID()] = o
	s.order[code] = append(s.order[code], o.ID())
	return o.ID()
}

func (s *Server) get(code, id string) (Object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[code][id]
	return maps.Clone(o), ok
}

// wfError is Workfront's error body.
type wfError struct {
	Error struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, class, msg string) {
	var e wfError
	e.Error.Class, e.Error.Message = class, msg
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	if s.inflight >= s.maxThreads {
		s.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, ClassTooManyRequests, "too many concurrent API requests for this customer")
		return
	}
	s.inflight++
	var fault *Fault
	for i := range s.faults {
		if f := &s.faults[i]; strings.Contains(r.URL.Path, f.Path) {
			c := *f
			fault = &c
			if f.Times--; f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
			break
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()

	if fault != nil {
		if fault.Delay > 0 && !sleep(r.Context(), fault.Delay) {
			return
		}
		if fault.Status != 0 {
			if fault.RetryAfter != "" {
				w.Header().Set("Retry-After", fault.RetryAfter)
			}
			class, msg := ClassInternal, "an unexpected error occurred"
			if fault.Status == http.StatusTooManyRequests {
				class, msg = ClassTooManyRequests, "too many concurrent API requests for this customer"
			}
			if fault.Message != "" {
				msg = fault.Message
			}
			writeError(w, fault.Status, class, msg)
			return
		}
	}

	if !strings.HasPrefix(r.URL.Path, APIPath+"/") {
		writeError(w, http.StatusNotFound, ClassNotFound, "no such API path")
		return
	}
	if msg := s.authenticate(r); msg != "" {
		writeError(w, http.StatusUnauthorized, ClassAuthentication, msg)
		return
	}
	s.route(w, r, body)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// authenticate returns "" for an authenticated request, else the message
// Workfront answers 401 with.
func (s *Server) authenticate(r *http.Request) string {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	check := func(m map[string]tokenState, tok string) string {
		st, ok := m[tok]
		switch {
		case !ok || st == tokenRevoked:
			return "You are not currently logged in"
		case st == tokenExpired:
			return "Your session has expired. Please log in again"
		}
		return ""
	}
	if k := firstNonEmpty(r.Header.Get("apiKey"), q.Get("apiKey")); k != "" {
		return check(s.apiKeys, k)
	}
	sid := firstNonEmpty(r.Header.Get("sessionID"), q.Get("sessionID"))
	if a := r.Header.Get("Authorization"); sid == "" && strings.HasPrefix(a, "Bearer ") {
		sid = strings.TrimPrefix(a, "Bearer ")
	}
	if sid == "" {
		return "You are not currently logged in"
	}
	return check(s.tokens, sid)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// objCodes maps the object names the fake knows to their codes.
var objCodes = map[string]string{"proj": "PROJ", "project": "PROJ", "task": "TASK"}

func (s *Server) route(w http.ResponseWriter, r *http.Request, body []byte) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, APIPath+"/"), "/")
	code, ok := objCodes[strings.ToLower(parts[0])]
	if !ok || len(parts) > 2 {
		writeError(w, http.StatusNotFound, ClassNotFound, "unknown object code or path")
		return
	}
	q := r.URL.Query()
	method := r.Method
	if m := q.Get("method"); m != "" {
		method = strings.ToUpper(m)
	}
	switch {
	case len(parts) == 2 && parts[1] == "search" && method == http.MethodGet:
		s.search(w, code, q)
	case len(parts) == 2 && parts[1] == "count" && method == http.MethodGet:
		list, err := s.filter(code, q)
		if err != nil {
			writeError(w, http.StatusBadRequest, ClassIllegalArgument, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]int{"count": len(list)}})
	case len(parts) == 2 && method == http.MethodGet:
		s.mu.Lock()
		o, ok := s.objects[code][parts[1]]
		var out Object
		if ok {
			out = project(o, q)
		}
		s.mu.Unlock()
		if !ok {
			writeError(w, http.StatusNotFound, ClassNotFound, fmt.Sprintf("%s with ID %s was not found", code, parts[1]))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": out})
	case len(parts) == 1 && method == http.MethodPost:
		s.create(w, code, q, body)
	case len(parts) == 2 && method == http.MethodPut:
		s.update(w, code, parts[1], q, body)
	default:
		writeError(w, http.StatusMethodNotAllowed, ClassIllegalArgument, "method not supported on this path")
	}
}

// updates reads the fields a create or update sets: a JSON body, the
// updates parameter, or plain parameters.
func updates(q url.Values, body []byte) (Object, error) {
	u := Object{}
	switch {
	case len(strings.TrimSpace(string(body))) > 0:
		if err := json.Unmarshal(body, &u); err != nil {
			return nil, fmt.Errorf("the request body is not a JSON object")
		}
	case q.Get("updates") != "":
		if err := json.Unmarshal([]byte(q.Get("updates")), &u); err != nil {
			return nil, fmt.Errorf("updates is not a JSON object")
		}
	default:
		for k, v := range q {
			switch k {
			case "fields", "method", "apiKey", "sessionID", "ID", "id":
			default:
				u[k] = v[0]
			}
		}
	}
	return u, nil
}

var writable = map[string]map[string]bool{
	"PROJ": {"name": true, "description": true, "status": true, "plannedStartDate": true, "plannedCompletionDate": true,
		"portfolioID": true, "groupID": true, "ownerID": true, "templateID": true, "categoryID": true, "priority": true},
	"TASK": {"name": true, "description": true, "status": true, "percentComplete": true, "plannedCompletionDate": true,
		"assignedToID": true, "projectID": true, "priority": true},
}

// apply checks u and sets it on o.
func apply(code string, o, u Object) error {
	for k, v := range u {
		if strings.HasPrefix(k, "DE:") {
			o[k] = v
			continue
		}
		if !writable[code][k] {
			return fmt.Errorf("invalid field for %s: %s", code, k)
		}
		switch k {
		case "name":
			if s, _ := v.(string); strings.TrimSpace(s) == "" {
				return fmt.Errorf("name must not be empty")
			}
		case "status":
			st, _ := v.(string)
			base, _, _ := strings.Cut(st, ":")
			valid := map[string][]string{"PROJ": {"PLN", "CUR", "ONH", "CPL", "DED", "REQ", "APR", "REJ", "IDA"}, "TASK": {"NEW", "INP", "CPL"}}[code]
			if !slices.Contains(valid, base) {
				return fmt.Errorf("invalid status for %s: %s", code, st)
			}
		case "percentComplete":
			f, ok := v.(float64)
			if !ok {
				if s, isStr := v.(string); isStr {
					var err error
					f, err = strconv.ParseFloat(s, 64)
					ok = err == nil
				}
			}
			if !ok || f < 0 || f > 100 {
				return fmt.Errorf("percentComplete must be a number from 0 to 100")
			}
			v = f
		case "plannedStartDate", "plannedCompletionDate":
			t, err := parseDate(fmt.Sprint(v))
			if err != nil {
				return fmt.Errorf("%s: %v", k, err)
			}
			v = t.Format(DateLayout)
		}
		o[k] = v
	}
	return nil
}

func parseDate(s string) (time.Time, error) {
	for _, l := range []string{DateLayout, time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("unparseable date %q", s)
}

func (s *Server) create(w http.ResponseWriter, code string, q url.Values, body []byte) {
	u, err := updates(q, body)
	if err == nil && u["name"] == nil {
		err = fmt.Errorf("name is required")
	}
	o := Object{}
	if err == nil {
		err = apply(code, o, u)
	}
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, ClassIllegalArgument, err.Error())
		return
	}
	s.mu.Lock()
	s.addLocked(code, o)
	out := project(o, q)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func (s *Server) update(w http.ResponseWriter, code, id string, q url.Values, body []byte) {
	u, err := updates(q, body)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, ClassIllegalArgument, err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[code][id]
	if !ok {
		writeError(w, http.StatusNotFound, ClassNotFound, fmt.Sprintf("%s with ID %s was not found", code, id))
		return
	}
	next := maps.Clone(o)
	if err := apply(code, next, u); err != nil {
		writeError(w, http.StatusUnprocessableEntity, ClassIllegalArgument, err.Error())
		return
	}
	next["lastUpdateDate"] = s.now().Format(DateLayout)
	s.objects[code][id] = next
	writeJSON(w, http.StatusOK, map[string]any{"data": project(next, q)})
}

// defaultFields are what Workfront returns without a fields parameter.
var defaultFields = []string{"ID", "name", "objCode", "status", "percentComplete", "plannedStartDate", "plannedCompletionDate", "priority", "projectID"}

// project returns o's default fields plus those the fields parameter names.
func project(o Object, q url.Values) Object {
	out := Object{}
	names := slices.Clone(defaultFields)
	for f := range strings.SplitSeq(q.Get("fields"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			names = append(names, f)
		}
	}
	for _, n := range names {
		if n == "*" {
			for k, v := range o {
				if !strings.HasPrefix(k, "DE:") {
					out[k] = v
				}
			}
			continue
		}
		if v, ok := o[n]; ok {
			out[n] = v
		} else if strings.HasPrefix(n, "DE:") {
			// Unset custom data is left out, as Workfront does.
			continue
		} else if slices.Contains(defaultFields, n) {
			continue
		} else {
			out[n] = nil
		}
	}
	return out
}

// filter returns the objects of code that match q's filters, in order.
func (s *Server) filter(code string, q url.Values) ([]Object, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Object
	for _, id := range s.order[code] {
		o := s.objects[code][id]
		ok, err := matches(o, q)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, project(o, q))
		}
	}
	if q.Get("ID_Sort") == "asc" {
		slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.ID(), b.ID()) })
	}
	return out, nil
}

func matches(o Object, q url.Values) (bool, error) {
	for k, vs := range q {
		if strings.Contains(k, "_") || strings.HasPrefix(k, "$$") {
			continue
		}
		switch k {
		case "fields", "method", "apiKey", "sessionID", "map", "filters":
			continue
		}
		have, want := fmt.Sprint(o[k]), vs[0]
		mod := q.Get(k + "_Mod")
		switch mod {
		case "", "eq":
			if have != want {
				return false, nil
			}
		case "ne":
			if have == want {
				return false, nil
			}
		case "contains":
			if !strings.Contains(have, want) {
				return false, nil
			}
		case "cicontains":
			if !strings.Contains(strings.ToLower(have), strings.ToLower(want)) {
				return false, nil
			}
		case "gte", "lte":
			h, err1 := parseDate(have)
			wt, err2 := parseDate(want)
			if err1 != nil || err2 != nil {
				return false, fmt.Errorf("%s: cannot compare %q", k, want)
			}
			if (mod == "gte" && h.Before(wt)) || (mod == "lte" && h.After(wt)) {
				return false, nil
			}
		default:
			return false, fmt.Errorf("unsupported modifier %s_Mod=%s", k, mod)
		}
	}
	return true, nil
}

func (s *Server) search(w http.ResponseWriter, code string, q url.Values) {
	first, limit := 0, 100
	if v := q.Get("$$FIRST"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, ClassIllegalArgument, "$$FIRST must be a non-negative integer")
			return
		}
		first = n
	}
	if v := q.Get("$$LIMIT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, ClassIllegalArgument, "$$LIMIT must be a positive integer")
			return
		}
		if n > 2000 {
			writeError(w, http.StatusBadRequest, ClassIllegalArgument, "The maximum $$LIMIT is 2000")
			return
		}
		limit = n
	}
	list, err := s.filter(code, q)
	if err != nil {
		writeError(w, http.StatusBadRequest, ClassIllegalArgument, err.Error())
		return
	}
	page := []Object{}
	if first < len(list) {
		page = list[first:min(len(list), first+limit)]
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": page})
}
