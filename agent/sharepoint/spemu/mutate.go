package spemu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a list item.
type Kind string

// Item kinds.
const (
	KindFile   Kind = "file"   // a document in a library (FileSystemObjectType 0)
	KindFolder Kind = "folder" // a folder (FileSystemObjectType 1)
	KindItem   Kind = "item"   // a generic list item (FileSystemObjectType 0, no file)
)

// Item describes a list item as the mutation API returns it.
type Item struct {
	SiteURL  string // server-relative site collection URL, "/sites/mkt"
	WebURL   string // server-relative web URL
	ListID   string // list GUID, lowercase
	ID       int    // list item id
	UniqueID string // UniqueId GUID, lowercase
	FileRef  string // server-relative URL
	Name     string // FileLeafRef
	Kind     Kind   // file, folder or item
	Version  string // OData__UIVersionString, "1.0"
	Size     int64  // files only
}

// FileSpec is the content of a new or updated file.
type FileSpec struct {
	// Size is the length of generated content; ignored when Data is set.
	Size int64
	// Data is explicit content; nil means generated from Seed and Size.
	Data []byte
	// Seed selects generated content; 0 draws one from the server's seed.
	Seed uint64
}

// User is a site user or AD security group for AddUser.
type User struct {
	Login         string // claims login, "i:0#.w|contoso\alice"
	Title         string // display name; "" means the login
	Email         string // may be empty
	SiteAdmin     bool   // IsSiteAdmin
	SecurityGroup bool   // an AD security group (PrincipalType 4) instead of a user
}

// Grant is a role given to a principal, for SetPermissions.
type Grant struct {
	Login string // user, security group login or SharePoint group name
	Role  string // role definition name: "Read", "Edit", "Full Control", ...
}

// SiteInfo describes a site collection.
type SiteInfo struct {
	URL   string // server-relative, "/sites/mkt"
	ID    string // site collection GUID
	WebID string // root web GUID
}

// ListInfo describes a list.
type ListInfo struct {
	WebURL  string // server-relative URL of its web
	ID      string // list GUID
	Title   string // list title
	RootURL string // root folder server-relative URL
}

func (s *Server) itemInfo(it *item) Item {
	in := Item{
		SiteURL: it.list.web.site.url, WebURL: it.list.web.url, ListID: it.list.id.String(),
		ID: it.id, UniqueID: it.uniqueID.String(), FileRef: it.fileRef(), Name: it.name,
		Kind: it.kind(), Version: it.uiVersion(),
	}
	if it.isFile {
		in.Size = it.content.size
	}
	return in
}

// actor is who mutations are attributed to: the site's first user.
func (st *site) actor() *principal {
	for _, p := range st.principals {
		if p.kind == principalUser && p.id < 1073741823 {
			return p
		}
	}
	return st.byLogin[lowerKey("SHAREPOINT\\system")]
}

func (st *site) addPrincipal(p *principal) {
	if p.id == 0 {
		st.nextPrinc++
		p.id = st.nextPrinc
	}
	st.principals = append(st.principals, p)
	st.byLogin[lowerKey(p.login)] = p
}

