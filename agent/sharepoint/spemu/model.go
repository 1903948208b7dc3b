package spemu

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// List templates and base types (SP.List.BaseTemplate, BaseType).
const (
	TemplateGenericList     = 100
	TemplateDocumentLibrary = 101
	baseTypeGenericList     = 0
	baseTypeDocumentLibrary = 1
)

// FileSystemObjectType values.
const (
	fsFile   = 0
	fsFolder = 1
)

// site is a site collection. All fields are guarded by Server.mu.
type site struct {
	id      guid
	url     string // server-relative, "/sites/mkt"
	root    *web
	created time.Time

	principals  []*principal // users, security groups and SharePoint groups, by id
	byLogin     map[string]*principal
	nextPrinc   int
	roles       []*roleDef
	changes     []change // ascending change numbers
	lastChange  int64
	prunedUntil int64 // highest change number pruned by retention
	bin         []*binEntry
}

// web is a site (root web or sub-web).
type web struct {
	id       guid
	site     *site
	parent   *web
	title    string
	url      string // server-relative
	created  time.Time
	subwebs  []*web
	lists    []*list
	perms    *scope // nil: inherits from parent
	modified time.Time
}

// list is a list or document library.
type list struct {
	id           guid
	web          *web
	title        string
	rootName     string // URL segment(s) under the web: "Shared Documents", "Lists/Tasks"
	template     int
	hidden       bool
	created      time.Time
	lastModified time.Time
	lastDeleted  time.Time
	perms        *scope

	items  []*item // ascending id
	byID   map[int]*item
	byRef  map[string]*item // key: lower(FileRef)
	nextID int
}

// item is a list item: a file, a folder, or a generic list item.
type item struct {
	id        int
	uniqueID  guid
	guidField guid // the GUID field, distinct from UniqueId as in SharePoint
	fsType    int
	list      *list
	dir       string // FileDirRef
	name      string // FileLeafRef
	title     string // "" is null
	created   time.Time
	modified  time.Time
	author    *principal
	editor    *principal
	major     int // UI version major number
	hidden    int // owshiddenversion
	isFile    bool
	content   content
	perms     *scope
}

// binEntry is a deleted object with its subtree, as the recycle bin keeps it.
type binEntry struct {
	list    *list
	ref     string  // FileRef at deletion
	items   []*item // root first
	deleted time.Time
}

// principal is a user (kind 1), an AD security group (4) or a SharePoint
// group (8).
type principal struct {
	id        int
	kind      int
	login     string
	title     string
	email     string
	members   []*principal // SharePoint groups only
	siteAdmin bool
}

// Principal types (SP.Utilities.PrincipalType).
const (
	principalUser          = 1
	principalSecurityGroup = 4
	principalSPGroup       = 8
)

// roleDef is a role definition.
type roleDef struct {
	id        int
	name      string
	kind      int // RoleTypeKind
	low, high uint32
	order     int
	desc      string
}

// standardRoles are SharePoint Server's default role definitions.
func standardRoles() []*roleDef {
	return []*roleDef{
		{1073741829, "Full Control", 5, 4294705151, 2147483647, 1, "Has full control."},
		{1073741828, "Design", 4, 1012866047, 432, 32, "Can view, add, update, delete, approve, and customize."},
		{1073741830, "Edit", 6, 1011030767, 432, 48, "Can add, edit and delete lists; can view, add, update and delete list items and documents."},
		{1073741827, "Contribute", 3, 1011028719, 432, 64, "Can view, add, update, and delete list items and documents."},
		{1073741826, "Read", 2, 138612833, 176, 128, "Can view pages and list items and download documents."},
		{1073741825, "Limited Access", 1, 134287360, 48, 160, "Can view specific lists, document libraries, list items, folders, or documents when given permissions."},
		{1073741924, "View Only", 0, 138612801, 176, 2147483647, "Can view pages, list items, and documents. Document types with server-side file handlers can be viewed in the browser but not downloaded."},
	}
}

// grantsRead is the crawler specification's rule: ViewListItems or
// ViewPages in the low word, or a RoleTypeKind of Reader and above.
func (r *roleDef) grantsRead() bool {
	if r.low&0x1 != 0 || r.low&0x20000 != 0 {
		return true
	}
	return (r.kind >= 2 && r.kind <= 7) || r.kind == 255
}

// scope is a set of role assignments (a securable object's unique ACL).
type scope struct {
	assignments []assignment
}

type assignment struct {
	p     *principal
	roles []*roleDef
}

