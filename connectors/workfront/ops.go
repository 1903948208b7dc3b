package workfront

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opCreateProject  = "create_project"
	opGetProject     = "get_project"
	opSearchProjects = "search_projects"
	opUpdateTask     = "update_task"
)

// Search bounds.
const (
	defaultSearchLimit = 100
	maxSearchLimit     = 10000
)

// wfDateLayout is how Workfront writes dates: "2024-05-01T09:00:00:000-0600".
const wfDateLayout = "2006-01-02T15:04:05:000-0700"

// idSchema is a Workfront object ID: 32 hexadecimal digits.
const idSchema = `{"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}`

// statusSchema is a status code, with an optional custom-status suffix ("INP:A").
const statusSchema = `{"type": "string", "pattern": "^[A-Z]{3}(:[A-Za-z0-9]{1,8})?$"}`

const projectSchema = `{
	"type": "object", "required": ["id", "name", "status"],
	"properties": {
		"id": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string"},
		"percent_complete": {"type": "number"}, "description": {"type": "string"},
		"planned_start_date": {"type": "string"}, "planned_completion_date": {"type": "string"},
		"last_update_date": {"type": "string"}, "campaign_id": {"type": "string"}
	}
}`

const taskSchema = `{
	"type": "object", "required": ["id", "name", "status"],
	"properties": {
		"id": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string"},
		"percent_complete": {"type": "number"}, "description": {"type": "string"},
		"planned_completion_date": {"type": "string"}, "project_id": {"type": "string"},
		"assigned_to_id": {"type": "string"}, "last_update_date": {"type": "string"}
	}
}`

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	return []connectors.Operation{
		{
			Name: opCreateProject,
			Description: "Creates a Workfront project in the integration owner's name, attributed to the calling user " +
				"(X-MCC-User-Context), with the campaign id in the " + c.campaign + " custom field.",
			Access: connectors.Write, Attributed: true, PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["name", "campaign_id"],
				"properties": {
					"name": {"type": "string", "minLength": 1, "maxLength": 255},
					"campaign_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
					"description": {"type": "string", "maxLength": 4000},
					"status": ` + statusSchema + `,
					"planned_start_date": {"type": "string", "format": "date"},
					"planned_completion_date": {"type": "string", "format": "date"},
					"portfolio_id": ` + idSchema + `,
					"group_id": ` + idSchema + `,
					"template_id": ` + idSchema + `,
					"category_id": ` + idSchema + `
				}
			}`),
			Result: json.RawMessage(`{"type": "object", "required": ["project"], "properties": {"project": ` + projectSchema + `}}`),
		},
		{
			Name:        opGetProject,
			Description: "One Workfront project by ID: name, status, progress, dates, description and campaign id.",
			Access:      connectors.Read,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["project_id"],
				"properties": {"project_id": ` + idSchema + `}
			}`),
			Result: json.RawMessage(`{"type": "object", "required": ["project"], "properties": {"project": ` + projectSchema + `}}`),
		},
		{
			Name: opSearchProjects,
			Description: "Searches Workfront projects (the nightly aggregated read, with the relay's API key): by name, status " +
				"and last update, oldest ID first, following $$FIRST/$$LIMIT pages up to limit (default 100, at most 10000).",
			Access:  connectors.Read,
			Auth:    connectors.ServiceToService,
			Timeout: 2 * time.Minute,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false,
				"properties": {
					"name_contains": {"type": "string", "minLength": 1, "maxLength": 255},
					"status": ` + statusSchema + `,
					"updated_since": {"type": "string", "format": "date-time"},
					"limit": {"type": "integer", "minimum": 1, "maximum": ` + strconv.Itoa(maxSearchLimit) + `}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["projects", "count", "truncated"],
				"properties": {
					"projects": {"type": "array", "items": ` + projectSchema + `},
					"count": {"type": "integer"},
					"truncated": {"type": "boolean"}
				}
			}`),
		},
		{
			Name:        opUpdateTask,
			Description: "Updates a Workfront task (name, description, status, progress, planned completion, assignee) in the integration owner's name, attributed to the calling user.",
			Access:      connectors.Write, Attributed: true, PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["task_id"], "minProperties": 2,
				"properties": {
					"task_id": ` + idSchema + `,
					"name": {"type": "string", "minLength": 1, "maxLength": 255},
					"description": {"type": "string", "maxLength": 4000},
					"status": ` + statusSchema + `,
					"percent_complete": {"type": "number", "minimum": 0, "maximum": 100},
					"planned_completion_date": {"type": "string", "format": "date"},
					"assigned_to_id": ` + idSchema + `
				}
			}`),
			Result: json.RawMessage(`{"type": "object", "required": ["task"], "properties": {"task": ` + taskSchema + `}}`),
		},
	}
}

