package tunnel

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPTransport is an http.RoundTripper that carries requests over tunnel
// streams and keeps them open for further requests, as HTTP keep-alive
// does over TCP. Each request first picks a link (the healthiest, through
// Pick) and then reuses an idle stream of that link or opens a new one, so
// a link that turns stale or starts draining gets no new requests. When a
// link starts draining its idle streams are closed, so the drain is not held
// up by them; requests in flight on it finish normally.
type HTTPTransport struct {
	// Pick chooses the link for a request, waiting for one when none is up
	// if it likes. Required.
	Pick func(ctx context.Context, req *http.Request) (*Link, error)
	// MaxIdlePerLink bounds the idle streams kept per link. Zero means 64.
	MaxIdlePerLink int
	// IdleTimeout closes a stream idle this long. Zero means 90s.
	IdleTimeout time.Duration

	mu    sync.Mutex
	links map[*Link]*http.Transport // guarded by mu
}

// RoundTrip implements http.RoundTripper.
func (t *HTTPTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		link, err := t.Pick(req.Context(), req)
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		resp, err := t.forLink(link).RoundTrip(req)
		if err == nil || !errors.Is(err, ErrDraining) || attempt >= 3 {
			return resp, err
		}
		// The link began to drain between Pick and opening the stream:
		// nothing was sent, so another link can take the request.
		if req.Body != nil && req.Body != http.NoBody {
			if req.GetBody == nil {
				return resp, err
			}
			body, berr := req.GetBody()
			if berr != nil {
				return resp, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// CloseIdleConnections closes the idle streams of every link.
func (t *HTTPTransport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rt := range t.links {
		rt.CloseIdleConnections()
	}
}

func (t *HTTPTransport) forLink(l *Link) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt, ok := t.links[l]; ok {
		return rt
	}
	if t.links == nil {
		t.links = make(map[*Link]*http.Transport)
	}
	maxIdle := t.MaxIdlePerLink
	if maxIdle <= 0 {
		maxIdle = 64
	}
	idle := t.IdleTimeout
	if idle <= 0 {
		idle = 90 * time.Second
	}
	rt := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return l.OpenStream(ctx)
		},
		MaxIdleConns:           maxIdle,
		MaxIdleConnsPerHost:    maxIdle,
		IdleConnTimeout:        idle,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	t.links[l] = rt
	go t.watch(l, rt)
	return rt
}

// watch closes the idle streams of a draining link until it has ended, then
// forgets the link.
func (t *HTTPTransport) watch(l *Link, rt *http.Transport) {
	select {
	case <-l.DrainStarted():
		// Requests in flight put their streams back as idle when they
		// finish; keep closing them until the link is gone.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			rt.CloseIdleConnections()
			select {
			case <-l.Done():
				goto done
			case <-tick.C:
			}
		}
	case <-l.Done():
	}
done:
	t.mu.Lock()
	delete(t.links, l)
	t.mu.Unlock()
	rt.CloseIdleConnections()
}

// NewHTTPTransport returns an http.Transport that sends every request on a
// fresh stream opened by dial, without keep-alive: for callers that manage
// no links (tests, benchmarks of the raw transports). Agents and relays use
// HTTPTransport.
func NewHTTPTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	return &http.Transport{
		DialContext:            dial,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// RetryIdempotent wraps rt so that a request that failed in the tunnel (the
// session died under it) is sent again on a new stream, at most twice more,
// when sending it twice is safe: GET, HEAD, OPTIONS and TRACE, or any request
// with an Idempotency-Key header, and a body that can be re-read.
func RetryIdempotent(rt http.RoundTripper) http.RoundTripper {
	return retry{rt}
}

type retry struct{ rt http.RoundTripper }

func (r retry) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	for attempt := 0; err != nil && attempt < 2 && retryable(req); attempt++ {
		if req.GetBody != nil {
			body, berr := req.GetBody()
			if berr != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
		resp, err = r.rt.RoundTrip(req)
	}
	return resp, err
}

func retryable(req *http.Request) bool {
	if req.Context().Err() != nil {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}
