package salesforce

import (
	"encoding/json"
	"time"

	"github.com/mcc-bridge/bridge/connectors"
)

// Operation names.
const (
	opQuery  = "query"
	opCreate = "create_record"
)

// Query limits: records returned by one query operation.
const (
	defaultQueryLimit = 200
	maxQueryLimit     = 2000
)

// sobjectPattern is what an sObject API name must look like (standard
// objects and custom ones ending in __c); it keeps the name a single path
// segment.
const sobjectPattern = `^[A-Za-z][A-Za-z0-9_]*(__c)?$`

// Operations implements connectors.Connector.
func (c *Connector) Operations() []connectors.Operation {
	return []connectors.Operation{
		{
			Name: opQuery,
			Description: "Runs a SOQL SELECT and returns its records (with Salesforce's attributes), following nextRecordsUrl " +
				"until the query is done or limit records (default 200, at most 2000) are read.",
			Access:  connectors.Read,
			PII:     true, // contacts, leads, users
			Timeout: 60 * time.Second,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["soql"],
				"properties": {
					"soql": {"type": "string", "minLength": 8, "maxLength": 20000, "pattern": "^\\s*[Ss][Ee][Ll][Ee][Cc][Tt]\\s"},
					"limit": {"type": "integer", "minimum": 1, "maximum": 2000}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["totalSize", "count", "done", "records"],
				"properties": {
					"totalSize": {"type": "integer", "minimum": 0},
					"count": {"type": "integer", "minimum": 0},
					"done": {"type": "boolean"},
					"records": {"type": "array", "maxItems": 2000, "items": {"type": "object"}}
				}
			}`),
		},
		{
			Name: opCreate,
			Description: "Creates one record of an sObject (e.g. Account, Contact, Invoice__c) with the given field values, " +
				"through the tenant's integration owner's connection.",
			Access:     connectors.Write,
			Attributed: true,
			PII:        true,
			Payload: json.RawMessage(`{
				"type": "object", "additionalProperties": false, "required": ["sobject", "fields"],
				"properties": {
					"sobject": {"type": "string", "maxLength": 80, "pattern": "` + sobjectPattern + `"},
					"fields": {
						"type": "object", "minProperties": 1, "maxProperties": 500,
						"propertyNames": {"maxLength": 80, "pattern": "^[A-Za-z][A-Za-z0-9_]*$"},
						"additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": 131072}
					}
				}
			}`),
			Result: json.RawMessage(`{
				"type": "object", "required": ["id", "sobject", "success"],
				"properties": {
					"id": {"type": "string", "pattern": "^[A-Za-z0-9]{15,18}$"},
					"sobject": {"type": "string"},
					"success": {"const": true}
				}
			}`),
		},
	}
}
