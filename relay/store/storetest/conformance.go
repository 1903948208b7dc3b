package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/relay/store"
)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Blobs", testBlobs},
		{"BlobMismatch", testBlobMismatch},
		{"BlobReadError", testBlobReadError},
		{"ApplyChanges", testApplyChanges},
		{"DeletePrefix", testDeletePrefix},
		{"DeleteFolders", testDeleteFolders},
		{"Replay", testReplay},
		{"ReplayConflict", testReplayConflict},
		{"MissingBlob", testMissingBlob},
		{"InlineBlobs", testInlineBlobs},
		{"InvalidInput", testInvalidInput},
		{"FinishGeneration", testFinishGeneration},
		{"TenantIsolation", testTenantIsolation},
		{"Search", testSearch},
		{"SearchACL", testSearchACL},
		{"SearchReindex", testSearchReindex},
		{"Recent", testRecent},
		{"ListPaging", testListPaging},
		{"ListStableUnderWrites", testListStableUnderWrites},
		{"Concurrent", testConcurrent},
		{"Close", testClose},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func testBlobs(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	content := []byte("hello, blob\n")
	sha := SHA256(content)
	for i, want := range []bool{true, false, false} {
		created, size, err := s.PutBlob(ctx, TenantA, sha, bytes.NewReader(content))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if created != want || size != int64(len(content)) {
			t.Errorf("put %d: got created %v size %d, want %v %d", i, created, size, want, len(content))
		}
	}
	rc, size, err := s.OpenBlob(ctx, TenantA, sha)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content) || size != int64(len(content)) {
		t.Errorf("OpenBlob: got %q, %d, %v; want %q, %d", got, size, err, content, len(content))
	}
	empty := SHA256(nil)
	if created, size, err := s.PutBlob(ctx, TenantA, empty, strings.NewReader("")); err != nil || !created || size != 0 {
		t.Errorf("empty blob: got %v %d %v, want created, 0 bytes", created, size, err)
	}
	st, err := s.Stats(ctx, TenantA)
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != 2 || st.BlobBytes != int64(len(content)) {
		t.Errorf("stats: got %d blobs, %d bytes; want 2, %d", st.Blobs, st.BlobBytes, len(content))
	}
	if _, _, err := s.OpenBlob(ctx, TenantA, SHA256([]byte("never stored"))); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenBlob of an unknown blob: got %v, want ErrNotFound", err)
	}
}

func testBlobMismatch(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	want := SHA256([]byte("the real content"))
	_, _, err := s.PutBlob(ctx, TenantA, want, strings.NewReader("something else"))
	var mm *store.HashMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("got %v, want *HashMismatchError", err)
	}
	if mm.Want != want || mm.Got != SHA256([]byte("something else")) || mm.Size != int64(len("something else")) {
		t.Errorf("got %+v, want Want %s, Got the hash of what was sent, Size %d", mm, want, len("something else"))
	}
	if _, _, err := s.OpenBlob(ctx, TenantA, want); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a mismatch, OpenBlob: got %v, want ErrNotFound", err)
	}
	if st, _ := s.Stats(ctx, TenantA); st.Blobs != 0 {
		t.Errorf("after a mismatch, got %d blobs, want 0", st.Blobs)
	}
	// The right content is then accepted as new.
	if created, _, err := s.PutBlob(ctx, TenantA, want, strings.NewReader("the real content")); err != nil || !created {
		t.Errorf("put after mismatch: got created %v, %v; want created", created, err)
	}
}

func testBlobReadError(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	content := bytes.Repeat([]byte("x"), 100000)
	sha := SHA256(content)
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(content[:5000]), iotest.ErrReader(boom))
	if _, _, err := s.PutBlob(ctx, TenantA, sha, r); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the reader's error", err)
	}
	if _, _, err := s.OpenBlob(ctx, TenantA, sha); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after a failed upload, OpenBlob: got %v, want ErrNotFound", err)
	}
	if created, _, err := s.PutBlob(ctx, TenantA, sha, bytes.NewReader(content)); err != nil || !created {
		t.Errorf("retry: got created %v, %v; want created", created, err)
	}
}

// awkward are names that break naive SQL, LIKE patterns and URL handling.
var awkward = []string{
	"O'Brien's #1 100%.docx",
	"under_score.txt",
	"50% off [draft] (v2).xlsx",
	`back\slash "quoted".md`,
	"Ünïcödé – 日本語.pdf",
	"semi;colon -- comment.txt",
}