// principalByName finds a user or security group by login (claims or
// not: "i:0#.w|contoso\alice", "contoso\alice", "alice") or email, or a
// SharePoint group by name.
func (st *site) principalByName(name string) (*principal, error) {
	if p := st.byLogin[lowerKey(name)]; p != nil {
		return p, nil
	}
	for _, p := range st.principals {
		l, n := lowerKey(p.login), lowerKey(name)
		if p.kind != principalSPGroup && (strings.EqualFold(p.email, name) || strings.HasSuffix(l, "|"+n) || strings.HasSuffix(l, "\\"+n)) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: %q in %s", ErrUnknownPrincipal, name, st.url)
}

func (st *site) role(name string) (*roleDef, error) {
	for _, r := range st.roles {
		if strings.EqualFold(r.name, name) {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownRole, name)
}

// AddSite creates the site collection /sites/<name> with its root web, the
// system account, the Owners (Full Control), Members (Edit) and Visitors
// (Read) groups and the standard role definitions, and no lists.
func (s *Server) AddSite(name, title string) (SiteInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.addSite(s.rng, name, title, s.Now())
	if err != nil {
		return SiteInfo{}, err
	}
	return SiteInfo{URL: st.url, ID: st.id.String(), WebID: st.root.id.String()}, nil
}

func (s *Server) addSite(r *rand.Rand, name, title string, created time.Time) (*site, error) {
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("add site %q: %w", name, err)
	}
	url := "/sites/" + name
	if s.byURL[lowerKey(url)] != nil || s.webs[lowerKey(url)] != nil {
		return nil, fmt.Errorf("add site %s: %w", url, ErrExists)
	}
	if title == "" {
		title = name
	}
	st := &site{id: newGUID(r), url: url, created: created, byLogin: map[string]*principal{}, roles: standardRoles(), nextPrinc: 5}
	w := &web{id: newGUID(r), site: st, title: title, url: url, created: created, modified: created}
	st.root = w
	st.addPrincipal(&principal{id: 1073741823, kind: principalUser, login: "SHAREPOINT\\system", title: "System Account"})
	owners := &principal{id: 3, kind: principalSPGroup, login: title + " Owners", title: title + " Owners"}
	visitors := &principal{id: 4, kind: principalSPGroup, login: title + " Visitors", title: title + " Visitors"}
	members := &principal{id: 5, kind: principalSPGroup, login: title + " Members", title: title + " Members"}
	for _, p := range []*principal{owners, visitors, members} {
		st.addPrincipal(p)
	}
	fc, _ := st.role("Full Control")
	ed, _ := st.role("Edit")
	rd, _ := st.role("Read")
	w.perms = &scope{assignments: []assignment{{owners, []*roleDef{fc}}, {members, []*roleDef{ed}}, {visitors, []*roleDef{rd}}}}
	s.sites = append(s.sites, st)
	s.byURL[lowerKey(url)] = st
	s.webs[lowerKey(url)] = w
	s.logChange(st, change{typ: ChangeAdd, obj: objSite, url: url})
	s.logChange(st, webChange(w, ChangeAdd))
	return st, nil
}

// AddWeb creates the sub-web <parentURL>/<name>, inheriting permissions.
func (s *Server) AddWeb(parentURL, name, title string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, err := s.addWeb(s.rng, parentURL, name, title, s.Now())
	if err != nil {
		return "", err
	}
	return w.url, nil
}

func (s *Server) addWeb(r *rand.Rand, parentURL, name, title string, created time.Time) (*web, error) {
	parent := s.webs[lowerKey(cleanRef(parentURL))]
	if parent == nil {
		return nil, fmt.Errorf("add web under %s: %w", parentURL, ErrNotFound)
	}
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("add web %q: %w", name, err)
	}
	url := joinURL(parent.url, name)
	if s.webs[lowerKey(url)] != nil {
		return nil, fmt.Errorf("add web %s: %w", url, ErrExists)
	}
	if _, err := s.resolve(url); err == nil {
		return nil, fmt.Errorf("add web %s: %w", url, ErrExists)
	}
	if title == "" {
		title = name
	}
	w := &web{id: newGUID(r), site: parent.site, parent: parent, title: title, url: url, created: created, modified: created}
	parent.subwebs = append(parent.subwebs, w)
	s.webs[lowerKey(url)] = w
	s.logChange(parent.site, webChange(w, ChangeAdd))
	return w, nil
}

// AddList creates a list in the web: template TemplateDocumentLibrary (root
// folder named after the title, "Documents" becoming "Shared Documents") or
// TemplateGenericList (root folder "Lists/<title without spaces>").
func (s *Server) AddList(webURL, title string, template int) (ListInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.addList(s.rng, webURL, title, template, false, s.Now())
	if err != nil {
		return ListInfo{}, err
	}
	return ListInfo{WebURL: l.web.url, ID: l.id.String(), Title: l.title, RootURL: l.rootURL()}, nil
}

