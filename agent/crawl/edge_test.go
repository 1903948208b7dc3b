package crawl_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/crawl"
	"github.com/mcc-bridge/bridge/agent/sharepoint/spemu"
)

// The edge cases of the crawl that the SharePoint specification lists and
// the other end-to-end tests do not reach: change tokens of another
// object, moves across libraries, permission changes above items, an
// expired form digest, local-time dates and SharePoint 2013's missing
// change token. Each runs a small site (a few hundred items) through the
// world of e2e_test.go and compares the store with the source exactly.

// edgeSpec is a small site: a root web and one inheriting sub-web, each
// with "Documents" and "Library 1" (which has unique permissions), a
// folder level with one uniquely permitted folder, the awkward names, and
// every 25th file with unique permissions; about 220 items.
func edgeSpec(seed uint64, name string) spemu.Spec {
	return spemu.Spec{Seed: seed, SiteNames: []string{name}, WebsPerSite: 1, Libraries: 2, ItemsPerList: 40,
		FolderDepth: 1, FolderBreadth: 2, MaxSize: 2 << 10}
}

// siteRef is the crawled site's server-relative URL, "/sites/<name>".
func (w *world) siteRef() string { return strings.TrimPrefix(w.site, w.emuURL) }

// source is the emulator's snapshot of the crawled site, sorted by FileRef.
func (w *world) source() []spemu.Entry {
	var out []spemu.Entry
	for _, e := range w.emu.Snapshot() {
		if e.SiteURL == w.siteRef() {
			out = append(out, e)
		}
	}
	return out
}

// entryKey is the store key of a snapshot entry, as diff writes it.
func entryKey(e spemu.Entry) string { return fmt.Sprintf("%s|%d", e.ListID, e.ItemID) }

// editCheckpoint rewrites the crawl checkpoint of the stopped agent.
func (w *world) editCheckpoint(edit func(*crawl.Checkpoint)) error {
	files, err := filepath.Glob(filepath.Join(w.dir, "agent-state", "crawl", "crawl-*.json"))
	if err != nil || len(files) != 1 {
		return fmt.Errorf("edit checkpoint: found %v (%v), want one file", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return fmt.Errorf("edit checkpoint: %w", err)
	}
	var cp crawl.Checkpoint
	if err := json.Unmarshal(b, &cp); err != nil {
		return fmt.Errorf("edit checkpoint %s: %w", files[0], err)
	}
	edit(&cp)
	if b, err = json.Marshal(cp); err != nil {
		return fmt.Errorf("edit checkpoint: %w", err)
	}
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		return fmt.Errorf("edit checkpoint: %w", err)
	}
	return nil
}

// logCount counts the log records with message msg.
func logCount(logs, msg string) int { return strings.Count(logs, `msg="`+msg+`"`) }

var orphansRE = regexp.MustCompile(`msg="full crawl finished" .*orphans_deleted=(\d+)`)

// orphansDeleted sums orphans_deleted over the finished full crawls, and
// counts them.
func orphansDeleted(logs string) (sum, crawls int) {
	for _, m := range orphansRE.FindAllStringSubmatch(logs, -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
		crawls++
	}
	return sum, crawls
}

