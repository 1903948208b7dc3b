// Package ingest is the relay's HTTP handler for crawl delivery: the three
// endpoints of agent/ingestapi, served on tunnel streams, on top of a store.
//
// Every request must carry the verified tunnel peer in its context
// (tunnel.ConnContext puts it there); the tenant is taken from it and never
// from a payload. Requests without a peer are refused with 401.
//
//	agent                                   relay (Handler)            store
//	PUT  /v1/ingest/blobs/{sha256}  ------> check hex, cap size  -----> PutBlob (hash, fsync)
//	     <------ 201 stored | 200 had it | 413 too large | 422 hash mismatch
//	POST /v1/ingest/batches         ------> cap 8 MiB, strict JSON,
//	                                        Validate             -----> Apply (one transaction)
//	     <------ 200 BatchResult | 400 bad JSON | 409 missing blob / reused ID | 413 | 422 invalid
//	POST /v1/ingest/generations     ------> strict JSON          -----> FinishGeneration
//	     <------ 200 GenerationResult | 400 | 422
//
// Errors are RFC 9457 application/problem+json documents whose type is one
// of the Problem* URIs, stable per cause, and whose detail names the
// failing field without echoing content.
package ingest