func (s *Server) addList(r *rand.Rand, webURL, title string, template int, hidden bool, created time.Time) (*list, error) {
	w := s.webs[lowerKey(cleanRef(webURL))]
	if w == nil {
		return nil, fmt.Errorf("add list to %s: %w", webURL, ErrNotFound)
	}
	if err := validName(title); err != nil {
		return nil, fmt.Errorf("add list %q: %w", title, err)
	}
	var root string
	switch template {
	case TemplateDocumentLibrary:
		root = title
		if title == "Documents" {
			root = "Shared Documents"
		}
	case TemplateGenericList:
		root = "Lists/" + strings.ReplaceAll(title, " ", "")
	default:
		return nil, fmt.Errorf("add list %q: template %d: %w", title, template, ErrWrongKind)
	}
	for _, l := range w.lists {
		if strings.EqualFold(l.title, title) || strings.EqualFold(l.rootName, root) {
			return nil, fmt.Errorf("add list %q to %s: %w", title, w.url, ErrExists)
		}
	}
	if s.webs[lowerKey(joinURL(w.url, root))] != nil {
		return nil, fmt.Errorf("add list %q to %s: %w", title, w.url, ErrExists)
	}
	l := &list{id: newGUID(r), web: w, title: title, rootName: root, template: template, hidden: hidden,
		created: created, lastModified: created, lastDeleted: created, byID: map[int]*item{}, byRef: map[string]*item{}, nextID: 1}
	w.lists = append(w.lists, l)
	s.logChange(w.site, listChange(l, ChangeAdd))
	return l, nil
}

// DeleteList deletes a list (one DeleteObject change for the list).
func (s *Server) DeleteList(rootURL string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.resolve(rootURL)
	if err != nil || t.list == nil || t.item != nil {
		return fmt.Errorf("delete list %s: %w", rootURL, ErrNotFound)
	}
	w := t.web
	w.lists = slices.DeleteFunc(w.lists, func(l *list) bool { return l == t.list })
	s.logChange(w.site, listChange(t.list, ChangeDeleteObject))
	return nil
}

// parentFolder resolves a folder URL (list root or folder item).
func (s *Server) parentFolder(op, ref string) (*list, *item, error) {
	t, err := s.resolve(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	if t.list == nil {
		return nil, nil, fmt.Errorf("%s: %s is a web: %w", op, ref, ErrNotFolder)
	}
	if t.item != nil && t.item.fsType != fsFolder {
		return nil, nil, fmt.Errorf("%s: %s: %w", op, ref, ErrNotFolder)
	}
	return t.list, t.item, nil
}

func folderURL(l *list, f *item) string {
	if f == nil {
		return l.rootURL()
	}
	return f.fileRef()
}

// newItem creates an item in folder dir of l (not yet inserted).
func (s *Server) newItem(r *rand.Rand, l *list, dir, name string, fsType int, now time.Time, by *principal) *item {
	it := &item{
		id: l.nextID, uniqueID: newGUID(r), guidField: newGUID(r), fsType: fsType, list: l,
		dir: dir, name: name, created: now, modified: now, author: by, editor: by, major: 1, hidden: 1,
	}
	l.nextID++
	if !l.isLibrary() && fsType != fsFolder {
		it.name = strconv.Itoa(it.id) + "_.000"
	}
	return it
}

func (s *Server) checkFree(op string, l *list, ref string) error {
	if l.byRef[lowerKey(ref)] != nil {
		return fmt.Errorf("%s: %s: %w", op, ref, ErrExists)
	}
	return nil
}

// AddFolder creates folder name in the folder (or list root) parentRef.
func (s *Server) AddFolder(parentRef, name string) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.addFolder(s.rng, parentRef, name, s.Now(), nil)
	if err != nil {
		return Item{}, err
	}
	return s.itemInfo(it), nil
}

func (s *Server) addFolder(r *rand.Rand, parentRef, name string, now time.Time, by *principal) (*item, error) {
	op := "add folder " + name
	l, f, err := s.parentFolder(op, parentRef)
	if err != nil {
		return nil, err
	}
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	dir := folderURL(l, f)
	if err := s.checkFree(op, l, joinURL(dir, name)); err != nil {
		return nil, err
	}
	if by == nil {
		by = l.web.site.actor()
	}
	it := s.newItem(r, l, dir, name, fsFolder, now, by)
	l.insert(it)
	l.lastModified = now
	s.logChange(l.web.site, itemChange(it, ChangeAdd, by))
	return it, nil
}

// AddFile creates file name with the given content in the folder (or
// library root) folderRef, as version 1.0.
func (s *Server) AddFile(folderRef, name string, f FileSpec) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.addFile(s.rng, folderRef, name, f, s.Now(), nil)
	if err != nil {
		return Item{}, err
	}
	return s.itemInfo(it), nil
}