// wfObject is a project or task as Workfront returns it.
type wfObject struct {
	ID                    string   `json:"ID"`
	Name                  string   `json:"name"`
	Status                string   `json:"status"`
	PercentComplete       *float64 `json:"percentComplete"`
	Description           *string  `json:"description"`
	PlannedStartDate      *string  `json:"plannedStartDate"`
	PlannedCompletionDate *string  `json:"plannedCompletionDate"`
	LastUpdateDate        *string  `json:"lastUpdateDate"`
	ProjectID             *string  `json:"projectID"`
	AssignedToID          *string  `json:"assignedToID"`
}

// project is a project as callers see it.
type project struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name"`
	Status                string   `json:"status"`
	PercentComplete       *float64 `json:"percent_complete,omitempty"`
	Description           string   `json:"description,omitempty"`
	PlannedStartDate      string   `json:"planned_start_date,omitempty"`
	PlannedCompletionDate string   `json:"planned_completion_date,omitempty"`
	LastUpdateDate        string   `json:"last_update_date,omitempty"`
	CampaignID            string   `json:"campaign_id,omitempty"`
}

// task is a task as callers see it.
type task struct {
	ID                    string   `json:"id"`
	Name                  string   `json:"name"`
	Status                string   `json:"status"`
	PercentComplete       *float64 `json:"percent_complete,omitempty"`
	Description           string   `json:"description,omitempty"`
	PlannedCompletionDate string   `json:"planned_completion_date,omitempty"`
	ProjectID             string   `json:"project_id,omitempty"`
	AssignedToID          string   `json:"assigned_to_id,omitempty"`
	LastUpdateDate        string   `json:"last_update_date,omitempty"`
}

func (c *Connector) projectFields() string {
	return "ID,name,status,percentComplete,description,plannedStartDate,plannedCompletionDate,lastUpdateDate," + c.campaign
}

const taskFields = "ID,name,status,percentComplete,description,plannedCompletionDate,projectID,assignedToID,lastUpdateDate"

// toProject decodes a project from Workfront's data.
func (c *Connector) toProject(raw json.RawMessage) (project, error) {
	var o wfObject
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &o); err != nil {
		return project{}, err
	}
	if err := json.Unmarshal(raw, &all); err != nil {
		return project{}, err
	}
	if o.ID == "" {
		return project{}, &json.UnsupportedValueError{Str: "a project without an ID"}
	}
	p := project{ID: o.ID, Name: o.Name, Status: o.Status, PercentComplete: o.PercentComplete,
		Description: deref(o.Description), PlannedStartDate: wfDate(o.PlannedStartDate),
		PlannedCompletionDate: wfDate(o.PlannedCompletionDate), LastUpdateDate: wfDate(o.LastUpdateDate)}
	if v, ok := all[c.campaign]; ok {
		var s any
		if json.Unmarshal(v, &s) == nil && s != nil {
			switch s := s.(type) {
			case string:
				p.CampaignID = s
			case float64:
				p.CampaignID = strconv.FormatFloat(s, 'f', -1, 64)
			}
		}
	}
	return p, nil
}

