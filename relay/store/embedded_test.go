package store_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/relay/store"
	"github.com/mcc-bridge/bridge/relay/store/storetest"
	"github.com/mcc-bridge/bridge/tunnel/tunneltest"
)

func openAt(t *testing.T, dir string, cfg store.Config) *store.Embedded {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger, _ = tunneltest.Logger(t)
	}
	e, err := store.Open(t.Context(), dir, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openAt(t, t.TempDir(), store.Config{}) })
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, store.Config{})
	content := []byte("minutes of the meeting about the ocelot")
	sha := storetest.PutBlob(t, e, storetest.TenantA, content)
	d1 := storetest.Doc(1, "/r/minutes.txt")
	d1.ContentSHA256 = sha
	d2 := storetest.Doc(2, "/r/old.txt")
	d2.Generation = "g0"
	b := ingestapi.Batch{ID: "b1", Upserts: []ingestapi.Document{d1, d2}}
	first := storetest.Apply(t, e, storetest.TenantA, b)
	gen := ingestapi.Generation{Site: storetest.Site, Generation: "g1"}
	gres, err := e.FinishGeneration(t.Context(), storetest.TenantA, gen)
	if err != nil || gres.Deleted != 1 {
		t.Fatalf("FinishGeneration: got %+v, %v; want 1 deleted", gres, err)
	}
	before := storetest.Take(t, e, storetest.TenantA)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = openAt(t, dir, store.Config{})
	if after := storetest.Take(t, e, storetest.TenantA); !after.Equal(before) {
		t.Errorf("after reopen:\n got %+v\nwant %+v", after, before)
	}
	again := storetest.Apply(t, e, storetest.TenantA, b)
	if want := (ingestapi.BatchResult{ID: "b1", Upserted: first.Upserted, Deleted: first.Deleted, Duplicate: true}); again != want {
		t.Errorf("replay after reopen: got %+v, want %+v", again, want)
	}
	if g, err := e.FinishGeneration(t.Context(), storetest.TenantA, gen); err != nil || g != gres {
		t.Errorf("generation retry after reopen: got %+v, %v; want %+v", g, err, gres)
	}
	hits, err := e.Search(t.Context(), storetest.TenantA, store.SearchQuery{Text: "ocelot"})
	if err != nil || len(hits) != 1 {
		t.Errorf("search after reopen: got %d hits, %v; want 1", len(hits), err)
	}
	rc, _, err := e.OpenBlob(t.Context(), storetest.TenantA, sha)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Errorf("blob after reopen: got %q, want %q", got, content)
	}
	if created, _, err := e.PutBlob(t.Context(), storetest.TenantA, sha, bytes.NewReader(content)); err != nil || created {
		t.Errorf("PutBlob after reopen: got created %v, %v; want it to exist", created, err)
	}
}