func (s *Server) fileContent(r *rand.Rand, f FileSpec) content {
	if f.Data != nil {
		return content{size: int64(len(f.Data)), data: slices.Clone(f.Data)}
	}
	seed := f.Seed
	if seed == 0 {
		seed = r.Uint64() | 1
	}
	return content{seed: seed, size: max(f.Size, 0)}
}

func (s *Server) addFile(r *rand.Rand, folderRef, name string, f FileSpec, now time.Time, by *principal) (*item, error) {
	op := "add file " + name
	l, fo, err := s.parentFolder(op, folderRef)
	if err != nil {
		return nil, err
	}
	if !l.isLibrary() {
		return nil, fmt.Errorf("%s: %s is not a document library: %w", op, l.rootURL(), ErrWrongKind)
	}
	if err := validName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	dir := folderURL(l, fo)
	if err := s.checkFree(op, l, joinURL(dir, name)); err != nil {
		return nil, err
	}
	if by == nil {
		by = l.web.site.actor()
	}
	it := s.newItem(r, l, dir, name, fsFile, now, by)
	it.isFile = true
	it.content = s.fileContent(r, f)
	l.insert(it)
	l.lastModified = now
	s.logChange(l.web.site, itemChange(it, ChangeAdd, by))
	return it, nil
}

// AddItem creates a generic list item with the given Title in the folder
// (or list root) folderRef; its FileLeafRef is "<id>_.000".
func (s *Server) AddItem(folderRef, title string) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.addItem(s.rng, folderRef, title, s.Now(), nil)
	if err != nil {
		return Item{}, err
	}
	return s.itemInfo(it), nil
}

func (s *Server) addItem(r *rand.Rand, folderRef, title string, now time.Time, by *principal) (*item, error) {
	op := "add item " + title
	l, fo, err := s.parentFolder(op, folderRef)
	if err != nil {
		return nil, err
	}
	if l.isLibrary() {
		return nil, fmt.Errorf("%s: %s is a document library: %w", op, l.rootURL(), ErrWrongKind)
	}
	if by == nil {
		by = l.web.site.actor()
	}
	it := s.newItem(r, l, folderURL(l, fo), "", fsFile, now, by)
	it.title = title
	l.insert(it)
	l.lastModified = now
	s.logChange(l.web.site, itemChange(it, ChangeAdd, by))
	return it, nil
}

// lookupItem resolves ref to an item.
func (s *Server) lookupItem(op, ref string) (*item, error) {
	t, err := s.resolve(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if t.item == nil {
		return nil, fmt.Errorf("%s: %s is not a list item: %w", op, ref, ErrWrongKind)
	}
	return t.item, nil
}

// Lookup describes the item at ref.
func (s *Server) Lookup(ref string) (Item, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	it, err := s.lookupItem("lookup", ref)
	if err != nil {
		return Item{}, err
	}
	return s.itemInfo(it), nil
}

func (s *Server) bump(it *item, now time.Time) *principal {
	by := it.list.web.site.actor()
	it.major++
	it.hidden++
	it.modified = now
	it.editor = by
	it.list.lastModified = now
	return by
}

// UpdateFile replaces a file's content, bumping its version ("2.0", ...)
// and logging Update.
func (s *Server) UpdateFile(ref string, f FileSpec) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookupItem("update file", ref)
	if err != nil {
		return Item{}, err
	}
	if !it.isFile {
		return Item{}, fmt.Errorf("update file %s: %w", ref, ErrWrongKind)
	}
	it.content = s.fileContent(s.rng, f)
	by := s.bump(it, s.Now())
	s.logChange(it.list.web.site, itemChange(it, ChangeUpdate, by))
	return s.itemInfo(it), nil
}

// UpdateItem sets the Title of any item, bumping its version and logging
// Update.
func (s *Server) UpdateItem(ref, title string) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookupItem("update item", ref)
	if err != nil {
		return Item{}, err
	}
	it.title = title
	by := s.bump(it, s.Now())
	s.logChange(it.list.web.site, itemChange(it, ChangeUpdate, by))
	return s.itemInfo(it), nil
}

// Delete moves a file, item or folder (with its whole subtree) to the
// recycle bin, logging one DeleteObject for it and nothing for children.
func (s *Server) Delete(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookupItem("delete", ref)
	if err != nil {
		return err
	}
	s.deleteItem(it)
	return nil
}

