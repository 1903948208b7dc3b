package quip

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opGet    = "get_thread"
	opCreate = "create_document"
)

// threadSchema is the JSON Schema of thread.
const threadSchema = `{
	"type": "object", "additionalProperties": false,
	"required": ["id", "title", "link", "type", "created_usec", "updated_usec", "user_ids", "shared_folder_ids"],
	"properties": {
		"id": {"type": "string", "minLength": 1},
		"title": {"type": "string"},
		"link": {"type": "string"},
		"type": {"type": "string"},
		"author_id": {"type": "string"},
		"created_usec": {"type": "integer"},
		"updated_usec": {"type": "integer"},
		"user_ids": {"type": "array", "items": {"type": "string"}},
		"shared_folder_ids": {"type": "array", "items": {"type": "string"}},
		"html": {"type": "string"}
	}
}`

// idPattern matches a thread's permanent 11-character id or its
// 12-character link suffix, and folder and user ids.
const idPattern = `^[A-Za-z0-9]{11,12}$`

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	return []connectors.Operation{
		{
			Name: opGet,
			Description: "Gets a Quip thread (document or spreadsheet) by its id or link suffix: title, link, type, author, times, " +
				"members, and its HTML unless include_html is false.",
			Access: connectors.Read,
			// Author and member ids, and a document's content.
			PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["id"],
				"properties": {
					"id": {"type": "string", "pattern": "` + idPattern + `"},
					"include_html": {"type": "boolean"}
				}
			}`),
			Result: json.RawMessage(threadSchema),
		},
		{
			Name: opCreate,
			Description: "Creates a Quip document (or spreadsheet) from HTML or Markdown content, titled, in the given folders " +
				"or shared with the given users; it is owned by the integration owner.",
			Access: connectors.Write,
			// Member ids name people; content is free-form.
			PII: true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["content"],
				"properties": {
					"content": {"type": "string", "minLength": 1, "maxLength": 1000000},
					"title": {"type": "string", "minLength": 1, "maxLength": 1000},
					"format": {"enum": ["html", "markdown"]},
					"type": {"enum": ["document", "spreadsheet"]},
					"member_ids": {"type": "array", "maxItems": 100, "uniqueItems": true, "items": {"type": "string", "pattern": "` + idPattern + `"}}
				}
			}`),
			Result: json.RawMessage(threadSchema),
		},
	}
}

// quipThread is Quip's answer for a thread.
type quipThread struct {
	Thread struct {
		ID          string `json:"id"`
		Title       string `json:"title"`
		Link        string `json:"link"`
		Type        string `json:"type"`
		AuthorID    string `json:"author_id"`
		CreatedUsec int64  `json:"created_usec"`
		UpdatedUsec int64  `json:"updated_usec"`
	} `json:"thread"`
	HTML            string   `json:"html"`
	UserIDs         []string `json:"user_ids"`
	SharedFolderIDs []string `json:"shared_folder_ids"`
}

// thread is a thread as callers see it.
type thread struct {
	ID              string   `json:"id"`
	Title           string   `json:"title"`
	Link            string   `json:"link"`
	Type            string   `json:"type"`
	AuthorID        string   `json:"author_id,omitempty"`
	CreatedUsec     int64    `json:"created_usec"`
	UpdatedUsec     int64    `json:"updated_usec"`
	UserIDs         []string `json:"user_ids"`
	SharedFolderIDs []string `json:"shared_folder_ids"`
	HTML            *string  `json:"html,omitempty"`
}

func view(q quipThread, withHTML bool) thread {
	t := thread{ID: q.Thread.ID, Title: q.Thread.Title, Link: q.Thread.Link, Type: q.Thread.Type, AuthorID: q.Thread.AuthorID,
		CreatedUsec: q.Thread.CreatedUsec, UpdatedUsec: q.Thread.UpdatedUsec, UserIDs: q.UserIDs, SharedFolderIDs: q.SharedFolderIDs}
	if t.UserIDs == nil {
		t.UserIDs = []string{}
	}
	if t.SharedFolderIDs == nil {
		t.SharedFolderIDs = []string{}
	}
	if withHTML {
		t.HTML = &q.HTML
	}
	return t
}

// needToken refuses an execution without a token.
func needToken(ec connectors.ExecContext) error {
	if ec.Credential.Token == "" {
		return connectors.Errorf(connectors.ClassUnauthorized, "the tenant's Quip credential has no token; the integration owner must connect Quip")
	}
	return nil
}

func decodeThread(data []byte) (quipThread, error) {
	var q quipThread
	if err := json.Unmarshal(data, &q); err != nil || q.Thread.ID == "" {
		return q, connectors.Errorf(connectors.ClassUnavailable, "Quip's answer is not a thread")
	}
	return q, nil
}

func (c *Connector) getThread(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		ID          string `json:"id"`
		IncludeHTML *bool  `json:"include_html"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil || p.ID == "" {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: want a thread id")
	}
	if err := needToken(ec); err != nil {
		return connectors.Result{}, err
	}
	data, err := c.call(ctx, http.MethodGet, "threads/"+url.PathEscape(p.ID), nil, ec.Credential.Token)
	if err != nil {
		return connectors.Result{}, err
	}
	q, err := decodeThread(data)
	if err != nil {
		return connectors.Result{}, err
	}
	return jsonResult(view(q, p.IncludeHTML == nil || *p.IncludeHTML), []string{q.Thread.ID})
}

func (c *Connector) createDocument(ctx context.Context, ec connectors.ExecContext) (connectors.Result, error) {
	var p struct {
		Content   string   `json:"content"`
		Title     string   `json:"title"`
		Format    string   `json:"format"`
		Type      string   `json:"type"`
		MemberIDs []string `json:"member_ids"`
	}
	if err := json.Unmarshal(ec.Payload, &p); err != nil || p.Content == "" {
		return connectors.Result{}, connectors.Errorf(connectors.ClassInvalid, "payload: want content")
	}
	if err := needToken(ec); err != nil {
		return connectors.Result{}, err
	}
	if p.Format == "" {
		p.Format = "html"
	}
	form := url.Values{"content": {p.Content}, "format": {p.Format}}
	if p.Title != "" {
		form.Set("title", p.Title)
	}
	if p.Type != "" {
		form.Set("type", p.Type)
	}
	if len(p.MemberIDs) > 0 {
		form.Set("member_ids", strings.Join(p.MemberIDs, ","))
	}
	data, err := c.call(ctx, http.MethodPost, "threads/new-document", form, ec.Credential.Token)
	if err != nil {
		return connectors.Result{}, err
	}
	q, err := decodeThread(data)
	if err != nil {
		return connectors.Result{}, err
	}
	return jsonResult(view(q, false), []string{q.Thread.ID})
}

func jsonResult(v any, ids []string) (connectors.Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return connectors.Result{}, err
	}
	return connectors.Result{Data: b, IDs: ids}, nil
}