// TestApplyFailsMidway aborts Apply's transaction at every stage and
// checks that the store is exactly as before, search index included, and
// that the batch can then be applied.
func TestApplyFailsMidway(t *testing.T) {
	crash := errors.New("simulated crash")
	for _, tc := range []struct {
		stage string
		i     int
	}{
		{"delete", 0},
		{"delete", 1},
		{"delete_prefix", 0},
		{"upsert", 0},
		{"upsert", 2},
		{"record", 0},
	} {
		t.Run(fmt.Sprintf("%s[%d]", tc.stage, tc.i), func(t *testing.T) {
			e := openAt(t, t.TempDir(), store.Config{})
			var seed []ingestapi.Document
			for i := 1; i <= 6; i++ {
				seed = append(seed, storetest.Doc(i, fmt.Sprintf("/m/dir/%d.txt", i)))
			}
			storetest.Apply(t, e, storetest.TenantA, ingestapi.Batch{ID: "seed", Upserts: seed})
			before := storetest.Take(t, e, storetest.TenantA)

			ups := []ingestapi.Document{storetest.Doc(1, "/m/replaced.txt"), storetest.Doc(10, "/m/new-a.txt"), storetest.Doc(11, "/m/new-b.txt")}
			ups[2].ContentSHA256 = storetest.PutBlob(t, e, storetest.TenantA, []byte("the word is gibbon"))
			b := ingestapi.Batch{
				ID:             "fails",
				Deletes:        []ingestapi.Key{seed[1].Key, seed[2].Key},
				DeletePrefixes: []ingestapi.PathPrefix{{Site: storetest.Site, Path: "/m/dir"}},
				Upserts:        ups,
			}
			before.Stats.Blobs, before.Stats.BlobBytes = 1, int64(len("the word is gibbon"))
			store.SetApplyHook(e, func(stage string, i int) error {
				if stage == tc.stage && i == tc.i {
					return crash
				}
				return nil
			})
			if _, err := e.Apply(t.Context(), storetest.TenantA, b); !errors.Is(err, crash) {
				t.Fatalf("got %v, want the simulated crash", err)
			}
			if after := storetest.Take(t, e, storetest.TenantA); !after.Equal(before) {
				t.Errorf("a failed batch changed the store:\n got %+v\nwant %+v", after, before)
			}
			for q, want := range map[string]int{"gibbon": 0, "replaced": 0, "dir": 6} {
				if hits, err := e.Search(t.Context(), storetest.TenantA, store.SearchQuery{Text: q}); err != nil || len(hits) != want {
					t.Errorf("search %q after the failure: got %d hits, %v; want %d", q, len(hits), err, want)
				}
			}
			store.SetApplyHook(e, nil)
			res := storetest.Apply(t, e, storetest.TenantA, b)
			if res.Duplicate || res.Deleted != 6 || res.Upserted != 3 {
				t.Errorf("after the failure: got %+v, want the batch applied (6 deleted, 3 upserted)", res)
			}
			if got, want := storetest.SortedPaths(storetest.All(t, e, storetest.TenantA, "", 0)), []string{"/m/new-a.txt", "/m/new-b.txt", "/m/replaced.txt"}; !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

func TestApplyCancelled(t *testing.T) {
	e := openAt(t, t.TempDir(), store.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	store.SetApplyHook(e, func(stage string, i int) error {
		if stage == "upsert" && i == 1 {
			cancel()
		}
		return nil
	})
	b := ingestapi.Batch{ID: "c", Upserts: []ingestapi.Document{storetest.Doc(1, "/c/1"), storetest.Doc(2, "/c/2"), storetest.Doc(3, "/c/3")}}
	if _, err := e.Apply(ctx, storetest.TenantA, b); err == nil {
		t.Fatal("Apply with a context cancelled midway succeeded")
	}
	if st, _ := e.Stats(t.Context(), storetest.TenantA); st.Documents != 0 || st.Batches != 0 {
		t.Errorf("got %+v, want nothing stored", st)
	}
}

// TestCrashDurability kills a process that applies batches, at a random
// moment, and checks that every batch it acknowledged survives.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "STORE_CRASH_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 40 {
		if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			i, err := strconv.Atoi(n)
			if err != nil {
				t.Fatal(err)
			}
			acked = append(acked, i)
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if len(acked) < 40 {
		t.Fatalf("helper acknowledged only %d batches", len(acked))
	}
	e := openAt(t, dir, store.Config{})
	for _, i := range acked {
		d := crashDoc(i)
		got, err := e.Get(t.Context(), storetest.TenantA, d.Key)
		if err != nil {
			t.Errorf("acknowledged batch %d lost: %v", i, err)
			continue
		}
		rc, _, err := e.OpenBlob(t.Context(), storetest.TenantA, got.ContentSHA256)
		if err != nil {
			t.Errorf("blob of acknowledged batch %d lost: %v", i, err)
			continue
		}
		c, _ := io.ReadAll(rc)
		rc.Close()
		if storetest.SHA256(c) != got.ContentSHA256 {
			t.Errorf("blob of batch %d is corrupt", i)
		}
		if res := storetest.Apply(t, e, storetest.TenantA, crashBatch(i, d)); !res.Duplicate {
			t.Errorf("batch %d: replay after the crash was not a duplicate", i)
		}
	}
}

func crashDoc(i int) ingestapi.Document {
	d := storetest.Doc(i+1, fmt.Sprintf("/crash/%d.txt", i))
	d.ContentSHA256 = storetest.SHA256(crashContent(i))
	return d
}

func crashContent(i int) []byte { return bytes.Repeat(fmt.Appendf(nil, "content %d ", i), 1000) }

func crashBatch(i int, d ingestapi.Document) ingestapi.Batch {
	return ingestapi.Batch{ID: fmt.Sprint("crash-", i), Upserts: []ingestapi.Document{d}}
}

// TestCrashHelper is the process that TestCrashDurability kills.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv("STORE_CRASH_HELPER_DIR")
	if dir == "" {
		t.Skip("run by TestCrashDurability")
	}
	e, err := store.Open(context.Background(), dir, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, _, err := e.PutBlob(context.Background(), storetest.TenantA, storetest.SHA256(crashContent(i)), bytes.NewReader(crashContent(i))); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Apply(context.Background(), storetest.TenantA, crashBatch(i, crashDoc(i))); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ack %d\n", i)
	}
}

func TestBlobLayoutAndCleanup(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, store.Config{})
	if e.Dir() != dir {
		t.Errorf("Dir: got %q, want %q", e.Dir(), dir)
	}
	content := []byte("layout")
	sha := storetest.PutBlob(t, e, storetest.TenantA, content)
	p := filepath.Join(dir, "blobs", storetest.TenantA, sha[:2], sha[2:4], sha)
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, content) {
		t.Errorf("blob file %s: got %q, %v; want %q", p, got, err, content)
	}

	bad := storetest.SHA256([]byte("expected"))
	if _, _, err := e.PutBlob(t.Context(), storetest.TenantA, bad, strings.NewReader("tampered")); err == nil {
		t.Fatal("mismatch accepted")
	}
	if _, _, err := e.PutBlob(t.Context(), storetest.TenantB, bad, io.MultiReader(strings.NewReader("part"), errReader{})); err == nil {
		t.Fatal("failed read accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", storetest.TenantA, bad[:2], bad[2:4], bad)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mismatched blob left on disk: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("temp files left behind: %v", ents)
	}
	var files []string
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if !slices.Equal(files, []string{p}) {
		t.Errorf("blob files: got %q, want only %q", files, p)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("reset") }

func TestOpenRemovesInterruptedUploads(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, store.Config{})
	e.Close()
	left := filepath.Join(dir, "tmp", "put-123")
	if err := os.WriteFile(left, []byte("half an upload"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, logged := tunneltest.Logger(t)
	openAt(t, dir, store.Config{Logger: log})
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover upload still there: %v", err)
	}
	if !strings.Contains(logged(), "interrupted blob upload") {
		t.Errorf("no log line about the leftover upload")
	}
}

// TestBlobRecordRecovery simulates a crash between the rename of a blob
// and its record in the database: Apply refuses it until it is put again.
func TestBlobRecordRecovery(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, store.Config{})
	content := []byte("renamed but not recorded")
	sha := storetest.PutBlob(t, e, storetest.TenantA, content)
	e.Close()
	execSQL(t, dir, "DELETE FROM blobs")
	e = openAt(t, dir, store.Config{})
	d := storetest.Doc(1, "/r/x.txt")
	d.ContentSHA256 = sha
	b := ingestapi.Batch{ID: "b", Upserts: []ingestapi.Document{d}}
	var mb *store.MissingBlobError
	if _, err := e.Apply(t.Context(), storetest.TenantA, b); !errors.As(err, &mb) {
		t.Fatalf("got %v, want *MissingBlobError", err)
	}
	if created, _, err := e.PutBlob(t.Context(), storetest.TenantA, sha, bytes.NewReader(content)); err != nil || !created {
		t.Errorf("PutBlob: got created %v, %v; want the record created", created, err)
	}
	storetest.Apply(t, e, storetest.TenantA, b)
}

func TestBlobFileLost(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, store.Config{})
	content := []byte("lost on disk")
	sha := storetest.PutBlob(t, e, storetest.TenantA, content)
	os.Remove(filepath.Join(dir, "blobs", storetest.TenantA, sha[:2], sha[2:4], sha))
	if _, _, err := e.OpenBlob(t.Context(), storetest.TenantA, sha); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenBlob: got %v, want ErrNotFound", err)
	}
	d := storetest.Doc(1, "/r/x.txt")
	d.ContentSHA256 = sha
	var mb *store.MissingBlobError
	if _, err := e.Apply(t.Context(), storetest.TenantA, ingestapi.Batch{ID: "b", Upserts: []ingestapi.Document{d}}); !errors.As(err, &mb) {
		t.Fatalf("text blob missing on disk: got %v, want *MissingBlobError", err)
	}
	if _, _, err := e.PutBlob(t.Context(), storetest.TenantA, sha, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	storetest.Apply(t, e, storetest.TenantA, ingestapi.Batch{ID: "b", Upserts: []ingestapi.Document{d}})
}

