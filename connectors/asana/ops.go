package asana

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opCreateTask   = "create_task"
	opGetTask      = "get_task"
	opListProjects = "list_projects"
	opBatch        = "batch"
)

// List bounds.
const (
	defaultListLimit = 100
	maxListLimit     = 2000
	maxBatchActions  = 10
)

// gidSchema is an Asana global id: a string of digits.
const gidSchema = `{"type": "string", "pattern": "^[0-9]{1,32}$"}`

const refSchema = `{"type": "object", "required": ["gid"], "properties": {"gid": {"type": "string"}, "name": {"type": "string"}}}`

const taskSchema = `{
	"type": "object", "required": ["gid", "name", "completed", "projects"],
	"properties": {
		"gid": {"type": "string"}, "name": {"type": "string"}, "notes": {"type": "string"},
		"completed": {"type": "boolean"}, "due_on": {"type": "string"},
		"assignee": ` + refSchema + `, "workspace": ` + refSchema + `,
		"projects": {"type": "array", "items": ` + refSchema + `},
		"permalink_url": {"type": "string"}, "created_at": {"type": "string"}, "modified_at": {"type": "string"}
	}
}`

const taskFields = "name,notes,completed,due_on,assignee,assignee.name,projects,projects.name,workspace,workspace.name,permalink_url,created_at,modified_at"

const projectFields = "name,archived,permalink_url,modified_at"

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	return []connectors.Operation{
		{
			Name:        opCreateTask,
			Description: "Creates an Asana task in a workspace or in projects, in the integration owner's name, attributed to the calling user.",
			Access:      connectors.Write, Attributed: true, PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["name"],
				"anyOf": [{"required": ["workspace"]}, {"required": ["projects"]}],
				"properties": {
					"name": {"type": "string", "minLength": 1, "maxLength": 1024},
					"notes": {"type": "string", "maxLength": 65536},
					"workspace": ` + gidSchema + `,
					"projects": {"type": "array", "minItems": 1, "maxItems": 20, "uniqueItems": true, "items": ` + gidSchema + `},
					"due_on": {"type": "string", "format": "date"},
					"assignee": {"anyOf": [` + gidSchema + `, {"const": "me"}, {"type": "string", "format": "email", "maxLength": 254}]}
				}
			}`),
			Result: json.RawMessage(`{"type": "object", "required": ["task"], "properties": {"task": ` + taskSchema + `}}`),
		},
		{
			Name:        opGetTask,
			Description: "One Asana task by gid: name, notes, completion, due date, assignee, projects and links.",
			Access:      connectors.Read, PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["task_gid"],
				"properties": {"task_gid": ` + gidSchema + `}
			}`),
			Result: json.RawMessage(`{"type": "object", "required": ["task"], "properties": {"task": ` + taskSchema + `}}`),
		},
		{
			Name: opListProjects,
			Description: "A workspace's Asana projects (optionally one team's, archived or not), following limit/offset pages " +
				"up to limit (default 100, at most 2000).",
			Access: connectors.Read,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["workspace"],
				"properties": {
					"workspace": ` + gidSchema + `,
					"team": ` + gidSchema + `,
					"archived": {"type": "boolean"},
					"limit": {"type": "integer", "minimum": 1, "maximum": ` + strconv.Itoa(maxListLimit) + `}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["projects", "count", "truncated"],
				"properties": {
					"projects": {"type": "array", "items": {
						"type": "object", "required": ["gid", "name"],
						"properties": {"gid": {"type": "string"}, "name": {"type": "string"}, "archived": {"type": "boolean"},
							"permalink_url": {"type": "string"}, "modified_at": {"type": "string"}}
					}},
					"count": {"type": "integer"},
					"truncated": {"type": "boolean"}
				}
			}`),
		},
		{
			Name: opBatch,
			Description: "Runs up to 10 Asana API actions in one request (POST /batch), in the integration owner's name; " +
				"each action's status and body are returned, and failed actions do not fail the batch.",
			Access: connectors.Write, PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["actions"],
				"properties": {
					"actions": {"type": "array", "minItems": 1, "maxItems": ` + strconv.Itoa(maxBatchActions) + `, "items": {
						"type": "object", "additionalProperties": false, "required": ["relative_path", "method"],
						"properties": {
							"relative_path": {"type": "string", "maxLength": 256, "pattern": "^(/[A-Za-z0-9_-]+)+$"},
							"method": {"enum": ["get", "post", "put", "delete"]},
							"data": {"type": "object"},
							"options": {
								"type": "object", "additionalProperties": false,
								"properties": {
									"limit": {"type": "integer", "minimum": 1, "maximum": 100},
									"offset": {"type": "string", "maxLength": 1024},
									"fields": {"type": "array", "maxItems": 50, "items": {"type": "string", "pattern": "^[a-z_.]{1,64}$"}}
								}
							}
						}
					}}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["results", "succeeded", "failed"],
				"properties": {
					"results": {"type": "array", "items": {
						"type": "object", "required": ["status_code"],
						"properties": {"status_code": {"type": "integer"}, "body": {"type": ["object", "null"]}}
					}},
					"succeeded": {"type": "integer"},
					"failed": {"type": "integer"}
				}
			}`),
		},
	}
}

