package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzReadConnectResponse feeds arbitrary proxy answers to the CONNECT
// response parser and to what the Dialer does with its result. Seeds are in
// testdata/fuzz/FuzzReadConnectResponse; run with
//
//	go test -run '^$' -fuzz FuzzReadConnectResponse ./tunnel/proxy/
func FuzzReadConnectResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 407 x\r\nProxy-Authenticate: NTLM, Basic realm=\"a,b\"\r\nContent-Length: 2\r\n\r\nab"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := &countingReader{r: bytes.NewReader(data)}
		br := bufio.NewReader(src)
		resp, err := readConnectResponse(br, connectReq("relay.example.com:443"))
		consumed := src.n - br.Buffered()
		if err != nil {
			if resp != nil {
				t.Fatalf("got a response and the error %v", err)
			}
			if limit := maxHeaderBytes + br.Size(); consumed > limit {
				t.Fatalf("consumed %d bytes before failing, want at most %d", consumed, limit)
			}
			return
		}
		if consumed > maxHeaderBytes {
			t.Fatalf("accepted a head of %d bytes, want at most %d", consumed, maxHeaderBytes)
		}
		if resp.StatusCode < 0 || resp.StatusCode > 999 {
			t.Fatalf("StatusCode: got %d, want 0-999", resp.StatusCode)
		}
		if resp.StatusCode/100 == 2 && resp.Body != http.NoBody {
			t.Fatalf("2xx Body: got %T, want http.NoBody (the rest is tunnel data)", resp.Body)
		}
		// What the Dialer does with an answer must hold up too.
		ntlmChallenge(resp.Header)
		drain(resp.Body) // a malformed or huge body is an error, not a panic
		if resp.StatusCode == http.StatusOK {
			return
		}
		msg := responseError(resp, "proxy.corp.example:3128", "Basic").Error()
		if len(msg) > 512 {
			t.Fatalf("error message of %d bytes, want at most 512: %q", len(msg), msg)
		}
		for i := 0; i < len(msg); i++ {
			if msg[i] < 0x20 || msg[i] >= 0x7f {
				t.Fatalf("error message has byte %#x at %d, want printable ASCII: %q", msg[i], i, msg)
			}
		}
	})
}
