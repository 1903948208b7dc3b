// Package asanafake is an in-memory Asana REST API (1.0) for tests,
// served by httptest on 127.0.0.1. It follows the published API where
// the connector depends on it:
//
//   - paths under /api/1.0: GET /users/me, GET/PUT /tasks/{gid},
//     POST /tasks, GET /projects, POST /batch;
//   - "Authorization: Bearer <token>"; a missing, expired or revoked
//     token is answered 401 {"errors":[{"message":"Not Authorized"}]};
//   - request bodies and responses wrapped in {"data": ...}; errors as
//     {"errors":[{"message", "help"}]} with the HTTP status;
//   - opt_fields, with compact records (gid, resource_type, name) by
//     default in lists and nested records;
//   - pagination by limit (1 to 100) and an opaque offset, answered with
//     next_page {offset, path, uri} or null;
//   - the batch API: at most 10 actions {relative_path, method, data,
//     options}, each answered {status_code, headers, body};
//   - 429 with Retry-After when throttled.
//
// Tests inject faults (429 with Retry-After, 5xx, slow responses),
// expire or revoke tokens, and inspect the requests received.
package asanafake

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
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

// APIPath is the API's path prefix.
const APIPath = "/api/1.0"

// ErrorsHelp is the help text Asana adds to error messages.
const ErrorsHelp = "For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors"