// DeleteFolder is Delete restricted to folders.
func (s *Server) DeleteFolder(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookupItem("delete folder", ref)
	if err != nil {
		return err
	}
	if it.fsType != fsFolder {
		return fmt.Errorf("delete folder %s: %w", ref, ErrNotFolder)
	}
	s.deleteItem(it)
	return nil
}

func (s *Server) deleteItem(it *item) {
	l := it.list
	st := l.web.site
	now := s.Now()
	sub := l.subtree(it)
	set := make(map[*item]bool, len(sub))
	for _, x := range sub {
		set[x] = true
	}
	s.logChange(st, itemChange(it, ChangeDeleteObject, st.actor()))
	l.removeSet(set)
	l.lastDeleted = now
	st.bin = append(st.bin, &binEntry{list: l, ref: it.fileRef(), items: sub, deleted: now})
}

// Restore brings back the most recently deleted object whose URL was ref,
// with its subtree and original ids, logging one Restore.
func (s *Server) Restore(ref string) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref = cleanRef(ref)
	st := s.siteOfRef(ref)
	if st == nil {
		return Item{}, fmt.Errorf("restore %s: %w", ref, ErrNotInRecycleBin)
	}
	for i := len(st.bin) - 1; i >= 0; i-- {
		e := st.bin[i]
		if !strings.EqualFold(e.ref, ref) {
			continue
		}
		l := e.list
		if !slices.Contains(l.web.lists, l) {
			return Item{}, fmt.Errorf("restore %s: list deleted: %w", ref, ErrParentMissing)
		}
		root := e.items[0]
		if _, ok := l.folder(root.dir); !ok {
			return Item{}, fmt.Errorf("restore %s: %s: %w", ref, root.dir, ErrParentMissing)
		}
		if err := s.checkFree("restore", l, root.fileRef()); err != nil {
			return Item{}, err
		}
		for _, x := range e.items {
			l.insert(x)
		}
		st.bin = slices.Delete(st.bin, i, i+1)
		l.lastModified = s.Now()
		s.logChange(st, itemChange(root, ChangeRestore, st.actor()))
		return s.itemInfo(root), nil
	}
	return Item{}, fmt.Errorf("restore %s: %w", ref, ErrNotInRecycleBin)
}

// siteOfRef is the site collection containing ref.
func (s *Server) siteOfRef(ref string) *site {
	if w := s.webOf(ref); w != nil {
		return w.site
	}
	return nil
}

// retarget rewrites the dir of every descendant of a folder whose URL
// changed from oldRef to newRef (called with the folder already renamed).
func retarget(l *list, desc []*item, oldRef, newRef string) {
	for _, c := range desc {
		delete(l.byRef, lowerKey(c.fileRef()))
	}
	for _, c := range desc {
		c.dir = newRef + c.dir[len(oldRef):]
		l.byRef[lowerKey(c.fileRef())] = c
	}
}

// Rename renames a file or folder; a folder's descendants change URL
// without changes of their own. Logs Rename.
func (s *Server) Rename(ref, newName string) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookupItem("rename", ref)
	if err != nil {
		return Item{}, err
	}
	if it.kind() == KindItem {
		return Item{}, fmt.Errorf("rename %s: a list item has no file name: %w", ref, ErrWrongKind)
	}
	if err := validName(newName); err != nil {
		return Item{}, fmt.Errorf("rename %s: %w", ref, err)
	}
	l := it.list
	newRef := joinURL(it.dir, newName)
	if !strings.EqualFold(newRef, it.fileRef()) {
		if err := s.checkFree("rename", l, newRef); err != nil {
			return Item{}, err
		}
	}
	oldRef := it.fileRef()
	desc := l.subtree(it)[1:]
	delete(l.byRef, lowerKey(oldRef))
	it.name = newName
	l.byRef[lowerKey(newRef)] = it
	retarget(l, desc, oldRef, newRef)
	it.hidden++
	s.logChange(l.web.site, itemChange(it, ChangeRename, l.web.site.actor()))
	return s.itemInfo(it), nil
}

