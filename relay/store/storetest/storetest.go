// Package storetest is the conformance suite of store.Store: every
// implementation (the embedded SQLite one, a future S3 + DynamoDB one)
// must pass Run. It also has the fixtures that tests of code built on a
// store share.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/mcc-bridge/bridge/agent/ingestapi"
	"github.com/mcc-bridge/bridge/relay/store"
)

// Opener returns a new, empty store for one test and arranges for it to
// be closed when the test ends.
type Opener func(t *testing.T) store.Store

// Tenants used by the suite.
const (
	TenantA = "acme"
	TenantB = "globex"
)

// Site is the default site of Doc.
const Site = "https://sp.corp.example/sites/marketing"

// ListID is the default list of Doc.
const ListID = "0c5f0a39-5d21-4f5e-9a43-1b2c3d4e5f60"

// Doc returns a valid file document of Site and ListID at path p, readable
// by sarah@corp.example (login i:0#.w|corp\sarah), written by generation g1.
func Doc(item int, p string) ingestapi.Document {
	t := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	return ingestapi.Document{
		Key:        ingestapi.Key{Site: Site, ListID: ListID, ItemID: item},
		WebID:      "5a0e2c7d-1111-2222-3333-444455556666",
		WebURL:     Site,
		ListTitle:  "Documents",
		UniqueID:   fmt.Sprintf("00000000-0000-0000-0000-%012d", item),
		Path:       p,
		Name:       path.Base(p),
		Kind:       "file",
		Version:    "1.0",
		Created:    t,
		Modified:   t.Add(time.Hour),
		Author:     "Sarah Connor",
		Editor:     "Sarah Connor",
		ACL:        []ingestapi.ACE{{Kind: "user", Login: `i:0#.w|corp\sarah`, Email: "sarah@corp.example"}},
		Generation: "g1",
	}
}

// SHA256 returns the lower-case hex SHA-256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// PutBlob stores content for tenant or fails the test, and returns its SHA-256.
func PutBlob(t testing.TB, s store.Store, tenant string, content []byte) string {
	t.Helper()
	sha := SHA256(content)
	if _, _, err := s.PutBlob(t.Context(), tenant, sha, bytes.NewReader(content)); err != nil {
		t.Fatalf("PutBlob(%s): %v", tenant, err)
	}
	return sha
}

// Apply applies b for tenant or fails the test.
func Apply(t testing.TB, s store.Store, tenant string, b ingestapi.Batch) ingestapi.BatchResult {
	t.Helper()
	res, err := s.Apply(t.Context(), tenant, b)
	if err != nil {
		t.Fatalf("Apply(%s, %s): %v", tenant, b.ID, err)
	}
	return res
}

// All lists every document of tenant (of site, when not empty) by paging
// with limit, or fails the test.
func All(t testing.TB, s store.Store, tenant, site string, limit int) []ingestapi.Document {
	t.Helper()
	var docs []ingestapi.Document
	q := store.ListQuery{Site: site, Limit: limit}
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("List does not end")
		}
		p, err := s.List(t.Context(), tenant, q)
		if err != nil {
			t.Fatalf("List(%s): %v", tenant, err)
		}
		docs = append(docs, p.Documents...)
		if p.Next == "" {
			return docs
		}
		q.Cursor = p.Next
	}
}

// Paths returns the paths of docs, in their order.
func Paths(docs []ingestapi.Document) []string {
	var ps []string
	for _, d := range docs {
		ps = append(ps, d.Path)
	}
	return ps
}

// SortedPaths returns the paths of docs, sorted.
func SortedPaths(docs []ingestapi.Document) []string {
	ps := Paths(docs)
	slices.Sort(ps)
	return ps
}

// SameDocs reports whether two document lists are equal, comparing their
// JSON (so a nil and an empty map or slice compare as the wire sees them).
func SameDocs(a, b []ingestapi.Document) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// Snapshot is what a store holds for one tenant: all documents and stats.
type Snapshot struct {
	Docs  []ingestapi.Document
	Stats store.Stats
}

// Take snapshots the tenant's data or fails the test.
func Take(t testing.TB, s store.Store, tenant string) Snapshot {
	t.Helper()
	st, err := s.Stats(t.Context(), tenant)
	if err != nil {
		t.Fatalf("Stats(%s): %v", tenant, err)
	}
	return Snapshot{Docs: All(t, s, tenant, "", store.MaxListLimit), Stats: st}
}

// Equal reports whether two snapshots hold the same data.
func (a Snapshot) Equal(b Snapshot) bool { return a.Stats == b.Stats && SameDocs(a.Docs, b.Docs) }