// ref is a compact record.
type ref struct {
	GID  string `json:"gid"`
	Name string `json:"name,omitempty"`
}

// task is a task as callers see it (and as Asana sends it, less
// resource types and with nulls dropped).
type task struct {
	GID          string  `json:"gid"`
	Name         string  `json:"name"`
	Notes        string  `json:"notes,omitempty"`
	Completed    bool    `json:"completed"`
	DueOn        *string `json:"due_on,omitempty"`
	Assignee     *ref    `json:"assignee,omitempty"`
	Workspace    *ref    `json:"workspace,omitempty"`
	Projects     []ref   `json:"projects"`
	PermalinkURL string  `json:"permalink_url,omitempty"`
	CreatedAt    string  `json:"created_at,omitempty"`
	ModifiedAt   string  `json:"modified_at,omitempty"`
}

type project struct {
	GID          string `json:"gid"`
	Name         string `json:"name"`
	Archived     *bool  `json:"archived,omitempty"`
	PermalinkURL string `json:"permalink_url,omitempty"`
	ModifiedAt   string `json:"modified_at,omitempty"`
}

func toTask(raw json.RawMessage) (task, error) {
	var t task
	if err := json.Unmarshal(raw, &t); err != nil {
		return task{}, err
	}
	if t.GID == "" {
		return task{}, &json.UnsupportedValueError{Str: "a task without a gid"}
	}
	if t.Projects == nil {
		t.Projects = []ref{}
	}
	return t, nil
}

func badResponse(what string, err error) error {
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Asana sent an unreadable " + what, Err: err}
}

