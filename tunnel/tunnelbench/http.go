package tunnelbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcc-bridge/bridge/tunnel"
	"github.com/mcc-bridge/bridge/tunnel/control"
)

// LoadOptions tunes HTTPLatency. The zero value of every field means its default.
type LoadOptions struct {
	// Rate is how many requests start per second, whatever the responses
	// do (an open loop). Zero means 2000.
	Rate float64
	// Duration is how long the measured load on each kind lasts in all.
	// Zero means 5s.
	Duration time.Duration
	// Rounds is how many parts Duration is cut into; the kinds take turns
	// round by round. Zero means 5.
	Rounds int
	// Warmup is how long the same load runs on each kind, unmeasured,
	// before the first round. Zero means 1s; negative means no warm-up.
	Warmup time.Duration
	// MaxInFlight bounds the requests in flight; when it is reached the
	// generator waits, and counts the request as throttled. Zero means 256.
	MaxInFlight int
	// BodySize is the size of each request body and of each response body,
	// which echoes it. Zero means 1024.
	BodySize int
	// FreshStreams sends every tunnel request on a new stream without
	// keep-alive (tunnel.NewHTTPTransport) over bare sessions. False means
	// the product path: the control stream running on a tunnel.Link,
	// tunnel.Listener on the server and tunnel.HTTPTransport, which keeps
	// streams open as the direct baseline keeps connections.
	FreshStreams bool
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.Rate <= 0 {
		o.Rate = 2000
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 5
	}
	if o.Warmup == 0 {
		o.Warmup = time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.BodySize <= 0 {
		o.BodySize = 1024
	}
	return o
}

// LatencyResult is what HTTPLatency measured on one kind.
type LatencyResult struct {
	// Kind is what carried the requests.
	Kind Kind
	// Requests is how many measured requests were sent; every one succeeded
	// when HTTPLatency returns no error.
	Requests int
	// Verified is how many responses had the status 200 and echoed the
	// request body exactly.
	Verified int
	// Throttled is how many requests started late because MaxInFlight
	// requests were in flight: when not zero, the load was not open-loop
	// and the percentiles understate the latency.
	Throttled int
	// Elapsed is the time under measured load: from the first request's
	// start to the last one's end, summed over the rounds.
	Elapsed time.Duration
	// CPU is the user plus system CPU time of the whole process under
	// measured load: client, server and load generator together.
	CPU time.Duration
	// P50, P99 and Max are latencies from just before the client sends a
	// request to the end of its response body.
	P50, P99, Max time.Duration
}

// Rate is the achieved rate of completed requests per second.
func (r LatencyResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// CPUPerRequest is the process CPU time per request, both ends together.
func (r LatencyResult) CPUPerRequest() time.Duration {
	if r.Requests == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Requests)
}

// HTTPLatency measures HTTP request latency under a steady load: POSTs of
// opts.BodySize bytes that a handler reads and echoes back. Over KindQUIC and
// KindYamux each request goes on a new tunnel stream through
// tunnel.NewHTTPTransport, as the relay sends them, to an http.Server
// serving the streams that the other side accepts. Over KindDirect, the
// baseline, the same client and handler use HTTP/1.1 with keep-alive over
// loopback TCP, without TLS. Every kind is set up and warmed up first; then
// the kinds take turns, opts.Rounds times, each turn after a garbage
// collection. The results are in the order of kinds.
func HTTPLatency(ctx context.Context, kinds []Kind, cfg Config, opts LoadOptions) ([]LatencyResult, error) {
	opts = opts.withDefaults()
	targets := make([]*httpTarget, 0, len(kinds))
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()
	for _, kind := range kinds {
		t, err := newHTTPTarget(ctx, kind, cfg, opts)
		if err != nil {
			return nil, fmt.Errorf("http latency over %s: %w", kind, err)
		}
		targets = append(targets, t)
		if opts.Warmup > 0 {
			if _, err := runLoad(ctx, opts, opts.Warmup, t.do); err != nil {
				return nil, fmt.Errorf("http latency over %s: warm-up: %w", kind, err)
			}
		}
		t.verified.Store(0)
	}
	res := make([]LatencyResult, len(kinds))
	lat := make([][]time.Duration, len(kinds))
	for round := range opts.Rounds {
		for i, t := range targets {
			runtime.GC()
			cpu0, cerr0 := processCPU()
			lr, err := runLoad(ctx, opts, opts.Duration/time.Duration(opts.Rounds), t.do)
			cpu1, cerr1 := processCPU()
			if err != nil {
				return nil, fmt.Errorf("http latency over %s: round %d: %w", t.kind, round+1, err)
			}
			if err := errors.Join(cerr0, cerr1); err != nil {
				return nil, fmt.Errorf("http latency over %s: %w", t.kind, err)
			}
			lat[i] = append(lat[i], lr.latencies...)
			res[i].Throttled += lr.throttled
			res[i].Elapsed += lr.elapsed
			res[i].CPU += cpu1 - cpu0
		}
	}
	for i, t := range targets {
		res[i].Kind = t.kind
		res[i].Requests = len(lat[i])
		res[i].Verified = int(t.verified.Load())
		res[i].P50, res[i].P99 = percentile(lat[i], 50), percentile(lat[i], 99)
		res[i].Max = percentile(lat[i], 100)
	}
	return res, nil
}

// httpTarget is an HTTP client and the server it sends to, over one kind.
type httpTarget struct {
	kind     Kind
	verified atomic.Int64 // responses checked and found right
	do       func(context.Context) error
	close    func()
}

func newHTTPTarget(ctx context.Context, kind Kind, cfg Config, opts LoadOptions) (*httpTarget, error) {
	var (
		ln        net.Listener
		transport interface {
			http.RoundTripper
			CloseIdleConnections()
		}
		url       string
		closePair = func() {}
	)
	switch kind {
	case KindDirect:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln = l
		transport = &http.Transport{MaxIdleConnsPerHost: opts.MaxInFlight, DisableCompression: true}
		url = "http://" + l.Addr().String() + "/echo"
	case KindQUIC, KindYamux:
		p, err := NewPair(ctx, kind, cfg)
		if err != nil {
			return nil, err
		}
		closePair = func() { p.Close() }
		url = "http://bench.tunnel/echo"
		if opts.FreshStreams {
			ln = newStreamListener(p.Server)
			transport = tunnel.NewHTTPTransport(func(ctx context.Context, _, _ string) (net.Conn, error) {
				return p.Client.OpenStream(ctx)
			})
			break
		}
		client, server, err := linkPair(ctx, p)
		if err != nil {
			p.Close()
			return nil, err
		}
		tl := tunnel.NewListener(tunnel.Addr("bench"))
		tl.Serve(server)
		ln = tl
		transport = &tunnel.HTTPTransport{
			Pick:           func(context.Context, *http.Request) (*tunnel.Link, error) { return client, nil },
			MaxIdlePerLink: opts.MaxInFlight,
		}
		closePair = func() { client.Close(); server.Close(); p.Close() }
	default:
		return nil, fmt.Errorf("%q is neither a tunnel transport nor the direct baseline", kind)
	}
	srv := &http.Server{Handler: echoHandler(opts.BodySize), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })

	t := &httpTarget{kind: kind}
	t.close = func() {
		srv.Close()
		transport.CloseIdleConnections()
		wg.Wait()
		closePair()
	}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	body := pattern(opts.BodySize)[:opts.BodySize]
	t.do = func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(body))+1))
		if err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s: %q", resp.Status, got)
		}
		if !bytes.Equal(got, body) {
			return fmt.Errorf("response of %d bytes is not the %d sent", len(got), len(body))
		}
		t.verified.Add(1)
		return nil
	}
	return t, nil
}