func (sc *scope) clone() *scope {
	c := &scope{assignments: make([]assignment, len(sc.assignments))}
	for i, a := range sc.assignments {
		c.assignments[i] = assignment{a.p, slices.Clone(a.roles)}
	}
	return c
}

// change is one change log entry.
type change struct {
	num      int64
	time     time.Time
	typ      ChangeType
	obj      objectKind
	webID    guid
	listID   guid
	itemID   int
	uniqueID guid
	url      string
	fsType   int
	title    string
	listTtl  string
	editor   string
	template int
	hidden   bool
	princID  int // user/group id for user and group changes
}

// objectKind is the kind of object a change is about.
type objectKind int

const (
	objItem objectKind = iota + 1
	objList
	objWeb
	objSite
	objUser
	objGroup
)

// ChangeType is SP.ChangeType.
type ChangeType int

// Change types, numbered as in SP.ChangeType.
const (
	ChangeNoChange         ChangeType = 0
	ChangeAdd              ChangeType = 1
	ChangeUpdate           ChangeType = 2
	ChangeDeleteObject     ChangeType = 3
	ChangeRename           ChangeType = 4
	ChangeMoveAway         ChangeType = 5
	ChangeMoveInto         ChangeType = 6
	ChangeRestore          ChangeType = 7
	ChangeRoleAdd          ChangeType = 8
	ChangeRoleDelete       ChangeType = 9
	ChangeRoleUpdate       ChangeType = 10
	ChangeAssignmentAdd    ChangeType = 11
	ChangeAssignmentDelete ChangeType = 12
	ChangeMemberAdd        ChangeType = 13
	ChangeMemberDelete     ChangeType = 14
	ChangeSystemUpdate     ChangeType = 15
	ChangeNavigation       ChangeType = 16
	ChangeScopeAdd         ChangeType = 17
	ChangeScopeDelete      ChangeType = 18
)

// ---- URLs and names ----

// fileRef is the item's server-relative URL.
func (it *item) fileRef() string { return it.dir + "/" + it.name }

// rootURL is the list's root folder server-relative URL.
func (l *list) rootURL() string { return joinURL(l.web.url, l.rootName) }

func joinURL(base, name string) string {
	if base == "/" {
		return "/" + name
	}
	return base + "/" + name
}

func lowerKey(s string) string { return strings.ToLower(s) }

// validName applies SharePoint Server 2016's file and folder naming rules
// (with # and % allowed): no " * : < > ? / \ |, no leading or trailing
// space, no trailing dot, not "." or "..", at most 400 characters.
func validName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	case strings.ContainsAny(name, "\"*:<>?/\\|\x00"):
		return fmt.Errorf("%w: %q contains a character SharePoint forbids", ErrInvalidName, name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: %q has leading or trailing white space", ErrInvalidName, name)
	case strings.HasSuffix(name, "."):
		return fmt.Errorf("%w: %q ends with a dot", ErrInvalidName, name)
	case len([]rune(name)) > 400:
		return fmt.Errorf("%w: %q is longer than 400 characters", ErrInvalidName, name)
	}
	return nil
}

// extension returns the file extension without dot, lowercase.
func extension(name string) string {
	return strings.ToLower(strings.TrimPrefix(path.Ext(name), "."))
}

// ---- list item storage ----

// insert adds it to the list's indexes; ids may be out of order (restore).
func (l *list) insert(it *item) {
	it.list = l
	l.byID[it.id] = it
	l.byRef[lowerKey(it.fileRef())] = it
	if n := len(l.items); n == 0 || l.items[n-1].id < it.id {
		l.items = append(l.items, it)
		return
	}
	i := sort.Search(len(l.items), func(i int) bool { return l.items[i].id >= it.id })
	l.items = slices.Insert(l.items, i, it)
}

// removeSet removes the given items from the list's indexes.
func (l *list) removeSet(set map[*item]bool) {
	for it := range set {
		delete(l.byID, it.id)
		delete(l.byRef, lowerKey(it.fileRef()))
	}
	l.items = slices.DeleteFunc(l.items, func(it *item) bool { return set[it] })
}

// firstAfter is the index of the first item with id > id.
func (l *list) firstAfter(id int) int {
	return sort.Search(len(l.items), func(i int) bool { return l.items[i].id > id })
}

// subtree returns it and, for a folder, every item below it.
func (l *list) subtree(it *item) []*item {
	out := []*item{it}
	if it.fsType != fsFolder {
		return out
	}
	prefix := lowerKey(it.fileRef()) + "/"
	for _, c := range l.items {
		if c != it && strings.HasPrefix(lowerKey(c.dir)+"/", prefix) {
			out = append(out, c)
		}
	}
	return out
}

