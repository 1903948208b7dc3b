package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
)

// querier is what *sql.DB and *sql.Tx share for single-row reads.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Apply applies b for the tenant in one transaction, committed with
// synchronous=FULL before it returns. Deletes, delete_prefixes and
// delete_folders run, in that order, before upserts, so a batch that deletes a folder and upserts what is now
// under the same path leaves the upserted documents. A delete prefix
// matches the path itself and every path under path+"/", byte for byte
// (case-sensitive, no wildcards). The batch's inline blobs are stored in
// the same transaction, in the database. Text of plain-text blobs is read
// before the transaction begins, so the writer lock is held only for the
// writes.
func (e *Embedded) Apply(ctx context.Context, tenant string, b ingestapi.Batch) (ingestapi.BatchResult, error) {
	if err := e.begin(tenant); err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch: %w", err)
	}
	if err := b.Validate(); err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch: %w: %w", ErrInvalid, err)
	}
	digest, err := batchDigest(b)
	if err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: %w", b.ID, err)
	}
	// A replay does no work and takes no write lock.
	if res, ok, err := lookupBatch(ctx, e.rdb, tenant, b.ID, digest); err != nil || ok {
		return res, err
	}
	inline := make(map[string][]byte, len(b.Blobs))
	for _, bl := range b.Blobs {
		inline[bl.SHA256] = bl.Data
	}
	texts, unreadable, err := e.extractAll(ctx, tenant, b.Upserts, inline)
	if err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: %w", b.ID, err)
	}

	tx, err := e.wdb.BeginTx(ctx, nil)
	if err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: begin: %w", b.ID, err)
	}
	defer tx.Rollback()
	// Another delivery of the same batch may have committed meanwhile.
	if res, ok, err := lookupBatch(ctx, tx, tenant, b.ID, digest); err != nil || ok {
		return res, err
	}
	if err := e.storeInline(ctx, tx, tenant, b.Blobs); err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: %w", b.ID, err)
	}
	if err := checkBlobs(ctx, tx, tenant, b.Upserts, unreadable, inline); err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: %w", b.ID, err)
	}

	res := ingestapi.BatchResult{ID: b.ID, Upserted: len(b.Upserts)}
	for i, k := range b.Deletes {
		if err := e.fail("delete", i); err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: deletes[%d]: %w", b.ID, i, err)
		}
		n, err := execCount(ctx, tx,
			"DELETE FROM documents WHERE tenant = ? AND site = ? AND list_id = ? AND item_id = ?",
			tenant, k.Site, k.ListID, k.ItemID)
		if err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: deletes[%d]: %w", b.ID, i, err)
		}
		res.Deleted += n
	}
	for i, p := range b.DeletePrefixes {
		if err := e.fail("delete_prefix", i); err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: delete_prefixes[%d]: %w", b.ID, i, err)
		}
		n, err := deletePrefix(ctx, tx, tenant, p)
		if err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: delete_prefixes[%d]: %w", b.ID, i, err)
		}
		res.Deleted += n
	}
	for i, k := range b.DeleteFolders {
		if err := e.fail("delete_folder", i); err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: delete_folders[%d]: %w", b.ID, i, err)
		}
		var p string
		err := tx.QueryRowContext(ctx, "SELECT path FROM documents WHERE tenant = ? AND site = ? AND list_id = ? AND item_id = ?",
			tenant, k.Site, k.ListID, k.ItemID).Scan(&p)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: delete_folders[%d]: %w", b.ID, i, err)
		}
		n, err := deletePrefix(ctx, tx, tenant, ingestapi.PathPrefix{Site: k.Site, Path: p})
		if err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: delete_folders[%d]: %w", b.ID, i, err)
		}
		res.Deleted += n
	}
	if len(b.Upserts) > 0 {
		up, err := prepareUpsert(ctx, tx)
		if err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: %w", b.ID, err)
		}
		defer up.close()
		if err := up.existing(ctx, tenant, b.Upserts); err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: %w", b.ID, err)
		}
		for i, d := range b.Upserts {
			if err := e.fail("upsert", i); err != nil {
				return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: upserts[%d]: %w", b.ID, i, err)
			}
			if err := up.do(ctx, tenant, d, texts[i]); err != nil {
				return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: upserts[%d]: %w", b.ID, i, err)
			}
		}
		if err := up.flush(ctx); err != nil {
			return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: %w", b.ID, err)
		}
	}
	if err := e.fail("record", 0); err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: record: %w", b.ID, err)
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO batches (tenant, id, digest, upserted, deleted, applied_at) VALUES (?, ?, ?, ?, ?, ?)",
		tenant, b.ID, digest, res.Upserted, res.Deleted, e.cfg.Now().Unix()); err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: record: %w", b.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return ingestapi.BatchResult{}, fmt.Errorf("apply batch %q: commit: %w", b.ID, err)
	}
	return res, nil
}