func execSQL(t *testing.T, dir, query string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, store.Config{}).Close()
	execSQL(t, dir, "UPDATE schema_version SET version = version + 1")
	_, err := store.Open(t.Context(), dir, store.Config{})
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("got %v, want a refusal naming a newer schema", err)
	}
}

func TestOpenConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  store.Config
	}{
		{"negative text bytes", store.Config{MaxTextBytes: -1}},
		{"negative busy timeout", store.Config{BusyTimeout: -time.Second}},
		{"negative read conns", store.Config{ReadConns: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if e, err := store.Open(t.Context(), t.TempDir(), tc.cfg); err == nil {
				e.Close()
				t.Error("Open accepted an invalid config")
			}
		})
	}
	if _, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "a?b"), store.Config{}); err == nil {
		t.Error("Open accepted a directory with ? in its name")
	}
}

func TestMaxTextBytes(t *testing.T) {
	e := openAt(t, t.TempDir(), store.Config{MaxTextBytes: 20})
	d := storetest.Doc(1, "/t/long.txt")
	d.ContentSHA256 = storetest.PutBlob(t, e, storetest.TenantA, []byte("early words here... and much later: flamingo"))
	storetest.Apply(t, e, storetest.TenantA, ingestapi.Batch{ID: "b", Upserts: []ingestapi.Document{d}})
	for q, want := range map[string]int{"early": 1, "flamingo": 0} {
		if hits, err := e.Search(t.Context(), storetest.TenantA, store.SearchQuery{Text: q}); err != nil || len(hits) != want {
			t.Errorf("%q: got %d hits, %v; want %d", q, len(hits), err, want)
		}
	}
}