func testApplyChanges(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	const dir = "/sites/marketing/Shared Documents"
	var ups []ingestapi.Document
	for i, n := range awkward {
		ups = append(ups, Doc(i+1, dir+"/"+n))
	}
	res := Apply(t, s, TenantA, ingestapi.Batch{ID: "b1", Upserts: ups})
	if res != (ingestapi.BatchResult{ID: "b1", Upserted: len(awkward)}) {
		t.Errorf("b1: got %+v", res)
	}
	for _, d := range ups {
		got, err := s.Get(ctx, TenantA, d.Key)
		if err != nil {
			t.Fatalf("Get(%s): %v", d.Key, err)
		}
		if !SameDocs([]ingestapi.Document{got}, []ingestapi.Document{d}) {
			t.Errorf("Get(%s): got %+v, want %+v", d.Key, got, d)
		}
	}

	// Replace item 1 (renamed, new ACL, fields), delete items 2 and a
	// missing one, all in one batch.
	renamed := Doc(1, dir+"/Renamed.docx")
	renamed.Version = "2.0"
	renamed.Fields = map[string]string{"Category": "Plans"}
	renamed.ACL = append(renamed.ACL, ingestapi.ACE{Kind: "group", Login: "Marketing Members"})
	res = Apply(t, s, TenantA, ingestapi.Batch{
		ID:      "b2",
		Upserts: []ingestapi.Document{renamed},
		Deletes: []ingestapi.Key{ups[1].Key, {Site: Site, ListID: ListID, ItemID: 999}},
	})
	if res != (ingestapi.BatchResult{ID: "b2", Upserted: 1, Deleted: 1}) {
		t.Errorf("b2: got %+v, want 1 upserted, 1 deleted", res)
	}
	got, err := s.Get(ctx, TenantA, renamed.Key)
	if err != nil || !SameDocs([]ingestapi.Document{got}, []ingestapi.Document{renamed}) {
		t.Errorf("replaced item: got %+v, %v; want %+v", got, err, renamed)
	}
	if _, err := s.Get(ctx, TenantA, ups[1].Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted item: got %v, want ErrNotFound", err)
	}
	if all := All(t, s, TenantA, "", 0); len(all) != len(awkward)-1 {
		t.Errorf("got %d documents, want %d: %q", len(all), len(awkward)-1, Paths(all))
	}

	// A batch may delete and upsert the same key: deletes run first.
	again := Doc(2, dir+"/back again.txt")
	res = Apply(t, s, TenantA, ingestapi.Batch{ID: "b3", Deletes: []ingestapi.Key{again.Key}, Upserts: []ingestapi.Document{again}})
	if res.Deleted != 0 || res.Upserted != 1 {
		t.Errorf("b3: got %+v, want 0 deleted (it was gone), 1 upserted", res)
	}
	if _, err := s.Get(ctx, TenantA, again.Key); err != nil {
		t.Errorf("upsert after delete in one batch: %v", err)
	}

	// A key upserted twice in one batch, new or existing: the last wins,
	// in the listing and in search.
	for i, item := range []int{50, 1} {
		first, last := Doc(item, fmt.Sprintf("%s/zebra %d.txt", dir, i)), Doc(item, fmt.Sprintf("%s/quokka %d.txt", dir, i))
		last.Version = "9.0"
		Apply(t, s, TenantA, ingestapi.Batch{ID: fmt.Sprint("twice-", i), Upserts: []ingestapi.Document{first, last}})
		got, err := s.Get(ctx, TenantA, last.Key)
		if err != nil || !SameDocs([]ingestapi.Document{got}, []ingestapi.Document{last}) {
			t.Errorf("item %d upserted twice: got %+v, %v; want the last", item, got, err)
		}
		if hits, err := s.Search(ctx, TenantA, store.SearchQuery{Text: "zebra"}); err != nil || len(hits) != 0 {
			t.Errorf("item %d upserted twice: search for the first name: got %v, %v; want none", item, hitPaths(hits), err)
		}
		if hits, err := s.Search(ctx, TenantA, store.SearchQuery{Text: fmt.Sprint("quokka ", i)}); err != nil || len(hits) != 1 {
			t.Errorf("item %d upserted twice: search for the last name: got %v, %v; want one", item, hitPaths(hits), err)
		}
	}
}

func testDeletePrefix(t *testing.T, open Opener) {
	const root = "/sites/marketing/Docs"
	paths := []string{
		root + "/a",
		root + "/a/b",
		root + "/a/b/c.txt",
		root + "/a/b/d/e.txt",
		root + "/a/bc",
		root + "/a/bc/x.txt",
		root + "/a/b-c.txt",
		root + "/a/b.txt",
		root + "/a/b0.txt",
		root + "/a/B/upper.txt",
		root + "/O'Brien's #1 100%",
		root + "/O'Brien's #1 100%/inside.docx",
		root + "/O'Brien's #1 100%x/not inside.docx",
		root + "/O'Brien's #1 1000/not inside.docx",
		root + "/under_score",
		root + "/under_score/in.txt",
		root + "/underXscore/out.txt",
		root + "/under_scoreX/out.txt",
	}
	for _, tc := range []struct {
		name   string
		prefix ingestapi.PathPrefix
		want   []string // paths deleted
	}{
		{"folder and everything under it", ingestapi.PathPrefix{Site: Site, Path: root + "/a/b"},
			[]string{root + "/a/b", root + "/a/b/c.txt", root + "/a/b/d/e.txt"}},
		{"trailing slash names the folder", ingestapi.PathPrefix{Site: Site, Path: root + "/a/b/"},
			[]string{root + "/a/b", root + "/a/b/c.txt", root + "/a/b/d/e.txt"}},
		{"one file", ingestapi.PathPrefix{Site: Site, Path: root + "/a/b.txt"}, []string{root + "/a/b.txt"}},
		{"quote, hash and percent are literal", ingestapi.PathPrefix{Site: Site, Path: root + "/O'Brien's #1 100%"},
			[]string{root + "/O'Brien's #1 100%", root + "/O'Brien's #1 100%/inside.docx"}},
		{"underscore is literal", ingestapi.PathPrefix{Site: Site, Path: root + "/under_score"},
			[]string{root + "/under_score", root + "/under_score/in.txt"}},
		{"percent is not a wildcard", ingestapi.PathPrefix{Site: Site, Path: root + "/%"}, nil},
		{"case matters", ingestapi.PathPrefix{Site: Site, Path: root + "/A"}, nil},
		{"other site", ingestapi.PathPrefix{Site: Site + "2", Path: root}, nil},
		{"no such path", ingestapi.PathPrefix{Site: Site, Path: root + "/zzz"}, nil},
		{"whole site", ingestapi.PathPrefix{Site: Site, Path: "/"}, paths},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			var ups []ingestapi.Document
			for i, p := range paths {
				ups = append(ups, Doc(i+1, p))
			}
			Apply(t, s, TenantA, ingestapi.Batch{ID: "fill", Upserts: ups})
			res := Apply(t, s, TenantA, ingestapi.Batch{ID: "del", DeletePrefixes: []ingestapi.PathPrefix{tc.prefix}})
			if res.Deleted != len(tc.want) {
				t.Errorf("got %d deleted, want %d", res.Deleted, len(tc.want))
			}
			var left []string
			for _, p := range paths {
				if !slices.Contains(tc.want, p) {
					left = append(left, p)
				}
			}
			slices.Sort(left)
			if got := SortedPaths(All(t, s, TenantA, "", 0)); !slices.Equal(got, left) {
				t.Errorf("left:\n got %q\nwant %q", got, left)
			}
		})
	}
}