// Move moves a file, item or folder (with its subtree) into destFolderRef
// (a folder or list root) of the same site collection, logging MoveAway
// (old URL) and MoveInto (new URL). Within a list the id is kept; into
// another list the object and its subtree get new ids there.
func (s *Server) Move(ref, destFolderRef string) (Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.lookupItem("move", ref)
	if err != nil {
		return Item{}, err
	}
	dl, df, err := s.parentFolder("move "+ref, destFolderRef)
	if err != nil {
		return Item{}, err
	}
	src := it.list
	st := src.web.site
	if dl.web.site != st {
		return Item{}, fmt.Errorf("move %s to %s: %w", ref, destFolderRef, ErrCrossSite)
	}
	if dl.isLibrary() != src.isLibrary() {
		return Item{}, fmt.Errorf("move %s to %s: library and list items do not mix: %w", ref, destFolderRef, ErrWrongKind)
	}
	destDir := folderURL(dl, df)
	oldRef := it.fileRef()
	if dl == src && (strings.EqualFold(destDir, oldRef) || strings.HasPrefix(lowerKey(destDir), lowerKey(oldRef)+"/")) {
		return Item{}, fmt.Errorf("move %s into itself: %w", ref, ErrWrongKind)
	}
	name := it.name
	if !dl.isLibrary() && it.fsType != fsFolder {
		name = strconv.Itoa(dl.nextID) + "_.000"
	}
	newRef := joinURL(destDir, name)
	if err := s.checkFree("move", dl, newRef); err != nil {
		return Item{}, err
	}
	by := st.actor()
	s.logChange(st, itemChange(it, ChangeMoveAway, by))
	sub := src.subtree(it)
	if dl == src {
		delete(src.byRef, lowerKey(oldRef))
		it.dir = destDir
		src.byRef[lowerKey(newRef)] = it
		retarget(src, sub[1:], oldRef, newRef)
	} else {
		set := make(map[*item]bool, len(sub))
		for _, x := range sub {
			set[x] = true
		}
		src.removeSet(set)
		src.lastDeleted = s.Now()
		it.dir = destDir
		for _, x := range sub[1:] {
			x.dir = newRef + x.dir[len(oldRef):]
		}
		for _, x := range sub {
			x.id = dl.nextID
			dl.nextID++
			if !dl.isLibrary() && x.fsType != fsFolder {
				x.name = strconv.Itoa(x.id) + "_.000"
			}
			dl.insert(x)
		}
	}
	it.hidden++
	dl.lastModified = s.Now()
	s.logChange(st, itemChange(it, ChangeMoveInto, by))
	return s.itemInfo(it), nil
}

// ---- permissions ----

// securable is a web, list or item with its permission scope pointer.
type securable struct {
	site  *site
	perms **scope
	inh   func() *scope // the scope inherited when perms is nil
	chg   func(ChangeType) change
	root  bool // a site's root web, which cannot inherit
}

func (s *Server) securable(op, ref string) (securable, error) {
	t, err := s.resolve(ref)
	if err != nil {
		return securable{}, fmt.Errorf("%s: %w", op, err)
	}
	switch {
	case t.item != nil:
		it := t.item
		return securable{site: t.web.site, perms: &it.perms,
			inh: func() *scope { p := it.perms; it.perms = nil; sc := it.effectiveScope(); it.perms = p; return sc },
			chg: func(c ChangeType) change { return itemChange(it, c, t.web.site.actor()) }}, nil
	case t.list != nil:
		l := t.list
		return securable{site: t.web.site, perms: &l.perms, inh: l.web.effectiveScope,
			chg: func(c ChangeType) change { return listChange(l, c) }}, nil
	default:
		w := t.web
		sc := securable{site: w.site, perms: &w.perms, root: w.parent == nil,
			chg: func(c ChangeType) change { return webChange(w, c) }}
		sc.inh = func() *scope {
			if w.parent == nil {
				return &scope{}
			}
			return w.parent.effectiveScope()
		}
		return sc, nil
	}
}

// BreakInheritance gives the object (web, list root URL or item) unique
// permissions, copying the inherited assignments when copyAssignments is
// set, and logs ScopeAdd. It is a no-op on an object already unique.
func (s *Server) BreakInheritance(ref string, copyAssignments bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.securable("break inheritance", ref)
	if err != nil {
		return err
	}
	s.breakInheritance(sc, copyAssignments)
	return nil
}

func (s *Server) breakInheritance(sc securable, copyAssignments bool) {
	if *sc.perms != nil {
		return
	}
	if copyAssignments {
		*sc.perms = sc.inh().clone()
	} else {
		*sc.perms = &scope{}
	}
	s.logChange(sc.site, sc.chg(ChangeScopeAdd))
}

