// Package adobeanalyticsfake is a fake Adobe Analytics Reports API 2.0 for
// tests, on 127.0.0.1, following the published API:
//
//	POST /api/{globalCompanyId}/reports
//	  Authorization: Bearer <IMS access token>, x-api-key: <client id>,
//	  x-proxy-global-company-id: <globalCompanyId>
//	  {"rsid", "globalFilters": [{"type": "dateRange", "dateRange"}...],
//	   "metricContainer": {"metrics": [{"columnId", "id"}]}, "dimension",
//	   "settings": {"limit", "page"}}
//	  <- {"totalPages", "firstPage", "lastPage", "numberOfElements", "number",
//	      "totalElements", "columns", "rows", "summaryData"}
//
// Its gateway answers like Adobe's: 401 {"error_code":"401013","message":
// "Oauth token is not valid"} for unknown or revoked tokens, 403
// {"error_code":"403003","message":"Api Key is invalid"} for a wrong client
// id, and 429 {"error_code":"429050","message":"Too many requests"} past 12
// requests per 6 seconds per token. The API answers 400 with
// {"errorCode", "errorDescription", "errorId"}.
//
// Tests inject faults (any status with Adobe's body for it, a Retry-After
// header, a delay) and read back the requests it received.
package adobeanalyticsfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value of every field means its default.
type Options struct {
	// Tokens are the IMS access tokens it accepts.
	Tokens []string
	// ClientID is the client id it accepts as x-api-key. Empty means "test-client".
	ClientID string
	// CompanyID is the global company id it serves. Empty means "acmeco0".
	CompanyID string
	// RateLimit requests per RateWindow are allowed per token. Zero means
	// 12 per 6s, Adobe's limit; a negative RateLimit means no limit.
	RateLimit  int
	RateWindow time.Duration
}

// Row is a row of a report suite: a dimension item whose metric j is Base*(j+1).
type Row struct {
	ItemID, Value string
	Base          float64
}

// Fault is a scripted answer to the next report requests.
type Fault struct {
	// Status is the HTTP status to answer with, with Adobe's body for it;
	// zero (with Delay) answers normally, late.
	Status int
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
	// Body, when set, replaces the body.
	Body string
	// Delay holds the answer back this long (or until the client leaves).
	Delay time.Duration
	// Times is how many requests it answers. Zero means 1.
	Times int
}

// Request is a request the server received.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// Server is a fake Adobe Analytics API.
type Server struct {
	// URL is its base URL (for analytics.adobe.io).
	URL string

	srv  *httptest.Server
	opts Options

	mu       sync.Mutex
	tokens   map[string]bool        // guarded by mu
	suites   map[string][]Row       // guarded by mu; rsid -> rows
	faults   []Fault                // guarded by mu
	requests []Request              // guarded by mu
	recent   map[string][]time.Time // guarded by mu; token -> request times in the window
	seq      int                    // guarded by mu
}

// New starts a Server. Close it when done.
func New(opts Options) *Server {
	if opts.ClientID == "" {
		opts.ClientID = "test-client"
	}
	if opts.CompanyID == "" {
		opts.CompanyID = "acmeco0"
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 12
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = 6 * time.Second
	}
	s := &Server{opts: opts, tokens: map[string]bool{}, suites: map[string][]Row{}, recent: map[string][]time.Time{}}
	for _, t := range opts.Tokens {
		s.tokens[t] = true
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetRows sets a report suite's rows, in rank order.
func (s *Server) SetRows(rsid string, rows []Row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.suites[rsid] = append([]Row(nil), rows...)
}

// Revoke makes token invalid, as an expired one is.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = false
}

// Inject queues a fault for the next report requests.
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// gateway writes an API gateway error.
func gateway(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "message": msg})
}

// apiError writes an Analytics API error.
func (s *Server) apiError(w http.ResponseWriter, status int, code, desc string) {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("0c4f1e2a-%04x-4a1b-9c2d-%012x", s.seq, s.seq)
	s.mu.Unlock()
	writeJSON(w, status, map[string]string{"errorCode": code, "errorDescription": desc, "errorId": id})
}

