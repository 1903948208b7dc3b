// Package asana is the dispatcher's Asana connector: it creates and reads
// tasks, lists a workspace's projects and runs batches of actions through
// the Asana REST API under {BaseURL}/api/1.0.
//
//	create_task    POST /tasks {"data": {...}}       write, attributed, integration-owner OAuth
//	get_task       GET  /tasks/{gid}?opt_fields=..   read
//	list_projects  GET  /projects?workspace=..&limit=n[&offset=t]   read, paged
//	batch          POST /batch {"data": {"actions": [...]}}          write, integration-owner OAuth
//
// Every request carries the credential's token as "Authorization: Bearer"
// (Asana OAuth access tokens and personal access tokens alike). Bodies and
// responses are wrapped in {"data": ...}; errors are
// {"errors": [{"message", "help"}]} with the HTTP status, 401 for an
// expired or revoked token, and 429 with Retry-After when the workspace's
// rate limit (150 requests a minute on free plans, 1500 on paid ones) is
// exceeded.
//
// Lists page with limit (1 to 100) and the opaque offset of the previous
// answer's next_page {offset, path, uri}; next_page is null on the last
// page. The connector follows the offset with its own base URL and never
// the uri Asana sends, so the token goes only to the configured host.
//
// A batch holds at most 10 actions, which Asana runs in parallel and
// answers one by one with {status_code, headers, body}. The batch succeeds
// as a whole when Asana accepts it; failed actions are reported in its
// result, not as an error, since other actions of it may have acted (so
// the dispatcher must not retry it).
//
// Attributed operations send X-MCC-User-Context (the caller's id and
// e-mail, form-encoded); Asana ignores the header, but proxies and the
// request log of the relay see who the action was for, and the audit
// record holds it.
//
// Vendor documentation used (developers.asana.com):
//   - Pagination: limit, offset, next_page {offset, path, uri};
//     https://developers.asana.com/docs/pagination
//   - Batch requests: POST /batch, actions {relative_path, method, data,
//     options}, at most 10; https://developers.asana.com/docs/batch-requests
//   - Errors and rate limits (errors array, 401, 429 with Retry-After);
//     https://developers.asana.com/docs/errors and
//     https://developers.asana.com/docs/rate-limits
//   - /work/shared/specs/saas-apis.md for the endpoints, auth, limits and paging.
package asana