// ResetInheritance makes the object inherit again, logging ScopeDelete.
func (s *Server) ResetInheritance(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.securable("reset inheritance", ref)
	if err != nil {
		return err
	}
	if sc.root {
		return fmt.Errorf("reset inheritance of %s: a root web cannot inherit: %w", ref, ErrWrongKind)
	}
	if *sc.perms == nil {
		return nil
	}
	*sc.perms = nil
	s.logChange(sc.site, sc.chg(ChangeScopeDelete))
	return nil
}

// AddRoleAssignment grants role to login (user, security group or
// SharePoint group name) on an object with unique permissions, logging
// AssignmentAdd. It fails with ErrInheritsPermissions on an inheriting object.
func (s *Server) AddRoleAssignment(ref, login, role string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.securable("add role assignment", ref)
	if err != nil {
		return err
	}
	if *sc.perms == nil {
		return fmt.Errorf("add role assignment on %s: %w", ref, ErrInheritsPermissions)
	}
	return s.addAssignment(sc, login, role)
}

func (s *Server) addAssignment(sc securable, login, role string) error {
	p, err := sc.site.principalByName(login)
	if err != nil {
		return fmt.Errorf("add role assignment: %w", err)
	}
	r, err := sc.site.role(role)
	if err != nil {
		return fmt.Errorf("add role assignment: %w", err)
	}
	ps := *sc.perms
	for i, a := range ps.assignments {
		if a.p == p {
			if !slices.Contains(a.roles, r) {
				ps.assignments[i].roles = append(a.roles, r)
			}
			s.logChange(sc.site, sc.chg(ChangeAssignmentAdd))
			return nil
		}
	}
	ps.assignments = append(ps.assignments, assignment{p, []*roleDef{r}})
	s.logChange(sc.site, sc.chg(ChangeAssignmentAdd))
	return nil
}

// RemoveRoleAssignment removes every role of login on an object with unique
// permissions, logging AssignmentDelete.
func (s *Server) RemoveRoleAssignment(ref, login string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.securable("remove role assignment", ref)
	if err != nil {
		return err
	}
	if *sc.perms == nil {
		return fmt.Errorf("remove role assignment on %s: %w", ref, ErrInheritsPermissions)
	}
	p, err := sc.site.principalByName(login)
	if err != nil {
		return fmt.Errorf("remove role assignment: %w", err)
	}
	ps := *sc.perms
	n := len(ps.assignments)
	ps.assignments = slices.DeleteFunc(ps.assignments, func(a assignment) bool { return a.p == p })
	if len(ps.assignments) == n {
		return fmt.Errorf("remove role assignment on %s: %q has none: %w", ref, login, ErrNotFound)
	}
	s.logChange(sc.site, sc.chg(ChangeAssignmentDelete))
	return nil
}

// SetPermissions breaks inheritance (without copying, logging ScopeAdd) if
// needed and replaces the object's assignments with grants, logging
// AssignmentDelete for each removed principal and AssignmentAdd for each grant.
func (s *Server) SetPermissions(ref string, grants ...Grant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, err := s.securable("set permissions", ref)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if _, err := sc.site.principalByName(g.Login); err != nil {
			return fmt.Errorf("set permissions on %s: %w", ref, err)
		}
		if _, err := sc.site.role(g.Role); err != nil {
			return fmt.Errorf("set permissions on %s: %w", ref, err)
		}
	}
	s.breakInheritance(sc, false)
	for range (*sc.perms).assignments {
		s.logChange(sc.site, sc.chg(ChangeAssignmentDelete))
	}
	(*sc.perms).assignments = nil
	for _, g := range grants {
		if err := s.addAssignment(sc, g.Login, g.Role); err != nil {
			return fmt.Errorf("set permissions on %s: %w", ref, err)
		}
	}
	return nil
}

// AddUser adds a user or AD security group to the site collection (a User
// Add change).
func (s *Server) AddUser(siteURL string, u User) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.byURL[lowerKey(cleanRef(siteURL))]
	if st == nil {
		return fmt.Errorf("add user to %s: %w", siteURL, ErrNotFound)
	}
	return s.addUser(st, u)
}

