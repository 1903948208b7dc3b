package spemu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Spec describes generated content. The zero value generates one site
// collection with one document library of 100 files and awkward names.
// Every field's zero value means the default noted.
type Spec struct {
	// Seed makes generation deterministic: the same Seed and Spec give the
	// same Snapshot (ids, names, sizes, contents, dates, permissions).
	Seed uint64
	// Sites is the number of site collections; 0 means 1.
	Sites int
	// SiteNames names them (/sites/<name>); missing names are "site<i>".
	SiteNames []string
	// WebsPerSite is the number of sub-webs under each root web (each a
	// sibling: /sites/<name>/web<i>); 0 means none.
	WebsPerSite int
	// Libraries is the number of document libraries per web; 0 means 1,
	// negative means none. The first is "Documents" ("Shared Documents").
	Libraries int
	// Lists is the number of generic lists per web; 0 means none.
	Lists int
	// ItemsPerList is the number of files (libraries) or items (lists) per
	// list, folders not counted; 0 means 100.
	ItemsPerList int
	// FolderDepth and FolderBreadth shape a folder tree in every list:
	// Breadth folders per level, Depth levels; 0 means no tree. Files and
	// items spread round-robin over the root and every folder.
	FolderDepth, FolderBreadth int
	// MinSize and MaxSize bound file sizes, drawn log-uniformly; 0 means
	// 100 bytes and 64 KiB.
	MinSize, MaxSize int64
	// LargeFiles files of the first library of the first site get
	// LargeSize bytes (plus their index) instead; 0 means none.
	LargeFiles int
	// LargeSize is the large files' size; 0 means 3 GiB (above 2^31).
	LargeSize int64
	// PlainNames turns off the awkward names (apostrophes, #, %, &, +,
	// spaces, unicode NFC and NFD) put in every library by default.
	PlainNames bool
	// UniqueEvery gives every n-th file or item unique permissions; 0
	// means 25, negative means none. A folder and a library per web get
	// unique permissions too unless negative.
	UniqueEvery int
	// Users is the number of users per site; 0 means 8.
	Users int
	// Epoch is the base of generated Created/Modified dates; the zero
	// value means 2024-01-01T00:00:00Z.
	Epoch time.Time
}

func (sp Spec) withDefaults() (Spec, error) {
	switch {
	case sp.Sites < 0, sp.WebsPerSite < 0, sp.Lists < 0, sp.ItemsPerList < 0, sp.FolderDepth < 0,
		sp.FolderBreadth < 0, sp.MinSize < 0, sp.MaxSize < 0, sp.LargeFiles < 0, sp.LargeSize < 0, sp.Users < 0:
		return sp, fmt.Errorf("%w: negative count or size", ErrInvalidSpec)
	}
	if sp.Sites == 0 {
		sp.Sites = 1
	}
	if sp.Libraries == 0 {
		sp.Libraries = 1
	}
	if sp.ItemsPerList == 0 {
		sp.ItemsPerList = 100
	}
	if sp.MinSize == 0 {
		sp.MinSize = 100
	}
	if sp.MaxSize == 0 {
		sp.MaxSize = 64 << 10
	}
	if sp.MaxSize < sp.MinSize {
		return sp, fmt.Errorf("%w: MaxSize %d below MinSize %d", ErrInvalidSpec, sp.MaxSize, sp.MinSize)
	}
	if sp.LargeSize == 0 {
		sp.LargeSize = 3 << 30
	}
	if sp.UniqueEvery == 0 {
		sp.UniqueEvery = 25
	}
	if sp.Users == 0 {
		sp.Users = 8
	}
	if sp.Epoch.IsZero() {
		sp.Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if sp.FolderBreadth > 0 && sp.FolderDepth > 0 {
		n := 0.0
		for d := 1; d <= sp.FolderDepth; d++ {
			n += math.Pow(float64(sp.FolderBreadth), float64(d))
		}
		if n > 1e6 {
			return sp, fmt.Errorf("%w: a folder tree of %.0f folders per list", ErrInvalidSpec, n)
		}
	}
	return sp, nil
}

// AwkwardNames are the file names every library gets (in its "Plans"
// folder) unless Spec.PlainNames: quoting, percent-encoding and unicode
// normalization traps. The NFC and NFD names differ only in normalization.
func AwkwardNames() []string {
	return []string{
		"O'Brien's #1 100%.docx",
		"it''s doubled.txt",
		"Q&A + answers.txt",
		"a+b=c & d.csv",
		"R\u00e9sum\u00e9 final.pdf",   // NFC
		"Re\u0301sume\u0301 final.pdf", // NFD
		"multiple   spaces here.xlsx",
		"semi;colon,comma=equals@at~tilde.txt",
		"日本語のファイル.txt",
		"emoji 🎉 party.pptx",
		"brackets [1] {2} (3).md",
		"dot.in.name.tar.gz",
	}
}

var genExtensions = [...]string{"docx", "xlsx", "pptx", "pdf", "txt", "csv", "md", "json"}

// Generate adds deterministic content described by spec. Generation logs an
// Add change for every site, web, list and item, at the current time;
// Created/Modified dates derive from spec.Epoch. It fails (changing
// nothing) if a site of the same URL exists.
func (s *Server) Generate(spec Spec) error {
	spec, err := spec.withDefaults()
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, spec.Sites)
	for i := range names {
		names[i] = "site" + strconv.Itoa(i)
		if i < len(spec.SiteNames) && spec.SiteNames[i] != "" {
			names[i] = spec.SiteNames[i]
		}
		if s.byURL[lowerKey("/sites/"+names[i])] != nil {
			return fmt.Errorf("generate: site /sites/%s: %w", names[i], ErrExists)
		}
	}
	g := &generator{s: s, sp: spec, r: rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))}
	for i, name := range names {
		if err := g.site(i, name); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	return nil
}

