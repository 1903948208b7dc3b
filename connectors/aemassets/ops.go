package aemassets

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opSearch   = "search_assets"
	opMetadata = "get_metadata"
	opUpload   = "upload_asset"
)

// Read limits: hits or entities returned by one operation.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// quote returns s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	path := quote(pathPattern(c.cfg.DAMRoot))
	maxB64 := (c.cfg.MaxUploadBytes + 2) / 3 * 4
	return []connectors.Operation{
		{
			Name: opSearch,
			Description: "Finds assets (dam:Asset) under a DAM folder, optionally matching a full-text query, ordered by path, " +
				"through AEM's QueryBuilder; pages until limit hits (default 50, at most 1000).",
			Access:  connectors.Read,
			Timeout: 60 * time.Second,
			Payload: json.RawMessage(fmt.Sprintf(`{
				"type": "object", "additionalProperties": false,
				"properties": {
					"path": {"type": "string", "maxLength": 2048, "pattern": %s},
					"fulltext": {"type": "string", "minLength": 1, "maxLength": 500},
					"limit": {"type": "integer", "minimum": 1, "maximum": %d}
				}
			}`, path, maxLimit)),
			Result: json.RawMessage(`{
				"type": "object", "required": ["assets", "count", "more"],
				"properties": {
					"assets": {"type": "array", "items": {
						"type": "object", "required": ["path", "name"],
						"properties": {
							"path": {"type": "string"}, "name": {"type": "string"}, "title": {"type": "string"},
							"excerpt": {"type": "string"}, "lastModified": {"type": "string"}, "created": {"type": "string"}
						}
					}},
					"count": {"type": "integer", "minimum": 0},
					"more": {"type": "boolean"}
				}
			}`),
		},
		{
			Name: opMetadata,
			Description: "An asset's properties and metadata with its renditions, or a folder's properties with its children " +
				"(up to limit, default 50, at most 1000), from the Assets HTTP API.",
			Access: connectors.Read,
			PII:    true, // asset metadata names creators and editors
			Payload: json.RawMessage(fmt.Sprintf(`{
				"type": "object", "additionalProperties": false, "required": ["path"],
				"properties": {
					"path": {"type": "string", "maxLength": 2048, "pattern": %s},
					"limit": {"type": "integer", "minimum": 1, "maximum": %d}
				}
			}`, path, maxLimit)),
			Result: json.RawMessage(`{
				"type": "object", "required": ["path", "kind", "class", "properties", "entities", "totalEntities", "truncated"],
				"properties": {
					"path": {"type": "string"},
					"kind": {"enum": ["asset", "folder", "other"]},
					"class": {"type": "array", "items": {"type": "string"}},
					"properties": {"type": "object"},
					"entities": {"type": "array", "items": {
						"type": "object", "required": ["name", "class"],
						"properties": {
							"name": {"type": "string"}, "class": {"type": "array", "items": {"type": "string"}},
							"title": {"type": "string"}, "path": {"type": "string"}
						}
					}},
					"totalEntities": {"type": "integer", "minimum": 0},
					"truncated": {"type": "boolean"}
				}
			}`),
		},
		{
			Name: opUpload,
			Description: fmt.Sprintf("Uploads a file (base64, at most %d bytes) into a DAM folder by direct binary upload, "+
				"through the tenant's integration owner's connection; the dispatcher's MaxBody must allow the base64 payload.", c.cfg.MaxUploadBytes),
			Access:  connectors.Write,
			Timeout: 120 * time.Second,
			Payload: json.RawMessage(fmt.Sprintf(`{
				"type": "object", "additionalProperties": false, "required": ["folder", "fileName", "content"],
				"properties": {
					"folder": {"type": "string", "maxLength": 2048, "pattern": %s},
					"fileName": {"type": "string", "maxLength": 255, "pattern": %s},
					"content": {"type": "string", "contentEncoding": "base64", "minLength": 4, "maxLength": %d, "pattern": "^[A-Za-z0-9+/]*={0,2}$"},
					"sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
					"createVersion": {"type": "boolean"},
					"versionLabel": {"type": "string", "maxLength": 100},
					"versionComment": {"type": "string", "maxLength": 500},
					"replace": {"type": "boolean"}
				}
			}`, path, quote(namePattern), maxB64)),
			Result: json.RawMessage(`{
				"type": "object", "required": ["path", "fileName", "mimeType", "size", "sha256", "parts"],
				"properties": {
					"path": {"type": "string"}, "fileName": {"type": "string"}, "mimeType": {"type": "string"},
					"size": {"type": "integer", "minimum": 1}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
					"parts": {"type": "integer", "minimum": 1}
				}
			}`),
		},
	}
}
