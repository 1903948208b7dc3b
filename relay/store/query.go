package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
)

// Get returns one of the tenant's documents, or ErrNotFound.
func (e *Embedded) Get(ctx context.Context, tenant string, k ingestapi.Key) (ingestapi.Document, error) {
	if err := e.begin(tenant); err != nil {
		return ingestapi.Document{}, fmt.Errorf("get document: %w", err)
	}
	var j string
	err := e.rdb.QueryRowContext(ctx,
		"SELECT doc FROM documents WHERE tenant = ? AND site = ? AND list_id = ? AND item_id = ?",
		tenant, k.Site, k.ListID, k.ItemID).Scan(&j)
	if errors.Is(err, sql.ErrNoRows) {
		return ingestapi.Document{}, fmt.Errorf("get document %s: %w", k, ErrNotFound)
	}
	if err != nil {
		return ingestapi.Document{}, fmt.Errorf("get document %s: %w", k, err)
	}
	return decodeDoc(j)
}

func decodeDoc(j string) (ingestapi.Document, error) {
	var d ingestapi.Document
	if err := json.Unmarshal([]byte(j), &d); err != nil {
		return ingestapi.Document{}, fmt.Errorf("decode stored document: %w", err)
	}
	return d, nil
}

// List returns a page of the tenant's documents in key order. The cursor
// is the last key returned, so pages neither skip nor repeat documents
// that exist throughout the listing.
func (e *Embedded) List(ctx context.Context, tenant string, q ListQuery) (Page, error) {
	if err := e.begin(tenant); err != nil {
		return Page{}, fmt.Errorf("list documents: %w", err)
	}
	limit, err := clampLimit(q.Limit, DefaultListLimit, MaxListLimit)
	if err != nil {
		return Page{}, fmt.Errorf("list documents: %w", err)
	}
	query := "SELECT site, list_id, item_id, doc FROM documents WHERE tenant = ?"
	args := []any{tenant}
	if q.Site != "" {
		query += " AND site = ?"
		args = append(args, q.Site)
	}
	if q.Cursor != "" {
		k, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, fmt.Errorf("list documents: %w", err)
		}
		query += " AND (site, list_id, item_id) > (?, ?, ?)"
		args = append(args, k.Site, k.ListID, k.ItemID)
	}
	query += " ORDER BY site, list_id, item_id LIMIT ?"
	args = append(args, limit+1)
	rows, err := e.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return Page{}, fmt.Errorf("list documents: %w", err)
	}
	defer rows.Close()
	var (
		page Page
		last ingestapi.Key
	)
	for rows.Next() {
		if len(page.Documents) == limit {
			page.Next = encodeCursor(last)
			break
		}
		var (
			k ingestapi.Key
			j string
		)
		if err := rows.Scan(&k.Site, &k.ListID, &k.ItemID, &j); err != nil {
			return Page{}, fmt.Errorf("list documents: %w", err)
		}
		d, err := decodeDoc(j)
		if err != nil {
			return Page{}, fmt.Errorf("list documents: %w", err)
		}
		page.Documents = append(page.Documents, d)
		last = k
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("list documents: %w", err)
	}
	return page, nil
}

func clampLimit(n, def, max int) (int, error) {
	switch {
	case n < 0:
		return 0, fmt.Errorf("%w: limit must not be negative", ErrInvalid)
	case n == 0:
		return def, nil
	case n > max:
		return max, nil
	}
	return n, nil
}

// Cursors are opaque to callers: base64url of the last key's JSON.
func encodeCursor(k ingestapi.Key) string {
	j, _ := json.Marshal(k) // a Key always marshals
	return base64.RawURLEncoding.EncodeToString(j)
}

func decodeCursor(c string) (ingestapi.Key, error) {
	var k ingestapi.Key
	j, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		err = json.Unmarshal(j, &k)
	}
	if err != nil {
		return ingestapi.Key{}, fmt.Errorf("%w: malformed cursor", ErrInvalid)
	}
	return k, nil
}