type loadResult struct {
	latencies []time.Duration
	throttled int
	elapsed   time.Duration
}

// runLoad starts rate×d calls of do at their scheduled times, at most
// MaxInFlight at once, and waits for them all.
func runLoad(ctx context.Context, opts LoadOptions, d time.Duration, do func(context.Context) error) (loadResult, error) {
	n := max(1, int(opts.Rate*d.Seconds()))
	interval := time.Duration(float64(time.Second) / opts.Rate)
	res := loadResult{latencies: make([]time.Duration, n)}
	sem := make(chan struct{}, opts.MaxInFlight)
	var (
		wg       sync.WaitGroup
		failed   atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	start := time.Now()
	var err error
	i := 0
dispatch:
	for ; i < n; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				err = ctx.Err()
				break dispatch
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			res.throttled++
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				err = ctx.Err()
				break dispatch
			}
		}
		k := i
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			e := do(ctx)
			res.latencies[k] = time.Since(t0)
			if e != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = e })
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.latencies = res.latencies[:i]
	if err != nil {
		return res, fmt.Errorf("load stopped after %d of %d requests: %w", i, n, err)
	}
	if f := failed.Load(); f > 0 {
		return res, fmt.Errorf("%d of %d requests failed, the first with: %w", f, n, firstErr)
	}
	return res, nil
}

// echoHandler reads a body of exactly size bytes and sends it back.
func echoHandler(size int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(size)+1))
		if err != nil || len(body) != size {
			http.Error(w, fmt.Sprintf("want a body of %d bytes, got %d (%v)", size, len(body), err), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body)
	})
}

// streamListener is a net.Listener of the streams a peer opens on one
// session, so that an http.Server can serve them. Accept may be called from
// any goroutine; Close is idempotent.
type streamListener struct {
	sess   tunnel.Session
	ctx    context.Context
	cancel context.CancelFunc
}

func newStreamListener(sess tunnel.Session) *streamListener {
	ctx, cancel := context.WithCancel(context.Background())
	return &streamListener{sess: sess, ctx: ctx, cancel: cancel}
}

func (l *streamListener) Accept() (net.Conn, error) {
	st, err := l.sess.AcceptStream(l.ctx)
	if err != nil {
		if l.ctx.Err() != nil {
			return nil, net.ErrClosed
		}
		return nil, fmt.Errorf("accept stream: %w", err)
	}
	return st, nil
}

func (l *streamListener) Close() error {
	l.cancel()
	return nil
}

func (l *streamListener) Addr() net.Addr { return tunnel.Addr("tunnelbench") }

// linkPair runs the control-stream handshake on a pair of sessions, as an
// agent and a relay do, and returns the two Links.
func linkPair(ctx context.Context, p *Pair) (client, server *tunnel.Link, err error) {
	type res struct {
		l   *tunnel.Link
		err error
	}
	accepted := make(chan res, 1)
	go func() {
		l, err := tunnel.Accept(ctx, p.Server, tunnel.Identity{Tenant: "bench", Agent: "bench"},
			func(*control.Hello) (*control.Welcome, error) { return &control.Welcome{Relay: "bench"}, nil }, tunnel.LinkConfig{})
		accepted <- res{l, err}
	}()
	client, err = tunnel.Connect(ctx, p.Client, control.Hello{Agent: "bench", Tenant: "bench"}, tunnel.LinkConfig{})
	r := <-accepted
	if err != nil || r.err != nil {
		if client != nil {
			client.Close()
		}
		if r.l != nil {
			r.l.Close()
		}
		return nil, nil, fmt.Errorf("link handshake: %w", errors.Join(err, r.err))
	}
	return client, r.l, nil
}