func (s *Server) addUser(st *site, u User) error {
	if u.Login == "" {
		return fmt.Errorf("add user: empty login: %w", ErrInvalidName)
	}
	if st.byLogin[lowerKey(u.Login)] != nil {
		return fmt.Errorf("add user %s: %w", u.Login, ErrExists)
	}
	kind := principalUser
	if u.SecurityGroup {
		kind = principalSecurityGroup
	}
	title := u.Title
	if title == "" {
		title = u.Login
	}
	p := &principal{kind: kind, login: u.Login, title: title, email: u.Email, siteAdmin: u.SiteAdmin}
	st.addPrincipal(p)
	s.logChange(st, change{typ: ChangeAdd, obj: objUser, princID: p.id, url: st.url})
	return nil
}

// AddGroupMember adds a user or security group to a SharePoint group,
// logging MemberAdd.
func (s *Server) AddGroupMember(siteURL, group, login string) error {
	return s.groupMember(siteURL, group, login, true)
}

// RemoveGroupMember removes a member from a SharePoint group, logging
// MemberDelete.
func (s *Server) RemoveGroupMember(siteURL, group, login string) error {
	return s.groupMember(siteURL, group, login, false)
}

func (s *Server) groupMember(siteURL, group, login string, add bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.byURL[lowerKey(cleanRef(siteURL))]
	if st == nil {
		return fmt.Errorf("group member in %s: %w", siteURL, ErrNotFound)
	}
	g, err := st.principalByName(group)
	if err != nil || g.kind != principalSPGroup {
		return fmt.Errorf("group member: group %q: %w", group, ErrUnknownPrincipal)
	}
	p, err := st.principalByName(login)
	if err != nil {
		return fmt.Errorf("group member: %w", err)
	}
	has := slices.Contains(g.members, p)
	switch {
	case add && !has:
		g.members = append(g.members, p)
		s.logChange(st, change{typ: ChangeMemberAdd, obj: objGroup, princID: g.id, url: st.url})
	case !add && has:
		g.members = slices.DeleteFunc(g.members, func(m *principal) bool { return m == p })
		s.logChange(st, change{typ: ChangeMemberDelete, obj: objGroup, princID: g.id, url: st.url})
	case !add:
		return fmt.Errorf("remove %q from %q: %w", login, group, ErrNotFound)
	}
	return nil
}

// Change is a change log entry, for tests that inspect the log directly.
type Change struct {
	Number   int64      // change number, monotonic per site collection
	Time     time.Time  // when it was logged (emulator clock)
	Type     ChangeType // SP.ChangeType
	Object   string     // "item", "list", "web", "site", "user", "group"
	ItemID   int        // list item id (items)
	ListID   string     // list GUID (items, lists)
	WebID    string     // web GUID (items, lists, webs)
	UniqueID string     // item UniqueId (items)
	URL      string     // server-relative URL at the time of the change
}

// Changes returns the change log of a site collection (after retention).
func (s *Server) Changes(siteURL string) ([]Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.byURL[lowerKey(cleanRef(siteURL))]
	if st == nil {
		return nil, fmt.Errorf("changes of %s: %w", siteURL, ErrNotFound)
	}
	s.prune(st)
	out := make([]Change, len(st.changes))
	for i, c := range st.changes {
		out[i] = Change{Number: c.num, Time: c.time, Type: c.typ, Object: c.obj.String(), ItemID: c.itemID, URL: c.url}
		if !c.listID.isZero() {
			out[i].ListID = c.listID.String()
		}
		if !c.webID.isZero() {
			out[i].WebID = c.webID.String()
		}
		if !c.uniqueID.isZero() {
			out[i].UniqueID = c.uniqueID.String()
		}
	}
	return out, nil
}

// String names the kind as Change.Object does.
func (k objectKind) String() string {
	switch k {
	case objItem:
		return "item"
	case objList:
		return "list"
	case objWeb:
		return "web"
	case objSite:
		return "site"
	case objUser:
		return "user"
	case objGroup:
		return "group"
	}
	return "unknown"
}

// CurrentChangeToken returns the site collection's current change token
// ("1;1;<siteId>;<ticks>;<number>"), as Site.CurrentChangeToken has it.
func (s *Server) CurrentChangeToken(siteURL string) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.byURL[lowerKey(cleanRef(siteURL))]
	if st == nil {
		return "", fmt.Errorf("change token of %s: %w", siteURL, ErrNotFound)
	}
	return changeToken{scope: scopeSite, id: st.id, time: s.Now(), num: st.lastChange}.String(), nil
}