// Search runs an FTS5 query over the tenant's documents, ranked by BM25
// with matches in the name weighing most, then title, path and content.
func (e *Embedded) Search(ctx context.Context, tenant string, q SearchQuery) ([]Hit, error) {
	if err := e.begin(tenant); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	limit, err := clampLimit(q.Limit, DefaultSearchLimit, MaxSearchLimit)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	match := ftsQuery(q.Text)
	if match == "" {
		return nil, nil
	}
	ps, visible := principalsJSON(q.Principals)
	if !visible {
		return nil, nil // principals given, none usable: nothing is visible
	}
	query := `SELECT d.doc, bm25(documents_fts, 10.0, 5.0, 2.0, 1.0) AS rank,
		snippet(documents_fts, -1, '', '', '…', 16)
	FROM documents_fts JOIN documents d ON d.id = documents_fts.rowid
	WHERE documents_fts MATCH ? AND d.tenant = ?`
	args := []any{match, tenant}
	if ps != "" {
		query += aclFilter
		args = append(args, ps)
	}
	query += " ORDER BY rank, d.site, d.list_id, d.item_id LIMIT ?"
	args = append(args, limit)
	rows, err := e.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var hits []Hit
	for rows.Next() {
		var (
			j    string
			rank float64
			h    Hit
		)
		if err := rows.Scan(&j, &rank, &h.Snippet); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		if h.Document, err = decodeDoc(j); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		h.Score = -rank // bm25 is lower for better matches
		h.Snippet = strings.TrimSpace(h.Snippet)
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return hits, nil
}

// Recent returns the tenant's documents by modification time, newest first.
func (e *Embedded) Recent(ctx context.Context, tenant string, q RecentQuery) ([]ingestapi.Document, error) {
	if err := e.begin(tenant); err != nil {
		return nil, fmt.Errorf("recent documents: %w", err)
	}
	limit, err := clampLimit(q.Limit, DefaultSearchLimit, MaxSearchLimit)
	if err != nil {
		return nil, fmt.Errorf("recent documents: %w", err)
	}
	ps, visible := principalsJSON(q.Principals)
	if !visible {
		return nil, nil
	}
	query := "SELECT d.doc FROM documents d WHERE d.tenant = ?"
	args := []any{tenant}
	if !q.Since.IsZero() {
		query += " AND d.modified >= ?"
		args = append(args, q.Since.UnixNano())
	}
	if q.Site != "" {
		query += " AND d.site = ?"
		args = append(args, q.Site)
	}
	if ps != "" {
		query += aclFilter
		args = append(args, ps)
	}
	query += " ORDER BY d.modified DESC, d.id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := e.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("recent documents: %w", err)
	}
	defer rows.Close()
	var docs []ingestapi.Document
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("recent documents: %w", err)
		}
		d, err := decodeDoc(j)
		if err != nil {
			return nil, fmt.Errorf("recent documents: %w", err)
		}
		docs = append(docs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("recent documents: %w", err)
	}
	return docs, nil
}

// aclFilter keeps documents whose ACL set holds one of the principals in
// the JSON array bound to it.
const aclFilter = ` AND d.acl_set IN (SELECT set_id FROM acl_members WHERE principal IN (SELECT value FROM json_each(?)))`

// principalsJSON normalizes principals into a JSON array for aclFilter. It
// returns "" when there are none (no trimming) and visible false when some
// were given but none is usable (nothing is visible).
func principalsJSON(principals []string) (ps string, visible bool) {
	var norm []string
	for _, p := range principals {
		if p = normPrincipal(p); p != "" {
			norm = append(norm, p)
		}
	}
	if len(principals) > 0 && len(norm) == 0 {
		return "", false
	}
	if len(norm) == 0 {
		return "", true
	}
	j, _ := json.Marshal(norm) // strings always marshal
	return string(j), true
}

// Stats counts the tenant's documents, sites, blobs and batches.
func (e *Embedded) Stats(ctx context.Context, tenant string) (Stats, error) {
	if err := e.begin(tenant); err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	var s Stats
	err := e.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM documents WHERE tenant = ?1),
		(SELECT count(DISTINCT site) FROM documents WHERE tenant = ?1),
		(SELECT count(*) FROM blobs WHERE tenant = ?1),
		(SELECT coalesce(sum(size), 0) FROM blobs WHERE tenant = ?1),
		(SELECT count(*) FROM batches WHERE tenant = ?1)`, tenant).
		Scan(&s.Documents, &s.Sites, &s.Blobs, &s.BlobBytes, &s.Batches)
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	return s, nil
}
