// Package spemu is a SharePoint Server 2013/2016/2019 emulator: an
// in-process HTTP server that answers the REST API (/_api) closely enough
// that a real crawler can be tested against it, with a deterministic
// content generator, a mutation API that logs the changes SharePoint logs,
// and hooks to inject throttling, connection resets and clock jumps.
//
// It follows /work/shared/specs/sharepoint.md (the crawler's SharePoint
// facts), not the crawler: fidelity to the published API comes first.
//
// # Use
//
//	s := spemu.New(spemu.Options{Auth: spemu.AuthNTLM, Users: map[string]string{`CONTOSO\crawler`: "pw"}})
//	s.Generate(spemu.Spec{Seed: 7, ItemsPerList: 10000})
//	base, err := s.Start("127.0.0.1:0") // or httptest.NewServer(s)
//	// crawl base+"/sites/site0", mutate with s.AddFile, s.Rename, ...,
//	// then compare the crawler's store with s.Snapshot().
//
// Site collections live under one origin: http://host/sites/<name>, sub-webs
// at /sites/<name>/<web>, and the API of any web at <web URL>/_api/.
//
// # Endpoints
//
//	GET  _api/web, _api/site (CurrentChangeToken except SP2013, MaxItemsPerThrottledOperation)
//	GET  _api/web/webs                        sub-webs, $filter $skip $top
//	GET  _api/web/lists                       $filter=(Hidden eq false) $expand=RootFolder $select $skip $top
//	GET  _api/web/lists(guid'..') | lists/getbytitle('..') [/Property]
//	GET  _api/web/lists(guid'..')/items       see "Items and the list view threshold"
//	GET  .../items(N) [/File /Folder /roleassignments /HasUniqueRoleAssignments]
//	POST .../RenderListDataAsStream            {"parameters":{"ViewXml":...,"RenderOptions":2}}
//	GET  _api/web/GetFileByServerRelativeUrl('..') [/$value /ListItemAllFields]
//	     (also GetFileByServerRelativePath(decodedurl='..') and @alias parameters)
//	GET  _api/web/GetFolderByServerRelativeUrl('..') [/Files /Folders /ListItemAllFields]
//	GET  _api/web/roleassignments?$expand=Member/users,RoleDefinitionBindings (also on lists and items)
//	GET  _api/web/siteusers, sitegroups[/getbyid(N)/users], roledefinitions, currentuser
//	POST _api/contextinfo                      form digest
//	POST _api/{site|web|web/lists(guid'..')}/getchanges  SP.ChangeQuery
//	GET  <file URL>                            direct download, like IIS
//
// Responses follow the Accept header: odata=verbose gives {"d":...} with
// __metadata, {"results":[...]}, absolute "__next" and __deferred
// navigation; odata=nometadata, odata=minimalmetadata and plain
// application/json give JSON Light {"value":[...],"odata.nextLink":...}
// whose next link is absolute or relative to <web>/_api/ (Options.NextLinks;
// by default the two alternate). Fields starting with "_" are written
// "OData_..." (OData__UIVersionString); Int64 values (File.Length,
// BasePermissions) are JSON strings; Options.LocalTimes writes item dates in
// site-local time without offset. Errors use SharePoint's envelopes,
// {"error":{"code":"<n>, <Type>","message":{"lang":"en-US","value":...}}}
// (verbose) and {"odata.error":{...}} (JSON Light). Every response carries
// X-SharePointHealthScore, SPRequestGuid and MicrosoftSharePointTeamServices.
//
// Item fields as in SharePoint: without $select an item has Id, ID,
// Title, Created, Modified, AuthorId, EditorId, OData__UIVersionString,
// GUID, ContentTypeId, FileSystemObjectType; FileRef, FileLeafRef,
// FileDirRef, UniqueId, FSObjType, File_x0020_Size, owshiddenversion,
// HasUniqueRoleAssignments and EncodedAbsUrl come only when named in
// $select. An expanded File or Folder that does not exist (File of a
// folder) is null. Selecting an unknown field is a 400.
//
// # Items and the list view threshold
//
// GET .../items pages by ID: $top (default 100, at most 5000 per page) and
// a next link carrying $skiptoken=Paged=TRUE&p_ID=<last id>, written
// "%24skiptoken=Paged%3dTRUE%26p_ID%3d<id>" with the other query options
// kept; $skip is ignored; $filter supports comparisons (Id gt N, Modified
// ge datetime'...', ...) joined by and/or; $orderby only Id (asc or desc).
//
// The exact threshold trigger: when a list holds more than
// Options.ViewThreshold items (files, folders and items; default 5000),
//   - with Options.Threshold = ThresholdStrict (default), every
//     .../items collection query fails, whatever its $top, filter or paging;
//   - with ThresholdIndexed, a query fails if its $top (100 when absent)
//     exceeds the threshold, its $filter names any field but Id, or it
//     orders by anything but Id;
//
// with HTTP 500 and -2147024860, Microsoft.SharePoint.SPQueryThrottledException.
// items(N) always works. RenderListDataAsStream works on such lists while
// its RowLimit is at most the threshold and its CAML Where/OrderBy use only
// ID; otherwise it fails the same way.
//
// RenderListDataAsStream parses ViewXml: Scope ("" = the folder's
// children, Recursive = files and items of the subtree, RecursiveAll =
// everything including folders, FilesOnly), RowLimit (default 30), Query
// Where (Eq Neq Gt Geq Lt Leq IsNull IsNotNull And Or) and OrderBy on ID,
// and ViewFields. It answers {"Row":[...],"FirstRow":..,"LastRow":..,
// "NextHref":"?Paged=TRUE&p_ID=<id>&PageFirstRow=<n>&View=<guid>"} where
// every value is a string (ID, FSObjType, UniqueId "{GUID}", FileRef,
// FileLeafRef, FileDirRef, File_x0020_Size, _UIVersionString, Modified
// "M/D/YYYY h:mm AM" in site time plus "Modified." in UTC ISO form) except
// people fields (Editor, Author), which are arrays of objects. The next page
// is the same POST with NextHref's query string appended to the URL (or
// passed as parameters.Paging).
//
// # Change log
//
// Each site collection keeps an ordered change log; every change has a
// change number (monotonic per site), a time (Options.Now) and a type
// numbered as SP.ChangeType. Tokens are "1;<scope>;<guid>;<ticks>;<number>"
// with scope 1 (site), 2 (web) or 3 (list). GetChanges returns at most
// FetchLimit (default and maximum 1000) changes after ChangeTokenStart
// (exclusive; none means the start of the log) and up to ChangeTokenEnd;
// page with the last change's token and stop on an empty batch. Tokens
// from another site, web or list fail with -2130575173; a token older than
// the oldest change kept by Options.Retention (default 60 days) fails with
// -2130575172 "The changeToken refers to a time before the start of the
// current change log." (unless IgnoreStartTokenNotFoundError). Both object
// flags (Item, List, Web, Site, User, Group) and change-type flags (Add,
// Update, DeleteObject, Rename, Move, Restore, RoleAssignmentAdd,
// RoleAssignmentDelete, GroupMembershipAdd, GroupMembershipDelete,
// SecurityPolicy for ScopeAdd/ScopeDelete, ...) must be set. Documents and
// folders in libraries are list items (SP.ChangeItem under Item); File and
// Folder select files and folders outside lists, which the emulator does
// not model, so they select nothing. LatestFirst and RecursiveAll (web
// scope) are honoured; RequireSecurityTrim is accepted (changes are never
// trimmed). As in SharePoint, nometadata results carry no type, so only
// verbose and minimalmetadata tell an SP.ChangeItem from an SP.ChangeList.
// In verbose mode the body needs "__metadata":{"type":
// "SP.ChangeQuery"} (and SP.ChangeToken on tokens) and FetchLimit as a
// string; in JSON Light __metadata is an unknown property. Both mistakes
// are 400 Microsoft.Data.OData.ODataException.
//
// What the mutation methods log:
//
//	AddFile, AddFolder, AddItem            Add (1)
//	UpdateFile, UpdateItem                 Update (2), version 2.0, 3.0, ...
//	Delete, DeleteFolder                   DeleteObject (3) for the object only; a folder's subtree goes silently
//	Rename                                 Rename (4); a folder's descendants change URL silently
//	Move                                   MoveAway (5, old URL) then MoveInto (6, new URL)
//	Restore                                Restore (7) for the restored object only; its subtree returns silently
//	AddRoleAssignment, RemoveRoleAssignment AssignmentAdd (11), AssignmentDelete (12)
//	AddGroupMember, RemoveGroupMember      MemberAdd (13), MemberDelete (14) on the group
//	BreakInheritance, ResetInheritance     ScopeAdd (17), ScopeDelete (18)
//	AddSite, AddWeb, AddList, DeleteList, AddUser, Generate  Add / DeleteObject on the object
//
// # Authentication
//
// Options.Auth selects none, Basic, NTLM or Kerberos.
//
// NTLM: an unauthenticated request gets 401 with WWW-Authenticate:
// Negotiate and NTLM; NEGOTIATE gets 401 with a CHALLENGE; AUTHENTICATE's
// NTLMv2 response is verified against the account's password
// (MD4/HMAC-MD5, MS-NLMP 3.3.2). The TCP connection then stays
// authenticated, as with IIS, so the request body a client replays on the
// last leg is served. State is kept per remote address and dropped when the
// connection closes (ConfigureServer installs that hook). Kerberos tokens
// are refused in this mode.
//
// Kerberos (AuthKerberos): every request needs "Authorization: Negotiate
// <SPNEGO token>" holding a Kerberos AP-REQ whose ticket decrypts with a key
// of Options.Keytab (the service principals, e.g. HTTP/localhost), is
// current, and whose authenticator is fresh (5 minutes' skew, on the real
// clock) and not replayed; otherwise 401 with WWW-Authenticate: Negotiate.
// The account is Domain\<principal>.
//
// POSTs other than contextinfo need an X-RequestDigest issued by
// contextinfo of the same site collection, which expires after
// Options.DigestTimeout on the emulator's clock; otherwise 403 -2130575251.
//
// # Faults, clock and counters
//
// InjectFault makes matching requests fail with 503 (with or without
// Retry-After) or 429; SetHealthScore sets X-SharePointHealthScore;
// ResetDownloadAfter cuts a download after n bytes once; Advance moves the
// clock (retention, digest expiry); Stats counts requests by Endpoint and
// records the last User-Agent. The /_emu/ admin API (admin.go) exposes the
// same operations over HTTP for manual use.
//
// # Concurrency
//
// Server.mu guards the content model (sites, webs, lists, items, change
// logs, recycle bins); request handlers hold it for reading while they
// build a response and release it before writing, so content streams never
// hold it. Faults, counters, digests and NTLM state have their own mutex
// (control.mu). Every exported method may be called from any goroutine.
//
// # Not emulated
//
// Writes through REST (only the Go and admin APIs mutate), Atom XML,
// $batch, Kerberos/SPNEGO tokens, claims/FBA/add-in auth, versions history,
// attachments, files outside lists, and OData functions in $filter.
package spemu
