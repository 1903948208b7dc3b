// Package quipfake is a fake of the Quip Automation API (v1) for tests, on
// an httptest server on 127.0.0.1. It follows Quip's published behaviour
// for what the quip connector calls:
//
//   - GET /1/threads/{id} (the 11-character id or the 12-character link
//     suffix), POST /1/threads/new-document (form-encoded content, format
//     "html" or "markdown", title, type, member_ids), GET /1/users/current;
//   - "Authorization: Bearer {token}"; a missing, unknown, expired or
//     revoked token gets HTTP 401;
//   - errors are {"error_code": N, "error": "...", "error_description":
//     "..."} with the HTTP status N;
//   - every authenticated answer carries X-Ratelimit-Limit, -Remaining and
//     -Reset (a UTC epoch second) for the user's per-minute budget and
//     X-Company-RateLimit-* for the company's; a request over either
//     budget gets HTTP 503 with the exhausted bucket's Remaining at 0.
//
// Hooks inject faults (Inject: 429/503 with rate-limit headers, 5xx, slow
// answers), expire or revoke tokens (SetToken), set the budgets and the
// clock, and record what the server received (Requests).
package quipfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TokenState is what the fake thinks of a token.
type TokenState int

// The token states.
const (
	Valid TokenState = iota
	Expired
	Revoked
)

// Thread is a document the fake serves.
type Thread struct {
	ID       string
	Secret   string // the 12-character link suffix
	Title    string
	Type     string // "document" or "spreadsheet"
	HTML     string
	AuthorID string
	Created  time.Time
	Updated  time.Time
	// UserIDs and FolderIDs are the users and shared folders the thread is in.
	UserIDs   []string
	FolderIDs []string
}

// Fault is a failure the fake answers instead of serving a request.
type Fault struct {
	// Path is the request path it applies to, e.g. "/1/threads/new-document";
	// a trailing "*" matches a prefix; empty means any.
	Path string
	// Status is the HTTP status; zero means serve the request normally
	// (after Delay).
	Status int
	// Error and Description fill the error body; empty means the
	// status's text and a generic description.
	Error, Description string
	// UserReset and CompanyReset, when non-zero, exhaust the user's or
	// the company's bucket in the answer's headers: Remaining 0 and Reset
	// at that time.
	UserReset, CompanyReset time.Time
	// RetryAfter is a Retry-After header; empty means none (Quip sends
	// its own headers instead).
	RetryAfter string
	// Delay holds the answer back (or until the client goes away).
	Delay time.Duration
	// Times is how many requests it answers; zero means one.
	Times int
}

// Request is what the fake received.
type Request struct {
	Method, Path  string
	Authorization string
	ContentType   string
	Query         url.Values
	// Form is the parsed form body of a POST.
	Form url.Values
}

// Server is a fake Quip site. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu          sync.Mutex
	tokens      map[string]TokenState // guarded by mu
	threads     map[string]*Thread    // guarded by mu; by id and by secret
	faults      []*Fault              // guarded by mu
	requests    []Request             // guarded by mu
	now         func() time.Time      // guarded by mu
	userLimit   int                   // guarded by mu
	companyLim  int                   // guarded by mu
	window      int64                 // guarded by mu; the minute counted
	userCount   map[string]int        // guarded by mu; this minute's requests by token
	companyUsed int                   // guarded by mu
	nextID      int                   // guarded by mu
}

// New starts a fake on 127.0.0.1 that accepts tokens, with Quip's default
// budgets: 50 requests a minute per user, 600 per company.
func New(tokens ...string) *Server {
	s := &Server{tokens: map[string]TokenState{}, threads: map[string]*Thread{}, now: time.Now,
		userLimit: 50, companyLim: 600, userCount: map[string]int{}}
	for _, t := range tokens {
		s.tokens[t] = Valid
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /1/threads/{id}", s.getThread)
	mux.HandleFunc("POST /1/threads/new-document", s.newDocument)
	mux.HandleFunc("GET /1/users/current", s.currentUser)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found", "no such API method")
	})
	s.srv = httptest.NewServer(s.serve(mux))
	return s
}