// testDeleteFolders deletes folders by key: each folder's document and
// everything under the path stored for it, whatever path the batch's
// other parts name.
func testDeleteFolders(t *testing.T, open Opener) {
	s := open(t)
	const root = "/sites/marketing/Docs"
	folder := Doc(1, root+"/100% Ready")
	folder.Kind = "folder"
	ups := []ingestapi.Document{folder, Doc(2, root+"/100% Ready/a.txt"), Doc(3, root+"/100% Ready/sub/b.txt"),
		Doc(4, root+"/100% Ready-not inside.txt"), Doc(5, root+"/Renamed/c.txt")}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "fill", Upserts: ups})
	res := Apply(t, s, TenantA, ingestapi.Batch{ID: "del", DeletePrefixes: []ingestapi.PathPrefix{{Site: Site, Path: root + "/Renamed"}},
		DeleteFolders: []ingestapi.Key{folder.Key, {Site: Site, ListID: ListID, ItemID: 99}}})
	if res.Deleted != 4 {
		t.Errorf("got %d deleted, want 4: the folder, its two files, and the file under the prefix", res.Deleted)
	}
	if got := SortedPaths(All(t, s, TenantA, "", 0)); !slices.Equal(got, []string{root + "/100% Ready-not inside.txt"}) {
		t.Errorf("left %q, want only the sibling whose name starts like the folder's", got)
	}
	if _, err := s.Apply(t.Context(), TenantA, ingestapi.Batch{ID: "bad", DeleteFolders: []ingestapi.Key{{Site: Site}}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a folder key without list and item: got %v, want ErrInvalid", err)
	}
}

func testReplay(t *testing.T, open Opener) {
	s := open(t)
	b1 := ingestapi.Batch{ID: "same-id", Upserts: []ingestapi.Document{Doc(1, "/x/one.txt"), Doc(2, "/x/two.txt")},
		Deletes: []ingestapi.Key{{Site: Site, ListID: ListID, ItemID: 3}}}
	first := Apply(t, s, TenantA, b1)
	// Change the store after b1, then replay b1: nothing may revert.
	Apply(t, s, TenantA, ingestapi.Batch{ID: "later", Deletes: []ingestapi.Key{{Site: Site, ListID: ListID, ItemID: 1}}})
	before := Take(t, s, TenantA)
	for i := range 3 {
		again := Apply(t, s, TenantA, b1)
		want := first
		want.Duplicate = true
		if again != want {
			t.Errorf("replay %d: got %+v, want %+v", i, again, want)
		}
	}
	if after := Take(t, s, TenantA); !after.Equal(before) {
		t.Errorf("replay changed the store:\n got %+v\nwant %+v", after, before)
	}
}

func testReplayConflict(t *testing.T, open Opener) {
	s := open(t)
	Apply(t, s, TenantA, ingestapi.Batch{ID: "b", Upserts: []ingestapi.Document{Doc(1, "/x/one.txt")}})
	before := Take(t, s, TenantA)
	_, err := s.Apply(t.Context(), TenantA, ingestapi.Batch{ID: "b", Upserts: []ingestapi.Document{Doc(2, "/x/two.txt")}})
	var ce *store.BatchConflictError
	if !errors.As(err, &ce) || ce.ID != "b" {
		t.Fatalf("got %v, want *BatchConflictError for b", err)
	}
	if after := Take(t, s, TenantA); !after.Equal(before) {
		t.Errorf("a conflicting batch changed the store")
	}
}

func testMissingBlob(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	have := PutBlob(t, s, TenantA, []byte("uploaded"))
	lost := []byte("not uploaded")
	d0, d1, d2 := Doc(1, "/x/ok.txt"), Doc(2, "/x/lost.txt"), Doc(3, "/x/lost too.bin")
	d0.ContentSHA256 = have
	d1.ContentSHA256 = SHA256(lost)
	d2.ContentSHA256 = SHA256(lost)
	b := ingestapi.Batch{ID: "needs-blobs", Upserts: []ingestapi.Document{d0, d1, d2},
		Deletes: []ingestapi.Key{{Site: Site, ListID: ListID, ItemID: 9}}}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "seed", Upserts: []ingestapi.Document{Doc(9, "/x/nine.txt")}})
	before := Take(t, s, TenantA)
	_, err := s.Apply(ctx, TenantA, b)
	var mb *store.MissingBlobError
	if !errors.As(err, &mb) {
		t.Fatalf("got %v, want *MissingBlobError", err)
	}
	want := []store.MissingBlob{{Upsert: 1, SHA256: SHA256(lost)}, {Upsert: 2, SHA256: SHA256(lost)}}
	if !slices.Equal(mb.Missing, want) {
		t.Errorf("missing: got %+v, want %+v", mb.Missing, want)
	}
	if after := Take(t, s, TenantA); !after.Equal(before) {
		t.Errorf("a refused batch changed the store:\n got %+v\nwant %+v", after, before)
	}
	// Once the blob is uploaded, the same batch applies: the refusal was not recorded.
	PutBlob(t, s, TenantA, lost)
	res := Apply(t, s, TenantA, b)
	if res.Duplicate || res.Upserted != 3 || res.Deleted != 1 {
		t.Errorf("after upload: got %+v, want 3 upserted, 1 deleted, not a duplicate", res)
	}
}

