// Package ingestapi is the wire format of crawl delivery: what the agent
// sends the relay over HTTP on tunnel streams, and what the relay answers.
// The tenant is never in a payload: the relay takes it from the agent's
// certificate (tunnel.PeerFromContext).
//
// Endpoints, served by the relay on tunnel streams:
//
//	PUT  /v1/ingest/blobs/{sha256}   body: the file content. The relay hashes
//	     what it receives, refuses a mismatch (422), and answers 201 (stored)
//	     or 200 (already had it) only after the blob is durable (fsync).
//	POST /v1/ingest/batches          body: Batch (JSON). Answers 200 with
//	     BatchResult only after the batch is committed durably. Applying the
//	     same batch again (same ID) changes nothing and answers the same.
//	     Small files travel inside the batch (Batch.Blobs) and are stored in
//	     the same commit, sparing a request and a sync each.
//	POST /v1/ingest/generations      body: Generation. Ends a full crawl of a
//	     site: every document of that site not written by this generation is
//	     deleted (orphans). Idempotent.
//
// Errors are application/problem+json (RFC 9457) with a Detail.
package ingestapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Paths of the relay's ingest endpoints.
const (
	BlobsPath       = "/v1/ingest/blobs/"
	BatchesPath     = "/v1/ingest/batches"
	GenerationsPath = "/v1/ingest/generations"
)

// MaxBatchBytes bounds a batch's JSON body; the agent keeps below it.
const MaxBatchBytes = 8 << 20

// Limits of content carried inside a batch (Batch.Blobs). Larger files are
// uploaded on their own with PUT.
const (
	// MaxInlineBlobBytes bounds one inline blob.
	MaxInlineBlobBytes = 64 << 10
	// MaxInlineBatchBytes bounds the inline blobs of one batch together
	// (base64 in the JSON makes them a third larger).
	MaxInlineBatchBytes = 4 << 20
)

// Key identifies a document within a tenant: the SharePoint site, list and
// item. It is stable across renames and moves.
type Key struct {
	// Site is the site collection URL, e.g. "https://sp.corp.example/sites/marketing".
	Site string `json:"site"`
	// ListID is the list's GUID, lower case, no braces.
	ListID string `json:"list_id"`
	// ItemID is the list item's integer ID.
	ItemID int `json:"item_id"`
}

func (k Key) String() string { return fmt.Sprintf("%s|%s|%d", k.Site, k.ListID, k.ItemID) }

// ACE is one principal allowed to read a document.
type ACE struct {
	// Kind is "user" or "group".
	Kind string `json:"kind"`
	// Login is the principal's login name (e.g. "i:0#.w|corp\\sarah") or group title.
	Login string `json:"login"`
	// Email is the user's e-mail address, when SharePoint knows it.
	Email string `json:"email,omitempty"`
}

// Document is one list item, file or folder as the relay stores it.
type Document struct {
	Key
	// WebID is the GUID of the (sub)web holding the list.
	WebID string `json:"web_id"`
	// WebURL is the (sub)web's absolute URL.
	WebURL string `json:"web_url"`
	// ListTitle is the list or library title.
	ListTitle string `json:"list_title"`
	// UniqueID is the item's (or file's) GUID.
	UniqueID string `json:"unique_id,omitempty"`
	// Path is the server-relative URL (FileRef), e.g. "/sites/marketing/Shared Documents/Plan.docx".
	Path string `json:"path"`
	// Name is the file or folder name (FileLeafRef), or the item title for list items.
	Name string `json:"name"`
	// Title is the Title field.
	Title string `json:"title,omitempty"`
	// Kind is "file", "folder" or "item".
	Kind string `json:"kind"`
	// Version is the UI version, e.g. "3.0".
	Version string `json:"version"`
	// ETag is SharePoint's ETag of the item.
	ETag string `json:"etag,omitempty"`
	// Created and Modified are UTC.
	Created  time.Time `json:"created"`
	Modified time.Time `json:"modified"`
	// Author and Editor are display names or logins.
	Author string `json:"author,omitempty"`
	Editor string `json:"editor,omitempty"`
	// Size is the file length in bytes (files only).
	Size int64 `json:"size,omitempty"`
	// ContentSHA256 is the hex SHA-256 of the content uploaded as a blob;
	// empty when content was not fetched (folders, items, over the size cap).
	ContentSHA256 string `json:"content_sha256,omitempty"`
	// ContentType is the MIME type guessed from the name.
	ContentType string `json:"content_type,omitempty"`
	// ACL lists who may read the document.
	ACL []ACE `json:"acl"`
	// Fields holds other list fields, as strings.
	Fields map[string]string `json:"fields,omitempty"`
	// Generation is the full-crawl generation that last wrote the document.
	Generation string `json:"generation"`
}

