// Package store is the relay's ingest store: the documents, access lists and
// content blobs that agents deliver (see agent/ingestapi), kept per tenant.
//
// Store is the contract that crawl delivery and search code use. Embedded
// implements it on one machine: a SQLite database (WAL, synchronous=FULL,
// FTS5 full-text index) and a content-addressed blob directory. A later
// implementation on S3 (blobs) and DynamoDB (metadata) implements the same
// interface and passes the same conformance suite (package storetest).
//
// Delivery flow, as the agent drives it:
//
//	PutBlob(tenant, sha, body)  hash while writing to a temp file, refuse a
//	                            mismatch, fsync, rename into
//	                            blobs/<tenant>/<sha[0:2]>/<sha[2:4]>/<sha>
//	Apply(tenant, batch)        one transaction: deletes, delete_prefixes,
//	                            then upserts; refuses a batch whose upserts
//	                            name a blob the tenant has not uploaded; the
//	                            batch ID is recorded so a replay is a no-op
//	FinishGeneration(tenant, g) after a full crawl, delete the site's
//	                            documents that the generation did not write
//
// Every method takes the tenant as an argument, from the caller's verified
// identity, and every query is scoped to it: one tenant never sees another's
// documents, blobs or batch records.
package store