// fail runs the test hook, if any.
func (e *Embedded) fail(stage string, i int) error {
	if e.hook == nil {
		return nil
	}
	return e.hook(stage, i)
}

// storeInline records a batch's inline blobs with their data; a blob the
// tenant already has (inline or on disk) stays as it is.
func (e *Embedded) storeInline(ctx context.Context, tx *sql.Tx, tenant string, blobs []ingestapi.InlineBlob) error {
	if len(blobs) == 0 {
		return nil
	}
	has, err := tx.PrepareContext(ctx, "SELECT 1 FROM blobs WHERE tenant = ? AND sha256 = ?")
	if err != nil {
		return fmt.Errorf("store inline blobs: %w", err)
	}
	defer has.Close()
	put, err := tx.PrepareContext(ctx, "INSERT INTO blob_data (data) VALUES (?) RETURNING id")
	if err != nil {
		return fmt.Errorf("store inline blobs: %w", err)
	}
	defer put.Close()
	rec, err := tx.PrepareContext(ctx, "INSERT INTO blobs (tenant, sha256, size, created_at, data_id) VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		return fmt.Errorf("store inline blobs: %w", err)
	}
	defer rec.Close()
	now := e.cfg.Now().Unix()
	seen := make(map[string]bool, len(blobs))
	for i, bl := range blobs {
		if seen[bl.SHA256] {
			continue
		}
		seen[bl.SHA256] = true
		var one int
		switch err := has.QueryRowContext(ctx, tenant, bl.SHA256).Scan(&one); {
		case err == nil:
			continue // stored before, inline or as a file
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("blobs[%d]: look up: %w", i, err)
		}
		data := bl.Data
		if data == nil {
			data = []byte{} // empty content, not NULL
		}
		var id int64
		if err := put.QueryRowContext(ctx, data).Scan(&id); err != nil {
			return fmt.Errorf("blobs[%d]: store: %w", i, err)
		}
		if _, err := rec.ExecContext(ctx, tenant, bl.SHA256, len(bl.Data), now, id); err != nil {
			return fmt.Errorf("blobs[%d]: store: %w", i, err)
		}
	}
	return nil
}

// batchDigest fingerprints a batch, to tell a replay from a reused ID.
// Inline blobs count by their SHA-256, which the relay has checked.
func batchDigest(b ingestapi.Batch) (string, error) {
	if len(b.Blobs) > 0 {
		shas := make([]ingestapi.InlineBlob, len(b.Blobs))
		for i, bl := range b.Blobs {
			shas[i] = ingestapi.InlineBlob{SHA256: bl.SHA256}
		}
		b.Blobs = shas
	}
	j, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(j)
	return hex.EncodeToString(sum[:]), nil
}

// lookupBatch returns the recorded result of batch id, with ok, when it was
// applied before with the same digest.
func lookupBatch(ctx context.Context, q querier, tenant, id, digest string) (ingestapi.BatchResult, bool, error) {
	var (
		d   string
		res = ingestapi.BatchResult{ID: id, Duplicate: true}
	)
	err := q.QueryRowContext(ctx, "SELECT digest, upserted, deleted FROM batches WHERE tenant = ? AND id = ?", tenant, id).
		Scan(&d, &res.Upserted, &res.Deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ingestapi.BatchResult{}, false, nil
	case err != nil:
		return ingestapi.BatchResult{}, false, fmt.Errorf("apply batch %q: look up: %w", id, err)
	case d != digest:
		return ingestapi.BatchResult{}, false, &BatchConflictError{ID: id}
	}
	return res, true, nil
}

