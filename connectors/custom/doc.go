// Package custom is a declarative REST connector: a Definition (from YAML
// or JSON configuration) names a system's base URL, its authentication and
// its operations, and New turns it into a connectors.Connector, so systems
// such as LaunchPad need no code of their own.
//
// An operation is one HTTP call built from the payload:
//
//	payload {"project_id": "p 1", "state": "open", "title": "Fix"}
//	op      method: POST, path: /projects/{project_id}/tasks, query: [state], body: json
//	request POST {BaseURL}/projects/p%201/tasks?state=open   {"title":"Fix"}
//	answer  2xx JSON -> result_path (optional) -> Result.Data
//
// Path placeholders are filled from required payload fields, path-escaped
// ("." and ".." are refused); query fields become query parameters (arrays
// repeat the parameter); with body "json" the rest of the payload is the
// JSON body. An operation with Pages follows a cursor through a listing
// and answers {"items": [...], "count": n, "next_cursor": "..."}.
//
// Authentication (Definition.Auth.Method), from the dispatcher's credential:
//
//	bearer          Authorization: Bearer {Token}
//	api-key-header  {Auth.Header}: {Token}
//	basic           HTTP Basic with Values["username"] and Values["password"] (else Token)
//	none            nothing sent
//
// Errors are classified by status: 401 -> ClassUnauthorized, 404 and 410
// -> ClassNotFound, 408 -> ClassTimeout, 429 -> ClassRateLimited, 5xx ->
// ClassUnavailable, other 4xx -> ClassInvalid; a Retry-After header
// (seconds or an HTTP date) sets RetryAfter. Details name the status,
// never a body or a credential.
package custom
