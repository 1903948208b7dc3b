// Package workfront is the dispatcher's Adobe Workfront connector: it
// creates and reads projects, searches them (the nightly aggregated read)
// and updates tasks through the Workfront REST API v20.0 under
// {BaseURL}/attask/api/v20.0.
//
//	create_project   POST /proj?fields=..       write, attributed, integration-owner OAuth
//	get_project      GET  /proj/{ID}?fields=..  read
//	search_projects  GET  /proj/search?..&$$FIRST=n&$$LIMIT=m   read, s2s API key, paged
//	update_task      PUT  /task/{ID}?fields=..  write, attributed, integration-owner OAuth
//
// Authentication follows the credential the dispatcher hands over: an
// "api-key" credential goes in the apiKey header (Workfront also takes it
// as a request parameter, which this connector never uses so that keys
// stay out of URLs, logs and url.Error texts); any other (an OAuth2 access
// token) goes in the sessionID header, where Workfront's OAuth2 apps want
// it, or as "Authorization: Bearer" (Adobe IMS tokens) when
// Config.OAuthHeader says so. Attributed operations also send
// X-MCC-User-Context (the caller's id and e-mail, form-encoded) so the
// action can be traced to its user; create_project records the campaign
// in the custom field DE:MCC_Campaign_ID.
//
// Workfront answers {"data": ...} or {"error": {"class", "message"}} with
// the HTTP status; 401 means the session or key is no longer valid. It
// caps concurrent API threads per customer and answers 429 with
// Retry-After when a client exceeds the cap. Searches page with $$FIRST (a
// 0-based offset) and $$LIMIT (default 100, at most 2000).
//
// Vendor documentation used (Adobe Experience League):
//   - Workfront API basics: object URIs, search modifiers, fields,
//     custom data (DE:), $$FIRST/$$LIMIT paging and query limits,
//     authentication by sessionID header and apiKey parameter;
//     https://experienceleague.adobe.com/en/docs/workfront/using/adobe-workfront-api/api-general-information/api-basics
//   - Configure and use custom OAuth 2 applications (authorization code
//     flow): the access token is sent as the sessionID header;
//     https://experienceleague.adobe.com/docs/workfront/using/adobe-workfront-api/api-notes/oauth-app-code-token-flow.html
//   - /work/shared/specs/saas-apis.md for the endpoints, limits and paging.
package workfront