// extractAll reads the text of every upsert whose blob is plain text, from
// the batch's inline blobs, the database or the blob files. unreadable marks upserts
// whose blob is nowhere.
func (e *Embedded) extractAll(ctx context.Context, tenant string, docs []ingestapi.Document, inline map[string][]byte) (texts []string, unreadable map[int]bool, err error) {
	texts = make([]string, len(docs))
	cache := map[string]string{} // sha+type -> text, for content shared by several documents
	for i, d := range docs {
		if d.ContentSHA256 == "" {
			continue
		}
		mt := textType(d.ContentType, d.Name)
		if mt == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		ck := d.ContentSHA256 + " " + mt
		if t, ok := cache[ck]; ok {
			texts[i] = t
			continue
		}
		data, ok := inline[d.ContentSHA256]
		if !ok {
			if data, ok, err = e.dbBlob(ctx, tenant, d.ContentSHA256); err != nil {
				return nil, nil, fmt.Errorf("upserts[%d]: read content: %w", i, err)
			}
		}
		if ok {
			t, err := extractText(bytes.NewReader(data), mt, e.cfg.MaxTextBytes)
			if err != nil {
				return nil, nil, fmt.Errorf("upserts[%d]: read content: %w", i, err)
			}
			cache[ck] = t
			texts[i] = t
			continue
		}
		f, err := os.Open(e.blobPath(tenant, d.ContentSHA256))
		if errors.Is(err, fs.ErrNotExist) {
			if unreadable == nil {
				unreadable = map[int]bool{}
			}
			unreadable[i] = true
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("upserts[%d]: read content: %w", i, err)
		}
		t, err := extractText(f, mt, e.cfg.MaxTextBytes)
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("upserts[%d]: read content: %w", i, err)
		}
		cache[ck] = t
		texts[i] = t
	}
	return texts, unreadable, nil
}

// checkBlobs refuses upserts naming blobs the tenant has not stored (nor
// the batch carries: inline, stored already in this transaction).
func checkBlobs(ctx context.Context, tx *sql.Tx, tenant string, docs []ingestapi.Document, unreadable map[int]bool, inline map[string][]byte) error {
	known := make(map[string]bool, len(inline))
	for sha := range inline {
		known[sha] = true
	}
	var missing []MissingBlob
	for i, d := range docs {
		sha := d.ContentSHA256
		if sha == "" {
			continue
		}
		have, seen := known[sha]
		if !seen {
			var one int
			err := tx.QueryRowContext(ctx, "SELECT 1 FROM blobs WHERE tenant = ? AND sha256 = ?", tenant, sha).Scan(&one)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return fmt.Errorf("check blobs: %w", err)
			default:
				have = true
			}
			known[sha] = have
		}
		if !have || unreadable[i] {
			missing = append(missing, MissingBlob{Upsert: i, SHA256: sha})
		}
	}
	if len(missing) > 0 {
		return &MissingBlobError{Missing: missing}
	}
	return nil
}

// deletePrefix deletes the site's documents at p.Path or under p.Path+"/".
// It compares bytes with a range instead of LIKE, which would treat % and _
// as wildcards and ignore ASCII case: under "/a/b" means path >= "/a/b/"
// and < "/a/b0" ('0' follows '/'), so "/a/bc" and "/a/b-c" stay.
func deletePrefix(ctx context.Context, tx *sql.Tx, tenant string, p ingestapi.PathPrefix) (int, error) {
	dir := strings.TrimRight(p.Path, "/") // "/a/b/" names the folder "/a/b"; "/" the whole site
	exact := dir
	if exact == "" {
		exact = "/"
	}
	return execCount(ctx, tx,
		"DELETE FROM documents WHERE tenant = ? AND site = ? AND (path = ? OR (path >= ? AND path < ?))",
		tenant, p.Site, exact, dir+"/", dir+"0")
}

