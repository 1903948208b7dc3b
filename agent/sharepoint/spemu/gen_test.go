package spemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGenerateDeterministic(t *testing.T) {
	spec := Spec{Seed: 42, Sites: 2, WebsPerSite: 2, Libraries: 2, Lists: 1, ItemsPerList: 40, FolderDepth: 2, FolderBreadth: 2}
	snap := func(sp Spec, opts Options) []Entry {
		s := New(opts)
		if err := s.Generate(sp); err != nil {
			t.Fatal(err)
		}
		return s.Snapshot()
	}
	a := snap(spec, Options{})
	b := snap(spec, Options{Seed: 99, Now: func() time.Time { return time.Unix(0, 0) }})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same Spec, different snapshots")
	}
	spec.Seed++
	if c := snap(spec, Options{}); reflect.DeepEqual(a, c) {
		t.Fatal("another seed gave the same snapshot")
	}
	if !slices.IsSortedFunc(a, func(x, y Entry) int { return strings.Compare(x.FileRef, y.FileRef) }) {
		t.Error("snapshot not sorted by FileRef")
	}
	kinds := map[Kind]int{}
	refs := map[string]bool{}
	for _, en := range a {
		kinds[en.Kind]++
		if refs[en.FileRef] {
			t.Errorf("FileRef %s twice", en.FileRef)
		}
		refs[en.FileRef] = true
		if (en.Kind == KindFile) != (en.SHA256 != "") {
			t.Errorf("%s: kind %s with SHA %q", en.FileRef, en.Kind, en.SHA256)
		}
		if strings.Contains(en.FileRef, "TaxonomyHiddenList") {
			t.Errorf("hidden list item %s in snapshot", en.FileRef)
		}
		if len(en.Readers) == 0 {
			t.Errorf("%s has no readers", en.FileRef)
		}
	}
	// 2 sites x 3 webs: 2 libraries of 40 files, 6 folders and the awkward set, 1 list of 40 items and 6 folders.
	perWebFiles := 2 * (40 + len(AwkwardNames()) + 1)
	if want := 2 * 3 * perWebFiles; kinds[KindFile] != want {
		t.Errorf("files: got %d, want %d", kinds[KindFile], want)
	}
	if want := 2 * 3 * 40; kinds[KindItem] != want {
		t.Errorf("items: got %d, want %d", kinds[KindItem], want)
	}
	if want := 2 * 3 * (2*(6+1) + 6); kinds[KindFolder] != want {
		t.Errorf("folders: got %d, want %d", kinds[KindFolder], want)
	}
}

