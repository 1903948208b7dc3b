package adobeanalytics

import (
	"encoding/json"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const opReport = "run_report"

// Report limits: rows returned by one run_report.
const (
	defaultReportLimit = 100
	maxReportLimit     = 10000
)

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	return []connectors.Operation{{
		Name: opReport,
		Description: "Runs a ranked report of a report suite: one dimension broken down by up to 20 metrics over a date range " +
			"(optionally within segments), reading pages until the last one or limit rows (default 100, at most 10000).",
		Access:  connectors.Read,
		PII:     false, // aggregated counts per dimension item
		Timeout: 90 * time.Second,
		Payload: json.RawMessage(`{
			"type": "object", "additionalProperties": false, "required": ["rsid", "dateRange", "metrics", "dimension"],
			"properties": {
				"rsid": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"},
				"dateRange": {
					"type": "string",
					"description": "start/end as ISO 8601 local date-times, e.g. 2024-01-01T00:00:00.000/2024-02-01T00:00:00.000",
					"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?$"
				},
				"metrics": {
					"type": "array", "minItems": 1, "maxItems": 20, "uniqueItems": true,
					"items": {"type": "string", "pattern": "^(metrics/[A-Za-z0-9_.:-]{1,200}|cm[A-Za-z0-9_]{1,200})$"}
				},
				"dimension": {"type": "string", "pattern": "^variables/[A-Za-z0-9_.:-]{1,200}$"},
				"segments": {
					"type": "array", "maxItems": 5, "uniqueItems": true,
					"items": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,200}$"}
				},
				"limit": {"type": "integer", "minimum": 1, "maximum": 10000}
			}
		}`),
		Result: json.RawMessage(`{
			"type": "object", "required": ["rsid", "dimension", "metrics", "rows", "count", "totalRows", "truncated"],
			"properties": {
				"rsid": {"type": "string"},
				"dimension": {"type": "string"},
				"metrics": {"type": "array", "items": {"type": "string"}},
				"rows": {"type": "array", "maxItems": 10000, "items": {
					"type": "object", "required": ["itemId", "value", "data"],
					"properties": {
						"itemId": {"type": "string"}, "value": {"type": "string"},
						"data": {"type": "array", "items": {"type": ["number", "null"]}}
					}
				}},
				"totals": {"type": "array", "items": {"type": ["number", "null"]}},
				"count": {"type": "integer", "minimum": 0},
				"totalRows": {"type": "integer", "minimum": 0},
				"truncated": {"type": "boolean"}
			}
		}`),
	}}
}