// Fault is a failure injected into the next matching requests.
type Fault struct {
	// Path, when set, limits the fault to requests whose path contains it.
	Path string
	// Delay holds the request before it is answered (or failed).
	Delay time.Duration
	// Status, when set, answers with this HTTP status and an Asana error
	// body instead of serving the request.
	Status int
	// RetryAfter is sent as the Retry-After header when set.
	RetryAfter string
	// Message, when set, is the error's message.
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

// User is an Asana user.
type User struct {
	GID, Name, Email string
}

// Project is an Asana project.
type Project struct {
	GID, Name, Workspace, Team string
	Archived                   bool
	ModifiedAt                 time.Time
}

// Task is an Asana task.
type Task struct {
	GID, Name, Notes, DueOn, Assignee, Workspace string
	Completed                                    bool
	Projects                                     []string
	CreatedAt, ModifiedAt                        time.Time
}

type tokenState int

const (
	tokenValid tokenState = iota
	tokenExpired
	tokenRevoked
)

type token struct {
	state tokenState
	user  string
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, e.g. "http://127.0.0.1:43210".
	URL string
	srv *httptest.Server

	mu         sync.Mutex
	tokens     map[string]token
	users      map[string]User
	workspaces map[string]string // gid -> name
	projects   []Project
	tasks      map[string]*Task
	faults     []Fault
	requests   []Request
	seq        int64
	now        func() time.Time
}

// New starts a fake. Close it when done.
func New() *Server {
	s := &Server{
		tokens: map[string]token{}, users: map[string]User{}, workspaces: map[string]string{},
		tasks: map[string]*Task{}, seq: 1200000000000000, now: time.Now,
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func (s *Server) gid() string {
	s.seq++
	return strconv.FormatInt(s.seq, 10)
}

// AddWorkspace stores a workspace and returns its gid.
func (s *Server) AddWorkspace(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gid()
	s.workspaces[g] = name
	return g
}

// AddUser stores a user and returns its gid.
func (s *Server) AddUser(name, email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gid()
	s.users[g] = User{GID: g, Name: name, Email: email}
	return g
}

// AddToken makes tok a valid token of user (a gid).
func (s *Server) AddToken(tok, user string) { s.setToken(tok, tokenValid, user) }

// ExpireToken makes tok an expired token.
func (s *Server) ExpireToken(tok string) { s.setToken(tok, tokenExpired, "") }

// RevokeToken makes tok a revoked token.
func (s *Server) RevokeToken(tok string) { s.setToken(tok, tokenRevoked, "") }

func (s *Server) setToken(tok string, st tokenState, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[tok]
	t.state = st
	if user != "" {
		t.user = user
	}
	s.tokens[tok] = t
}

// AddProject stores a project and returns its gid.
func (s *Server) AddProject(p Project) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.GID == "" {
		p.GID = s.gid()
	}
	if p.ModifiedAt.IsZero() {
		p.ModifiedAt = s.now().UTC()
	}
	s.projects = append(s.projects, p)
	return p.GID
}

// AddTask stores a task and returns its gid.
func (s *Server) AddTask(t Task) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.GID == "" {
		t.GID = s.gid()
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now().UTC()
		t.ModifiedAt = t.CreatedAt
	}
	s.tasks[t.GID] = &t
	return t.GID
}

// Task returns a copy of a stored task.
func (s *Server) Task(gid string) (Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[gid]
	if !ok {
		return Task{}, false
	}
	c := *t
	c.Projects = slices.Clone(t.Projects)
	return c, true
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

// errorsBody is Asana's error body.
func errorsBody(msg string) map[string]any {
	return map[string]any{"errors": []map[string]string{{"message": msg, "help": ErrorsHelp}}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
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

	if fault != nil {
		if fault.Delay > 0 && !sleep(r.Context(), fault.Delay) {
			return
		}
		if fault.Status != 0 {
			if fault.RetryAfter != "" {
				w.Header().Set("Retry-After", fault.RetryAfter)
			}
			msg := fault.Message
			switch {
			case msg != "":
			case fault.Status == http.StatusTooManyRequests:
				msg = "You have made too many requests recently. Please, be chill."
			case fault.Status >= 500:
				msg = "Server Error"
			default:
				msg = http.StatusText(fault.Status)
			}
			writeJSON(w, fault.Status, errorsBody(msg))
			return
		}
	}

	user, ok := s.authenticate(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, errorsBody("Not Authorized"))
		return
	}
	path, found := strings.CutPrefix(r.URL.Path, APIPath)
	if !found {
		writeJSON(w, http.StatusNotFound, errorsBody("No matching route for request"))
		return
	}
	q := r.URL.Query()
	var data json.RawMessage
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil || len(env.Data) == 0 {
			writeJSON(w, http.StatusBadRequest, errorsBody("Could not parse request data, invalid JSON: the body must be {\"data\": {...}}"))
			return
		}
		data = env.Data
	}
	if path == "/batch" && r.Method == http.MethodPost {
		status, out := s.batch(user, data)
		writeJSON(w, status, out)
		return
	}
	status, out := s.do(user, r.Method, path, q, data)
	writeJSON(w, status, out)
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

func (s *Server) authenticate(r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	if !ok || t.state != tokenValid {
		return "", false
	}
	return t.user, true
}

var (
	taskRE    = regexp.MustCompile(`^/tasks/([0-9]+)$`)
	dueOnRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	actionsRE = regexp.MustCompile(`^(/[A-Za-z0-9_-]+)+$`)
)

// do serves one request (also one batch action). It returns the status
// and the body.
func (s *Server) do(user, method, path string, q url.Values, data json.RawMessage) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fields := optFields(q)
	switch {
	case path == "/users/me" && method == http.MethodGet:
		u := s.users[user]
		return 200, map[string]any{"data": map[string]any{"gid": u.GID, "resource_type": "user", "name": u.Name, "email": u.Email}}
	case path == "/tasks" && method == http.MethodPost:
		return s.createTask(user, data, fields)
	case taskRE.MatchString(path) && method == http.MethodGet:
		t, ok := s.tasks[taskRE.FindStringSubmatch(path)[1]]
		if !ok {
			return 404, errorsBody("Unknown object: " + taskRE.FindStringSubmatch(path)[1])
		}
		return 200, map[string]any{"data": s.renderTask(t, fields)}
	case taskRE.MatchString(path) && method == http.MethodPut:
		return s.updateTask(user, taskRE.FindStringSubmatch(path)[1], data, fields)
	case path == "/projects" && method == http.MethodGet:
		return s.listProjects(q, fields)
	}
	return 404, errorsBody("No matching route for request")
}

func optFields(q url.Values) []string {
	var out []string
	for f := range strings.SplitSeq(q.Get("opt_fields"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// wants reports whether field (or a nested field of it) was asked for.
func wants(fields []string, field string) bool {
	for _, f := range fields {
		if f == field || strings.HasPrefix(f, field+".") {
			return true
		}
	}
	return false
}

// ref is a compact nested record, or nil for none.
func ref(kind, gid, name string) any {
	if gid == "" {
		return nil
	}
	return map[string]any{"gid": gid, "resource_type": kind, "name": name}
}

// renderTask is the full record without opt_fields, else the compact
// one with the fields asked for.
func (s *Server) renderTask(t *Task, fields []string) map[string]any {
	projects := []any{}
	for _, p := range t.Projects {
		projects = append(projects, ref("project", p, s.projectName(p)))
	}
	due := any(nil)
	if t.DueOn != "" {
		due = t.DueOn
	}
	full := map[string]any{
		"gid": t.GID, "resource_type": "task", "resource_subtype": "default_task", "name": t.Name, "notes": t.Notes,
		"completed": t.Completed, "due_on": due, "assignee": ref("user", t.Assignee, s.users[t.Assignee].Name),
		"projects": projects, "workspace": ref("workspace", t.Workspace, s.workspaces[t.Workspace]),
		"permalink_url": fmt.Sprintf("https://app.asana.com/0/0/%s", t.GID),
		"created_at":    t.CreatedAt.Format(time.RFC3339Nano), "modified_at": t.ModifiedAt.Format(time.RFC3339Nano),
	}
	if fields == nil {
		return full
	}
	out := map[string]any{"gid": t.GID, "resource_type": "task"}
	for k, v := range full {
		if wants(fields, k) {
			out[k] = v
		}
	}
	return out
}

func (s *Server) projectName(gid string) string {
	for _, p := range s.projects {
		if p.GID == gid {
			return p.Name
		}
	}
	return ""
}

func (s *Server) projectByGID(gid string) (Project, bool) {
	for _, p := range s.projects {
		if p.GID == gid {
			return p, true
		}
	}
	return Project{}, false
}

// taskInput is what create and update read.
type taskInput struct {
	Name      *string  `json:"name"`
	Notes     *string  `json:"notes"`
	DueOn     *string  `json:"due_on"`
	Assignee  *string  `json:"assignee"`
	Completed *bool    `json:"completed"`
	Workspace string   `json:"workspace"`
	Projects  []string `json:"projects"`
}

func (s *Server) applyTask(user string, t *Task, in taskInput) (int, any) {
	if in.Name != nil {
		t.Name = *in.Name
	}
	if in.Notes != nil {
		t.Notes = *in.Notes
	}
	if in.Completed != nil {
		t.Completed = *in.Completed
	}
	if in.DueOn != nil {
		if *in.DueOn != "" && !dueOnRE.MatchString(*in.DueOn) {
			return 400, errorsBody("due_on: Invalid date: " + *in.DueOn)
		}
		t.DueOn = *in.DueOn
	}
	if in.Assignee != nil {
		switch a := *in.Assignee; {
		case a == "me":
			t.Assignee = user
		case a == "":
			t.Assignee = ""
		default:
			found := ""
			for g, u := range s.users {
				if g == a || strings.EqualFold(u.Email, a) {
					found = g
				}
			}
			if found == "" {
				return 400, errorsBody("assignee: Not a recognized ID: " + a)
			}
			t.Assignee = found
		}
	}
	return 0, nil
}

func (s *Server) createTask(user string, data json.RawMessage, fields []string) (int, any) {
	var in taskInput
	if err := json.Unmarshal(data, &in); err != nil {
		return 400, errorsBody("Could not parse request data")
	}
	t := &Task{Workspace: in.Workspace}
	if in.Workspace != "" {
		if _, ok := s.workspaces[in.Workspace]; !ok {
			return 400, errorsBody("workspace: Not a recognized ID: " + in.Workspace)
		}
	}
	for _, pg := range in.Projects {
		p, ok := s.projectByGID(pg)
		if !ok {
			return 400, errorsBody("projects: [0]: Not a recognized ID: " + pg)
		}
		if t.Workspace == "" {
			t.Workspace = p.Workspace
		}
		t.Projects = append(t.Projects, pg)
	}
	if t.Workspace == "" {
		return 400, errorsBody("You should specify one of workspace, parent, projects")
	}
	if status, body := s.applyTask(user, t, in); status != 0 {
		return status, body
	}
	t.GID = s.gid()
	t.CreatedAt = s.now().UTC()
	t.ModifiedAt = t.CreatedAt
	s.tasks[t.GID] = t
	return 201, map[string]any{"data": s.renderTask(t, fields)}
}

func (s *Server) updateTask(user, gid string, data json.RawMessage, fields []string) (int, any) {
	t, ok := s.tasks[gid]
	if !ok {
		return 404, errorsBody("Unknown object: " + gid)
	}
	var in taskInput
	if err := json.Unmarshal(data, &in); err != nil {
		return 400, errorsBody("Could not parse request data")
	}
	next := *t
	if status, body := s.applyTask(user, &next, in); status != 0 {
		return status, body
	}
	next.ModifiedAt = s.now().UTC()
	*t = next
	return 200, map[string]any{"data": s.renderTask(t, fields)}
}

// offsetToken is the opaque offset of position i.
func offsetToken(i int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"pos":%d}`, i)))
}

func parseOffset(tok string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	var v struct {
		Pos *int `json:"pos"`
	}
	if json.Unmarshal(b, &v) != nil || v.Pos == nil || *v.Pos < 0 {
		return 0, false
	}
	return *v.Pos, true
}

func (s *Server) listProjects(q url.Values, fields []string) (int, any) {
	ws, team := q.Get("workspace"), q.Get("team")
	if ws == "" && team == "" {
		return 400, errorsBody("Must specify exactly one of workspace or team")
	}
	if ws != "" {
		if _, ok := s.workspaces[ws]; !ok {
			return 400, errorsBody("workspace: Not a recognized ID: " + ws)
		}
	}
	var list []Project
	for _, p := range s.projects {
		if (ws == "" || p.Workspace == ws) && (team == "" || p.Team == team) &&
			(q.Get("archived") == "" || strconv.FormatBool(p.Archived) == q.Get("archived")) {
			list = append(list, p)
		}
	}
	render := func(p Project) map[string]any {
		out := map[string]any{"gid": p.GID, "resource_type": "project", "name": p.Name}
		full := map[string]any{"archived": p.Archived, "modified_at": p.ModifiedAt.Format(time.RFC3339Nano),
			"permalink_url": "https://app.asana.com/0/" + p.GID + "/list",
			"workspace":     ref("workspace", p.Workspace, s.workspaces[p.Workspace])}
		for k, v := range full {
			if wants(fields, k) {
				out[k] = v
			}
		}
		return out
	}
	data := []map[string]any{}
	if q.Get("limit") == "" {
		// Unpaginated ("grandfathered") request: everything, no next_page.
		for _, p := range list {
			data = append(data, render(p))
		}
		return 200, map[string]any{"data": data}
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > 100 {
		return 400, errorsBody("limit: Must be between 1 and 100")
	}
	start := 0
	if o := q.Get("offset"); o != "" {
		var ok bool
		if start, ok = parseOffset(o); !ok {
			return 400, errorsBody("offset: Your pagination token is invalid or has expired")
		}
	}
	end := min(len(list), start+limit)
	for _, p := range list[min(start, len(list)):end] {
		data = append(data, render(p))
	}
	var next any
	if end < len(list) {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = slices.Clone(v)
		}
		nq.Set("offset", offsetToken(end))
		path := "/projects?" + nq.Encode()
		next = map[string]string{"offset": offsetToken(end), "path": path, "uri": s.URL + APIPath + path}
	}
	return 200, map[string]any{"data": data, "next_page": next}
}

// batchAction is one action of a batch request.
type batchAction struct {
	RelativePath string          `json:"relative_path"`
	Method       string          `json:"method"`
	Data         json.RawMessage `json:"data"`
	Options      struct {
		Limit  int      `json:"limit"`
		Offset string   `json:"offset"`
		Fields []string `json:"fields"`
	} `json:"options"`
}

func (s *Server) batch(user string, data json.RawMessage) (int, any) {
	var in struct {
		Actions []batchAction `json:"actions"`
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return 400, errorsBody("actions: Could not parse the actions")
	}
	if len(in.Actions) == 0 {
		return 400, errorsBody("actions: Missing input")
	}
	if len(in.Actions) > 10 {
		return 400, errorsBody("actions: A batch request may have at most 10 actions")
	}
	out := []map[string]any{}
	for _, a := range in.Actions {
		method := strings.ToUpper(a.Method)
		if !actionsRE.MatchString(a.RelativePath) || !slices.Contains([]string{"GET", "POST", "PUT", "DELETE", "PATCH"}, method) {
			out = append(out, map[string]any{"status_code": 400, "headers": map[string]string{}, "body": errorsBody("relative_path or method is not valid")})
			continue
		}
		q := url.Values{}
		var body json.RawMessage
		if method == http.MethodGet {
			var params map[string]any
			if len(a.Data) > 0 && json.Unmarshal(a.Data, &params) == nil {
				for k, v := range params {
					q.Set(k, fmt.Sprint(v))
				}
			}
		} else {
			body = a.Data
			if len(body) == 0 {
				body = json.RawMessage(`{}`)
			}
		}
		if a.Options.Limit > 0 {
			q.Set("limit", strconv.Itoa(a.Options.Limit))
		}
		if a.Options.Offset != "" {
			q.Set("offset", a.Options.Offset)
		}
		if len(a.Options.Fields) > 0 {
			q.Set("opt_fields", strings.Join(a.Options.Fields, ","))
		}
		status, b := s.do(user, method, a.RelativePath, q, body)
		out = append(out, map[string]any{"status_code": status, "headers": map[string]string{}, "body": b})
	}
	return 200, map[string]any{"data": out}
}