func TestConcurrentSameBlob(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, store.Config{})
	content := bytes.Repeat([]byte("same "), 50000)
	sha := storetest.SHA256(content)
	const n = 16
	created := make(chan bool, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			c, _, err := e.PutBlob(t.Context(), storetest.TenantA, sha, bytes.NewReader(content))
			if err != nil {
				t.Error(err)
			}
			created <- c
		}()
	}
	close(start)
	count := 0
	for range n {
		if <-created {
			count++
		}
	}
	if count != 1 {
		t.Errorf("created %d times, want once", count)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("temp files left behind: %d", len(ents))
	}
	rc, size, err := e.OpenBlob(t.Context(), storetest.TenantA, sha)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if size != int64(len(content)) || !bytes.Equal(got, content) {
		t.Errorf("got %d bytes (size %d), want the content", len(got), size)
	}
}

func TestPutBlobCancelled(t *testing.T) {
	dir := t.TempDir()
	e := openAt(t, dir, store.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	content := bytes.Repeat([]byte("c"), 1<<20)
	r := io.MultiReader(bytes.NewReader(content[:1000]), readerFunc(func(p []byte) (int, error) {
		cancel()
		return copy(p, content[1000:2000]), nil
	}), bytes.NewReader(content[2000:]))
	if _, _, err := e.PutBlob(ctx, storetest.TenantA, storetest.SHA256(content), r); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(ents) != 0 {
		t.Errorf("temp files left behind: %d", len(ents))
	}
	if st, _ := e.Stats(t.Context(), storetest.TenantA); st.Blobs != 0 {
		t.Errorf("got %d blobs, want 0", st.Blobs)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestMigrateFromVersion1 opens a database that version 1 of the schema
// wrote (an ACL row per document and principal, no inline blobs) and
// checks that its documents keep their ACLs for search trimming, and that
// new batches and a finished generation work on the migrated database.
func TestMigrateFromVersion1(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, "relay.db")+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	old := storetest.Doc(1, "/sites/marketing/Shared Documents/old plan.txt")
	j, _ := json.Marshal(old)
	for _, q := range []string{
		store.Migrations[0],
		"CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`INSERT INTO documents (id, tenant, site, list_id, item_id, path, generation, doc) VALUES (7, ?, ?, ?, 1, ?, 'g1', ?)`,
		storetest.TenantA, old.Site, old.ListID, old.Path, string(j)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO acl VALUES (7, 'sarah@corp.example'); INSERT INTO documents_fts (rowid, name, title, path, body) VALUES (7, 'old plan.txt', '', ?, 'ocelot')`, old.Path); err != nil {
		t.Fatal(err)
	}
	db.Close()

	e := openAt(t, dir, store.Config{})
	ctx := t.Context()
	search := func(text, who string) int {
		t.Helper()
		hits, err := e.Search(ctx, storetest.TenantA, store.SearchQuery{Text: text, Principals: []string{who}})
		if err != nil {
			t.Fatal(err)
		}
		return len(hits)
	}
	if s, m := search("ocelot", "sarah@corp.example"), search("ocelot", "mallory@corp.example"); s != 1 || m != 0 {
		t.Errorf("after migration: sarah sees %d, mallory %d; want 1 and 0", s, m)
	}
	// Migration 4 read the modification time out of the stored document.
	for _, tc := range []struct {
		since time.Time
		want  int
	}{{old.Modified, 1}, {old.Modified.Add(time.Second), 0}} {
		if got, err := e.Recent(ctx, storetest.TenantA, store.RecentQuery{Since: tc.since}); err != nil || len(got) != tc.want {
			t.Errorf("after migration, modified since %v: %d documents, %v; want %d", tc.since, len(got), err, tc.want)
		}
	}
	// The migrated document is replaced with another ACL; a new one shares it.
	old.ACL = []ingestapi.ACE{{Kind: "user", Login: `i:0#.w|corp\mallory`, Email: "mallory@corp.example"}}
	text := []byte("ocelot sightings")
	fresh := storetest.Doc(2, "/sites/marketing/Shared Documents/new.txt")
	fresh.ACL, fresh.ContentSHA256 = old.ACL, storetest.SHA256(text)
	old.Generation, fresh.Generation = "g2", "g2"
	storetest.Apply(t, e, storetest.TenantA, ingestapi.Batch{ID: "after-migration", Upserts: []ingestapi.Document{old, fresh},
		Blobs: []ingestapi.InlineBlob{{SHA256: fresh.ContentSHA256, Data: text}}})
	for _, text := range []string{"plan", "ocelot"} { // the migrated document, the new one
		if s, m := search(text, "sarah@corp.example"), search(text, "mallory@corp.example"); s != 0 || m != 1 {
			t.Errorf("after the new batch, %q: sarah sees %d, mallory %d; want 0 and 1", text, s, m)
		}
	}
	if _, err := e.FinishGeneration(ctx, storetest.TenantA, ingestapi.Generation{Site: old.Site, Generation: "g2"}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	db, err = sql.Open("sqlite", filepath.Join(dir, "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sets int
	if err := db.QueryRow("SELECT count(DISTINCT set_id) FROM acl_members").Scan(&sets); err != nil || sets != 1 {
		t.Errorf("acl sets after the generation: %d, %v; want 1 (the migrated one is unused)", sets, err)
	}
}