// testInlineBlobs stores small content carried in batches: readable as a
// blob, searchable, counted, usable by later batches and by PutBlob, and
// all or nothing with the batch.
func testInlineBlobs(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	text := []byte("quarterly pumpernickel forecast\n")
	bin := []byte{0, 1, 2, 3}
	d1, d2 := Doc(1, "/x/forecast.txt"), Doc(2, "/x/raw.bin")
	d1.ContentSHA256, d2.ContentSHA256 = SHA256(text), SHA256(bin)
	b := ingestapi.Batch{ID: "inline", Upserts: []ingestapi.Document{d1, d2},
		Blobs: []ingestapi.InlineBlob{{SHA256: SHA256(text), Data: text}, {SHA256: SHA256(bin), Data: bin}, {SHA256: SHA256(nil)}}}
	if res := Apply(t, s, TenantA, b); res.Upserted != 2 || res.Duplicate {
		t.Fatalf("got %+v, want 2 upserted", res)
	}
	for _, want := range [][]byte{text, bin, {}} {
		rc, size, err := s.OpenBlob(ctx, TenantA, SHA256(want))
		if err != nil {
			t.Fatalf("OpenBlob %q: %v", want, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) || size != int64(len(want)) {
			t.Errorf("OpenBlob: got %q, %d, %v; want %q", got, size, err, want)
		}
	}
	if hits, err := s.Search(ctx, TenantA, store.SearchQuery{Text: "pumpernickel"}); err != nil || len(hits) != 1 || hits[0].Document.Key != d1.Key {
		t.Errorf("search for inline text: got %v, %v; want %s", hitPaths(hits), err, d1.Path)
	}
	if st, err := s.Stats(ctx, TenantA); err != nil || st.Blobs != 3 || st.BlobBytes != int64(len(text)+len(bin)) {
		t.Errorf("stats: got %+v, %v; want 3 blobs of %d bytes", st, err, len(text)+len(bin))
	}
	// A replay with the same blobs is a duplicate; one with other blobs a conflict.
	if res := Apply(t, s, TenantA, b); !res.Duplicate {
		t.Errorf("replay: got %+v, want a duplicate", res)
	}
	other := b
	other.Blobs = b.Blobs[:2]
	var conflict *store.BatchConflictError
	if _, err := s.Apply(ctx, TenantA, other); !errors.As(err, &conflict) {
		t.Errorf("the same ID with other blobs: got %v, want *BatchConflictError", err)
	}
	// A later batch names the stored content without carrying it, and its
	// text is still indexed.
	d3 := Doc(3, "/x/copy.txt")
	d3.ContentSHA256 = SHA256(text)
	Apply(t, s, TenantA, ingestapi.Batch{ID: "later", Upserts: []ingestapi.Document{d3}})
	if hits, err := s.Search(ctx, TenantA, store.SearchQuery{Text: "pumpernickel"}); err != nil || len(hits) != 2 {
		t.Errorf("search after a batch reusing inline content: got %v, %v; want 2 hits", hitPaths(hits), err)
	}
	// PutBlob of content already carried inline stores nothing new.
	if created, size, err := s.PutBlob(ctx, TenantA, SHA256(text), bytes.NewReader(text)); err != nil || created || size != int64(len(text)) {
		t.Errorf("PutBlob of inline content: got created %v size %d, %v; want not created, %d", created, size, err, len(text))
	}
	// A refused batch stores none of its blobs.
	lost := []byte("carried by a refused batch")
	d4 := Doc(4, "/x/four.txt")
	d4.ContentSHA256 = SHA256([]byte("never sent"))
	_, err := s.Apply(ctx, TenantA, ingestapi.Batch{ID: "refused", Upserts: []ingestapi.Document{d4},
		Blobs: []ingestapi.InlineBlob{{SHA256: SHA256(lost), Data: lost}}})
	var mb *store.MissingBlobError
	if !errors.As(err, &mb) {
		t.Fatalf("got %v, want *MissingBlobError", err)
	}
	if _, _, err := s.OpenBlob(ctx, TenantA, SHA256(lost)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a blob of a refused batch: got %v, want ErrNotFound", err)
	}
	// Tenants do not share inline content.
	if _, _, err := s.OpenBlob(ctx, TenantB, SHA256(text)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another tenant's inline blob: got %v, want ErrNotFound", err)
	}
}

func testInvalidInput(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	sha := SHA256([]byte("x"))
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"put blob, tenant with a slash", func() error {
			_, _, err := s.PutBlob(ctx, "../acme", sha, strings.NewReader("x"))
			return err
		}},
		{"put blob, empty tenant", func() error {
			_, _, err := s.PutBlob(ctx, "", sha, strings.NewReader("x"))
			return err
		}},
		{"put blob, upper-case sha", func() error {
			_, _, err := s.PutBlob(ctx, TenantA, strings.ToUpper(sha), strings.NewReader("x"))
			return err
		}},
		{"put blob, short sha", func() error {
			_, _, err := s.PutBlob(ctx, TenantA, sha[:10], strings.NewReader("x"))
			return err
		}},
		{"open blob, path sha", func() error {
			_, _, err := s.OpenBlob(ctx, TenantA, "../../etc/passwd")
			return err
		}},
		{"apply, no id", func() error {
			_, err := s.Apply(ctx, TenantA, ingestapi.Batch{Upserts: []ingestapi.Document{Doc(1, "/a")}})
			return err
		}},
		{"apply, relative path", func() error {
			_, err := s.Apply(ctx, TenantA, ingestapi.Batch{ID: "x", Upserts: []ingestapi.Document{Doc(1, "a")}})
			return err
		}},
		{"apply, inline blob that does not hash to its sha256", func() error {
			_, err := s.Apply(ctx, TenantA, ingestapi.Batch{ID: "x", Blobs: []ingestapi.InlineBlob{{SHA256: sha, Data: []byte("y")}}})
			return err
		}},
		{"apply, inline blob over the size limit", func() error {
			big := bytes.Repeat([]byte("z"), ingestapi.MaxInlineBlobBytes+1)
			_, err := s.Apply(ctx, TenantA, ingestapi.Batch{ID: "x", Blobs: []ingestapi.InlineBlob{{SHA256: SHA256(big), Data: big}}})
			return err
		}},
		{"apply, inline blobs over the batch limit", func() error {
			var bs []ingestapi.InlineBlob
			for i := 0; i*ingestapi.MaxInlineBlobBytes <= ingestapi.MaxInlineBatchBytes; i++ {
				d := bytes.Repeat([]byte{byte(i)}, ingestapi.MaxInlineBlobBytes)
				bs = append(bs, ingestapi.InlineBlob{SHA256: SHA256(d), Data: d})
			}
			_, err := s.Apply(ctx, TenantA, ingestapi.Batch{ID: "x", Blobs: bs})
			return err
		}},
		{"apply, tenant upper-case", func() error {
			_, err := s.Apply(ctx, "ACME", ingestapi.Batch{ID: "x"})
			return err
		}},
		{"finish, no generation", func() error {
			_, err := s.FinishGeneration(ctx, TenantA, ingestapi.Generation{Site: Site})
			return err
		}},
		{"finish, no site", func() error {
			_, err := s.FinishGeneration(ctx, TenantA, ingestapi.Generation{Generation: "g1"})
			return err
		}},
		{"list, bad cursor", func() error {
			_, err := s.List(ctx, TenantA, store.ListQuery{Cursor: "!!not a cursor"})
			return err
		}},
		{"list, negative limit", func() error {
			_, err := s.List(ctx, TenantA, store.ListQuery{Limit: -1})
			return err
		}},
		{"search, negative limit", func() error {
			_, err := s.Search(ctx, TenantA, store.SearchQuery{Text: "x", Limit: -1})
			return err
		}},
		{"get, bad tenant", func() error {
			_, err := s.Get(ctx, "a b", ingestapi.Key{Site: Site, ListID: ListID, ItemID: 1})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
	if st, err := s.Stats(ctx, TenantA); err != nil || st != (store.Stats{}) {
		t.Errorf("after invalid calls: got %+v, %v; want an empty store", st, err)
	}
}

func testFinishGeneration(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	other := Site + "/sub"
	var ups []ingestapi.Document
	for i := 1; i <= 6; i++ {
		d := Doc(i, fmt.Sprintf("/x/%d.txt", i))
		if i%2 == 0 {
			d.Generation = "g2"
		}
		ups = append(ups, d)
	}
	o := Doc(1, "/other/old.txt") // same list and item, other site, old generation
	o.Site = other
	ups = append(ups, o)
	Apply(t, s, TenantA, ingestapi.Batch{ID: "fill", Upserts: ups})

	res, err := s.FinishGeneration(ctx, TenantA, ingestapi.Generation{Site: Site, Generation: "g2"})
	if err != nil || res.Deleted != 3 {
		t.Fatalf("got %+v, %v; want 3 deleted", res, err)
	}
	if got, want := SortedPaths(All(t, s, TenantA, Site, 0)), []string{"/x/2.txt", "/x/4.txt", "/x/6.txt"}; !slices.Equal(got, want) {
		t.Errorf("site left: got %q, want %q", got, want)
	}
	if got := All(t, s, TenantA, other, 0); len(got) != 1 {
		t.Errorf("other site: got %q, want its one document untouched", Paths(got))
	}
	// A late retry of g2 after g3 has written must not delete g3's work.
	d := Doc(7, "/x/7.txt")
	d.Generation = "g3"
	Apply(t, s, TenantA, ingestapi.Batch{ID: "g3-1", Upserts: []ingestapi.Document{d}})
	again, err := s.FinishGeneration(ctx, TenantA, ingestapi.Generation{Site: Site, Generation: "g2"})
	if err != nil || again != res {
		t.Errorf("retry: got %+v, %v; want the first result %+v", again, err, res)
	}
	if _, err := s.Get(ctx, TenantA, d.Key); err != nil {
		t.Errorf("retry of g2 deleted g3's document: %v", err)
	}
	if res, err := s.FinishGeneration(ctx, TenantA, ingestapi.Generation{Site: Site, Generation: "g3"}); err != nil || res.Deleted != 3 {
		t.Errorf("g3: got %+v, %v; want 3 deleted", res, err)
	}
}

func testTenantIsolation(t *testing.T, open Opener) {
	s := open(t)
	ctx := t.Context()
	secret := []byte("acme secret plan: zeppelin")
	sha := PutBlob(t, s, TenantA, secret)
	d := Doc(1, "/x/plan.txt")
	d.ContentSHA256 = sha
	d.ContentType = "text/plain"
	Apply(t, s, TenantA, ingestapi.Batch{ID: "b1", Upserts: []ingestapi.Document{d}})
	a := Take(t, s, TenantA)

	if _, err := s.Get(ctx, TenantB, d.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B Get A's document: got %v, want ErrNotFound", err)
	}
	if docs := All(t, s, TenantB, "", 0); len(docs) != 0 {
		t.Errorf("B List: got %q, want nothing", Paths(docs))
	}
	for _, q := range []string{"zeppelin", "plan"} {
		if hits, err := s.Search(ctx, TenantB, store.SearchQuery{Text: q}); err != nil || len(hits) != 0 {
			t.Errorf("B Search %q: got %d hits, %v; want none", q, len(hits), err)
		}
	}
	if _, _, err := s.OpenBlob(ctx, TenantB, sha); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("B OpenBlob A's blob: got %v, want ErrNotFound", err)
	}
	// B cannot reference A's blob, and A's batch IDs are not B's.
	_, err := s.Apply(ctx, TenantB, ingestapi.Batch{ID: "b1", Upserts: []ingestapi.Document{d}})
	var mb *store.MissingBlobError
	if !errors.As(err, &mb) {
		t.Errorf("B naming A's blob: got %v, want *MissingBlobError", err)
	}
	res := Apply(t, s, TenantB, ingestapi.Batch{ID: "b1", Deletes: []ingestapi.Key{d.Key},
		DeletePrefixes: []ingestapi.PathPrefix{{Site: Site, Path: "/"}}})
	if res.Duplicate || res.Deleted != 0 {
		t.Errorf("B batch b1: got %+v, want a fresh batch deleting nothing", res)
	}
	if _, err := s.FinishGeneration(ctx, TenantB, ingestapi.Generation{Site: Site, Generation: "other"}); err != nil {
		t.Fatal(err)
	}
	// B's own blob of the same content is B's: uploading it is new.
	if created, _, err := s.PutBlob(ctx, TenantB, sha, bytes.NewReader(secret)); err != nil || !created {
		t.Errorf("B PutBlob of the same content: got created %v, %v; want created", created, err)
	}
	if after := Take(t, s, TenantA); !after.Equal(a) {
		t.Errorf("B's calls changed A's data:\n got %+v\nwant %+v", after, a)
	}
	if st, _ := s.Stats(ctx, TenantB); st.Documents != 0 || st.Blobs != 1 || st.Batches != 1 {
		t.Errorf("B stats: got %+v, want 0 documents, 1 blob, 1 batch", st)
	}
}

// searchFixture stores documents with content of several types.
func searchFixture(t *testing.T, s store.Store) {
	t.Helper()
	type file struct {
		path, ctype, content, title string
	}
	files := []file{
		{"/docs/notes.txt", "text/plain; charset=utf-8", "The quarterly budget for the aardvark project.", ""},
		{"/docs/readme.md", "", "# Setup\nInstall the *wombat* tool.", ""},
		{"/docs/page.html", "text/html", `<html><head><title>Intranet</title><script>var pangolin = 1;</script>
			<style>.okapi{}</style></head><body><p>Welcome to the <b>narwhal</b> &amp; friends page</p></body></html>`, ""},
		{"/docs/data.json", "application/json", `{"animal": "axolotl"}`, ""},
		{"/docs/table.csv", "text/csv", "name,kind\nquokka,marsupial\n", ""},
		{"/docs/Report.pdf", "application/pdf", "%PDF-1.7 capybara", ""},
		{"/docs/Zebra crossing.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "PK binary", "Traffic plan"},
		{"/docs/O'Brien's #1 100%.docx", "", "", "Quarterly"},
	}
	var ups []ingestapi.Document
	for i, f := range files {
		d := Doc(i+1, f.path)
		d.ContentType = f.ctype
		d.Title = f.title
		if f.content != "" {
			d.ContentSHA256 = PutBlob(t, s, TenantA, []byte(f.content))
		}
		ups = append(ups, d)
	}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "search-fixture", Upserts: ups})
}