// URL is the fake's base URL (the connector's Config.BaseURL).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// SetToken sets what the fake thinks of token.
func (s *Server) SetToken(token string, st TokenState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = st
}

// SetClock sets the fake's clock (rate-limit windows and timestamps).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetLimits sets the per-user and per-company requests a minute.
func (s *Server) SetLimits(user, company int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userLimit, s.companyLim = user, company
}

// AddThread adds a thread.
func (s *Server) AddThread(t Thread) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.threads[t.ID] = &t
	if t.Secret != "" {
		s.threads[t.Secret] = &t
	}
}

// Thread returns the thread with id, if there is one.
func (s *Server) Thread(id string) (Thread, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.threads[id]
	if !ok {
		return Thread{}, false
	}
	return *t, true
}

// Inject queues a fault; faults answer matching requests in the order injected.
func (s *Server) Inject(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (f *Fault) matches(path string) bool {
	if p, ok := strings.CutSuffix(f.Path, "*"); ok {
		return strings.HasPrefix(path, p)
	}
	return f.Path == "" || f.Path == path
}

// serve records the request, applies faults, checks the token and the
// budgets, and sets the rate-limit headers.
func (s *Server) serve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var form url.Values
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(io.LimitReader(r.Body, 2<<20))
			if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
				form, _ = url.ParseQuery(string(b))
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Query: r.URL.Query(), Form: form})
		var f *Fault
		for i, q := range s.faults {
			if q.matches(r.URL.Path) {
				f = q
				if q.Times--; q.Times == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
				break
			}
		}
		now := s.now()
		s.mu.Unlock()

		if f != nil && f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f != nil && f.Status != 0 {
			s.fault(w, f, now)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		s.mu.Lock()
		st, known := s.tokens[tok]
		s.mu.Unlock()
		switch {
		case !ok || tok == "":
			writeError(w, http.StatusUnauthorized, "Unauthorized", "Missing access token")
			return
		case !known || st == Revoked:
			writeError(w, http.StatusUnauthorized, "Unauthorized", "Invalid access token")
			return
		case st == Expired:
			writeError(w, http.StatusUnauthorized, "Unauthorized", "Access token expired")
			return
		}
		if !s.spend(w, tok, now) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// spend counts a request against the budgets and sets the headers; it
// answers 503 and returns false when a budget is spent.
func (s *Server) spend(w http.ResponseWriter, tok string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	minute := now.Unix() / 60
	if minute != s.window {
		s.window, s.userCount, s.companyUsed = minute, map[string]int{}, 0
	}
	reset := strconv.FormatInt((minute+1)*60, 10)
	h := w.Header()
	over := s.userCount[tok] >= s.userLimit || s.companyUsed >= s.companyLim
	if !over {
		s.userCount[tok]++
		s.companyUsed++
	}
	h.Set("X-Ratelimit-Limit", strconv.Itoa(s.userLimit))
	h.Set("X-Ratelimit-Remaining", strconv.Itoa(max(0, s.userLimit-s.userCount[tok])))
	h.Set("X-Ratelimit-Reset", reset)
	h.Set("X-Company-RateLimit-Limit", strconv.Itoa(s.companyLim))
	h.Set("X-Company-RateLimit-Remaining", strconv.Itoa(max(0, s.companyLim-s.companyUsed)))
	h.Set("X-Company-RateLimit-Reset", reset)
	if over {
		writeError(w, http.StatusServiceUnavailable, "Over Rate Limit", "You have exceeded the rate limit; try again after the reset time")
		return false
	}
	return true
}

func (s *Server) fault(w http.ResponseWriter, f *Fault, now time.Time) {
	h := w.Header()
	reset := strconv.FormatInt(now.Unix()/60*60+60, 10)
	h.Set("X-Ratelimit-Limit", "50")
	h.Set("X-Ratelimit-Remaining", "10")
	h.Set("X-Ratelimit-Reset", reset)
	h.Set("X-Company-RateLimit-Limit", "600")
	h.Set("X-Company-RateLimit-Remaining", "100")
	h.Set("X-Company-RateLimit-Reset", reset)
	if !f.UserReset.IsZero() {
		h.Set("X-Ratelimit-Remaining", "0")
		h.Set("X-Ratelimit-Reset", strconv.FormatInt(f.UserReset.Unix(), 10))
	}
	if !f.CompanyReset.IsZero() {
		h.Set("X-Company-RateLimit-Remaining", "0")
		h.Set("X-Company-RateLimit-Reset", strconv.FormatInt(f.CompanyReset.Unix(), 10))
	}
	if f.RetryAfter != "" {
		h.Set("Retry-After", f.RetryAfter)
	}
	e, d := f.Error, f.Description
	if e == "" {
		e = http.StatusText(f.Status)
	}
	if d == "" {
		d = "injected fault"
	}
	writeError(w, f.Status, e, d)
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9]{11,12}$`)

func (s *Server) getThread(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !idRE.MatchString(id) {
		writeError(w, http.StatusBadRequest, "Bad Request", "Invalid thread id")
		return
	}
	t, ok := s.Thread(id)
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found", "Thread does not exist")
		return
	}
	writeJSON(w, http.StatusOK, threadJSON(t))
}

func threadJSON(t Thread) map[string]any {
	users, folders := t.UserIDs, t.FolderIDs
	if users == nil {
		users = []string{}
	}
	if folders == nil {
		folders = []string{}
	}
	return map[string]any{
		"thread": map[string]any{
			"id": t.ID, "title": t.Title, "link": "https://fake.quip.example/" + t.Secret, "type": t.Type, "thread_class": t.Type,
			"author_id": t.AuthorID, "created_usec": t.Created.UnixMicro(), "updated_usec": t.Updated.UnixMicro(), "is_deleted": false,
		},
		"html": t.HTML, "user_ids": users, "shared_folder_ids": folders, "expanded_user_ids": users, "invited_user_emails": []string{},
	}
}

func (s *Server) newDocument(w http.ResponseWriter, r *http.Request) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		writeError(w, http.StatusBadRequest, "Bad Request", "the body must be form-encoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request", "the body could not be parsed")
		return
	}
	form := r.PostForm
	content := form.Get("content")
	if content == "" {
		writeError(w, http.StatusBadRequest, "Bad Request", "content is required")
		return
	}
	format := form.Get("format")
	switch format {
	case "", "html":
	case "markdown":
		content = "<p>" + content + "</p>"
	default:
		writeError(w, http.StatusBadRequest, "Bad Request", "Invalid format")
		return
	}
	typ := form.Get("type")
	switch typ {
	case "":
		typ = "document"
	case "document", "spreadsheet":
	default:
		writeError(w, http.StatusBadRequest, "Bad Request", "Invalid type")
		return
	}
	var folders []string
	if m := form.Get("member_ids"); m != "" {
		folders = strings.Split(m, ",")
	}
	s.mu.Lock()
	s.nextID++
	now := s.now()
	t := &Thread{ID: fmt.Sprintf("NEWdoc%05d", s.nextID), Secret: fmt.Sprintf("NEWlink%05d", s.nextID), Title: form.Get("title"), Type: typ,
		HTML: content, AuthorID: "OWNERuser01", Created: now, Updated: now, UserIDs: []string{"OWNERuser01"}, FolderIDs: folders}
	if t.Title == "" {
		t.Title = "Untitled"
	}
	s.threads[t.ID], s.threads[t.Secret] = t, t
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, threadJSON(*t))
}

func (s *Server) currentUser(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"id": "OWNERuser01", "name": "Integration Owner", "emails": []string{"owner@acme.example"}})
}

func writeError(w http.ResponseWriter, status int, e, desc string) {
	writeJSON(w, status, map[string]any{"error_code": status, "error": e, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
