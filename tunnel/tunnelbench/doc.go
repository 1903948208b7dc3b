// Package tunnelbench measures the tunnel transports against baselines
// measured in the same process, over real loopback sockets (127.0.0.1) and
// real TLS 1.3, as the "Measuring" section of the tunnel specification asks.
//
// The figures:
//
//   - Throughput moves bytes one way over a single stream and reports MB/s
//     and process CPU seconds per GB moved, for QUIC (KindQUIC), TLS+yamux
//     over TCP (KindYamux), and one plain TLS 1.3 connection over TCP with
//     the same certificates (KindTLS), the baseline.
//   - HTTPLatency sends small HTTP requests at a fixed rate from an open-loop
//     generator, through the tunnel as agents and relays do (tunnel.Link,
//     tunnel.Listener, tunnel.HTTPTransport with keep-alive streams) or with
//     a fresh stream per request, and directly over loopback TCP with
//     keep-alive (KindDirect), the baseline; it reports percentiles.
//   - OpenLatency compares an echo on a new stream (OpenStream included)
//     with an echo on a stream already open on the same session: the
//     difference is the cost of opening, which must not be a round trip.
//   - IdleStreamMemory opens many idle streams, each held by one goroutine
//     blocked in Read on the accepting side, and reports the heap and stack
//     growth of both ends together.
//
// Throughput and HTTPLatency take a list of kinds, baseline included: they
// set every kind up first, then let the kinds take turns, run by run, so that
// a slow spell of the machine does not fall on one kind only.
//
// Both ends of every measurement run in the calling process, so CPU time
// and memory are those of client and server together, for every transport
// alike. Each measurement sets up its own connections and closes them before
// it returns. Functions block the calling goroutine and are safe to call
// concurrently, although concurrent measurements disturb each other.
//
// The tests hold a report, TestReport, that runs everything at full size
// and prints one "BENCH <name> <value> <unit>" line per figure:
//
//	go test ./tunnel/tunnelbench -run '^TestReport$' -count=1 -v -args -bench.report
package tunnelbench