func hitPaths(hits []store.Hit) []string {
	var ps []string
	for _, h := range hits {
		ps = append(ps, h.Document.Path)
	}
	slices.Sort(ps)
	return ps
}

func testSearch(t *testing.T, open Opener) {
	s := open(t)
	searchFixture(t, s)
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"aardvark", []string{"/docs/notes.txt"}},
		{"AARDVARK budget", []string{"/docs/notes.txt"}},
		{"aardvark wombat", nil}, // every word must match
		{"wombat", []string{"/docs/readme.md"}},
		{"narwhal friends", []string{"/docs/page.html"}},
		{"intranet", []string{"/docs/page.html"}},
		{"pangolin", nil}, // script text is not content
		{"okapi", nil},    // neither is style
		{"html", []string{"/docs/page.html"}},
		{"axolotl", []string{"/docs/data.json"}},
		{"quokka", []string{"/docs/table.csv"}},
		{"capybara", nil}, // PDF content is not extracted
		{"report", []string{"/docs/Report.pdf"}},
		{"zebra", []string{"/docs/Zebra crossing.docx"}},
		{"traffic", []string{"/docs/Zebra crossing.docx"}}, // title
		{"quarterly", []string{"/docs/O'Brien's #1 100%.docx", "/docs/notes.txt"}},
		{"O'Brien's", []string{"/docs/O'Brien's #1 100%.docx"}},
		{"docs", []string{"/docs/O'Brien's #1 100%.docx", "/docs/Report.pdf", "/docs/Zebra crossing.docx",
			"/docs/data.json", "/docs/notes.txt", "/docs/page.html", "/docs/readme.md", "/docs/table.csv"}}, // path
		// FTS5 syntax in the query is inert.
		{`"`, nil},
		{`aardvark"`, []string{"/docs/notes.txt"}},
		{"aardvark OR wombat", nil},
		{"NEAR(aardvark wombat)", nil},
		{"* ^ : - + ( )", nil},
		{"aard*", nil},
		{"title:aardvark", nil},
		{"aardvark\x00budget", []string{"/docs/notes.txt"}},
		{"", nil},
		{"   ", nil},
	} {
		t.Run(tc.text, func(t *testing.T) {
			hits, err := s.Search(t.Context(), TenantA, store.SearchQuery{Text: tc.text})
			if err != nil {
				t.Fatalf("Search(%q): %v", tc.text, err)
			}
			if got := hitPaths(hits); !slices.Equal(got, tc.want) {
				t.Errorf("Search(%q): got %q, want %q", tc.text, got, tc.want)
			}
		})
	}
	hits, err := s.Search(t.Context(), TenantA, store.SearchQuery{Text: "aardvark"})
	if err != nil || len(hits) != 1 || !strings.Contains(hits[0].Snippet, "aardvark") {
		t.Errorf("snippet: got %+v, %v; want one hit whose snippet shows the word", hits, err)
	}
	if hits, _ := s.Search(t.Context(), TenantA, store.SearchQuery{Text: "docs", Limit: 3}); len(hits) != 3 {
		t.Errorf("limit 3: got %d hits", len(hits))
	}
	// The name weighs more than the content.
	hits, err = s.Search(t.Context(), TenantA, store.SearchQuery{Text: "quarterly"})
	if err != nil || len(hits) != 2 || hits[0].Score < hits[1].Score {
		t.Errorf("ranking: got %+v, %v; want hits in descending score", hits, err)
	}
}

