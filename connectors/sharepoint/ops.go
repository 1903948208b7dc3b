package sharepoint

import (
	"encoding/json"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opSearch  = "search_documents"
	opGet     = "get_document"
	opChanges = "list_changes"
	opStatus  = "crawl_status"
)

// docView is a document as callers see it: its ACL stays in the relay
// (other people's addresses are not the caller's business).
type docView struct {
	Site        string    `json:"site"`
	ListID      string    `json:"list_id"`
	ItemID      int       `json:"item_id"`
	WebURL      string    `json:"web_url"`
	List        string    `json:"list"`
	Path        string    `json:"path"`
	Name        string    `json:"name"`
	Title       string    `json:"title,omitempty"`
	Kind        string    `json:"kind"`
	Version     string    `json:"version"`
	Created     time.Time `json:"created"`
	Modified    time.Time `json:"modified"`
	Author      string    `json:"author,omitempty"`
	Editor      string    `json:"editor,omitempty"`
	Size        int64     `json:"size,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	// StoredContent says the relay keeps the content (content "stored").
	StoredContent bool `json:"stored_content"`
}

func view(d ingestapi.Document) docView {
	return docView{
		Site: d.Site, ListID: d.ListID, ItemID: d.ItemID, WebURL: d.WebURL, List: d.ListTitle, Path: d.Path,
		Name: d.Name, Title: d.Title, Kind: d.Kind, Version: d.Version, Created: d.Created, Modified: d.Modified,
		Author: d.Author, Editor: d.Editor, Size: d.Size, ContentType: d.ContentType, StoredContent: d.ContentSHA256 != "",
	}
}

type hitView struct {
	Document docView `json:"document"`
	Score    float64 `json:"score"`
	Snippet  string  `json:"snippet"`
}

type storeView struct {
	Documents int64 `json:"documents"`
	Sites     int64 `json:"sites"`
	Blobs     int64 `json:"blobs"`
	BlobBytes int64 `json:"blob_bytes"`
}

// docSchema is the JSON Schema of docView.
const docSchema = `{
	"type": "object",
	"required": ["site", "list_id", "item_id", "path", "name", "kind", "version", "modified", "stored_content"],
	"properties": {
		"site": {"type": "string"}, "list_id": {"type": "string"}, "item_id": {"type": "integer"},
		"web_url": {"type": "string"}, "list": {"type": "string"}, "path": {"type": "string"},
		"name": {"type": "string"}, "title": {"type": "string"}, "kind": {"enum": ["file", "folder", "item"]},
		"version": {"type": "string"}, "created": {"type": "string"}, "modified": {"type": "string"},
		"author": {"type": "string"}, "editor": {"type": "string"}, "size": {"type": "integer"},
		"content_type": {"type": "string"}, "stored_content": {"type": "boolean"}
	}
}`

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	return []connectors.Operation{
		{
			Name:        opSearch,
			Description: "Full-text search over the tenant's crawled documents (name, title, path, plain-text content), best first, trimmed to documents the caller may read.",
			Access:      connectors.Read,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["query"],
				"properties": {
					"query": {"type": "string", "minLength": 1, "maxLength": 500},
					"limit": {"type": "integer", "minimum": 1, "maximum": 100}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["hits", "count"],
				"properties": {
					"count": {"type": "integer"},
					"hits": {"type": "array", "items": {
						"type": "object", "required": ["document", "score", "snippet"],
						"properties": {"document": ` + docSchema + `, "score": {"type": "number"}, "snippet": {"type": "string"}}
					}}
				}
			}`),
		},
		{
			Name: opGet,
			Description: "One document's metadata (content \"none\", the default), or its content streamed from the relay's store " +
				"(\"stored\") or read live from SharePoint through the tenant's agent (\"live\").",
			Access: connectors.Read,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["site", "list_id", "item_id"],
				"properties": {
					"site": {"type": "string", "format": "uri", "minLength": 8, "maxLength": 2048},
					"list_id": {"type": "string", "pattern": "^\\{?[0-9a-fA-F-]{36}\\}?$"},
					"item_id": {"type": "integer", "minimum": 1},
					"content": {"enum": ["none", "stored", "live"]}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["document"],
				"properties": {"document": ` + docSchema + `}
			}`),
		},
		{
			Name:        opChanges,
			Description: "The tenant's documents changed lately, newest first, trimmed to documents the caller may read.",
			Access:      connectors.Read,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false,
				"properties": {
					"since": {"type": "string", "format": "date-time"},
					"site": {"type": "string", "maxLength": 2048},
					"limit": {"type": "integer", "minimum": 1, "maximum": 1000}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["documents", "count"],
				"properties": {"count": {"type": "integer"}, "documents": {"type": "array", "items": ` + docSchema + `}}
			}`),
		},
		{
			Name:        opStatus,
			Description: "The crawl's state: each connected agent's sites (phase, items, bytes, queue, last change, last error) and what the relay stores for the tenant.",
			Access:      connectors.Read,
			Payload:     json.RawMessage(`{"type": "object", "additionalProperties": false}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["agents", "store"],
				"properties": {
					"agents": {"type": "array", "items": {"type": "object", "required": ["agent", "sites"]}},
					"store": {"type": "object", "required": ["documents", "sites", "blobs", "blob_bytes"]}
				}
			}`),
		},
	}
}
