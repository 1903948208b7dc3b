// Package dashboard is the relay's health dashboard: one HTML page, rendered
// with html/template and embedded in the binary, with inline CSS, inline SVG
// charts and a few lines of vanilla JavaScript. It has no external assets.
//
// The page has five panels:
//
//  1. system status: per target system (sharepoint, workfront, slack...),
//     up/degraded/down/idle, uptime over 24 h, latency p50/p95 over the
//     last hour;
//  2. tokens and certificates: expiry, time remaining and state;
//  3. error rates over 24 h, with a sparkline of 24 hourly buckets;
//  4. API call volume per system over the last hour and 24 h, as bars;
//  5. the agents connected per tenant, with transport, sessions and crawl
//     state.
//
// A [Recorder] accumulates call outcomes per system; the relay passes its
// [Recorder.Systems] together with credentials and agents to [Handler] as a
// [Snapshot], built per request.
//
// Refresh flow:
//
//	browser                                    Handler
//	GET /            Accept: text/html  -----> snapshot(ctx), render page
//	every 5 s:
//	GET /?format=fragment               -----> snapshot(ctx), render panels only
//	     <------ 200 text/html: swap the panels, show "Updated hh:mm:ss"
//	     <------ error or timeout: keep the panels, show a "Stale" note
//	GET /            Accept: application/json (or ?format=json)
//	     <------ the Snapshot as JSON, for scripts and probes
//
// The page is rendered only on the server, by html/template, so every value
// is escaped in one place. The refresh swaps in HTML rendered by the same
// template rather than rebuilding it from JSON in the browser. A
// Content-Security-Policy that allows only the page's own script and style
// (by hash) backs the escaping up.
package dashboard
