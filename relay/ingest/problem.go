package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Problem type URIs, one per cause. Clients branch on these, not on Detail.
const (
	problemBase = "https://mcc-bridge.dev/problems/"
	// ProblemUnauthenticated: the request did not come from a verified tunnel peer (401).
	ProblemUnauthenticated = problemBase + "unauthenticated"
	// ProblemInvalidSHA256: the path does not end in 64 lower-case hex digits (400).
	ProblemInvalidSHA256 = problemBase + "invalid-sha256"
	// ProblemHashMismatch: the blob body does not hash to the SHA-256 in the path (422).
	ProblemHashMismatch = problemBase + "hash-mismatch"
	// ProblemBodyTooLarge: the body is larger than the endpoint accepts (413).
	ProblemBodyTooLarge = problemBase + "body-too-large"
	// ProblemIncompleteBody: the body could not be read to its end (400).
	ProblemIncompleteBody = problemBase + "incomplete-body"
	// ProblemInvalidJSON: the body is not one JSON object of the expected shape (400).
	ProblemInvalidJSON = problemBase + "invalid-json"
	// ProblemUnknownField: the JSON has a member the wire format does not define (400).
	ProblemUnknownField = problemBase + "unknown-field"
	// ProblemInvalidBatch: the batch fails ingestapi's Validate (422).
	ProblemInvalidBatch = problemBase + "invalid-batch"
	// ProblemMissingBlob: upserts name content that was not uploaded first (409);
	// upload the blobs listed in missing_blobs and send the batch again.
	ProblemMissingBlob = problemBase + "missing-blob"
	// ProblemBatchConflict: the batch ID was applied before with other content (409).
	ProblemBatchConflict = problemBase + "batch-conflict"
	// ProblemInvalidGeneration: the generation lacks its site or ID (422).
	ProblemInvalidGeneration = problemBase + "invalid-generation"
	// ProblemInvalidRequest: the store refused an argument (422).
	ProblemInvalidRequest = problemBase + "invalid-request"
	// ProblemUnavailable: the store is shutting down; retry later (503).
	ProblemUnavailable = problemBase + "unavailable"
	// ProblemInternal: the relay failed; retry later (500).
	ProblemInternal = problemBase + "internal"
)

// Problem is an RFC 9457 problem details document.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// MissingBlobs lists, for ProblemMissingBlob, the upserts whose content
	// must be uploaded.
	MissingBlobs []MissingBlob `json:"missing_blobs,omitempty"`
}

// MissingBlob names one upsert whose content blob the relay does not have.
type MissingBlob struct {
	// Upsert is the index in the batch's upserts.
	Upsert int `json:"upsert"`
	// SHA256 is the blob to upload.
	SHA256 string `json:"sha256"`
}

// problem builds a Problem; title is derived from the status.
func problem(status int, typ, detail string) *Problem {
	return &Problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: clip(detail)}
}

func writeProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// clip keeps a detail readable: joined errors become "; "-separated, at
// most maxDetailLines of them and maxDetailBytes in all.
func clip(s string) string {
	const maxDetailLines, maxDetailBytes = 10, 2048
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if n := len(lines); n > maxDetailLines {
		lines = append(lines[:maxDetailLines], "and "+strconv.Itoa(n-maxDetailLines)+" more")
	}
	s = strings.Join(lines, "; ")
	if len(s) > maxDetailBytes {
		s = strings.ToValidUTF8(s[:maxDetailBytes], "") + "…"
	}
	return s
}
