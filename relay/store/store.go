package store

import (
	"context"
	"io"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
)

// Store keeps what agents deliver, per tenant. Implementations are safe for
// concurrent use by several agents at once. The tenant argument always comes
// from the caller's verified identity, never from a payload.
type Store interface {
	// PutBlob stores content under its hex SHA-256. It hashes what it reads
	// and refuses a mismatch with *HashMismatchError, keeping nothing. It
	// returns only once the blob is durable. Storing a blob the tenant
	// already has is a no-op that reports created false.
	PutBlob(ctx context.Context, tenant, sha256 string, r io.Reader) (created bool, size int64, err error)
	// OpenBlob opens a blob of the tenant for reading, with its size; it
	// returns ErrNotFound when the tenant has no such blob. The caller closes it.
	OpenBlob(ctx context.Context, tenant, sha256 string) (io.ReadCloser, int64, error)
	// Apply applies a batch atomically and durably: its deletes, then its
	// delete_prefixes, then its delete_folders, then its upserts. Applying a batch ID again changes
	// nothing and returns the first result with Duplicate set. A batch whose
	// upserts name blobs the tenant does not have is refused with
	// *MissingBlobError; a reused ID with different content with
	// *BatchConflictError; an invalid batch with ErrInvalid.
	Apply(ctx context.Context, tenant string, b ingestapi.Batch) (ingestapi.BatchResult, error)
	// FinishGeneration ends a full crawl of a site: it deletes the site's
	// documents whose generation differs from g.Generation. Finishing the
	// same generation again deletes nothing more and returns the first result.
	FinishGeneration(ctx context.Context, tenant string, g ingestapi.Generation) (ingestapi.GenerationResult, error)
	// Get returns one document, or ErrNotFound.
	Get(ctx context.Context, tenant string, k ingestapi.Key) (ingestapi.Document, error)
	// List pages through the tenant's documents (optionally one site's) in
	// key order (site, list ID, item ID). The order is stable under
	// concurrent writes: a document present throughout is returned once.
	List(ctx context.Context, tenant string, q ListQuery) (Page, error)
	// Search finds the tenant's documents whose name, title, path or plain
	// text content match every word of q.Text, best first.
	Search(ctx context.Context, tenant string, q SearchQuery) ([]Hit, error)
	// Recent returns the tenant's documents modified lately, newest first.
	Recent(ctx context.Context, tenant string, q RecentQuery) ([]ingestapi.Document, error)
	// Stats counts what the tenant has stored.
	Stats(ctx context.Context, tenant string) (Stats, error)
	// Close releases the store. It is idempotent; other methods then return ErrClosed.
	Close() error
}

// Limits of List and Search.
const (
	// DefaultListLimit is the page size when ListQuery.Limit is zero.
	DefaultListLimit = 100
	// MaxListLimit caps ListQuery.Limit.
	MaxListLimit = 1000
	// DefaultSearchLimit is the number of hits when SearchQuery.Limit is zero.
	DefaultSearchLimit = 20
	// MaxSearchLimit caps SearchQuery.Limit.
	MaxSearchLimit = 1000
)

// ListQuery selects a page of documents.
type ListQuery struct {
	// Site restricts the listing to one site; empty lists every site.
	Site string
	// Cursor is Page.Next of the previous page; empty starts at the beginning.
	Cursor string
	// Limit is the page size; zero means DefaultListLimit, and it is capped
	// at MaxListLimit.
	Limit int
}

// Page is one page of a listing.
type Page struct {
	// Documents are in key order.
	Documents []ingestapi.Document
	// Next is the cursor of the following page; empty on the last page.
	Next string
}

// SearchQuery is a full-text search.
type SearchQuery struct {
	// Text holds the words to find; every word must match (in name, title,
	// path or content). Punctuation separates words and is otherwise ignored.
	Text string
	// Limit is the maximum number of hits; zero means DefaultSearchLimit,
	// and it is capped at MaxSearchLimit.
	Limit int
	// Principals are the e-mail addresses and logins (user or group) of the
	// searcher, compared case-insensitively with each ACE's Email and Login.
	// A document is returned only when one of them matches. Empty means no
	// trimming: every matching document is returned.
	Principals []string
}

// RecentQuery selects recently modified documents.
type RecentQuery struct {
	// Since excludes documents modified before it; zero means no bound.
	Since time.Time
	// Site restricts the result to one site; empty means every site.
	Site string
	// Limit is the maximum number of documents; zero means
	// DefaultSearchLimit, and it is capped at MaxSearchLimit.
	Limit int
	// Principals trims the result as SearchQuery.Principals does.
	Principals []string
}

// Hit is one search result.
type Hit struct {
	// Document is the matching document.
	Document ingestapi.Document
	// Score orders hits: higher is better.
	Score float64
	// Snippet is a short plain-text excerpt around the match.
	Snippet string
}

// Stats counts a tenant's stored data.
type Stats struct {
	// Documents is the number of documents, over Sites sites.
	Documents, Sites int64
	// Blobs and BlobBytes count the stored content blobs.
	Blobs, BlobBytes int64
	// Batches is the number of batch IDs recorded.
	Batches int64
}
