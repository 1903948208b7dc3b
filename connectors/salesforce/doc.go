// Package salesforce is the dispatcher's Salesforce connector: SOQL
// queries and record creation through the REST API under
// {instance}/services/data/v{APIVersion}.
//
//	query          GET  /services/data/v60.0/query?q=SELECT+...
//	               Sforce-Query-Options: batchSize=N
//	  <- {"totalSize", "done", "nextRecordsUrl", "records": [...]}
//	               GET  {nextRecordsUrl} ... until done or the payload's limit
//	create_record  POST /services/data/v60.0/sobjects/{sobject}/ {"Name": ...}
//	  <- 201 {"id", "success", "errors"}
//	errors         [{"message", "errorCode", "fields"}], e.g. 401 INVALID_SESSION_ID,
//	               403 REQUEST_LIMIT_EXCEEDED (Salesforce's rate limit is a 403),
//	               400 MALFORMED_QUERY, 404 NOT_FOUND
//	every answer   Sforce-Limit-Info: api-usage=used/limit (logged at debug)
//
// Authentication: the credential manager does the OAuth 2.0 JWT bearer
// grant (service-to-service, for query) or holds the integration owner's
// connection (create_record, a write attributed to a person); the
// connector sends the access token it is given as a bearer token, to the
// credential's "instance_url" value when it has one (the instance the
// token response named) and to Config.BaseURL otherwise.
package salesforce
