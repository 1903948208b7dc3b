package tunnel

import (
	"context"
	"net"
	"net/http"
)

// NewHTTPTransport returns an http.Transport that sends every request on a
// fresh tunnel stream opened by dial. Opening a stream costs no round trip,
// so connections are not kept alive: each request goes to the healthiest
// session at the moment it starts, and a draining session holds no idle
// connections that a later request could pick.
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