func TestGeneratedPermissions(t *testing.T) {
	s := New(Options{})
	if err := s.Generate(Spec{Seed: 43, ItemsPerList: 50, FolderDepth: 1, FolderBreadth: 2, UniqueEvery: 10, PlainNames: true, WebsPerSite: 2}); err != nil {
		t.Fatal(err)
	}
	by := map[string]Entry{}
	for _, en := range s.Snapshot() {
		by[en.FileRef] = en
	}
	const lib = "/sites/site0/Shared Documents/"
	const finance = "c:0+.w|s-1-5-21-2127521184-1604012920-1887927527-1105"
	tests := []struct {
		name, ref string
		want      []string
	}{
		{"inherits the web: SharePoint groups expanded", lib + "Document 00003.pdf", []string{
			`i:0#.w|contoso\user01`, `i:0#.w|contoso\user02`, `i:0#.w|contoso\user03`, `i:0#.w|contoso\user04`,
			`i:0#.w|contoso\user05`, `i:0#.w|contoso\user06`, `i:0#.w|contoso\user07`, `i:0#.w|contoso\user08`}},
		{"unique item: owners and one reader", lib + "Document 00009.xlsx", []string{`i:0#.w|contoso\user01`}},
		{"unique item with another reader", lib + "Document 00039.json", []string{`i:0#.w|contoso\user01`, `i:0#.w|contoso\user04`}},
		{"unique folder without visitors, owner added", lib + "Folder 1.0.0", []string{
			`i:0#.w|contoso\user01`, `i:0#.w|contoso\user02`, `i:0#.w|contoso\user03`, `i:0#.w|contoso\user04`}},
		{"child of the unique folder inherits it", lib + "Folder 1.0.0/Document 00001.xlsx", []string{
			`i:0#.w|contoso\user01`, `i:0#.w|contoso\user02`, `i:0#.w|contoso\user03`, `i:0#.w|contoso\user04`}},
		{"unique sub-web drops visitors", "/sites/site0/web1/Shared Documents/Document 00003.pdf", []string{
			`i:0#.w|contoso\user01`, `i:0#.w|contoso\user02`, `i:0#.w|contoso\user03`, `i:0#.w|contoso\user04`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			en, ok := by[tt.ref]
			if !ok {
				t.Fatalf("%s not generated", tt.ref)
			}
			if !slices.Equal(en.Readers, tt.want) {
				t.Errorf("readers: got %v, want %v", en.Readers, tt.want)
			}
		})
	}
	if got := by[lib+"Document 00003.pdf"].ReaderEmails; len(got) != 8 || !slices.Contains(got, "user05@contoso.com") {
		t.Errorf("emails: %v", got)
	}
	if got := by[lib+"Document 00003.pdf"].ReaderGroups; !slices.Equal(got, []string{finance}) {
		t.Errorf("AD groups reading through Visitors: got %v, want %v", got, []string{finance})
	}
	if got := by[lib+"Document 00009.xlsx"].ReaderGroups; len(got) != 0 {
		t.Errorf("AD groups of a unique item: %v", got)
	}
	t.Run("permission mutations change readers", func(t *testing.T) {
		ref := lib + "Document 00003.pdf"
		if err := s.SetPermissions(ref, Grant{Login: "user07", Role: "Read"}, Grant{Login: "Site 0 Owners", Role: "Limited Access"}); err != nil {
			t.Fatal(err)
		}
		if got := snapshotOf(t, s, ref).Readers; !slices.Equal(got, []string{`i:0#.w|contoso\user07`}) {
			t.Errorf("after SetPermissions (Limited Access does not read): %v", got)
		}
		if err := s.AddGroupMember("/sites/site0", "Site 0 Visitors", "user01"); err != nil {
			t.Fatal(err)
		}
		if err := s.ResetInheritance(ref); err != nil {
			t.Fatal(err)
		}
		if got := snapshotOf(t, s, ref).Readers; len(got) != 8 {
			t.Errorf("after ResetInheritance: %v", got)
		}
	})
}

func snapshotOf(t *testing.T, s *Server, ref string) Entry {
	t.Helper()
	for _, en := range s.Snapshot() {
		if en.FileRef == ref {
			return en
		}
	}
	t.Fatalf("%s not in snapshot", ref)
	return Entry{}
}