func toTask(raw json.RawMessage) (task, error) {
	var o wfObject
	if err := json.Unmarshal(raw, &o); err != nil {
		return task{}, err
	}
	if o.ID == "" {
		return task{}, &json.UnsupportedValueError{Str: "a task without an ID"}
	}
	return task{ID: o.ID, Name: o.Name, Status: o.Status, PercentComplete: o.PercentComplete,
		Description: deref(o.Description), PlannedCompletionDate: wfDate(o.PlannedCompletionDate),
		ProjectID: deref(o.ProjectID), AssignedToID: deref(o.AssignedToID), LastUpdateDate: wfDate(o.LastUpdateDate)}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// wfDate turns a Workfront date into RFC 3339 (or keeps it when it is in
// another form).
func wfDate(s *string) string {
	if s == nil || *s == "" {
		return ""
	}
	if t, err := time.Parse(wfDateLayout, *s); err == nil {
		return t.Format(time.RFC3339)
	}
	return *s
}

func badResponse(what string, err error) error {
	return &connectors.Error{Class: connectors.ClassUnavailable, Detail: "Workfront sent an unreadable " + what, Err: err}
}

func decodePayload(ec connectors.ExecContext, v any) error {
	if err := json.Unmarshal(ec.Payload, v); err != nil {
		return connectors.Errorf(connectors.ClassInvalid, "payload: %v", err)
	}
	return nil
}

func (c *Connector) createProject(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Name                  string `json:"name"`
		CampaignID            string `json:"campaign_id"`
		Description           string `json:"description"`
		Status                string `json:"status"`
		PlannedStartDate      string `json:"planned_start_date"`
		PlannedCompletionDate string `json:"planned_completion_date"`
		PortfolioID           string `json:"portfolio_id"`
		GroupID               string `json:"group_id"`
		TemplateID            string `json:"template_id"`
		CategoryID            string `json:"category_id"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	body := map[string]any{"name": p.Name, c.campaign: p.CampaignID}
	for k, v := range map[string]string{
		"description": p.Description, "status": p.Status, "plannedStartDate": p.PlannedStartDate,
		"plannedCompletionDate": p.PlannedCompletionDate, "portfolioID": p.PortfolioID, "groupID": p.GroupID,
		"templateID": p.TemplateID, "categoryID": p.CategoryID,
	} {
		if v != "" {
			body[k] = v
		}
	}
	data, err := c.call(ctx, ec, http.MethodPost, "/proj", url.Values{"fields": {c.projectFields()}}, body, true)
	if err != nil {
		return connectors.Result{}, err
	}
	pr, err := c.toProject(data)
	if err != nil {
		return connectors.Result{}, badResponse("project", err)
	}
	return jsonResult(map[string]any{"project": pr}, []string{"PROJ:" + pr.ID})
}

func (c *Connector) getProject(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		ProjectID string `json:"project_id"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	data, err := c.call(ctx, ec, http.MethodGet, "/proj/"+url.PathEscape(p.ProjectID), url.Values{"fields": {c.projectFields()}}, nil, false)
	if err != nil {
		return connectors.Result{}, err
	}
	pr, err := c.toProject(data)
	if err != nil {
		return connectors.Result{}, badResponse("project", err)
	}
	return jsonResult(map[string]any{"project": pr}, []string{"PROJ:" + pr.ID})
}

func (c *Connector) searchProjects(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		NameContains string    `json:"name_contains"`
		Status       string    `json:"status"`
		UpdatedSince time.Time `json:"updated_since"`
		Limit        int       `json:"limit"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	if p.Limit <= 0 {
		p.Limit = defaultSearchLimit
	}
	p.Limit = min(p.Limit, maxSearchLimit)
	q := url.Values{"fields": {c.projectFields()}, "ID_Sort": {"asc"}}
	if p.NameContains != "" {
		q.Set("name", p.NameContains)
		q.Set("name_Mod", "cicontains")
	}
	if p.Status != "" {
		q.Set("status", p.Status)
	}
	if !p.UpdatedSince.IsZero() {
		q.Set("lastUpdateDate", p.UpdatedSince.UTC().Format(wfDateLayout))
		q.Set("lastUpdateDate_Mod", "gte")
	}
	out := struct {
		Projects  []project `json:"projects"`
		Count     int       `json:"count"`
		Truncated bool      `json:"truncated"`
	}{Projects: []project{}}
	var ids []string
	for first := 0; ; {
		// Ask for one more than still wanted, to know whether more exist.
		want := min(c.pageSize, p.Limit-len(out.Projects)+1)
		q.Set("$$FIRST", strconv.Itoa(first))
		q.Set("$$LIMIT", strconv.Itoa(want))
		data, err := c.call(ctx, ec, http.MethodGet, "/proj/search", q, nil, false)
		if err != nil {
			return connectors.Result{}, err
		}
		var page []json.RawMessage
		if err := json.Unmarshal(data, &page); err != nil {
			return connectors.Result{}, badResponse("search page", err)
		}
		for _, raw := range page {
			if len(out.Projects) == p.Limit {
				out.Truncated = true
				break
			}
			pr, err := c.toProject(raw)
			if err != nil {
				return connectors.Result{}, badResponse("project", err)
			}
			out.Projects = append(out.Projects, pr)
			ids = append(ids, "PROJ:"+pr.ID)
		}
		// A short page is the last; a full one leaves room for more (a
		// page of one more than wanted ends in Truncated above).
		if out.Truncated || len(page) < want {
			break
		}
		first += len(page)
	}
	out.Count = len(out.Projects)
	return jsonResult(out, ids)
}

func (c *Connector) updateTask(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		TaskID                string   `json:"task_id"`
		Name                  string   `json:"name"`
		Description           *string  `json:"description"`
		Status                string   `json:"status"`
		PercentComplete       *float64 `json:"percent_complete"`
		PlannedCompletionDate string   `json:"planned_completion_date"`
		AssignedToID          string   `json:"assigned_to_id"`
	}
	if err := decodePayload(ec, &p); err != nil {
		return connectors.Result{}, err
	}
	body := map[string]any{}
	for k, v := range map[string]string{"name": p.Name, "status": p.Status, "plannedCompletionDate": p.PlannedCompletionDate, "assignedToID": p.AssignedToID} {
		if v != "" {
			body[k] = v
		}
	}
	if p.Description != nil {
		body["description"] = *p.Description
	}
	if p.PercentComplete != nil {
		body["percentComplete"] = *p.PercentComplete
	}
	if len(body) == 0 {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "nothing to update: name, description, status, percent_complete, planned_completion_date or assigned_to_id")
	}
	data, err := c.call(ctx, ec, http.MethodPut, "/task/"+url.PathEscape(p.TaskID), url.Values{"fields": {taskFields}}, body, true)
	if err != nil {
		return connectors.Result{}, err
	}
	t, err := toTask(data)
	if err != nil {
		return connectors.Result{}, badResponse("task", err)
	}
	return jsonResult(map[string]any{"task": t}, []string{"TASK:" + t.ID})
}

func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, err
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