func testSearchACL(t *testing.T, open Opener) {
	s := open(t)
	mk := func(item int, name string, acl ...ingestapi.ACE) ingestapi.Document {
		d := Doc(item, "/acl/"+name)
		d.ACL = acl
		return d
	}
	sarah := ingestapi.ACE{Kind: "user", Login: `i:0#.w|corp\sarah`, Email: "Sarah@Corp.Example"}
	john := ingestapi.ACE{Kind: "user", Login: `i:0#.w|corp\john`, Email: "john@corp.example"}
	noMail := ingestapi.ACE{Kind: "user", Login: `i:0#.w|corp\svc`}
	members := ingestapi.ACE{Kind: "group", Login: "Marketing Members"}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "acl", Upserts: []ingestapi.Document{
		mk(1, "sarah memo.txt", sarah),
		mk(2, "john memo.txt", john),
		mk(3, "shared memo.txt", sarah, john),
		mk(4, "group memo.txt", members),
		mk(5, "service memo.txt", noMail),
		mk(6, "nobody memo.txt"),
	}})
	all := []string{"/acl/group memo.txt", "/acl/john memo.txt", "/acl/nobody memo.txt", "/acl/sarah memo.txt", "/acl/service memo.txt", "/acl/shared memo.txt"}
	for _, tc := range []struct {
		name       string
		principals []string
		want       []string
	}{
		{"no principals: no trimming", nil, all},
		{"email, any case", []string{"sarah@corp.example"}, []string{"/acl/sarah memo.txt", "/acl/shared memo.txt"}},
		{"login", []string{`I:0#.W|CORP\JOHN`}, []string{"/acl/john memo.txt", "/acl/shared memo.txt"}},
		{"group title", []string{"marketing members"}, []string{"/acl/group memo.txt"}},
		{"user and groups", []string{"sarah@corp.example", "Marketing Members"}, []string{"/acl/group memo.txt", "/acl/sarah memo.txt", "/acl/shared memo.txt"}},
		{"login only ACE", []string{`i:0#.w|corp\svc`}, []string{"/acl/service memo.txt"}},
		{"stranger", []string{"mallory@evil.example"}, nil},
		{"blank principal sees nothing", []string{"  "}, nil},
		{"json in a principal is data", []string{`"]`, `sarah@corp.example"]`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits, err := s.Search(t.Context(), TenantA, store.SearchQuery{Text: "memo", Principals: tc.principals})
			if err != nil {
				t.Fatal(err)
			}
			if got := hitPaths(hits); !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// Replacing a document replaces its ACL.
	Apply(t, s, TenantA, ingestapi.Batch{ID: "acl2", Upserts: []ingestapi.Document{mk(1, "sarah memo.txt", john)}})
	hits, err := s.Search(t.Context(), TenantA, store.SearchQuery{Text: "memo", Principals: []string{"sarah@corp.example"}})
	if got, want := hitPaths(hits), []string{"/acl/shared memo.txt"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("after ACL change: got %q, %v; want %q", got, err, want)
	}
}

func testSearchReindex(t *testing.T, open Opener) {
	s := open(t)
	d := Doc(1, "/r/doc.txt")
	d.ContentSHA256 = PutBlob(t, s, TenantA, []byte("first version mentions lemur"))
	Apply(t, s, TenantA, ingestapi.Batch{ID: "v1", Upserts: []ingestapi.Document{d}})
	d.ContentSHA256 = PutBlob(t, s, TenantA, []byte("second version mentions tapir"))
	d.Path, d.Name = "/r/renamed.txt", "renamed.txt"
	Apply(t, s, TenantA, ingestapi.Batch{ID: "v2", Upserts: []ingestapi.Document{d}})
	count := func(q string) int {
		hits, err := s.Search(t.Context(), TenantA, store.SearchQuery{Text: q})
		if err != nil {
			t.Fatal(err)
		}
		return len(hits)
	}
	for q, want := range map[string]int{"lemur": 0, "tapir": 1, "doc": 0, "renamed": 1} {
		if got := count(q); got != want {
			t.Errorf("after replace, %q: got %d hits, want %d", q, got, want)
		}
	}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "v3", Deletes: []ingestapi.Key{d.Key}})
	if got := count("tapir"); got != 0 {
		t.Errorf("after delete: got %d hits, want 0", got)
	}
}