// fault answers with f's status; it reports whether it did.
func (s *Server) fault(w http.ResponseWriter, f *Fault) bool {
	if f == nil || f.Status == 0 {
		return false
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		io.WriteString(w, f.Body)
		return true
	}
	switch f.Status {
	case http.StatusTooManyRequests:
		gateway(w, f.Status, "429050", "Too many requests")
	case http.StatusUnauthorized:
		gateway(w, f.Status, "401013", "Oauth token is not valid")
	case http.StatusForbidden:
		gateway(w, f.Status, "403003", "Api Key is invalid")
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		gateway(w, f.Status, strconv.Itoa(f.Status)+"000", http.StatusText(f.Status))
	default:
		s.apiError(w, f.Status, "unexpected_error", "An unexpected error occurred")
	}
	return true
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	s.mu.Unlock()

	company, ok := strings.CutPrefix(r.URL.Path, "/api/")
	company, rest, _ := strings.Cut(company, "/")
	if !ok || rest != "reports" {
		gateway(w, http.StatusNotFound, "404010", "Resource not found")
		return
	}
	if r.Method != http.MethodPost {
		gateway(w, http.StatusMethodNotAllowed, "405000", "Method not allowed")
		return
	}
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

	// The gateway: API key, token, rate limit.
	key := r.Header.Get("x-api-key")
	if key == "" {
		gateway(w, http.StatusForbidden, "403000", "Api Key is required")
		return
	}
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	valid := found && s.tokens[tok]
	s.mu.Unlock()
	if !valid {
		gateway(w, http.StatusUnauthorized, "401013", "Oauth token is not valid")
		return
	}
	if key != s.opts.ClientID {
		gateway(w, http.StatusForbidden, "403003", "Api Key is invalid")
		return
	}
	if s.fault(w, f) {
		return
	}
	if !s.allow(tok) {
		gateway(w, http.StatusTooManyRequests, "429050", "Too many requests")
		return
	}

	// The Reports API.
	if company != s.opts.CompanyID || r.Header.Get("x-proxy-global-company-id") != company {
		s.apiError(w, http.StatusBadRequest, "invalid_company", "The global company id is not valid for this user")
		return
	}
	var req struct {
		RSID          string `json:"rsid"`
		GlobalFilters []struct {
			Type, DateRange, SegmentID string
		} `json:"globalFilters"`
		MetricContainer struct {
			Metrics []struct{ ColumnID, ID string } `json:"metrics"`
		} `json:"metricContainer"`
		Dimension string `json:"dimension"`
		Settings  struct {
			Limit *int `json:"limit"`
			Page  int  `json:"page"`
		} `json:"settings"`
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &req) != nil {
		s.apiError(w, http.StatusBadRequest, "invalid_json", "The request body is not valid JSON")
		return
	}
	s.mu.Lock()
	rows, known := s.suites[req.RSID]
	s.mu.Unlock()
	hasRange := false
	for _, g := range req.GlobalFilters {
		if g.Type == "dateRange" && strings.Contains(g.DateRange, "/") {
			hasRange = true
		}
	}
	limit := 50
	if req.Settings.Limit != nil {
		limit = *req.Settings.Limit
	}
	switch {
	case !known:
		s.apiError(w, http.StatusBadRequest, "invalid_rsid", "The report suite "+strconv.Quote(req.RSID)+" does not exist or is not accessible")
		return
	case !hasRange:
		s.apiError(w, http.StatusBadRequest, "invalid_request", "A dateRange global filter is required")
		return
	case len(req.MetricContainer.Metrics) == 0:
		s.apiError(w, http.StatusBadRequest, "invalid_request", "At least one metric is required")
		return
	case !strings.HasPrefix(req.Dimension, "variables/"):
		s.apiError(w, http.StatusBadRequest, "invalid_dimension", "The dimension "+strconv.Quote(req.Dimension)+" is not valid")
		return
	case limit < 1 || limit > 50000 || req.Settings.Page < 0:
		s.apiError(w, http.StatusBadRequest, "invalid_request", "settings.limit must be 1 to 50000 and settings.page at least 0")
		return
	}

	n := len(req.MetricContainer.Metrics)
	totals := make([]float64, n)
	for _, row := range rows {
		for j := range n {
			totals[j] += row.Base * float64(j+1)
		}
	}
	totalPages := (len(rows) + limit - 1) / limit
	start := min(req.Settings.Page*limit, len(rows))
	end := min(start+limit, len(rows))
	out := make([]map[string]any, 0, end-start)
	for _, row := range rows[start:end] {
		data := make([]float64, n)
		for j := range n {
			data[j] = row.Base * float64(j+1)
		}
		out = append(out, map[string]any{"itemId": row.ItemID, "value": row.Value, "data": data})
	}
	cols := make([]string, n)
	for j, m := range req.MetricContainer.Metrics {
		cols[j] = m.ColumnID
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"totalPages": totalPages, "firstPage": req.Settings.Page == 0, "lastPage": req.Settings.Page >= totalPages-1,
		"numberOfElements": len(out), "number": req.Settings.Page, "totalElements": len(rows),
		"columns":     map[string]any{"dimension": map[string]string{"id": req.Dimension, "type": "string"}, "columnIds": cols},
		"rows":        out,
		"summaryData": map[string]any{"filteredTotals": totals, "totals": totals},
	})
}

// allow counts a request of token against the rate limit.
func (s *Server) allow(token string) bool {
	if s.opts.RateLimit < 0 {
		return true
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.recent[token][:0]
	for _, t := range s.recent[token] {
		if now.Sub(t) < s.opts.RateWindow {
			kept = append(kept, t)
		}
	}
	if len(kept) >= s.opts.RateLimit {
		s.recent[token] = kept
		return false
	}
	s.recent[token] = append(kept, now)
	return true
}