// Batch is a set of changes applied atomically.
type Batch struct {
	// ID makes the batch idempotent: a random string, the same on retries.
	ID string `json:"id"`
	// Upserts create or replace documents, by Key.
	Upserts []Document `json:"upserts,omitempty"`
	// Deletes remove documents by Key; deleting a missing one is fine.
	Deletes []Key `json:"deletes,omitempty"`
	// DeletePrefixes remove every document of Site whose Path equals the
	// prefix or lies under it (a folder delete, which SharePoint logs only
	// for the folder).
	DeletePrefixes []PathPrefix `json:"delete_prefixes,omitempty"`
	// DeleteFolders remove the document with each Key and every document
	// under the path the relay has stored for it: a folder deleted or moved
	// away after a rename the relay never saw, whose descendants still have
	// paths under its old name. A key the relay does not have is fine.
	DeleteFolders []Key `json:"delete_folders,omitempty"`
	// Blobs carries the content of small files that upserts name by
	// ContentSHA256, stored with the batch in one commit. Each is at most
	// MaxInlineBlobBytes, together at most MaxInlineBatchBytes.
	Blobs []InlineBlob `json:"blobs,omitempty"`
}

// InlineBlob is content carried in a batch instead of a PUT of its own.
type InlineBlob struct {
	// SHA256 is the hex SHA-256 of Data; the relay checks it.
	SHA256 string `json:"sha256"`
	// Data is the content (base64 in JSON).
	Data []byte `json:"data,omitempty"`
}

// PathPrefix is a folder path within a site.
type PathPrefix struct {
	Site string `json:"site"`
	Path string `json:"path"`
}

// BatchResult is the relay's acknowledgement.
type BatchResult struct {
	ID       string `json:"id"`
	Upserted int    `json:"upserted"`
	Deleted  int    `json:"deleted"`
	// Duplicate is true when the batch had been applied before.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Generation ends a full crawl of Site.
type Generation struct {
	Site       string `json:"site"`
	Generation string `json:"generation"`
}

// GenerationResult says how many orphans were deleted.
type GenerationResult struct {
	Deleted int `json:"deleted"`
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidSHA256 reports whether s is a lower-case hex SHA-256.
func ValidSHA256(s string) bool { return sha256RE.MatchString(s) }

// Validate checks a batch for what the relay cannot store.
func (b *Batch) Validate() error {
	var errs []error
	if b.ID == "" || len(b.ID) > 128 {
		errs = append(errs, errors.New("id: 1 to 128 characters required"))
	}
	for i, d := range b.Upserts {
		if err := d.validate(); err != nil {
			errs = append(errs, fmt.Errorf("upserts[%d]: %w", i, err))
		}
	}
	for i, k := range b.Deletes {
		if err := k.validate(); err != nil {
			errs = append(errs, fmt.Errorf("deletes[%d]: %w", i, err))
		}
	}
	for i, p := range b.DeletePrefixes {
		if p.Site == "" || p.Path == "" || p.Path[0] != '/' {
			errs = append(errs, fmt.Errorf("delete_prefixes[%d]: site and an absolute path are required", i))
		}
	}
	for i, k := range b.DeleteFolders {
		if err := k.validate(); err != nil {
			errs = append(errs, fmt.Errorf("delete_folders[%d]: %w", i, err))
		}
	}
	total := 0
	for i, bl := range b.Blobs {
		total += len(bl.Data)
		switch {
		case !ValidSHA256(bl.SHA256):
			errs = append(errs, fmt.Errorf("blobs[%d]: sha256: want 64 lower-case hex digits", i))
		case len(bl.Data) > MaxInlineBlobBytes:
			errs = append(errs, fmt.Errorf("blobs[%d]: %d bytes, more than the %d an inline blob may have", i, len(bl.Data), MaxInlineBlobBytes))
		case sha256Hex(bl.Data) != bl.SHA256:
			errs = append(errs, fmt.Errorf("blobs[%d]: the data does not hash to sha256 %s", i, bl.SHA256))
		}
	}
	if total > MaxInlineBatchBytes {
		errs = append(errs, fmt.Errorf("blobs: %d bytes in all, more than the %d a batch may carry", total, MaxInlineBatchBytes))
	}
	return errors.Join(errs...)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (k Key) validate() error {
	if k.Site == "" || k.ListID == "" || k.ItemID <= 0 {
		return errors.New("site, list_id and a positive item_id are required")
	}
	return nil
}

func (d Document) validate() error {
	if err := d.Key.validate(); err != nil {
		return err
	}
	switch d.Kind {
	case "file", "folder", "item":
	default:
		return fmt.Errorf("kind %q: want file, folder or item", d.Kind)
	}
	if d.Path == "" || d.Path[0] != '/' {
		return errors.New("path: a server-relative URL starting with / is required")
	}
	if d.ContentSHA256 != "" && !ValidSHA256(d.ContentSHA256) {
		return errors.New("content_sha256: want 64 lower-case hex digits")
	}
	if d.Generation == "" {
		return errors.New("generation is required")
	}
	return nil
}