// TestWrongScopeChangeToken: a checkpoint holding a change token of
// another object (a list's, a web's, another site collection's, as after
// a site is restored under the same URL) gets SharePoint's -2130575173
// from the site's change log. The agent must crawl everything again and
// reconcile: the changes made while it was away, deletes included, reach
// the store, and the orphans go. The forged tokens carry the current
// change number, so that honouring one as the site's would skip those
// changes.
func TestWrongScopeChangeToken(t *testing.T) {
	w := newWorld(t, edgeSpec(21, "legal"))
	w.waitSynced(2*time.Minute, "full crawl")
	site := w.siteRef()
	other, err := w.emu.AddSite("legal-old", "Legal (old)")
	if err != nil {
		t.Fatal(err)
	}
	var rootWeb, docsList string
	changes, err := w.emu.Changes(site)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Object == "web" && c.URL == site {
			rootWeb = c.WebID
		}
		if c.Object == "list" && c.URL == site+"/Shared Documents" {
			docsList = c.ListID
		}
	}
	if rootWeb == "" || docsList == "" {
		t.Fatalf("no root web (%q) or Documents list (%q) in the change log", rootWeb, docsList)
	}
	// forge is the site's current token with another scope and object:
	// what List.CurrentChangeToken (scope 3) or a web's (scope 2) reads.
	forge := func(scope int, id string) (string, error) {
		tok, err := w.emu.CurrentChangeToken(site)
		f := strings.Split(tok, ";")
		if err != nil || len(f) != 5 {
			return "", fmt.Errorf("current token %q: %w", tok, err)
		}
		f[1], f[2] = strconv.Itoa(scope), id
		return strings.Join(f, ";"), nil
	}
	cases := []struct {
		name  string
		token func() (string, error)
	}{
		{"a list's token", func() (string, error) { return forge(3, docsList) }},
		{"a web's token", func() (string, error) { return forge(2, rootWeb) }},
		{"another site collection's token", func() (string, error) { return w.emu.CurrentChangeToken(other.URL) }},
	}
	for i, tc := range cases {
		before := w.source()
		w.stopAgent()
		// While the agent is away: delete a folder with its files and two
		// files, update one, add one.
		folders := map[string]bool{}
		for _, e := range before {
			if e.Kind == spemu.KindFolder {
				folders[e.FileRef] = true
			}
		}
		var rootFiles []spemu.Entry
		var folder spemu.Entry
		for _, e := range before {
			switch {
			case e.Kind == spemu.KindFile && !folders[path.Dir(e.FileRef)]:
				rootFiles = append(rootFiles, e)
			case e.Kind == spemu.KindFolder && folder.FileRef == "":
				folder = e
			}
		}
		if len(rootFiles) < 4 || folder.FileRef == "" {
			t.Fatalf("%s: nothing left to change", tc.name)
		}
		steps := []error{
			w.emu.DeleteFolder(folder.FileRef),
			w.emu.Delete(rootFiles[0].FileRef),
			w.emu.Delete(rootFiles[1].FileRef),
		}
		_, err := w.emu.UpdateFile(rootFiles[2].FileRef, spemu.FileSpec{Size: 777, Seed: uint64(i + 1)})
		steps = append(steps, err)
		_, err = w.emu.AddFile(path.Dir(rootFiles[3].FileRef), fmt.Sprintf("while away %d.txt", i), spemu.FileSpec{Size: 99})
		steps = append(steps, err)
		for _, err := range steps {
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		after := map[string]bool{}
		for _, e := range w.source() {
			after[entryKey(e)] = true
		}
		orphans := 0
		for _, e := range before {
			if !after[entryKey(e)] {
				orphans++
			}
		}
		tok, err := tc.token()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.editCheckpoint(func(cp *crawl.Checkpoint) {
			if cp.Phase != crawl.PhaseIncremental || cp.ChangeToken == "" {
				t.Fatalf("%s: checkpoint %+v is not incremental", tc.name, cp)
			}
			cp.ChangeToken = tok
		}); err != nil {
			t.Fatal(err)
		}
		w.startAgent()
		w.waitSynced(time.Minute, tc.name)
		logs := w.agentLogs()
		if !strings.Contains(logs, "change token is no longer valid") || !strings.Contains(logs, "-2130575173") {
			t.Errorf("%s: the agent log does not say the token is for another object (-2130575173)", tc.name)
		}
		if n := logCount(logs, "full crawl started"); n != 1 {
			t.Errorf("%s: %d full crawls started, want 1", tc.name, n)
		}
		if got, _ := orphansDeleted(logs); got != orphans {
			t.Errorf("%s: the recrawl deleted %d orphans, want %d (the folder %s, its files, two files)", tc.name, got, orphans, folder.FileRef)
		}
	}
}