func decodePayload(ec connectors.ExecContext, v any) error {
	if err := json.Unmarshal(ec.Payload, v); err != nil {
		return connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	return nil
}

func (c *Connector) createTask(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Name      string   `json:"name"`
		Notes     string   `json:"notes,omitempty"`
		Workspace string   `json:"workspace,omitempty"`
		Projects  []string `json:"projects,omitempty"`
		DueOn     string   `json:"due_on,omitempty"`
		Assignee  string   `json:"assignee,omitempty"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	// p's tags name Asana's fields: it is the request data as it stands.
	env, err := c.call(ctx, ec, http.MethodPost, "/tasks", url.Values{"opt_fields": {taskFields}}, p, true)
	if err != nil {
		return connectors.Result{}, err
	}
	t, err := toTask(env.Data)
	if err != nil {
		return connectors.Result{}, badResponse("task", err)
	}
	return jsonResult(map[string]any{"task": t}, []string{"task:" + t.GID})
}

func (c *Connector) getTask(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		TaskGID string `json:"task_gid"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	env, err := c.call(ctx, ec, http.MethodGet, "/tasks/"+url.PathEscape(p.TaskGID), url.Values{"opt_fields": {taskFields}}, nil, false)
	if err != nil {
		return connectors.Result{}, err
	}
	t, err := toTask(env.Data)
	if err != nil {
		return connectors.Result{}, badResponse("task", err)
	}
	return jsonResult(map[string]any{"task": t}, []string{"task:" + t.GID})
}

func (c *Connector) listProjects(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Workspace string `json:"workspace"`
		Team      string `json:"team"`
		Archived  *bool  `json:"archived"`
		Limit     int    `json:"limit"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	if p.Limit <= 0 {
		p.Limit = defaultListLimit
	}
	p.Limit = min(p.Limit, maxListLimit)
	q := url.Values{"workspace": {p.Workspace}, "opt_fields": {projectFields}}
	if p.Team != "" {
		q.Set("team", p.Team)
	}
	if p.Archived != nil {
		q.Set("archived", strconv.FormatBool(*p.Archived))
	}
	out := struct {
		Projects  []project `json:"projects"`
		Count     int       `json:"count"`
		Truncated bool      `json:"truncated"`
	}{Projects: []project{}}
	var ids []string
	seen := map[string]bool{}
	for {
		q.Set("limit", strconv.Itoa(min(c.pageSize, p.Limit-len(out.Projects))))
		env, err := c.call(ctx, ec, http.MethodGet, "/projects", q, nil, false)
		if err != nil {
			return connectors.Result{}, err
		}
		var page []project
		if err := json.Unmarshal(env.Data, &page); err != nil {
			return connectors.Result{}, badResponse("project page", err)
		}
		for _, pr := range page {
			if len(out.Projects) == p.Limit {
				break
			}
			if pr.GID == "" {
				return connectors.Result{}, badResponse("project", nil)
			}
			out.Projects = append(out.Projects, pr)
			ids = append(ids, "project:"+pr.GID)
		}
		next := ""
		if env.NextPage != nil {
			next = env.NextPage.Offset
		}
		switch {
		case next == "":
			// The last page.
		case len(out.Projects) >= p.Limit:
			out.Truncated = true
		case seen[next] || len(page) == 0:
			// An offset seen before, or an empty page that promises more:
			// stop rather than loop.
			c.log.Warn("asana pagination did not advance", "trace_id", ec.TraceID)
			out.Truncated = true
		default:
			seen[next] = true
			q.Set("offset", next)
			continue
		}
		break
	}
	out.Count = len(out.Projects)
	return jsonResult(out, ids)
}

// batchAction is one action as Asana's batch API takes it.
type batchAction struct {
	RelativePath string          `json:"relative_path"`
	Method       string          `json:"method"`
	Data         json.RawMessage `json:"data,omitempty"`
	Options      json.RawMessage `json:"options,omitempty"`
}

// actionResult is one action's answer.
type actionResult struct {
	StatusCode int             `json:"status_code"`
	Body       json.RawMessage `json:"body"`
}

func (c *Connector) batch(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Actions []batchAction `json:"actions"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	if len(p.Actions) == 0 || len(p.Actions) > maxBatchActions {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "a batch holds 1 to %d actions", maxBatchActions)
	}
	env, err := c.call(ctx, ec, http.MethodPost, "/batch", nil, map[string]any{"actions": p.Actions}, false)
	if err != nil {
		return connectors.Result{}, err
	}
	var results []actionResult
	if err := json.Unmarshal(env.Data, &results); err != nil {
		return connectors.Result{}, badResponse("batch answer", err)
	}
	out := struct {
		Results   []actionResult `json:"results"`
		Succeeded int            `json:"succeeded"`
		Failed    int            `json:"failed"`
	}{Results: []actionResult{}}
	var ids []string
	secret := ec.Credential.Token.Reveal()
	for _, r := range results {
		switch b := strings.TrimSpace(string(r.Body)); {
		case b == "" || b == "null":
			r.Body = json.RawMessage(`null`)
		case b[0] != '{':
			r.Body = json.RawMessage(`{"data":` + b + `}`)
		case leaks(b, secret):
			r.Body = json.RawMessage(`{"errors":[{"message":"withheld: the answer held part of the credential"}]}`)
		}
		if r.StatusCode >= 200 && r.StatusCode <= 299 {
			out.Succeeded++
			ids = append(ids, gids(r.Body)...)
		} else {
			out.Failed++
		}
		out.Results = append(out.Results, r)
	}
	return jsonResult(out, ids)
}

// gids names the records an action's body holds: data.gid, or the gids of
// data's elements.
func gids(body json.RawMessage) []string {
	var one struct {
		Data struct {
			GID          string `json:"gid"`
			ResourceType string `json:"resource_type"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &one) == nil && one.Data.GID != "" {
		return []string{kind(one.Data.ResourceType) + one.Data.GID}
	}
	var many struct {
		Data []struct {
			GID          string `json:"gid"`
			ResourceType string `json:"resource_type"`
		} `json:"data"`
	}
	var out []string
	if json.Unmarshal(body, &many) == nil {
		for _, d := range many.Data {
			if d.GID != "" {
				out = append(out, kind(d.ResourceType)+d.GID)
			}
		}
	}
	return out
}

func kind(resourceType string) string {
	if resourceType == "" {
		return ""
	}
	return resourceType + ":"
}

func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, err
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
