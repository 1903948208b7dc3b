// Package audit is the relay's durable, tamper-evident audit log: one Record
// per action the relay takes or refuses on a user's behalf.
//
// The log is fail-closed. Append returns only once the record is on stable
// storage (written and fsynced), and returns an error otherwise, so the
// caller refuses the action it was about to take. Group commit keeps this
// fast: one writer goroutine takes every Append queued while the previous
// fsync ran and makes them durable with one write and one fsync per tenant.
//
// Storage is per tenant, for isolation; Query reads one tenant's file only:
//
//	<dir>/LOCK                   locked by the one Log that has dir open
//	<dir>/<tenant>/audit.jsonl   one JSON object per line, append-only
//
// Each tenant's records form a hash chain. Seq counts from 1 without gaps,
// PrevHash is the Hash of the record before (64 zeros for the first) and
//
//	Hash = hex(SHA-256(PrevHash || canonical JSON of the record with Hash ""))
//
// where the canonical JSON is what encoding/json's Marshal makes of the
// Record; every stored line is exactly Marshal of its Record, so any change
// to a byte is found. Verify re-hashes every chain and names the tenant and
// sequence number of the first break: an edited, deleted, inserted or
// reordered record. Cutting records off the end of a chain leaves a shorter
// valid chain; to detect that, anchor Log.Head somewhere the relay's host
// cannot rewrite (a remote log, a metrics system) and compare.
//
// Append flow:
//
//	caller: validate, Marshal (in the caller's goroutine), enqueue, wait
//	writer: take everything queued (up to Options.MaxBatch); per tenant,
//	        in parallel: chain (Seq, PrevHash, Hash), one write, one fsync,
//	        publish the new head, answer every waiter; on a failed write,
//	        truncate the file back to its last durable size and answer
//	        with the error; after a failed fsync, also refuse the tenant's
//	        later Appends until the log is reopened
//
// Open reads the tail of each tenant's file to recover the chain's head. A
// last line without its newline is the remnant of a write that crashed
// before its fsync, so it was never acknowledged: Open truncates it away
// and logs that it did.
//
// Request bodies must pass through Redact before they go in a Record;
// values that are secrets travel as connectors.Secret, which prints and marshals as
// "[redacted]".
//
// Metrics (Options.Registerer): bridge_audit_records_total,
// bridge_audit_append_seconds, bridge_audit_batch_size and
// bridge_audit_failures_total{reason}.
package audit
