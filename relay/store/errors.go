package store

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors, compared with errors.Is.
var (
	// ErrNotFound is returned when a document or blob does not exist for the tenant.
	ErrNotFound = errors.New("not found")
	// ErrInvalid wraps every refusal of an argument: a malformed tenant,
	// SHA-256, batch, generation, cursor or query.
	ErrInvalid = errors.New("invalid argument")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("store closed")
)

// HashMismatchError is returned by PutBlob when the content does not hash to
// the SHA-256 it was stored under. Nothing is kept.
type HashMismatchError struct {
	// Want is the SHA-256 the caller named; Got is what the content hashed to.
	Want, Got string
	// Size is the number of bytes received.
	Size int64
}

// Error names both hashes and the size received.
func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("blob content hashes to %s, not %s (%d bytes)", e.Got, e.Want, e.Size)
}

// MissingBlob is one upsert naming a blob the store does not have.
type MissingBlob struct {
	// Upsert is the index in Batch.Upserts.
	Upsert int
	// SHA256 is the blob's hex SHA-256.
	SHA256 string
}

// MissingBlobError is returned by Apply when upserts reference content that
// was not uploaded first. The batch is not applied.
type MissingBlobError struct {
	// Missing lists the offending upserts, in batch order.
	Missing []MissingBlob
}

// Error names the first three missing blobs by upsert index and hash.
func (e *MissingBlobError) Error() string {
	var b strings.Builder
	b.WriteString("blob not uploaded: ")
	for i, m := range e.Missing {
		if i == 3 {
			fmt.Fprintf(&b, " and %d more", len(e.Missing)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "upserts[%d].content_sha256 %s", m.Upsert, m.SHA256)
	}
	return b.String()
}

// BatchConflictError is returned by Apply when a batch reuses the ID of an
// applied batch with different content: the retry contract (same ID, same
// batch) is broken, and applying either silently would lose changes.
type BatchConflictError struct {
	// ID is the batch ID.
	ID string
}

// Error names the batch ID.
func (e *BatchConflictError) Error() string {
	return fmt.Sprintf("batch %q was applied before with different content", e.ID)
}
