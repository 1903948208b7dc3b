package spemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The admin API under /_emu/ drives the emulator by hand (curl) when it
// runs standalone. It needs no authentication and no digest, is not
// counted in Stats and is not subject to faults; Options.DisableAdmin turns
// it off. Bodies and answers are plain JSON:
//
//	GET  /_emu/snapshot                          Snapshot()
//	GET  /_emu/stats                             Stats()
//	POST /_emu/stats/reset                       ResetStats()
//	GET  /_emu/changes?site=/sites/x             Changes(site)
//	GET  /_emu/token?site=/sites/x               CurrentChangeToken(site)
//	POST /_emu/generate   Spec                   Generate(spec)
//	POST /_emu/sites      {"name","title"}       AddSite
//	POST /_emu/webs       {"parent","name","title"}
//	POST /_emu/lists      {"web","title","template"}
//	POST /_emu/folders    {"parent","name"}
//	POST /_emu/files      {"folder","name","size","seed"}
//	POST /_emu/items      {"folder","title"}
//	POST /_emu/update     {"ref","size","seed"} or {"ref","title"}
//	POST /_emu/delete     {"ref"}
//	POST /_emu/rename     {"ref","name"}
//	POST /_emu/move       {"ref","dest"}
//	POST /_emu/restore    {"ref"}
//	POST /_emu/permissions {"ref","op":"break|reset|add|remove|set","copy","login","role","grants":[{"login","role"}]}
//	POST /_emu/users      {"site","login","title","email","siteAdmin","securityGroup"}
//	POST /_emu/members    {"site","group","login","remove"}
//	POST /_emu/faults     {"endpoint","pathContains","method","count","status","retryAfterSeconds"}
//	DELETE /_emu/faults                          ClearFaults()
//	POST /_emu/health     {"score"}
//	POST /_emu/reset-download {"ref","after"}
//	POST /_emu/clock      {"advance":"36h"}      Advance

// adminReq is the union of the admin API's request fields.
type adminReq struct {
	Name, Title, Parent, Web, Folder, Ref, Dest, Op, Login, Role, Site, Group, Email string
	Template                                                                         int
	Size                                                                             int64
	Seed                                                                             uint64
	Copy, Remove, SiteAdmin, SecurityGroup                                           bool
	Grants                                                                           []Grant
	Endpoint                                                                         Endpoint
	PathContains, Method                                                             string
	Count, Status                                                                    int
	RetryAfterSeconds                                                                float64
	Score                                                                            int
	After                                                                            int64
	Advance                                                                          string
}

func (s *Server) admin(w http.ResponseWriter, r *http.Request) {
	cmd := strings.Trim(strings.TrimPrefix(r.URL.Path, "/_emu/"), "/")
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	fail := func(err error) {
		status := http.StatusBadRequest
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotInRecycleBin) {
			status = http.StatusNotFound
		}
		reply(status, map[string]string{"error": err.Error()})
	}
	if r.Method == http.MethodGet {
		site := r.URL.Query().Get("site")
		switch cmd {
		case "snapshot":
			reply(200, s.Snapshot())
		case "stats":
			reply(200, s.Stats())
		case "changes":
			ch, err := s.Changes(site)
			if err != nil {
				fail(err)
				return
			}
			reply(200, ch)
		case "token":
			t, err := s.CurrentChangeToken(site)
			if err != nil {
				fail(err)
				return
			}
			reply(200, map[string]string{"token": t})
		default:
			reply(404, map[string]string{"error": "unknown admin command " + cmd})
		}
		return
	}
	if r.Method == http.MethodDelete && cmd == "faults" {
		s.ClearFaults()
		reply(200, map[string]bool{"ok": true})
		return
	}
	if r.Method != http.MethodPost {
		reply(405, map[string]string{"error": "use GET or POST"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		fail(err)
		return
	}
	if cmd == "generate" {
		var sp Spec
		if err := json.Unmarshal(body, &sp); err != nil {
			fail(fmt.Errorf("generate: %w", err))
			return
		}
		if err := s.Generate(sp); err != nil {
			fail(err)
			return
		}
		reply(200, map[string]bool{"ok": true})
		return
	}
	var q adminReq
	if len(body) > 0 {
		if err := json.Unmarshal(body, &q); err != nil {
			fail(fmt.Errorf("%s: %w", cmd, err))
			return
		}
	}
	v, err := s.adminMutate(cmd, q)
	if err != nil {
		fail(err)
		return
	}
	if v == nil {
		v = map[string]bool{"ok": true}
	}
	reply(200, v)
}

func (s *Server) adminMutate(cmd string, q adminReq) (any, error) {
	switch cmd {
	case "stats/reset":
		s.ResetStats()
		return nil, nil
	case "sites":
		return s.AddSite(q.Name, q.Title)
	case "webs":
		url, err := s.AddWeb(q.Parent, q.Name, q.Title)
		return map[string]string{"url": url}, err
	case "lists":
		if q.Template == 0 {
			q.Template = TemplateDocumentLibrary
		}
		return s.AddList(q.Web, q.Title, q.Template)
	case "folders":
		return s.AddFolder(q.Parent, q.Name)
	case "files":
		return s.AddFile(q.Folder, q.Name, FileSpec{Size: q.Size, Seed: q.Seed})
	case "items":
		return s.AddItem(q.Folder, q.Title)
	case "update":
		if q.Title != "" {
			return s.UpdateItem(q.Ref, q.Title)
		}
		return s.UpdateFile(q.Ref, FileSpec{Size: q.Size, Seed: q.Seed})
	case "delete":
		return nil, s.Delete(q.Ref)
	case "rename":
		return s.Rename(q.Ref, q.Name)
	case "move":
		return s.Move(q.Ref, q.Dest)
	case "restore":
		return s.Restore(q.Ref)
	case "permissions":
		switch q.Op {
		case "break":
			return nil, s.BreakInheritance(q.Ref, q.Copy)
		case "reset":
			return nil, s.ResetInheritance(q.Ref)
		case "add":
			return nil, s.AddRoleAssignment(q.Ref, q.Login, q.Role)
		case "remove":
			return nil, s.RemoveRoleAssignment(q.Ref, q.Login)
		case "set":
			return nil, s.SetPermissions(q.Ref, q.Grants...)
		}
		return nil, fmt.Errorf("permissions: unknown op %q", q.Op)
	case "users":
		return nil, s.AddUser(q.Site, User{Login: q.Login, Title: q.Title, Email: q.Email, SiteAdmin: q.SiteAdmin, SecurityGroup: q.SecurityGroup})
	case "members":
		if q.Remove {
			return nil, s.RemoveGroupMember(q.Site, q.Group, q.Login)
		}
		return nil, s.AddGroupMember(q.Site, q.Group, q.Login)
	case "faults":
		s.InjectFault(Fault{Endpoint: q.Endpoint, PathContains: q.PathContains, Method: q.Method, Count: q.Count,
			Status: q.Status, RetryAfter: time.Duration(q.RetryAfterSeconds * float64(time.Second))})
		return nil, nil
	case "health":
		s.SetHealthScore(q.Score)
		return map[string]int{"score": s.HealthScore()}, nil
	case "reset-download":
		s.ResetDownloadAfter(q.Ref, q.After)
		return nil, nil
	case "clock":
		d, err := time.ParseDuration(q.Advance)
		if err != nil {
			return nil, fmt.Errorf("clock: %w", err)
		}
		s.Advance(d)
		return map[string]string{"now": s.Now().UTC().Format(time.RFC3339)}, nil
	}
	return nil, fmt.Errorf("unknown admin command %q: %w", cmd, ErrNotFound)
}