// TestCrawlMovesAndRenames moves files and folders across libraries (they
// get new list and item ids there, and their old keys must leave the
// store), across webs, into a folder with unique permissions, and renames
// a file; after each step the store equals the source.
func TestCrawlMovesAndRenames(t *testing.T) {
	w := newWorld(t, edgeSpec(22, "eng"))
	w.waitSynced(2*time.Minute, "full crawl")
	site := w.siteRef()
	docs, lib1, subDocs := site+"/Shared Documents", site+"/Library 1", site+"/web0/Shared Documents"
	var rootFiles []spemu.Entry // files at the root of Documents
	var ready spemu.Entry
	for _, e := range w.source() {
		switch {
		case e.Kind == spemu.KindFile && path.Dir(e.FileRef) == docs:
			rootFiles = append(rootFiles, e)
		case e.FileRef == docs+"/100% Ready":
			ready = e
		}
	}
	if len(rootFiles) < 4 || ready.FileRef == "" {
		t.Fatalf("%d files at the root of %s, folder %q: the generated site changed", len(rootFiles), docs, ready.FileRef)
	}
	fileA, fileB, fileC, fileD := rootFiles[0], rootFiles[1], rootFiles[2], rootFiles[3]
	// Library 1 has files of the same names at its root: move into its
	// Plans folder, which holds only the awkward names.
	plans := lib1 + "/Plans"
	steps := []struct {
		name string
		do   func() error
		gone []spemu.Entry // keys that must have left the store
	}{
		{"move a file to another library", func() error { _, err := w.emu.Move(fileA.FileRef, plans); return err }, []spemu.Entry{fileA}},
		{"rename a file", func() error { _, err := w.emu.Rename(fileB.FileRef, "Renamed – B's plan.pdf"); return err }, nil},
		{"move a folder with its files to another library", func() error { _, err := w.emu.Move(ready.FileRef, plans); return err }, []spemu.Entry{ready}},
		{"move the file on into a uniquely permitted folder of the first library", func() error {
			_, err := w.emu.Move(plans+"/"+fileA.Name, docs+"/Q&A #2")
			return err
		}, nil},
		{"move a folder to a library of the sub-web", func() error {
			_, err := w.emu.Move(plans+"/100% Ready", subDocs+"/Plans")
			return err
		}, nil},
		{"move a file away and rename another to its old name", func() error {
			if _, err := w.emu.Move(fileC.FileRef, plans); err != nil {
				return err
			}
			_, err := w.emu.Rename(fileD.FileRef, fileC.Name)
			return err
		}, []spemu.Entry{fileC}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		w.waitSynced(30*time.Second, st.name)
		// The diff would report an old key left behind as an extra; this
		// names the moved object.
		stored := w.stored()
		for _, e := range st.gone {
			if d, ok := stored[entryKey(e)]; ok {
				t.Errorf("%s: the old key %s of %s is still in the store, as %s", st.name, entryKey(e), e.FileRef, d.Path)
			}
		}
	}
	var moved int
	for _, e := range w.source() {
		if strings.HasPrefix(e.FileRef, subDocs+"/Plans/100% Ready/") {
			moved++
		}
	}
	if moved == 0 {
		t.Error("the folder moved twice has no files: the test moved nothing")
	}
}

// readersOf maps the source's keys to their readers, for checking that a
// permission step changed something.
func readersOf(src []spemu.Entry) map[string]string {
	m := make(map[string]string, len(src))
	for _, e := range src {
		m[entryKey(e)] = strings.Join(e.Readers, ",") + "|" + strings.Join(e.ReaderGroups, ",")
	}
	return m
}

// permStep is a change of who may read.
type permStep struct {
	name string
	do   func() error
}

// permWorld is a crawled small site (a root web and an inheriting sub-web,
// each with "Documents" and "Library 1", which has unique permissions; in
// each library "Folder 1.0.0" and "Document 00024.docx" have unique
// permissions; about 110 items) and two users in it with no access yet.
func permWorld(t *testing.T, seed uint64, name string) (w *world, newUser, reader string) {
	w = newWorld(t, spemu.Spec{Seed: seed, SiteNames: []string{name}, WebsPerSite: 1, Libraries: 2, ItemsPerList: 25,
		FolderDepth: 1, FolderBreadth: 2, MaxSize: 1 << 10, PlainNames: true})
	w.waitSynced(2*time.Minute, "full crawl")
	newUser, reader = `i:0#.w|contoso\user09`, `i:0#.w|contoso\user10`
	for _, u := range []string{newUser, reader} {
		if err := w.emu.AddUser(w.siteRef(), spemu.User{Login: u}); err != nil {
			t.Fatal(err)
		}
	}
	return w, newUser, reader
}

// runPermSteps applies each step, checks that it changed some readers in
// the source (else it tests nothing), and waits for the store to follow.
func (w *world) runPermSteps(steps []permStep) {
	t := w.t
	t.Helper()
	for _, st := range steps {
		before := readersOf(w.source())
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		changed := 0
		for k, r := range readersOf(w.source()) {
			if before[k] != r {
				changed++
			}
		}
		if changed == 0 {
			t.Fatalf("%s: no item's readers changed in the source; the step tests nothing", st.name)
		}
		start := time.Now()
		w.waitSynced(30*time.Second, st.name)
		t.Logf("%s: %d items' readers changed; in the store after %v", st.name, changed, time.Since(start).Round(time.Millisecond))
	}
}

// TestCrawlPermissionChanges changes who may read without changing any
// content, above the items: role assignments on a library and on the root
// web (which the sub-web inherits), breaking and resetting a library's
// inheritance, and an item and a folder returning to inherited
// permissions (ScopeDelete). After each step the readers in the store
// equal the source's.
func TestCrawlPermissionChanges(t *testing.T) {
	w, _, reader := permWorld(t, 23, "fin")
	site := w.siteRef()
	const owners, visitors = "Site 0 Owners", "Site 0 Visitors"
	docs, lib1, subDocs := site+"/Shared Documents", site+"/Library 1", site+"/web0/Shared Documents"
	w.runPermSteps([]permStep{
		{"a user is granted Read on a library with unique permissions (AssignmentAdd)", func() error { return w.emu.AddRoleAssignment(lib1, reader, "Read") }},
		{"the grant is removed (AssignmentDelete)", func() error { return w.emu.RemoveRoleAssignment(lib1, reader) }},
		{"a sub-web's library gets unique permissions (ScopeAdd)", func() error {
			return w.emu.SetPermissions(subDocs, spemu.Grant{Login: owners, Role: "Full Control"}, spemu.Grant{Login: reader, Role: "Read"})
		}},
		{"the library inherits again (ScopeDelete)", func() error { return w.emu.ResetInheritance(subDocs) }},
		{"the root web stops granting the Visitors, and the sub-web inherits that", func() error { return w.emu.RemoveRoleAssignment(site, visitors) }},
		{"the root web grants a user Read", func() error { return w.emu.AddRoleAssignment(site, reader, "Read") }},
		{"an item with unique permissions inherits again", func() error { return w.emu.ResetInheritance(docs + "/Document 00024.docx") }},
		{"a folder with unique permissions inherits again, and its files with it", func() error { return w.emu.ResetInheritance(docs + "/Folder 1.0.0") }},
	})
}

// TestCrawlGroupMembershipChanges: users join and leave SharePoint groups
// that have access (ChangeType 13 MemberAdd, 14 MemberDelete, logged as
// SP.ChangeGroup). The readers of every item the group reaches change,
// those of items with unique permissions naming the group included.
func TestCrawlGroupMembershipChanges(t *testing.T) {
	w, newUser, _ := permWorld(t, 27, "grp")
	site := w.siteRef()
	w.runPermSteps([]permStep{
		{"a user joins the Owners, whom unique items grant (MemberAdd)", func() error { return w.emu.AddGroupMember(site, "Site 0 Owners", newUser) }},
		{"a user leaves the Visitors, whom the root web grants (MemberDelete)", func() error {
			return w.emu.RemoveGroupMember(site, "Site 0 Visitors", `i:0#.w|contoso\user05`)
		}},
	})
}

// TestExpiredFormDigest: the form digest the agent holds expires on the
// server (the emulator's clock moves past FormDigestTimeoutSeconds while
// the agent's does not, as with clock skew or a recycled application
// pool) between two polls of the change log. The next getchanges POST is
// refused with 403 -2130575251; the client gets a new digest once and
// retries, so the pass does not fail and the change made meanwhile
// reaches the store.
func TestExpiredFormDigest(t *testing.T) {
	w := newWorld(t, spemu.Spec{Seed: 24, SiteNames: []string{"ops"}, ItemsPerList: 30, MaxSize: 1 << 10})
	w.waitSynced(time.Minute, "full crawl")
	// The full crawl POSTs nothing (the library is under the view
	// threshold): let a poll of the change log get the first digest.
	for deadline := time.Now().Add(30 * time.Second); w.status().LastPoll.IsZero(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the change log was not polled")
		}
	}
	if n := w.emu.Stats().Requests[spemu.EndpointContextInfo]; n != 1 {
		t.Fatalf("%d form digests before the clock moved, want 1", n)
	}
	w.emu.ResetStats()
	i := slices.IndexFunc(w.source(), func(e spemu.Entry) bool { return e.Kind == spemu.KindFile })
	file := w.source()[i]
	if _, err := w.emu.UpdateFile(file.FileRef, spemu.FileSpec{Size: 321, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	w.emu.Advance(spemu.DefaultDigestTimeout + time.Minute)
	w.waitSynced(30*time.Second, "a change after the digest expired")
	st := w.emu.Stats()
	if st.DigestFailures != 1 || st.Requests[spemu.EndpointContextInfo] != 1 {
		t.Errorf("%d digest failures and %d contextinfo requests, want one of each", st.DigestFailures, st.Requests[spemu.EndpointContextInfo])
	}
	logs := w.agentLogs()
	if !strings.Contains(logs, "form digest expired; refreshing it once") {
		t.Error("the agent log does not say the digest was refreshed")
	}
	if strings.Contains(logs, "crawl pass failed") {
		t.Error("a crawl pass failed: the client did not retry with the new digest")
	}
}

// TestCrawlLocalTimes: a library under the view threshold is read through
// .../items, whose Created and Modified SharePoint writes in the site's
// time zone without an offset ("2024-07-04T05:06:07"). The agent reads
// them in sharepoint.time_zone, so the store holds the source's instants,
// across both sides of a daylight saving change. (TestCrawlQuirks reads
// only RenderListDataAsStream rows, whose dates it takes from the UTC
// "Modified." field.)
func TestCrawlLocalTimes(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	w := newWorld(t, spemu.Spec{Seed: 25, SiteNames: []string{"la"}, ItemsPerList: 60, MaxSize: 1 << 10, PlainNames: true},
		func(o *spemu.Options) {
			o.LocalTimes = true
			o.TimeZone = la
		})
	w.waitSynced(time.Minute, "full crawl")
	if n := w.emu.Stats().Requests[spemu.EndpointRenderListData]; n != 0 {
		t.Fatalf("%d RenderListDataAsStream requests: the library should be under the threshold", n)
	}
	stored := w.stored()
	offsets := map[int]bool{}
	wrong := 0
	for _, e := range w.source() {
		_, off := e.Modified.In(la).Zone()
		offsets[off] = true
		if d, ok := stored[entryKey(e)]; !ok || !d.Modified.Equal(e.Modified) {
			if wrong++; wrong <= 3 {
				t.Errorf("%s: modified %v in the store, %v in the source", e.FileRef, d.Modified, e.Modified)
			}
		}
	}
	if wrong > 3 {
		t.Errorf("and %d more items with wrong dates", wrong-3)
	}
	if len(offsets) != 2 {
		t.Errorf("the source's dates have UTC offsets %v in Los Angeles; want both standard and daylight time", offsets)
	}
}

// TestCrawlSharePoint2013: SharePoint 2013 has no CurrentChangeToken, so
// the agent cannot start the change log at a known point. It says so, and
// every pass is a full crawl with reconciliation: adds, updates and
// deletes (a folder's included) reach the store, and the change log is
// never read.
func TestCrawlSharePoint2013(t *testing.T) {
	w := newWorld(t, spemu.Spec{Seed: 26, SiteNames: []string{"old"}, Libraries: 2, ItemsPerList: 40, FolderDepth: 1, FolderBreadth: 2, MaxSize: 1 << 10},
		func(o *spemu.Options) { o.Version = spemu.SP2013 })
	// waitFull waits for a full crawl that started after since to finish,
	// and for the store to equal the source.
	waitFull := func(since time.Time, what string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		var started time.Time
		for {
			st := w.status()
			if started.IsZero() && st.FullStarted.After(since) {
				started = st.FullStarted
			}
			if !started.IsZero() && !st.FullDone.Before(started) {
				if d := w.diff(); d == "" {
					return
				} else if time.Now().After(deadline) {
					t.Fatalf("%s: the store does not equal the source: %s", what, d)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no full crawl finished after %v: %+v", what, since, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFull(time.Time{}, "first full crawl")
	src := w.source()
	var folder, file spemu.Entry
	for _, e := range src {
		if e.Kind == spemu.KindFolder && folder.FileRef == "" {
			folder = e
		}
		if e.Kind == spemu.KindFile && path.Base(path.Dir(e.FileRef)) == "Shared Documents" && file.FileRef == "" {
			file = e
		}
	}
	orphans := 1 // the file, and the folder's subtree:
	for _, e := range src {
		if e.FileRef == folder.FileRef || strings.HasPrefix(e.FileRef, folder.FileRef+"/") {
			orphans++
		}
	}
	mark := time.Now()
	for _, err := range []error{w.emu.DeleteFolder(folder.FileRef), w.emu.Delete(file.FileRef)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.emu.AddFile(path.Dir(file.FileRef), "added on 2013.txt", spemu.FileSpec{Size: 42}); err != nil {
		t.Fatal(err)
	}
	waitFull(mark, "after a delete and an add")
	st := w.status()
	if st.Phase != crawl.PhaseFull {
		t.Errorf("phase %q, want %q: there is no change log to follow", st.Phase, crawl.PhaseFull)
	}
	if n := w.emu.Stats().Requests[spemu.EndpointChanges]; n != 0 {
		t.Errorf("%d getchanges requests without a change token", n)
	}
	logs := w.agentLogs()
	if !strings.Contains(logs, "this SharePoint has no change token (2013?): every pass is a full crawl") {
		t.Error("the agent log does not tell the operator that every pass is a full crawl")
	}
	if got, crawls := orphansDeleted(logs); got != orphans {
		t.Errorf("%d full crawls deleted %d orphans, want %d (the folder %s with its files, and a file)", crawls, got, orphans, folder.FileRef)
	}
}

// TestCrawlFolderRenamedThenGone: while the agent is away a folder is
// renamed and then deleted, or renamed and then moved to another library.
// The change log names the folder only by its new URL, which its files'
// documents in the store never had; they must go nonetheless.
// The rename's item is gone when the agent reads it, and the DeleteObject
// or MoveAway carries the new URL, so the agent also asks the relay to
// delete under the path it stored for the folder's key (DeleteFolders).
func TestCrawlFolderRenamedThenGone(t *testing.T) {
	w := newWorld(t, edgeSpec(28, "mv"))
	w.waitSynced(2*time.Minute, "full crawl")
	site := w.siteRef()
	cases := []struct {
		name   string
		folder string
		gone   func(renamed string) error
	}{
		{"renamed, then deleted", site + "/Shared Documents/100% Ready", func(r string) error { return w.emu.DeleteFolder(r) }},
		{"renamed, then moved to another library", site + "/Library 1/100% Ready", func(r string) error {
			_, err := w.emu.Move(r, site+"/Shared Documents/Plans")
			return err
		}},
	}
	for _, tc := range cases {
		w.stopAgent()
		it, err := w.emu.Rename(tc.folder, "Renamed")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := tc.gone(it.FileRef); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		w.startAgent()
		w.waitSynced(30*time.Second, tc.name)
	}
}
