// Package quip is the dispatcher's Quip connector. It reaches the Quip
// Automation API (v1) with a bearer API token:
//
//	get_thread       GET  {BaseURL}/1/threads/{id}          a document's metadata and HTML
//	create_document  POST {BaseURL}/1/threads/new-document  form-encoded content, format, title, type, member_ids
//	HealthCheck      GET  {BaseURL}/1/users/current         without a token: any answer below 500 is "reachable"
//
// Credentials follow connectors.ChooseAuth: get_thread reads with the
// service-to-service credential (the API token of the tenant's Quip
// service user), create_document writes with the integration owner's
// OAuth token, and the document is Quip's in that owner's name (not the
// caller's: no operation is Attributed).
//
// Errors. Quip reports failures with the HTTP status and a body
// {"error_code", "error", "error_description"}. 401 -> ClassUnauthorized;
// 404 -> ClassNotFound; 429 -> ClassRateLimited; 503 with a rate-limit
// bucket spent (X-Ratelimit-Remaining or X-Company-RateLimit-Remaining 0,
// or an "Over Rate Limit" body) -> ClassRateLimited, any other 5xx ->
// ClassUnavailable; other 4xx -> ClassInvalid, with Quip's description
// (cleaned, shortened, and with the token struck out) as the detail.
// RetryAfter is a Retry-After header when Quip sends one, else the time
// until the spent bucket's X-...-Reset (a UTC epoch second), the later of
// the two buckets when both are spent.
package quip
