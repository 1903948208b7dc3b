// Package slack is the dispatcher's Slack connector. It reaches the Slack
// Web API with the bot token of the tenant's Slack app installation:
//
//	post_message   POST {BaseURL}/api/chat.postMessage   JSON body, Bearer bot token
//	list_channels  GET  {BaseURL}/api/conversations.list cursor pages (response_metadata.next_cursor)
//	HealthCheck    GET  {BaseURL}/api/api.test           no token (Slack documents it as unauthenticated)
//
// Credentials. A Slack bot token comes from the workspace's OAuth install
// (oauth.v2.access), made once by the tenant's integration owner: it is the
// integration-owner connection, and Slack gives the relay no other identity.
// So both operations use connectors.IntegrationOwner: post_message because
// it writes (ChooseAuth's choice), list_channels by an explicit Auth
// override, since there is no service-to-service credential at Slack to
// read with. Messages are posted as the app's bot user, not in the calling
// user's name, so neither operation is Attributed. Token rotation
// (expires_in 43200, refresh) is the credential manager's business; this
// package only sends the token it is given.
//
// Errors. Slack answers most failures with HTTP 200 and {"ok": false,
// "error": code}. Codes map to classes: not_authed, invalid_auth,
// account_inactive, token_expired, token_revoked and missing_scope ->
// ClassUnauthorized (the integration owner must reconnect or reinstall
// the app); channel_not_found, thread_not_found -> ClassNotFound;
// ratelimited -> ClassRateLimited; internal_error, fatal_error,
// service_unavailable -> ClassUnavailable; every other code ->
// ClassInvalid. HTTP 429 is ClassRateLimited with Retry-After (seconds);
// HTTP 5xx and connection failures are ClassUnavailable. Details name
// Slack's error code, never a body or a token.
package slack