func execCount(ctx context.Context, tx *sql.Tx, query string, args ...any) (int, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// upserter holds the statements of one batch's upserts. Documents and
// their ACL rows are written first, their full-text rows after all of them
// (flush): a statement that needs a statement journal (a foreign key, a
// trigger) makes FTS5 flush its pending terms to a new segment, so
// interleaving the two would cost a segment, and later merges, per
// document. Which keys exist already is read once per list (existing), so
// that a new document costs one insert.
type upserter struct {
	tx                                    *sql.Tx
	ins, upd, aclHas, aclAdd, ftsDel, fts *sql.Stmt
	ids                                   map[ingestapi.Key]int64 // the rows of keys that exist
	sets                                  map[string]bool         // ACL sets known to exist
	pending                               []ftsRow
}

// ftsRow is a document's full-text row, written by flush; replace says an
// older row of the document goes first.
type ftsRow struct {
	id                      int64
	replace                 bool
	name, title, path, text string
}

func prepareUpsert(ctx context.Context, tx *sql.Tx) (*upserter, error) {
	u := upserter{tx: tx, ids: map[ingestapi.Key]int64{}, sets: map[string]bool{}}
	for _, s := range []struct {
		p     **sql.Stmt
		query string
	}{
		{&u.ins, "INSERT INTO documents (tenant, site, list_id, item_id, path, generation, content_sha256, doc, acl_set, modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"},
		{&u.upd, "UPDATE documents SET path = ?, generation = ?, content_sha256 = ?, doc = ?, acl_set = ?, modified = ? WHERE id = ?"},
		{&u.aclHas, "SELECT 1 FROM acl_members WHERE set_id = ? LIMIT 1"},
		{&u.aclAdd, "INSERT INTO acl_members (set_id, principal) VALUES (?, ?) ON CONFLICT DO NOTHING"},
		{&u.ftsDel, "DELETE FROM documents_fts WHERE rowid = ?"},
		{&u.fts, "INSERT INTO documents_fts (rowid, name, title, path, body) VALUES (?, ?, ?, ?, ?)"},
	} {
		st, err := tx.PrepareContext(ctx, s.query)
		if err != nil {
			u.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*s.p = st
	}
	return &u, nil
}

func (u *upserter) close() {
	for _, s := range []*sql.Stmt{u.ins, u.upd, u.aclHas, u.aclAdd, u.ftsDel, u.fts} {
		if s != nil {
			s.Close()
		}
	}
}

// existing reads which of the docs' keys the tenant has, a list at a time.
func (u *upserter) existing(ctx context.Context, tenant string, docs []ingestapi.Document) error {
	type list struct{ site, id string }
	byList := map[list][]any{}
	var order []list
	for _, d := range docs {
		l := list{d.Site, d.ListID}
		if _, ok := byList[l]; !ok {
			order = append(order, l)
		}
		byList[l] = append(byList[l], d.ItemID)
	}
	for _, l := range order {
		items := byList[l]
		for len(items) > 0 {
			n := min(len(items), 500) // well under SQLite's 32,766 parameters
			args := append([]any{tenant, l.site, l.id}, items[:n]...)
			q := "SELECT item_id, id FROM documents WHERE tenant = ? AND site = ? AND list_id = ? AND item_id IN (?" + strings.Repeat(", ?", n-1) + ")"
			items = items[n:]
			rows, err := u.tx.QueryContext(ctx, q, args...)
			if err != nil {
				return fmt.Errorf("read existing documents: %w", err)
			}
			for rows.Next() {
				var (
					item int
					id   int64
				)
				if err := rows.Scan(&item, &id); err != nil {
					rows.Close()
					return fmt.Errorf("read existing documents: %w", err)
				}
				u.ids[ingestapi.Key{Site: l.site, ListID: l.id, ItemID: item}] = id
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("read existing documents: %w", err)
			}
		}
	}
	return nil
}

// do writes the document d in place of the one with its key (keeping the
// row id), naming its ACL set; its full-text row waits for flush.
func (u *upserter) do(ctx context.Context, tenant string, d ingestapi.Document, text string) error {
	j, err := json.Marshal(d)
	if err != nil {
		return err
	}
	var sha any
	if d.ContentSHA256 != "" {
		sha = d.ContentSHA256
	}
	set, err := u.aclSet(ctx, tenant, principals(d.ACL))
	if err != nil {
		return err
	}
	id, replace := u.ids[d.Key]
	if replace {
		if _, err := u.upd.ExecContext(ctx, d.Path, d.Generation, sha, string(j), set, d.Modified.UnixNano(), id); err != nil {
			return err
		}
	} else {
		if err := u.ins.QueryRowContext(ctx, tenant, d.Site, d.ListID, d.ItemID, d.Path, d.Generation, sha, string(j), set, d.Modified.UnixNano()).Scan(&id); err != nil {
			return err
		}
		u.ids[d.Key] = id
	}
	u.pending = append(u.pending, ftsRow{id, replace, d.Name, d.Title, d.Path, text})
	return nil
}

// aclSet returns the ID of the set of principals ps (sorted, distinct),
// storing the set the first time; nil for none.
func (u *upserter) aclSet(ctx context.Context, tenant string, ps []string) (any, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	h := sha256.New()
	h.Write([]byte(tenant))
	for _, p := range ps {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	id := hex.EncodeToString(h.Sum(nil))
	if u.sets[id] {
		return id, nil
	}
	var one int
	switch err := u.aclHas.QueryRowContext(ctx, id).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		for _, p := range ps {
			if _, err := u.aclAdd.ExecContext(ctx, id, p); err != nil {
				return nil, fmt.Errorf("store acl set: %w", err)
			}
		}
	case err != nil:
		return nil, fmt.Errorf("look up acl set: %w", err)
	}
	u.sets[id] = true
	return id, nil
}

// flush writes the full-text rows of the documents written so far.
func (u *upserter) flush(ctx context.Context) error {
	for _, r := range u.pending {
		// A key upserted twice in one batch counts as replaced the second
		// time: the last wins.
		if r.replace {
			if _, err := u.ftsDel.ExecContext(ctx, r.id); err != nil {
				return fmt.Errorf("full-text index: %w", err)
			}
		}
		if _, err := u.fts.ExecContext(ctx, r.id, r.name, r.title, r.path, r.text); err != nil {
			return fmt.Errorf("full-text index: %w", err)
		}
	}
	u.pending = u.pending[:0]
	return nil
}

// principals lists the lower-cased e-mails and logins of an ACL, once each.
func principals(acl []ingestapi.ACE) []string {
	var ps []string
	for _, a := range acl {
		for _, s := range []string{a.Email, a.Login} {
			if s = normPrincipal(s); s != "" {
				ps = append(ps, s)
			}
		}
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

func normPrincipal(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// FinishGeneration deletes the site's documents not written by
// g.Generation, in one transaction, and records the generation as
// finished: finishing it again (a retry) returns the first result and
// deletes nothing, even if a later generation has written since.
func (e *Embedded) FinishGeneration(ctx context.Context, tenant string, g ingestapi.Generation) (ingestapi.GenerationResult, error) {
	if err := e.begin(tenant); err != nil {
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation: %w", err)
	}
	if g.Site == "" || g.Generation == "" {
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation: %w: site and generation are required", ErrInvalid)
	}
	tx, err := e.wdb.BeginTx(ctx, nil)
	if err != nil {
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation %q: begin: %w", g.Generation, err)
	}
	defer tx.Rollback()
	var res ingestapi.GenerationResult
	err = tx.QueryRowContext(ctx, "SELECT deleted FROM generations WHERE tenant = ? AND site = ? AND generation = ?",
		tenant, g.Site, g.Generation).Scan(&res.Deleted)
	switch {
	case err == nil:
		return res, nil
	case !errors.Is(err, sql.ErrNoRows):
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation %q: look up: %w", g.Generation, err)
	}
	if res.Deleted, err = execCount(ctx, tx, "DELETE FROM documents WHERE tenant = ? AND site = ? AND generation <> ?",
		tenant, g.Site, g.Generation); err != nil {
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation %q: delete orphans: %w", g.Generation, err)
	}
	// ACL sets no document names any more go with the orphans.
	if _, err := tx.ExecContext(ctx,
		"DELETE FROM acl_members WHERE set_id NOT IN (SELECT acl_set FROM documents WHERE acl_set IS NOT NULL)"); err != nil {
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation %q: delete unused acl sets: %w", g.Generation, err)
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO generations (tenant, site, generation, deleted, finished_at) VALUES (?, ?, ?, ?, ?)",
		tenant, g.Site, g.Generation, res.Deleted, e.cfg.Now().Unix()); err != nil {
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation %q: record: %w", g.Generation, err)
	}
	if err := tx.Commit(); err != nil {
		return ingestapi.GenerationResult{}, fmt.Errorf("finish generation %q: commit: %w", g.Generation, err)
	}
	return res, nil
}
