package spemu

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors of the Go API (mutations, generator, options). Compare
// them with errors.Is: the returned errors wrap them with the operation and
// the URL involved.
var (
	// ErrNotFound means no site, web, list, folder or item has that URL.
	ErrNotFound = errors.New("spemu: not found")
	// ErrExists means the target name is already taken in that folder, or
	// a site or web of that URL already exists.
	ErrExists = errors.New("spemu: already exists")
	// ErrInvalidName means a file or folder name SharePoint would reject.
	ErrInvalidName = errors.New("spemu: invalid name")
	// ErrNotFolder means the operation needs a folder (or a list root).
	ErrNotFolder = errors.New("spemu: not a folder")
	// ErrWrongKind means the operation does not apply to that kind of
	// object (UpdateFile on a folder, AddFile in a generic list, ...).
	ErrWrongKind = errors.New("spemu: wrong kind of object")
	// ErrNotInRecycleBin means Restore found no deleted object with that URL.
	ErrNotInRecycleBin = errors.New("spemu: not in the recycle bin")
	// ErrParentMissing means the folder an object would be restored or
	// moved into does not exist (any more).
	ErrParentMissing = errors.New("spemu: parent folder missing")
	// ErrCrossSite means a move between site collections, which
	// SharePoint does not do as a move.
	ErrCrossSite = errors.New("spemu: move across site collections")
	// ErrInheritsPermissions means a role assignment change on an object
	// that inherits its permissions (SharePoint requires breaking
	// inheritance first).
	ErrInheritsPermissions = errors.New("spemu: object inherits permissions")
	// ErrUnknownPrincipal means no user or group of that login exists in
	// the site collection.
	ErrUnknownPrincipal = errors.New("spemu: unknown principal")
	// ErrUnknownRole means no role definition of that name exists.
	ErrUnknownRole = errors.New("spemu: unknown role definition")
	// ErrInvalidOptions means Options.Validate rejected a field.
	ErrInvalidOptions = errors.New("spemu: invalid options")
	// ErrInvalidSpec means a generator Spec field is out of range.
	ErrInvalidSpec = errors.New("spemu: invalid generator spec")
)

// SharePoint error codes and exception types the emulator answers with; the
// values are those SharePoint Server puts in "<code>, <type>" of its error
// envelopes.
const (
	// CodeQueryThrottled is the list view threshold error
	// (Microsoft.SharePoint.SPQueryThrottledException, HTTP 500).
	CodeQueryThrottled = -2147024860
	// CodeFileNotFound is GetFileByServerRelativeUrl's missing file (HTTP 404).
	CodeFileNotFound = -2130575338
	// CodeSecurityValidation is a missing, wrong or expired X-RequestDigest (HTTP 403).
	CodeSecurityValidation = -2130575251
	// CodeChangeTokenExpired is a change token older than the change log (retention).
	CodeChangeTokenExpired = -2130575172
	// CodeChangeTokenWrongObject is a change token of another site, web or list.
	CodeChangeTokenWrongObject = -2130575173
	// CodeItemNotFound is a list item id that does not exist.
	CodeItemNotFound = -2147024809
	// CodeFolderNotFound is GetFolderByServerRelativeUrl's missing folder.
	CodeFolderNotFound = -2147024894
	// CodeGeneric is the -1 of client query, OData and resource errors.
	CodeGeneric = -1
)

// Exception type names used in error envelopes.
const (
	typeThrottled     = "Microsoft.SharePoint.SPQueryThrottledException"
	typeSPException   = "Microsoft.SharePoint.SPException"
	typeInvalidQuery  = "Microsoft.SharePoint.Client.InvalidClientQueryException"
	typeODataExc      = "Microsoft.Data.OData.ODataException"
	typeResourceNF    = "Microsoft.SharePoint.Client.ResourceNotFoundException"
	typeClientService = "Microsoft.SharePoint.Client.ClientServiceException"
	typeArgument      = "System.ArgumentException"
	typeFileNotFound  = "System.IO.FileNotFoundException"
)

// apiError is an error answered with SharePoint's JSON error envelope.
type apiError struct {
	status int
	code   int64
	typ    string
	msg    string
}

// Error is "HTTP <status>: <code>, <type>: <message>".
func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d: %d, %s: %s", e.status, e.code, e.typ, e.msg)
}

func errThrottled() *apiError {
	return &apiError{http.StatusInternalServerError, CodeQueryThrottled, typeThrottled,
		"The attempted operation is prohibited because it exceeds the list view threshold enforced by the administrator."}
}

func errBadLiteral(expr string) *apiError {
	return &apiError{http.StatusBadRequest, CodeGeneric, typeInvalidQuery,
		fmt.Sprintf("The expression %q is not valid.", expr)}
}

func errQuery(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, CodeGeneric, typeInvalidQuery, fmt.Sprintf(format, args...)}
}

func errOData(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, CodeGeneric, typeODataExc, fmt.Sprintf(format, args...)}
}

func errFileNotFound(url string) *apiError {
	return &apiError{http.StatusNotFound, CodeFileNotFound, typeSPException,
		fmt.Sprintf("The file %s does not exist.", url)}
}

func errFolderNotFound() *apiError {
	return &apiError{http.StatusNotFound, CodeFolderNotFound, typeFileNotFound, "File Not Found."}
}

func errListNotFound() *apiError {
	return &apiError{http.StatusNotFound, CodeGeneric, typeArgument,
		"List does not exist.\n\nThe page you selected contains a list that does not exist.  It may have been deleted by another user."}
}

func errItemNotFound() *apiError {
	return &apiError{http.StatusNotFound, CodeItemNotFound, typeArgument,
		"Item does not exist. It may have been deleted by another user."}
}

func errResource(path string) *apiError {
	return &apiError{http.StatusNotFound, CodeGeneric, typeResourceNF,
		fmt.Sprintf("Cannot find resource for the request %s.", path)}
}

func errMethod(method, resource string) *apiError {
	return &apiError{http.StatusMethodNotAllowed, CodeGeneric, typeClientService,
		fmt.Sprintf("The HTTP method '%s' cannot be used to access the resource '%s'. Please use correct HTTP method to invoke the resource.", method, resource)}
}

func errDigest() *apiError {
	return &apiError{http.StatusForbidden, CodeSecurityValidation, typeSPException,
		"The security validation for this page is invalid and might be corrupted. Please use your web browser's Back button to try your operation again."}
}

func errTokenExpired() *apiError {
	return &apiError{http.StatusInternalServerError, CodeChangeTokenExpired, typeSPException,
		"The changeToken refers to a time before the start of the current change log."}
}

func errTokenWrongObject() *apiError {
	return &apiError{http.StatusInternalServerError, CodeChangeTokenWrongObject, typeSPException,
		"The changeToken refers to a different site, web or list than the one being queried."}
}

func errBadToken(s string) *apiError {
	return &apiError{http.StatusBadRequest, CodeGeneric, typeArgument,
		fmt.Sprintf("Specified argument was out of the range of valid values. Parameter name: changeToken (%q)", s)}
}