// isFolderURL reports whether ref is the list root or a folder of the list.
func (l *list) folder(ref string) (*item, bool) {
	if equalFoldUnicode(ref, l.rootURL()) {
		return nil, true
	}
	it := l.byRef[lowerKey(ref)]
	if it != nil && it.fsType == fsFolder {
		return it, true
	}
	return nil, false
}

func equalFoldUnicode(a, b string) bool { return strings.EqualFold(a, b) }

// itemCount is SP.List.ItemCount (files, folders and items).
func (l *list) itemCount() int { return len(l.items) }

func (l *list) isLibrary() bool { return l.template == TemplateDocumentLibrary }

// entityTypeName is SP.List.EntityTypeName: the root folder name, XML
// encoded ("Shared_x0020_Documents"), with "List" appended for lists.
func (l *list) entityTypeName() string {
	name := l.rootName
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	e := xmlEncodeName(name)
	if !l.isLibrary() {
		e += "List"
	}
	return e
}

// itemTypeName is SP.List.ListItemEntityTypeFullName.
func (l *list) itemTypeName() string { return "SP.Data." + l.entityTypeName() + "Item" }

// xmlEncodeName encodes characters that are not valid in an XML name as
// _xHHHH_, as SharePoint does for internal names.
func xmlEncodeName(s string) string {
	var b strings.Builder
	for i, r := range s {
		ok := r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || (i > 0 && '0' <= r && r <= '9')
		if ok {
			b.WriteRune(r)
			continue
		}
		if r > 0xffff {
			r1, r2 := (r-0x10000)>>10+0xd800, (r-0x10000)&0x3ff+0xdc00
			fmt.Fprintf(&b, "_x%04x__x%04x_", r1, r2)
			continue
		}
		fmt.Fprintf(&b, "_x%04x_", r)
	}
	return b.String()
}

// uiVersion is "N.0".
func (it *item) uiVersion() string { return strconv.Itoa(it.major) + ".0" }

// kindName is the snapshot kind.
func (it *item) kind() Kind {
	switch {
	case it.fsType == fsFolder:
		return KindFolder
	case it.isFile:
		return KindFile
	}
	return KindItem
}

// contentTypeID is a plausible content type id per kind.
func (it *item) contentTypeID() string {
	switch {
	case it.fsType == fsFolder:
		return "0x012000" + strings.ToUpper(strings.ReplaceAll(it.list.id.String(), "-", ""))
	case it.isFile:
		return "0x010100" + strings.ToUpper(strings.ReplaceAll(it.list.id.String(), "-", ""))
	}
	return "0x0100" + strings.ToUpper(strings.ReplaceAll(it.list.id.String(), "-", ""))
}

// ---- permission inheritance ----

// effectiveScope walks item -> parent folders -> list -> web -> parent webs.
func (it *item) effectiveScope() *scope {
	if it.perms != nil {
		return it.perms
	}
	l := it.list
	for dir := it.dir; !equalFoldUnicode(dir, l.rootURL()) && strings.HasPrefix(lowerKey(dir), lowerKey(l.rootURL())+"/"); {
		if f := l.byRef[lowerKey(dir)]; f != nil && f.perms != nil {
			return f.perms
		}
		dir = dir[:strings.LastIndexByte(dir, '/')]
	}
	return l.effectiveScope()
}

func (l *list) effectiveScope() *scope {
	if l.perms != nil {
		return l.perms
	}
	return l.web.effectiveScope()
}

func (w *web) effectiveScope() *scope {
	for x := w; x != nil; x = x.parent {
		if x.perms != nil {
			return x.perms
		}
	}
	return &scope{}
}

// readers expands a scope to who can read: user logins (members of
// SharePoint groups included), AD security group logins, and the users'
// emails; each sorted and deduplicated.
func (sc *scope) readers() (users, groups, emails []string) {
	seen := map[*principal]bool{}
	var add func(p *principal)
	add = func(p *principal) {
		if seen[p] {
			return
		}
		seen[p] = true
		switch p.kind {
		case principalSPGroup:
			for _, m := range p.members {
				add(m)
			}
		case principalSecurityGroup:
			groups = append(groups, p.login)
		default:
			users = append(users, p.login)
			if p.email != "" {
				emails = append(emails, p.email)
			}
		}
	}
	for _, a := range sc.assignments {
		for _, r := range a.roles {
			if r.grantsRead() {
				add(a.p)
				break
			}
		}
	}
	for _, l := range []*[]string{&users, &groups, &emails} {
		sort.Strings(*l)
		*l = slices.Compact(*l)
	}
	return users, groups, emails
}
