// Package webhooks is the relay's inbound webhook endpoint: SaaS systems
// (Slack, Asana, Workfront, or anything that signs with a shared HMAC key)
// POST events to /webhooks/{system}/{tenant}; the Hub verifies each request
// by the endpoint's vendor scheme, drops replays, commits the event to a
// durable queue before answering 200, and delivers queued events to the
// Subscriber registered for the system, retrying with backoff and moving
// events that keep failing to a dead-letter queue an operator can replay
// (seed runbook 10.2).
//
// # Request flow
//
//	POST /webhooks/{system}/{tenant}
//	  endpoint   (system, tenant) not configured            -> 404 unknown_endpoint
//	  body       larger than MaxBodyBytes                   -> 413 too_large
//	  verify     per Endpoint.Scheme (one verifier type each):
//	               slack      X-Slack-Signature = v0=hex(HMAC(secret, "v0:"+ts+":"+body)),
//	                          |now-ts| <= Window; url_verification -> 200 challenge
//	               asana      X-Hook-Secret handshake -> store durably, 200 + echo;
//	                          then X-Hook-Signature = hex(HMAC(stored secret, body));
//	                          {"events":[]} heartbeats -> 200, not queued
//	               workfront  authToken in Authorization (or AuthHeader), constant time;
//	                          plus X-Workfront-Signature = hex(HMAC(secret, body)) when Secret is set
//	               hmac       Header (X-Signature) = sha256=hex(HMAC(secret, ts+"."+body)),
//	                          or of body alone without a TimestampHeader
//	             header absent or unparsable                -> 401 missing
//	             signature wrong, never seen before         -> 401 forged
//	             signature wrong, but accepted before
//	               on another body or timestamp             -> 401 tampered
//	             signature right, timestamp outside Window  -> 401 stale
//	  dedup      key (system, tenant, vendor event id, else a hash of the
//	             signed material) seen in the last 24 h     -> 200 replayed, not queued
//	  commit     seen key + event row in one transaction    -> 200 accepted
//	             store failure                              -> 503, the vendor retries
//
// Every outcome increments bridge_webhook_requests_total{system,outcome}
// (system is "unknown" for requests to unconfigured endpoints, so that
// callers cannot grow the label set). Failures are RFC 9457
// application/problem+json documents that never hold a secret, a header
// value or the body.
//
// The Asana handshake carries no proof of origin: the first X-Hook-Secret
// an endpoint receives is trusted (create the webhook right after
// configuring the endpoint), and a different one is refused until an
// operator calls ResetHookSecret.
//
// # Delivery
//
// Run delivers queued events to the Subscriber of their system, in order
// per (system, tenant): an event is tried only when every earlier event of
// its endpoint has been delivered or given up on, while endpoints proceed
// independently. A failed attempt is retried after 1 s, 2 s, 4 s, ... up to
// 5 min (Config.Now is the clock); after MaxAttempts attempts, or at once
// for an error wrapping ErrPermanent, the event is dead. DeadLetters lists
// dead events and Replay queues them again. Delivery is at least once:
// subscribers should be idempotent on Event.ID.
//
// # Storage
//
// One SQLite file, webhooks.db in Config.Dir (WAL, synchronous FULL),
// holds the Asana hook secrets (stored in the clear: encryption at rest is
// out of this package's scope; they are never logged), the seen keys with
// their expiry, and the events with their delivery state.
package webhooks
