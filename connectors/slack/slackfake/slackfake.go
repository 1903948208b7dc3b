// Package slackfake is a fake of the Slack Web API for tests, on an
// httptest server on 127.0.0.1. It follows Slack's published behaviour for
// the methods the slack connector calls:
//
//   - methods live under /api/{method}; the token is an
//     "Authorization: Bearer xoxb-..." header;
//   - answers are HTTP 200 with {"ok": true, ...} or {"ok": false,
//     "error": "<code>"}: not_authed (no token), invalid_auth (unknown
//     token), token_expired, token_revoked, channel_not_found, no_text,
//     invalid_cursor, ...;
//   - conversations.list pages with limit (default 100, at most 1000) and
//     cursor, and answers response_metadata.next_cursor ("" on the last
//     page);
//   - rate limiting is HTTP 429 with a Retry-After header in seconds and
//     {"ok": false, "error": "ratelimited"};
//   - api.test needs no token.
//
// Hooks inject faults (Inject), expire or revoke tokens (SetToken), and
// record what the server received (Requests).
package slackfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	// Valid tokens are accepted.
	Valid TokenState = iota
	// Expired tokens get {"ok":false,"error":"token_expired"}.
	Expired
	// Revoked tokens get {"ok":false,"error":"token_revoked"}.
	Revoked
)

// Channel is a conversation the fake lists and posts to.
type Channel struct {
	ID         string
	Name       string
	IsPrivate  bool
	IsArchived bool
	NumMembers int
	Created    int64
	Topic      string
	Purpose    string
}

// Message is a message posted to the fake.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string
	Text     string
	// Token is the token the message was posted with.
	Token string
}

// Fault is a failure the fake answers instead of serving a request.
type Fault struct {
	// Method is the API method it applies to, e.g. "conversations.list";
	// empty means any.
	Method string
	// Status is the HTTP status; zero means 200 (with Error, an
	// {"ok":false} answer).
	Status int
	// Error is the Slack error code of the body; empty means
	// "ratelimited" for 429, none (an HTML-free plain body) for 5xx.
	Error string
	// RetryAfter is the Retry-After header; empty means none.
	RetryAfter string
	// Delay holds the answer back (or until the client goes away).
	Delay time.Duration
	// Times is how many requests it answers; zero means one.
	Times int
}

// Request is what the fake received.
type Request struct {
	Method     string // the API method, e.g. "chat.postMessage"
	HTTPMethod string
	// Authorization is the header as received.
	Authorization string
	ContentType   string
	Query         url.Values
	// Body is the request body as received.
	Body []byte
}

// Server is a fake Slack workspace. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	tokens   map[string]TokenState // guarded by mu
	channels []Channel             // guarded by mu; in listing order
	messages []Message             // guarded by mu
	faults   []*Fault              // guarded by mu
	requests []Request             // guarded by mu
	clock    int64                 // guarded by mu; message timestamps
	pageCap  int                   // guarded by mu; 0 means none
}

// New starts a fake on 127.0.0.1 that accepts tokens (Valid).
func New(tokens ...string) *Server {
	s := &Server{tokens: map[string]TokenState{}, clock: 1700000000}
	for _, t := range tokens {
		s.tokens[t] = Valid
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/api.test", s.apiTest)
	mux.HandleFunc("/api/conversations.list", s.conversationsList)
	mux.HandleFunc("/api/chat.postMessage", s.postMessage)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		// Slack answers unknown methods with HTTP 404 and unknown_method.
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method"})
	})
	s.srv = httptest.NewServer(s.record(mux))
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

// AddChannels adds channels, listed in the order added.
func (s *Server) AddChannels(cs ...Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = append(s.channels, cs...)
}

// SetPageCap makes conversations.list answer at most n channels a page,
// whatever the limit asked (Slack documents that it may answer fewer than
// limit). Zero removes the cap.
func (s *Server) SetPageCap(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageCap = n
}

// Inject queues a fault; faults answer requests in the order injected.
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

// Messages returns the messages posted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// record keeps every request and answers the first matching fault.
func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		method := strings.TrimPrefix(r.URL.Path, "/api/")
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: method, HTTPMethod: r.Method, Authorization: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Query: r.URL.Query(), Body: body})
		var f *Fault
		for i, q := range s.faults {
			if q.Method == "" || q.Method == method {
				f = q
				if q.Times--; q.Times == 0 {
					s.faults = slices.Delete(s.faults, i, i+1)
				}
				break
			}
		}
		s.mu.Unlock()
		if f == nil {
			next.ServeHTTP(w, r)
			return
		}
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
			if f.Status == 0 && f.Error == "" {
				next.ServeHTTP(w, r)
				return
			}
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		status, code := f.Status, f.Error
		if status == 0 {
			status = http.StatusOK
		}
		if status == http.StatusTooManyRequests && code == "" {
			code = "ratelimited"
		}
		if code == "" {
			http.Error(w, http.StatusText(status), status)
			return
		}
		writeJSON(w, status, map[string]any{"ok": false, "error": code})
	})
}