func testListPaging(t *testing.T, open Opener) {
	s := open(t)
	sites := []string{Site, Site + "/a", "https://sp.corp.example/sites/zz"}
	var want []ingestapi.Document
	var batch []ingestapi.Document
	for i := range 250 {
		d := Doc(i+1, fmt.Sprintf("/p/%03d.txt", i))
		d.Site = sites[i%3]
		d.ListID = []string{ListID, "ffffffff-0000-0000-0000-000000000000"}[i%2]
		want = append(want, d)
		batch = append(batch, d)
		if len(batch) == 100 {
			Apply(t, s, TenantA, ingestapi.Batch{ID: fmt.Sprint("fill", i), Upserts: batch})
			batch = nil
		}
	}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "fill-last", Upserts: batch})
	Apply(t, s, TenantB, ingestapi.Batch{ID: "b", Upserts: want[:10]})
	slices.SortFunc(want, func(a, b ingestapi.Document) int {
		return cmpKey(a.Key, b.Key)
	})
	for _, limit := range []int{1, 7, 100, 249, 250, 251, 0, store.MaxListLimit + 5} {
		got := All(t, s, TenantA, "", limit)
		if !SameDocs(got, want) {
			t.Errorf("limit %d: got %d documents, want all %d in key order", limit, len(got), len(want))
		}
	}
	for _, site := range sites {
		got := All(t, s, TenantA, site, 9)
		var w []ingestapi.Document
		for _, d := range want {
			if d.Site == site {
				w = append(w, d)
			}
		}
		if !SameDocs(got, w) {
			t.Errorf("site %s: got %d documents, want %d", site, len(got), len(w))
		}
	}
	p, err := s.List(t.Context(), TenantA, store.ListQuery{Limit: 250})
	if err != nil || len(p.Documents) != 250 || p.Next != "" {
		t.Errorf("exact page: got %d documents, next %q, %v; want 250 and no next", len(p.Documents), p.Next, err)
	}
}

func cmpKey(a, b ingestapi.Key) int {
	if c := strings.Compare(a.Site, b.Site); c != 0 {
		return c
	}
	if c := strings.Compare(a.ListID, b.ListID); c != 0 {
		return c
	}
	return a.ItemID - b.ItemID
}

