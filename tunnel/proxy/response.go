package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
)

// maxHeaderBytes bounds the status line and headers of a CONNECT response, so
// a hostile proxy cannot make the Dialer buffer without end.
const maxHeaderBytes = 64 << 10

// readConnectResponse reads the proxy's answer to the CONNECT request req
// from br.
//
// It reads at most maxHeaderBytes of response head from br, through
// br.ReadSlice, so memory stays bounded whatever the proxy sends, and parses
// it with http.ReadResponse. On a 2xx answer the body is empty and every byte
// after the head, buffered in br or not, belongs to the tunnel (RFC 9110
// section 9.3.6). On any other answer Body reads the response body from br as
// framed by Content-Length or chunked encoding, or until the proxy closes the
// connection (then Close is true); the caller must bound what it reads.
func readConnectResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	head, err := readHead(br, maxHeaderBytes)
	if err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), req)
	if err != nil {
		return nil, fmt.Errorf("parse response: %w", err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		resp.Body, resp.ContentLength, resp.TransferEncoding = http.NoBody, 0, nil
	case len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked":
		resp.Body = &chunkedBody{r: httputil.NewChunkedReader(br), br: br}
	case resp.ContentLength >= 0:
		resp.Body = io.NopCloser(io.LimitReader(br, resp.ContentLength))
	default:
		resp.Body = io.NopCloser(br)
		resp.Close = true
	}
	return resp, nil
}

// readHead reads from br up to and including the empty line that ends an
// HTTP response head, failing once more than limit bytes have arrived.
func readHead(br *bufio.Reader, limit int) ([]byte, error) {
	var head []byte
	lineStart := true
	for {
		frag, err := br.ReadSlice('\n')
		need := len(head) + len(frag)
		if need > limit {
			return nil, errHeaderTooLarge
		}
		if need > cap(head) {
			// Double, but never past limit: append's gentler growth for
			// large slices would allocate several times limit in total.
			head = append(make([]byte, 0, min(max(2*cap(head), need, 512), limit)), head...)
		}
		head = append(head, frag...)
		switch {
		case err == nil:
			if lineStart && (len(frag) == 1 || len(frag) == 2 && frag[0] == '\r') {
				return head, nil
			}
			lineStart = true
		case errors.Is(err, bufio.ErrBufferFull):
			lineStart = false // the line goes on in the next fragment
		case errors.Is(err, io.EOF):
			if len(head) == 0 {
				return nil, fmt.Errorf("%w before responding: %w", errClosedEarly, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("%w in the middle of its response: %w", errClosedEarly, io.ErrUnexpectedEOF)
		default:
			return nil, err
		}
	}
}

// chunkedBody reads a chunked body and then its trailer section, so that the
// next response on the connection starts where br is left.
type chunkedBody struct {
	r    io.Reader
	br   *bufio.Reader
	done bool
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		b.done = true
		if _, terr := readHead(b.br, maxHeaderBytes); terr != nil {
			return n, fmt.Errorf("read chunked trailer: %w", terr)
		}
	}
	return n, err
}

func (b *chunkedBody) Close() error { return nil }

// drain reads and discards body, failing if it holds more than maxDrainBytes.
func drain(body io.Reader) error {
	n, err := io.Copy(io.Discard, io.LimitReader(body, maxDrainBytes+1))
	if err != nil {
		return err
	}
	if n > maxDrainBytes {
		return errBodyTooLarge
	}
	return nil
}