type generator struct {
	s     *Server
	sp    Spec
	r     *rand.Rand
	users []*principal
	large int // large files made so far
}

func (g *generator) date(max time.Duration) time.Time {
	return g.sp.Epoch.Add(time.Duration(g.r.Int64N(int64(max))) / time.Second * time.Second)
}

func (g *generator) site(idx int, name string) error {
	s := g.s
	title := "Site " + strconv.Itoa(idx)
	st, err := s.addSite(g.r, name, title, g.sp.Epoch)
	if err != nil {
		return err
	}
	owners, visitors, members := st.principals[1], st.principals[2], st.principals[3]
	g.users = g.users[:0]
	for u := 1; u <= g.sp.Users; u++ {
		n := fmt.Sprintf("%02d", u)
		p := &principal{kind: principalUser, login: "i:0#.w|contoso\\user" + n, title: "User " + n,
			email: "user" + n + "@contoso.com", siteAdmin: u == 1}
		st.addPrincipal(p)
		g.users = append(g.users, p)
		switch {
		case u == 1:
			owners.members = append(owners.members, p)
		case u <= (g.sp.Users+1)/2:
			members.members = append(members.members, p)
		default:
			visitors.members = append(visitors.members, p)
		}
	}
	finance := &principal{kind: principalSecurityGroup, login: "c:0+.w|s-1-5-21-2127521184-1604012920-1887927527-1105",
		title: "CONTOSO\\finance", email: "finance@contoso.com"}
	st.addPrincipal(finance)
	visitors.members = append(visitors.members, finance)

	webs := []*web{st.root}
	for i := range g.sp.WebsPerSite {
		w, err := s.addWeb(g.r, st.url, "web"+strconv.Itoa(i), "Web "+strconv.Itoa(i), g.sp.Epoch)
		if err != nil {
			return err
		}
		if i == 1 && g.sp.UniqueEvery > 0 {
			w.perms = g.uniqueScope(st, st.root.perms, visitors, g.users[min(2, len(g.users)-1)])
		}
		webs = append(webs, w)
	}
	for wi, w := range webs {
		for i := 0; i < g.sp.Libraries; i++ {
			title := "Documents"
			if i > 0 {
				title = "Library " + strconv.Itoa(i)
			}
			l, err := s.addList(g.r, w.url, title, TemplateDocumentLibrary, false, g.sp.Epoch)
			if err != nil {
				return err
			}
			if i == 1 && g.sp.UniqueEvery > 0 {
				l.perms = g.uniqueScope(st, w.effectiveScope(), visitors, g.users[len(g.users)-1])
			}
			g.fill(l, idx == 0 && wi == 0 && i == 0)
		}
		for i := 0; i < g.sp.Lists; i++ {
			l, err := s.addList(g.r, w.url, "Tasks "+strconv.Itoa(i), TemplateGenericList, false, g.sp.Epoch)
			if err != nil {
				return err
			}
			g.fill(l, false)
		}
		if wi == 0 {
			l, err := s.addList(g.r, w.url, "TaxonomyHiddenList", TemplateGenericList, true, g.sp.Epoch)
			if err != nil {
				return err
			}
			for range 2 {
				g.add(l, l.rootURL(), "", fsFile, false)
			}
		}
	}
	return nil
}