func testListStableUnderWrites(t *testing.T, open Opener) {
	s := open(t)
	var ups []ingestapi.Document
	for i := range 60 {
		ups = append(ups, Doc(2*i+2, fmt.Sprintf("/s/%d", 2*i+2))) // even items stay throughout
	}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "fill", Upserts: ups})
	seen := map[int]int{}
	q := store.ListQuery{Limit: 7}
	for page := 0; ; page++ {
		p, err := s.List(t.Context(), TenantA, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range p.Documents {
			seen[d.ItemID]++
		}
		// Between pages, add odd items, replace an even item seen and one
		// not yet seen, and delete an odd one.
		odd := Doc(2*page+1, fmt.Sprintf("/s/%d", 2*page+1))
		b := ingestapi.Batch{ID: fmt.Sprint("w", page), Upserts: []ingestapi.Document{odd, ups[page%60], ups[(page*7+30)%60]}}
		if page > 0 {
			b.Deletes = []ingestapi.Key{{Site: Site, ListID: ListID, ItemID: 2*page - 1}}
		}
		Apply(t, s, TenantA, b)
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	for _, d := range ups {
		if seen[d.ItemID] != 1 {
			t.Errorf("item %d present throughout was listed %d times, want once", d.ItemID, seen[d.ItemID])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("item %d listed %d times", id, n)
		}
	}
}

func testConcurrent(t *testing.T, open Opener) {
	s := open(t)
	const agents, batches = 4, 8
	shared := []byte("the same attachment everyone uploads")
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for a := range agents {
		wg.Go(func() {
			tenant := []string{TenantA, TenantB}[a%2]
			c, _, err := s.PutBlob(t.Context(), TenantA, SHA256(shared), bytes.NewReader(shared))
			if err != nil {
				t.Errorf("agent %d PutBlob: %v", a, err)
				return
			}
			if c {
				mu.Lock()
				created++
				mu.Unlock()
			}
			for b := range batches {
				content := fmt.Appendf(nil, "agent %d batch %d", a, b)
				d := Doc(a*1000+b+1, fmt.Sprintf("/c/%d/%d.txt", a, b))
				d.ContentSHA256 = SHA256(content)
				if _, _, err := s.PutBlob(t.Context(), tenant, d.ContentSHA256, bytes.NewReader(content)); err != nil {
					t.Errorf("agent %d PutBlob: %v", a, err)
					return
				}
				batch := ingestapi.Batch{ID: fmt.Sprintf("a%d-b%d", a, b), Upserts: []ingestapi.Document{d}}
				for range 2 { // each batch delivered twice, as on a retry
					if _, err := s.Apply(t.Context(), tenant, batch); err != nil {
						t.Errorf("agent %d Apply: %v", a, err)
						return
					}
				}
				if _, err := s.Search(t.Context(), tenant, store.SearchQuery{Text: "txt"}); err != nil {
					t.Errorf("agent %d Search: %v", a, err)
				}
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("the same blob put concurrently was created %d times, want once", created)
	}
	for _, tenant := range []string{TenantA, TenantB} {
		st, err := s.Stats(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(agents / 2 * batches); st.Documents != want || st.Batches != want {
			t.Errorf("%s: got %d documents, %d batches; want %d each", tenant, st.Documents, st.Batches, want)
		}
	}
}

func testClose(t *testing.T, open Opener) {
	s := open(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Get(t.Context(), TenantA, ingestapi.Key{Site: Site, ListID: ListID, ItemID: 1}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: got %v, want ErrClosed", err)
	}
	if _, err := s.Apply(t.Context(), TenantA, ingestapi.Batch{ID: "x"}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Apply after Close: got %v, want ErrClosed", err)
	}
	if _, _, err := s.PutBlob(t.Context(), TenantA, SHA256(nil), strings.NewReader("")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("PutBlob after Close: got %v, want ErrClosed", err)
	}
}

func testRecent(t *testing.T, open Opener) {
	s := open(t)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(item int, p string, age time.Duration, acl ...ingestapi.ACE) ingestapi.Document {
		d := Doc(item, p)
		d.Modified = base.Add(-age)
		if acl != nil {
			d.ACL = acl
		}
		return d
	}
	john := ingestapi.ACE{Kind: "user", Login: `i:0#.w|corp\john`, Email: "john@corp.example"}
	Apply(t, s, TenantA, ingestapi.Batch{ID: "r1", Upserts: []ingestapi.Document{
		mk(1, "/r/old.txt", 48*time.Hour),
		mk(2, "/r/new.txt", time.Minute),
		mk(3, "/r/johns.txt", 2*time.Minute, john),
		mk(4, "/r/mid.txt", time.Hour),
	}})
	Apply(t, s, TenantB, ingestapi.Batch{ID: "r1", Upserts: []ingestapi.Document{mk(9, "/r/other-tenant.txt", 0)}})
	// An update moves a document to the front.
	Apply(t, s, TenantA, ingestapi.Batch{ID: "r2", Upserts: []ingestapi.Document{mk(1, "/r/old.txt", 0)}})
	paths := func(ds []ingestapi.Document) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.Path)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    store.RecentQuery
		want []string
	}{
		{"all, newest first", store.RecentQuery{}, []string{"/r/old.txt", "/r/new.txt", "/r/johns.txt", "/r/mid.txt"}},
		{"limit", store.RecentQuery{Limit: 2}, []string{"/r/old.txt", "/r/new.txt"}},
		{"since", store.RecentQuery{Since: base.Add(-90 * time.Second)}, []string{"/r/old.txt", "/r/new.txt"}},
		{"principals", store.RecentQuery{Principals: []string{"JOHN@corp.example"}}, []string{"/r/johns.txt"}},
		{"unusable principals", store.RecentQuery{Principals: []string{" "}}, nil},
		{"other site", store.RecentQuery{Site: "https://sp.corp.example/sites/other"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Recent(t.Context(), TenantA, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(paths(got), tc.want) {
				t.Errorf("got %q, want %q", paths(got), tc.want)
			}
		})
	}
	if _, err := s.Recent(t.Context(), TenantA, store.RecentQuery{Limit: -1}); err == nil {
		t.Error("a negative limit was accepted")
	}
}