func TestMutationsAndSnapshot(t *testing.T) {
	s := New(Options{})
	if err := s.Generate(Spec{Seed: 44, ItemsPerList: 12, Libraries: 2, Lists: 1, FolderDepth: 2, FolderBreadth: 2, PlainNames: true}); err != nil {
		t.Fatal(err)
	}
	const lib = "/sites/site0/Shared Documents"
	count := func(prefix string) int {
		n := 0
		for _, en := range s.Snapshot() {
			if strings.HasPrefix(en.FileRef, prefix) {
				n++
			}
		}
		return n
	}
	before := count(lib + "/Folder 1.0.0/")
	t.Run("rename folder moves descendants", func(t *testing.T) {
		if _, err := s.Rename(lib+"/Folder 1.0.0", "Renamed"); err != nil {
			t.Fatal(err)
		}
		if got := count(lib + "/Renamed/"); got != before || count(lib+"/Folder 1.0.0/") != 0 {
			t.Errorf("descendants under new name: %d, want %d", got, before)
		}
		if _, err := s.Lookup(lib + "/Renamed/Folder 2.0.0/Document 00003.pdf"); err != nil {
			t.Error(err)
		}
	})
	t.Run("update bumps version and content", func(t *testing.T) {
		ref := lib + "/Renamed/Document 00001.xlsx"
		old := snapshotOf(t, s, ref)
		it, err := s.UpdateFile(ref, FileSpec{Size: old.Size})
		if err != nil || it.Version != "2.0" {
			t.Fatalf("UpdateFile: %+v %v", it, err)
		}
		if now := snapshotOf(t, s, ref); now.SHA256 == old.SHA256 || now.Version != "2.0" || now.UniqueID != old.UniqueID {
			t.Errorf("after update: %+v, before %+v", now, old)
		}
	})
	t.Run("delete folder and restore subtree", func(t *testing.T) {
		ids := map[string]int{}
		for _, en := range s.Snapshot() {
			if strings.HasPrefix(en.FileRef, lib+"/Renamed") {
				ids[en.FileRef] = en.ItemID
			}
		}
		if err := s.DeleteFolder(lib + "/Renamed"); err != nil {
			t.Fatal(err)
		}
		if count(lib+"/Renamed") != 0 {
			t.Fatal("subtree still present")
		}
		if _, err := s.Restore(lib + "/Renamed"); err != nil {
			t.Fatal(err)
		}
		for _, en := range s.Snapshot() {
			if want, ok := ids[en.FileRef]; ok && en.ItemID != want {
				t.Errorf("%s: id %d after restore, want %d", en.FileRef, en.ItemID, want)
			}
			delete(ids, en.FileRef)
		}
		if len(ids) != 0 {
			t.Errorf("not restored: %v", ids)
		}
	})
	t.Run("move to another library renumbers", func(t *testing.T) {
		old := snapshotOf(t, s, lib+"/Renamed/Document 00001.xlsx")
		it, err := s.Move(lib+"/Renamed/Document 00001.xlsx", "/sites/site0/Library 1")
		if err != nil {
			t.Fatal(err)
		}
		if it.ListID == old.ListID || it.UniqueID != old.UniqueID || it.FileRef != "/sites/site0/Library 1/Document 00001.xlsx" {
			t.Errorf("moved: %+v, was %+v", it, old)
		}
	})
	errTests := []struct {
		name string
		do   func() error
		want error
	}{
		{"invalid name", func() error { _, err := s.AddFile(lib, "a:b.txt", FileSpec{}); return err }, ErrInvalidName},
		{"trailing dot", func() error { _, err := s.AddFolder(lib, "x."); return err }, ErrInvalidName},
		{"existing name, other case", func() error { _, err := s.AddFolder(lib, "renamed"); return err }, ErrExists},
		{"file in a generic list", func() error { _, err := s.AddFile("/sites/site0/Lists/Tasks0", "a.txt", FileSpec{}); return err }, ErrWrongKind},
		{"item in a library", func() error { _, err := s.AddItem(lib, "x"); return err }, ErrWrongKind},
		{"missing parent", func() error { _, err := s.AddFile(lib+"/nope", "a.txt", FileSpec{}); return err }, ErrNotFound},
		{"file as parent", func() error {
			_, err := s.AddFile(lib+"/Renamed/Folder 2.0.0/Document 00003.pdf", "a.txt", FileSpec{})
			return err
		}, ErrNotFolder},
		{"move into itself", func() error { _, err := s.Move(lib+"/Renamed", lib+"/Renamed/Folder 2.0.0"); return err }, ErrWrongKind},
		{"assignment on an inheriting item", func() error {
			return s.AddRoleAssignment(lib+"/Renamed/Folder 2.0.0/Document 00003.pdf", "user02", "Read")
		}, ErrInheritsPermissions},
		{"unknown principal", func() error { return s.SetPermissions(lib, Grant{Login: "nobody", Role: "Read"}) }, ErrUnknownPrincipal},
		{"unknown role", func() error { return s.SetPermissions(lib, Grant{Login: "user02", Role: "Owner"}) }, ErrUnknownRole},
		{"restore what was never deleted", func() error { _, err := s.Restore(lib + "/x"); return err }, ErrNotInRecycleBin},
		{"update a folder as a file", func() error { _, err := s.UpdateFile(lib+"/Renamed", FileSpec{}); return err }, ErrWrongKind},
		{"root web cannot inherit", func() error { return s.ResetInheritance("/sites/site0") }, ErrWrongKind},
		{"duplicate site", func() error { _, err := s.AddSite("site0", ""); return err }, ErrExists},
		{"generate over an existing site", func() error { return s.Generate(Spec{}) }, ErrExists},
		{"negative spec", func() error { return s.Generate(Spec{ItemsPerList: -1}) }, ErrInvalidSpec},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestGenerateLargeFilesCostNoMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e := newEnv(t, Options{})
	e.generate(Spec{Seed: 45, ItemsPerList: 3, LargeFiles: 2, PlainNames: true})
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<20 {
		t.Errorf("heap grew by %d bytes for two 3 GiB files", grew)
	}
	for i, want := range []string{"3221225472", "3221225473"} {
		ref := fmt.Sprintf("/sites/site0/Shared Documents/Document %05d.%s", i, genExtensions[i])
		_, m := e.getJSON("/sites/site0/_api/web/GetFileByServerRelativeUrl('"+odataLiteral(ref)+"')?$select=Length", nometa)
		if m["Length"] != want {
			t.Errorf("%s Length: got %v, want %s", ref, m["Length"], want)
		}
	}
}

func TestGenerate100kItemsFast(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	s := New(Options{})
	start := time.Now()
	if err := s.Generate(Spec{Seed: 46, ItemsPerList: 100000, FolderDepth: 2, FolderBreadth: 10}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("100,000 files generated in %v", took)
	if took > 15*time.Second { // generous: -race on a small CI machine; about 0.3 s without
		t.Errorf("generation took %v", took)
	}
}

func BenchmarkGenerate100k(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s := New(Options{})
		if err := s.Generate(Spec{Seed: 46, ItemsPerList: 100000, FolderDepth: 2, FolderBreadth: 10}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100000*b.N)/b.Elapsed().Seconds(), "items/s")
}

func BenchmarkContent(b *testing.B) {
	c := content{seed: 7, size: 1 << 20}
	buf := make([]byte, 32<<10)
	b.SetBytes(c.size)
	b.ReportAllocs()
	for b.Loop() {
		io.CopyBuffer(io.Discard, c.reader(), buf)
	}
}

func TestContentReadAt(t *testing.T) {
	c := content{seed: 5, size: 1000}
	whole := make([]byte, 1000)
	if n, err := c.ReadAt(whole, 0); n != 1000 || err != nil {
		t.Fatalf("ReadAt whole: %d %v", n, err)
	}
	for _, tt := range []struct {
		off, n int64
		wantN  int
		wantEO bool
	}{{0, 1, 1, false}, {3, 13, 13, false}, {7, 9, 9, false}, {990, 20, 10, true}, {1000, 5, 0, true}, {999, 1, 1, false}} {
		p := make([]byte, tt.n)
		n, err := c.ReadAt(p, tt.off)
		if n != tt.wantN || (err == io.EOF) != tt.wantEO {
			t.Errorf("ReadAt(%d, %d): %d %v", tt.off, tt.n, n, err)
		}
		if string(p[:n]) != string(whole[tt.off:tt.off+int64(n)]) {
			t.Errorf("ReadAt(%d, %d) differs from the whole read", tt.off, tt.n)
		}
	}
	if _, err := c.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("negative offset accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"zero value", Options{}, true},
		{"ntlm with users", Options{Auth: AuthNTLM, Users: map[string]string{"a": "b"}}, true},
		{"ntlm without users", Options{Auth: AuthNTLM}, false},
		{"negative retention", Options{Retention: -time.Hour}, false},
		{"health score 11", Options{HealthScore: 11}, false},
		{"unknown version", Options{Version: 9}, false},
		{"unknown threshold mode", Options{Threshold: 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidOptions)) {
				t.Errorf("Validate: %v, want ok=%v", err, tt.ok)
			}
			New(tt.o) // never fails
		})
	}
}

func TestStartServeClose(t *testing.T) {
	s := New(Options{Logger: testLogger(t)})
	if _, err := s.AddSite("x", "X"); err != nil {
		t.Fatal(err)
	}
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/sites/x/_api/web")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(Options{}).Serve(ctx, ln) }()
	resp, err = http.Get("http://" + ln.Addr().String() + "/_api/web")
	if err != nil || resp.StatusCode != 404 {
		t.Errorf("no root site: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