// auth checks the bearer token; it answers and returns false when Slack
// would refuse it.
func (s *Server) auth(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_authed"})
		return "", false
	}
	s.mu.Lock()
	st, known := s.tokens[tok]
	s.mu.Unlock()
	switch {
	case !known:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
	case st == Expired:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "token_expired"})
	case st == Revoked:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "token_revoked"})
	default:
		return tok, true
	}
	return "", false
}

func (s *Server) apiTest(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "args": map[string]string{}})
}

// conversationsList serves GET (or form POST) conversations.list.
func (s *Server) conversationsList(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.auth(w, r); !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_form_data"})
		return
	}
	limit := 100
	if v := r.Form.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_limit"})
			return
		}
		limit = min(n, 1000)
	}
	types := map[string]bool{"public_channel": true}
	if v := r.Form.Get("types"); v != "" {
		types = map[string]bool{}
		for t := range strings.SplitSeq(v, ",") {
			switch t = strings.TrimSpace(t); t {
			case "public_channel", "private_channel", "mpim", "im":
				types[t] = true
			default:
				writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_types"})
				return
			}
		}
	}
	excludeArchived := r.Form.Get("exclude_archived") == "true" || r.Form.Get("exclude_archived") == "1"
	start := 0
	if c := r.Form.Get("cursor"); c != "" {
		n, ok := decodeCursor(c)
		if !ok {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_cursor"})
			return
		}
		start = n
	}
	s.mu.Lock()
	all := slices.Clone(s.channels)
	if s.pageCap > 0 {
		limit = min(limit, s.pageCap)
	}
	s.mu.Unlock()
	var page []map[string]any
	next := ""
	i := start
	for ; i < len(all) && len(page) < limit; i++ {
		c := all[i]
		if excludeArchived && c.IsArchived {
			continue
		}
		if (c.IsPrivate && !types["private_channel"]) || (!c.IsPrivate && !types["public_channel"]) {
			continue
		}
		page = append(page, channelJSON(c))
	}
	if i < len(all) {
		next = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "offset:%d", i))
	}
	if page == nil {
		page = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channels": page, "response_metadata": map[string]string{"next_cursor": next}})
}

// decodeCursor reads the fake's opaque cursor: base64 of "offset:N".
func decodeCursor(c string) (int, bool) {
	b, err := base64.StdEncoding.DecodeString(c)
	if err != nil {
		return 0, false
	}
	n, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	return i, err == nil && i >= 0
}

func channelJSON(c Channel) map[string]any {
	return map[string]any{
		"id": c.ID, "name": c.Name, "is_channel": !c.IsPrivate, "is_group": c.IsPrivate, "is_im": false, "is_mpim": false,
		"is_private": c.IsPrivate, "is_archived": c.IsArchived, "is_general": c.Name == "general", "created": c.Created,
		"creator": "U0123456789", "name_normalized": c.Name, "num_members": c.NumMembers,
		"topic":   map[string]any{"value": c.Topic, "creator": "U0123456789", "last_set": c.Created},
		"purpose": map[string]any{"value": c.Purpose, "creator": "U0123456789", "last_set": c.Created},
	}
}

// postMessage serves POST chat.postMessage with a JSON or form body.
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_request_method"})
		return
	}
	tok, ok := s.auth(w, r)
	if !ok {
		return
	}
	var args struct {
		Channel  string `json:"channel"`
		Text     string `json:"text"`
		ThreadTS string `json:"thread_ts"`
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		if err := json.NewDecoder(r.Body).Decode(&args); err != nil {
			writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_json"})
			return
		}
	case "application/x-www-form-urlencoded":
		r.ParseForm()
		args.Channel, args.Text, args.ThreadTS = r.Form.Get("channel"), r.Form.Get("text"), r.Form.Get("thread_ts")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_form_data"})
		return
	}
	if args.Text == "" {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "no_text"})
		return
	}
	if len(args.Text) > 40000 {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "msg_too_long"})
		return
	}
	s.mu.Lock()
	var ch *Channel
	for i := range s.channels {
		c := &s.channels[i]
		if c.ID == args.Channel || "#"+c.Name == args.Channel || c.Name == args.Channel {
			ch = c
			break
		}
	}
	if ch == nil {
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	if ch.IsArchived {
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "is_archived"})
		return
	}
	s.clock++
	ts := fmt.Sprintf("%d.%06d", s.clock, len(s.messages)+1)
	s.messages = append(s.messages, Message{Channel: ch.ID, TS: ts, ThreadTS: args.ThreadTS, Text: args.Text, Token: tok})
	chID := ch.ID
	s.mu.Unlock()
	msg := map[string]any{"type": "message", "subtype": "bot_message", "text": args.Text, "ts": ts, "bot_id": "B0123456789", "user": "U0BOT000001"}
	if args.ThreadTS != "" {
		msg["thread_ts"] = args.ThreadTS
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "channel": chID, "ts": ts, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