// uniqueScope copies base, drops one principal and grants another Read.
func (g *generator) uniqueScope(st *site, base *scope, drop, reader *principal) *scope {
	sc := base.clone()
	for i := 0; i < len(sc.assignments); i++ {
		if sc.assignments[i].p == drop {
			sc.assignments = append(sc.assignments[:i], sc.assignments[i+1:]...)
			i--
		}
	}
	rd, _ := st.role("Read")
	sc.assignments = append(sc.assignments, assignment{reader, []*roleDef{rd}})
	return sc
}

// add creates one item directly (no name checks: generated names are unique).
func (g *generator) add(l *list, dir, name string, fsType int, file bool) *item {
	created := g.date(300 * 24 * time.Hour)
	by := g.users[g.r.IntN(len(g.users))]
	it := g.s.newItem(g.r, l, dir, name, fsType, created, by)
	it.modified = created.Add(time.Duration(g.r.IntN(30*24*3600)) * time.Second)
	it.editor = g.users[g.r.IntN(len(g.users))]
	if fsType == fsFile && !file {
		it.title = "Item " + strconv.Itoa(it.id)
	}
	if file {
		it.isFile = true
		size := g.sp.MinSize
		if g.sp.MaxSize > g.sp.MinSize {
			size = int64(float64(g.sp.MinSize) * math.Pow(float64(g.sp.MaxSize)/float64(g.sp.MinSize), g.r.Float64()))
		}
		it.content = content{seed: g.r.Uint64() | 1, size: size}
	}
	l.insert(it)
	if it.modified.After(l.lastModified) {
		l.lastModified = it.modified
	}
	g.s.logChange(l.web.site, itemChange(it, ChangeAdd, by))
	return it
}

// fill populates a list with folders, awkward names and items.
func (g *generator) fill(l *list, takesLarge bool) {
	st := l.web.site
	lib := l.isLibrary()
	containers := []string{l.rootURL()}
	level := []string{l.rootURL()}
	awkwardFolders := []string{"Q&A #2", "100% Ready", "Ünïcode Ordner"}
	for d := 1; d <= g.sp.FolderDepth && g.sp.FolderBreadth > 0; d++ {
		var next []string
		for pi, parent := range level {
			for b := range g.sp.FolderBreadth {
				name := fmt.Sprintf("Folder %d.%d.%d", d, pi, b)
				if d == 1 && b < len(awkwardFolders) && !g.sp.PlainNames {
					name = awkwardFolders[b]
				}
				f := g.add(l, parent, name, fsFolder, false)
				if d == 1 && b == 0 && g.sp.UniqueEvery > 0 {
					f.perms = g.uniqueScope(st, l.effectiveScope(), st.principals[2], g.users[0])
				}
				next = append(next, f.fileRef())
			}
		}
		containers = append(containers, next...)
		level = next
	}
	if lib && !g.sp.PlainNames {
		plans := g.add(l, l.rootURL(), "Plans", fsFolder, false)
		for _, n := range AwkwardNames() {
			g.add(l, plans.fileRef(), n, fsFile, true)
		}
		if len(containers) > 1 {
			g.add(l, containers[1], "O'Brien's #1 100%.docx", fsFile, true)
		}
	}
	for i := range g.sp.ItemsPerList {
		dir := containers[i%len(containers)]
		var it *item
		if lib {
			it = g.add(l, dir, fmt.Sprintf("Document %05d.%s", i, genExtensions[i%len(genExtensions)]), fsFile, true)
			if takesLarge && g.large < g.sp.LargeFiles {
				it.content.size = g.sp.LargeSize + int64(g.large)
				g.large++
			}
		} else {
			it = g.add(l, dir, "", fsFile, false)
		}
		if g.sp.UniqueEvery > 0 && i%g.sp.UniqueEvery == g.sp.UniqueEvery-1 {
			owners := st.principals[1]
			fc, _ := st.role("Full Control")
			rd, _ := st.role("Read")
			it.perms = &scope{assignments: []assignment{
				{owners, []*roleDef{fc}},
				{g.users[(i/g.sp.UniqueEvery)%len(g.users)], []*roleDef{rd}},
			}}
		}
	}
}
